// The event hub behind the live stream `GET /v1/accounts/{id}/stream` (docs/api.md "Live
// events"): dagd publishes each device change of an account once, and every open stream of
// that account reads it from here.
//
// Ids are one counter across all accounts, so a stream's `Last-Event-ID` orders against
// every event of this process, and an account's own ids have gaps. Each account keeps its
// last `per_account` events in a ring; a reconnecting client is sent the events after its
// Last-Event-ID when the ring still holds all of them, and a snapshot otherwise (since()
// and wait() answer nullopt). An id from another process (dagd restarted) must read as
// "needs a snapshot": dagd passes epoch-ms * 1000 as start_id, so the ids of an earlier
// process are below this one's start and the ids of this one are above every earlier one.
//
// Memory is bounded by per_account events per account that ever had an event or a waiter.
//
// Thread-safety: every member may be called from any thread. publish() never waits for a
// stream to read (a slow client loses events to the ring, then gets a snapshot) and wakes
// only the waiters of its account, so many idle streams cost nothing per event.
// Blocking: wait() blocks until an event, its deadline or close(); the rest return at once.
// Errors: none; a Last-Event-ID the hub cannot serve is nullopt, not an error.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace dag::api {

/// One SSE event: `id:`, `event:` and `data:` lines.
struct StreamEvent {
  std::uint64_t id{0};
  std::string name;  ///< the SSE event name, e.g. "device"
  std::string data;  ///< the payload (JSON), one line

  bool operator==(const StreamEvent&) const = default;
};

class EventHub {
 public:
  /// The events an account keeps for reconnecting clients (docs/api.md: the last 256).
  static constexpr std::size_t kDefaultPerAccount = 256;

  /// The first id issued is start_id + 1.
  explicit EventHub(std::uint64_t start_id, std::size_t per_account = kDefaultPerAccount);
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;
  EventHub(EventHub&&) = delete;
  EventHub& operator=(EventHub&&) = delete;
  ~EventHub();

  /// Appends an event to the account's ring and wakes the account's waiters. Returns its id.
  std::uint64_t publish(std::string_view account_id, std::string name, std::string data);

  /// The account's events with id > after, oldest first (empty: nothing new). nullopt when
  /// the client needs a snapshot: an event after `after` was already evicted, or `after` is
  /// no id this hub could have issued (below start_id or above last_id()). 0 is not special.
  [[nodiscard]] std::optional<std::vector<StreamEvent>> since(std::string_view account_id,
                                                              std::uint64_t after) const;

  /// Waits until the account has an event with id > after, `deadline` passes or close(),
  /// then answers as since(). Returns at once when since() would answer nullopt or the
  /// hub is closed; an empty vector when the deadline passed (or close()) with nothing new.
  [[nodiscard]] std::optional<std::vector<StreamEvent>> wait(
      std::string_view account_id, std::uint64_t after,
      std::chrono::steady_clock::time_point deadline);

  /// The highest id issued so far (start_id before the first). A new stream takes it BEFORE
  /// it reads its snapshot and then follows the events after it, so no change is lost
  /// between the two (a change may arrive twice, which a client applies idempotently).
  [[nodiscard]] std::uint64_t last_id() const noexcept;

  /// Wakes every waiter; later waits return at once. For shutdown: streams end.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  /// Counts one open stream for as long as it lives (the dagd_sse_streams gauge).
  class StreamGuard {
   public:
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;
    StreamGuard(StreamGuard&& other) noexcept;
    StreamGuard& operator=(StreamGuard&& other) noexcept;
    ~StreamGuard();

   private:
    friend class EventHub;
    explicit StreamGuard(std::atomic<std::size_t>& count) noexcept;
    void release() noexcept;
    std::atomic<std::size_t>* count_;
  };

  /// The guard must not outlive the hub.
  [[nodiscard]] StreamGuard open_stream() noexcept;
  /// Streams open now.
  [[nodiscard]] std::size_t streams() const noexcept;

 private:
  struct Account {
    mutable std::mutex mutex;
    std::condition_variable cv;  ///< this account's waiters only
    std::deque<StreamEvent> ring;
    std::uint64_t newest{0};   ///< highest id the account was given (0: none)
    std::uint64_t evicted{0};  ///< highest id dropped from the ring (0: none)
  };

  [[nodiscard]] const Account* find(std::string_view account_id) const;
  Account& find_or_add(std::string_view account_id);
  [[nodiscard]] bool valid_after(std::uint64_t after) const noexcept;
  [[nodiscard]] std::optional<std::vector<StreamEvent>> since_locked(const Account& account,
                                                                     std::uint64_t after) const;

  const std::uint64_t start_id_;
  const std::size_t per_account_;
  std::atomic<std::uint64_t> last_id_;
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> streams_{0};

  /// Guards the map only; an account's events are guarded by its own mutex, so readers and
  /// writers of different accounts do not contend. Accounts are never removed, so a
  /// reference found under the lock stays valid after it is released.
  mutable std::shared_mutex accounts_mutex_;
  std::map<std::string, std::unique_ptr<Account>, std::less<>> accounts_;
};

}  // namespace dag::api
