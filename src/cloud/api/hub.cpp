#include "dag/api/hub.hpp"

#include <algorithm>
#include <utility>

namespace dag::api {
namespace {

// Idle accounts give their rings up at their next event; the sweep catches those whose
// devices went quiet, at a cost of one pass over the watched accounts per this many events.
constexpr std::uint64_t kSweepEvery = 4096;

}  // namespace

EventHub::EventHub(const Clock& clock, std::uint64_t start_id, std::size_t per_account,
                   std::chrono::milliseconds linger)
    : clock_(clock),
      start_id_(start_id),
      per_account_(per_account),
      linger_(linger),
      last_id_(start_id) {}

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
  // No publish() issues an id meanwhile without finding this account (it holds the shared
  // lock while it does), so every id up to here is one the account did not keep.
  if (!slot) slot = std::make_unique<Account>(last_id_.load(std::memory_order_acquire));
  return *slot;
}

bool EventHub::watched(const Account& account) const {
  return account.streams > 0 || clock_.steady() < account.watched_until;
}

void EventHub::forget(Account& account) {
  if (account.ring.empty()) return;
  account.evicted = std::max(account.evicted, account.ring.back().id);
  std::deque<StreamEvent>{}.swap(account.ring);  // clear() would keep a block
}

std::uint64_t EventHub::publish(std::string_view account_id, std::string name,
                                const std::function<std::string()>& data) {
  if (published_.fetch_add(1, std::memory_order_relaxed) % kSweepEvery == kSweepEvery - 1) {
    sweep();
  }
  Account* account = nullptr;
  {
    const std::shared_lock lock(accounts_mutex_);
    const auto it = accounts_.find(account_id);
    // Never watched: an id, and nothing to keep or wake.
    if (it == accounts_.end()) return last_id_.fetch_add(1, std::memory_order_acq_rel) + 1;
    account = it->second.get();
  }
  std::uint64_t id = 0;
  {
    const std::lock_guard lock(account->mutex);
    // Taken under the account's lock so that the account's ring stays in id order.
    id = last_id_.fetch_add(1, std::memory_order_acq_rel) + 1;
    account->newest = id;
    if (watched(*account)) {
      account->ring.push_back(StreamEvent{id, std::move(name), data()});
      while (account->ring.size() > per_account_) {
        account->evicted = account->ring.front().id;
        account->ring.pop_front();
      }
    } else {
      forget(*account);
      account->evicted = id;
    }
  }
  account->cv.notify_all();
  return id;
}

std::uint64_t EventHub::publish(std::string_view account_id, std::string name, std::string data) {
  return publish(account_id, std::move(name), [&data] { return std::move(data); });
}

void EventHub::watch(std::string_view account_id) {
  Account& account = find_or_add(account_id);
  const std::lock_guard lock(account.mutex);
  account.watched_until = std::max(account.watched_until, clock_.steady() + linger_);
}

std::vector<EventHub::Account*> EventHub::all_accounts() const {
  std::vector<Account*> accounts;
  const std::shared_lock lock(accounts_mutex_);
  accounts.reserve(accounts_.size());
  for (const auto& [id, account] : accounts_) accounts.push_back(account.get());
  return accounts;
}

void EventHub::sweep() {
  const auto accounts = all_accounts();
  for (Account* account : accounts) {
    const std::lock_guard lock(account->mutex);
    if (!watched(*account)) forget(*account);
  }
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
    // Never watched: whatever it had is gone, so only "nothing happened since" is an answer.
    if (!valid_after(after) || after < last_id()) return std::nullopt;
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
  const auto accounts = all_accounts();
  for (Account* account : accounts) {
    // Taking the mutex orders the flag before any waiter's next predicate check.
    { const std::lock_guard lock(account->mutex); }
    account->cv.notify_all();
  }
}

bool EventHub::closed() const noexcept {
  return closed_.load(std::memory_order_acquire);
}

EventHub::StreamGuard::StreamGuard(EventHub& hub, Account& account) noexcept
    : hub_(&hub), account_(&account) {}

EventHub::StreamGuard::StreamGuard(StreamGuard&& other) noexcept
    : hub_(std::exchange(other.hub_, nullptr)), account_(std::exchange(other.account_, nullptr)) {}

EventHub::StreamGuard& EventHub::StreamGuard::operator=(StreamGuard&& other) noexcept {
  if (this != &other) {
    release();
    hub_ = std::exchange(other.hub_, nullptr);
    account_ = std::exchange(other.account_, nullptr);
  }
  return *this;
}

EventHub::StreamGuard::~StreamGuard() {
  release();
}

void EventHub::StreamGuard::release() noexcept {
  if (hub_ != nullptr) hub_->end_stream(*account_);
  hub_ = nullptr;
  account_ = nullptr;
}

void EventHub::end_stream(Account& account) {
  {
    const std::lock_guard lock(account.mutex);
    --account.streams;
    account.watched_until = std::max(account.watched_until, clock_.steady() + linger_);
  }
  streams_.fetch_sub(1, std::memory_order_relaxed);
}

EventHub::StreamGuard EventHub::open_stream(std::string_view account_id) {
  Account& account = find_or_add(account_id);
  {
    const std::lock_guard lock(account.mutex);
    ++account.streams;
  }
  streams_.fetch_add(1, std::memory_order_relaxed);
  return {*this, account};
}

std::size_t EventHub::streams() const noexcept {
  return streams_.load(std::memory_order_relaxed);
}

std::size_t EventHub::held() const {
  const auto accounts = all_accounts();
  std::size_t n = 0;
  for (const Account* account : accounts) {
    const std::lock_guard lock(account->mutex);
    n += account->ring.size();
  }
  return n;
}

}  // namespace dag::api
