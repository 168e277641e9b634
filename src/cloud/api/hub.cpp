#include "dag/api/hub.hpp"

#include <algorithm>
#include <utility>

namespace dag::api {

EventHub::EventHub(std::uint64_t start_id, std::size_t per_account)
    : start_id_(start_id), per_account_(per_account), last_id_(start_id) {}

EventHub::~EventHub() = default;

const EventHub::Account* EventHub::find(std::string_view account_id) const {
  const std::shared_lock lock(accounts_mutex_);
  const auto it = accounts_.find(account_id);
  return it == accounts_.end() ? nullptr : it->second.get();
}

EventHub::Account& EventHub::find_or_add(std::string_view account_id) {
  {
    const std::shared_lock lock(accounts_mutex_);
    const auto it = accounts_.find(account_id);
    if (it != accounts_.end()) return *it->second;
  }
  const std::unique_lock lock(accounts_mutex_);
  auto& slot = accounts_[std::string(account_id)];  // another thread may have added it
  if (!slot) slot = std::make_unique<Account>();
  return *slot;
}

std::uint64_t EventHub::publish(std::string_view account_id, std::string name, std::string data) {
  Account& account = find_or_add(account_id);
  std::uint64_t id = 0;
  {
    const std::lock_guard lock(account.mutex);
    // Taken under the account's lock so that the account's ring stays in id order.
    id = last_id_.fetch_add(1, std::memory_order_acq_rel) + 1;
    account.ring.push_back(StreamEvent{id, std::move(name), std::move(data)});
    account.newest = id;
    while (account.ring.size() > per_account_) {
      account.evicted = account.ring.front().id;
      account.ring.pop_front();
    }
  }
  account.cv.notify_all();
  return id;
}

bool EventHub::valid_after(std::uint64_t after) const noexcept {
  return after >= start_id_ && after <= last_id_.load(std::memory_order_acquire);
}

std::optional<std::vector<StreamEvent>> EventHub::since_locked(const Account& account,
                                                               std::uint64_t after) const {
  if (!valid_after(after) || account.evicted > after) return std::nullopt;
  // The ring is in id order: skip what the client has seen.
  const auto first =
      std::upper_bound(account.ring.begin(), account.ring.end(), after,
                       [](std::uint64_t id, const StreamEvent& event) { return id < event.id; });
  return std::vector<StreamEvent>(first, account.ring.end());
}

std::optional<std::vector<StreamEvent>> EventHub::since(std::string_view account_id,
                                                        std::uint64_t after) const {
  const Account* account = find(account_id);
  if (account == nullptr) {
    if (!valid_after(after)) return std::nullopt;
    return std::vector<StreamEvent>{};
  }
  const std::lock_guard lock(account->mutex);
  return since_locked(*account, after);
}

std::optional<std::vector<StreamEvent>> EventHub::wait(
    std::string_view account_id, std::uint64_t after,
    std::chrono::steady_clock::time_point deadline) {
  Account& account = find_or_add(account_id);
  std::unique_lock lock(account.mutex);
  // close() sets closed_ before it takes this mutex to notify, so the flag cannot be missed
  // between the check and the sleep.
  account.cv.wait_until(lock, deadline, [&] {
    return account.newest > after || !valid_after(after) || closed_.load(std::memory_order_acquire);
  });
  return since_locked(account, after);
}

std::uint64_t EventHub::last_id() const noexcept {
  return last_id_.load(std::memory_order_acquire);
}

void EventHub::close() {
  closed_.store(true, std::memory_order_release);
  std::vector<Account*> accounts;
  {
    const std::shared_lock lock(accounts_mutex_);
    accounts.reserve(accounts_.size());
    for (const auto& [id, account] : accounts_) accounts.push_back(account.get());
  }
  for (Account* account : accounts) {
    // Taking the mutex orders the flag before any waiter's next predicate check.
    { const std::lock_guard lock(account->mutex); }
    account->cv.notify_all();
  }
}

bool EventHub::closed() const noexcept {
  return closed_.load(std::memory_order_acquire);
}

EventHub::StreamGuard::StreamGuard(std::atomic<std::size_t>& count) noexcept : count_(&count) {
  count_->fetch_add(1, std::memory_order_relaxed);
}

EventHub::StreamGuard::StreamGuard(StreamGuard&& other) noexcept
    : count_(std::exchange(other.count_, nullptr)) {}

EventHub::StreamGuard& EventHub::StreamGuard::operator=(StreamGuard&& other) noexcept {
  if (this != &other) {
    release();
    count_ = std::exchange(other.count_, nullptr);
  }
  return *this;
}

EventHub::StreamGuard::~StreamGuard() {
  release();
}

void EventHub::StreamGuard::release() noexcept {
  if (count_ != nullptr) count_->fetch_sub(1, std::memory_order_relaxed);
  count_ = nullptr;
}

EventHub::StreamGuard EventHub::open_stream() noexcept {
  return StreamGuard(streams_);
}

std::size_t EventHub::streams() const noexcept {
  return streams_.load(std::memory_order_relaxed);
}

}  // namespace dag::api
