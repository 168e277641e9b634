// The event hub behind the live stream `GET /v1/accounts/{id}/stream` (docs/api.md "Live
// events"): dagd publishes each device change of an account once, and every open stream of
// that account reads it from here.
//
// Ids are one counter across all accounts, so a stream's `Last-Event-ID` orders against
// every event of this process, and an account's own ids have gaps. An account that is
// watched keeps its last `per_account` events in a ring; a reconnecting client is sent the
// events after its Last-Event-ID when the ring still holds all of them, and a snapshot
// otherwise (since() and wait() answer nullopt). An id from another process (dagd
// restarted) must read as "needs a snapshot": dagd passes epoch-ms * 1000 as start_id, so
// the ids of an earlier process are below this one's start and the ids of this one are
// above every earlier one.
//
// Watched: an account is watched while one of its streams is open (open_stream) and for
// `linger` after the last one closed or after watch(), so that a client that reconnects
// within it resumes without a snapshot. Events of other accounts are counted (ids, and the
// gap they leave) but not kept, and their data is never built: most accounts have no
// dashboard open, and keeping 256 events for each of them took 32 MB of dagd's 80 in a
// storm of 10,000 dags. A stream must therefore watch() its account before it reads
// last_id() or since(): an event published before is then in the snapshot it reads next.
//
// Memory: per_account events for each watched account; an account that stopped being
// watched gives its events up at its next event or the next sweep (every 4096 events).
// Other accounts cost an entry of a few dozen bytes once they have been watched, nothing
// before.
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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/clock.hpp"

namespace dag::api {

/// One SSE event: `id:`, `event:` and `data:` lines.
struct StreamEvent {
  std::uint64_t id{0};
  std::string name;  ///< the SSE event name, e.g. "device"
  std::string data;  ///< the payload (JSON), one line

  bool operator==(const StreamEvent&) const = default;
};

class EventHub {
  struct Account;  // below

 public:
  /// The events a watched account keeps for reconnecting clients (docs/api.md: 256).
  static constexpr std::size_t kDefaultPerAccount = 256;
  /// How long an account stays watched after its last stream closed.
  static constexpr std::chrono::milliseconds kDefaultLinger = std::chrono::minutes{5};

  /// The first id issued is start_id + 1. `clock` (its steady time) must outlive the hub.
  EventHub(const Clock& clock, std::uint64_t start_id, std::size_t per_account = kDefaultPerAccount,
           std::chrono::milliseconds linger = kDefaultLinger);
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;
  EventHub(EventHub&&) = delete;
  EventHub& operator=(EventHub&&) = delete;
  ~EventHub();

  /// Issues the next id for an event of the account; when the account is watched, appends
  /// the event to its ring and wakes its waiters. `data` is only called (under the
  /// account's lock) when the event is kept. Returns the id.
  std::uint64_t publish(std::string_view account_id, std::string name,
                        const std::function<std::string()>& data);
  /// The same with data at hand.
  std::uint64_t publish(std::string_view account_id, std::string name, std::string data);

  /// Keeps the account's events from now on, until `linger` from now (or longer, while a
  /// stream is open). Events before are gone: since() of an id before now needs a snapshot.
  void watch(std::string_view account_id);

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

  /// The highest id issued so far (start_id before the first). A new stream watches its
  /// account, takes this BEFORE it reads its snapshot and then follows the events after
  /// it, so no change is lost between the two (a change may arrive twice, which a client
  /// applies idempotently).
  [[nodiscard]] std::uint64_t last_id() const noexcept;

  /// Wakes every waiter; later waits return at once. For shutdown: streams end.
  void close();
  [[nodiscard]] bool closed() const noexcept;

  /// Counts one open stream for as long as it lives (the dagd_sse_streams gauge) and keeps
  /// its account watched until `linger` after it ends.
  class StreamGuard {
   public:
    StreamGuard(const StreamGuard&) = delete;
    StreamGuard& operator=(const StreamGuard&) = delete;
    StreamGuard(StreamGuard&& other) noexcept;
    StreamGuard& operator=(StreamGuard&& other) noexcept;
    ~StreamGuard();

   private:
    friend class EventHub;
    StreamGuard(EventHub& hub, Account& account) noexcept;
    void release() noexcept;
    EventHub* hub_;
    Account* account_;
  };

  /// Watches the account (see watch()) for as long as the guard lives, and `linger` more.
  /// The guard must not outlive the hub.
  [[nodiscard]] StreamGuard open_stream(std::string_view account_id);
  /// Streams open now.
  [[nodiscard]] std::size_t streams() const noexcept;
  /// Events kept across all accounts now.
  [[nodiscard]] std::size_t held() const;

 private:
  struct Account {
    explicit Account(std::uint64_t now_id) : newest(now_id), evicted(now_id) {}
    mutable std::mutex mutex;
    std::condition_variable cv;  ///< this account's waiters only
    std::deque<StreamEvent> ring;
    std::uint64_t newest;   ///< highest id the account was given (or the id when created)
    std::uint64_t evicted;  ///< highest id not in the ring (or the id when created)
    int streams{0};         ///< open streams
    Clock::SteadyTime watched_until{};
  };

  [[nodiscard]] const Account* find(std::string_view account_id) const;
  Account& find_or_add(std::string_view account_id);
  [[nodiscard]] std::vector<Account*> all_accounts() const;
  [[nodiscard]] bool watched(const Account& account) const;  // under account.mutex
  static void forget(Account& account);                      // under account.mutex
  void sweep();
  void end_stream(Account& account);
  [[nodiscard]] bool valid_after(std::uint64_t after) const noexcept;
  [[nodiscard]] std::optional<std::vector<StreamEvent>> since_locked(const Account& account,
                                                                     std::uint64_t after) const;

  const Clock& clock_;
  const std::uint64_t start_id_;
  const std::size_t per_account_;
  const std::chrono::milliseconds linger_;
  std::atomic<std::uint64_t> published_{0};  ///< for the sweep's schedule
  std::atomic<std::uint64_t> last_id_;
  std::atomic<bool> closed_{false};
  std::atomic<std::size_t> streams_{0};

  /// Guards the map only; an account's events are guarded by its own mutex, so readers and
  /// writers of different accounts do not contend. Accounts are never removed, so a
  /// reference found under the lock stays valid after it is released. An account is
  /// added under the exclusive lock, and publish() issues ids for accounts it does not find
  /// under the shared one, so an account's first `newest` covers every id issued to it.
  mutable std::shared_mutex accounts_mutex_;
  std::map<std::string, std::unique_ptr<Account>, std::less<>> accounts_;
};

}  // namespace dag::api
