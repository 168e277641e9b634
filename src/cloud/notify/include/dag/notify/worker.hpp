// The notification outbox worker: delivers the intents that dagd's rules wrote in the same
// transaction as the change that caused them (transactional outbox), and sends address
// verification mails.
//
// Intents are per target (dagd expands each rules intent into one row per verified target
// of the account, dag/shadow/service.hpp). A round:
// 1. claims due intents with a lease (another replica, or this one after a crash, takes
//    them over when the lease runs out: at-least-once delivery);
// 2. per target, coalesces without delaying the first alert: when the target heard
//    nothing for `coalesce_window`, every due intent goes out at once in one message (a
//    lone outage is never held back; a storm's backlog is told in one message, not one
//    item now and the rest later); intents made within the window after a message are
//    deferred to its end and go out together as one follow-up ("3 more of your dags lost
//    power"). So a storm costs an account at most two messages per target and window;
// 3. delivers through the target's channel, up to `concurrency` messages at once, and
//    records the outcome: done; a transient
//    failure is retried with exponential backoff (retry_initial doubling up to retry_max)
//    until give_up_after since the intent was made, then failed with the reason; a
//    permanent failure fails at once. The target's failure count and last error are kept
//    for the account to see.
// A storm hold: while this replica's ingest has more than `storm_backlog` reports waiting,
// or made intents faster than `storm_rate` per second over the last 250 ms (a storm is
// arriving, though the broker may still hold most of it; once holding, over the last 250
// ms or the last second, so that one slow commit does not end the hold), more intents for the same
// accounts are on their way, so rounds of deliveries wait (for at most `storm_hold`,
// counted from when the storm was first seen). Each account then hears of the storm in one message
// instead of an alert that the ingest overtakes and a follow-up, and the mail relay carries fewer
// messages. A lone outage finds no backlog and goes out at once. Verification mails are never held.
//
// The idempotency key of a message (Message-ID, Idempotency-Key) is derived from its
// target and intents, so a retry of the same message carries the same key.
//
// Thread-safety: run() on one thread; wake() and stop() from any thread. With concurrency
// above 1 a round calls the channels' deliver() from several threads at once.
// Blocking: run_once() does store I/O and network I/O (bounded by the channels' timeouts).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/notify/channel.hpp"
#include "dag/store/store.hpp"

namespace dag::notify {

/// Sends address verification mails (EmailChannel does; tests fake it).
class Verifier {
 public:
  virtual ~Verifier() = default;
  /// Blocking, bounded by the channel's timeouts. Errors as Channel::deliver.
  virtual Delivery send_verification(const std::string& address, const std::string& link,
                                     std::int64_t expires_at_ms) = 0;
};

struct WorkerOptions {
  std::string owner{"dagd"};  ///< lease owner (the replica's client id)
  std::chrono::milliseconds coalesce_window{5000};
  std::chrono::milliseconds retry_initial{30'000};
  std::chrono::milliseconds retry_max{3'600'000};
  std::chrono::milliseconds give_up_after{24 * 3'600'000};
  std::chrono::milliseconds lease{120'000};
  int claim_limit{500};
  /// Messages of a round delivered at once (threads of the round); 1: one after another.
  int concurrency{1};
  /// Idle rounds this often (intents of other replicas, retries, deferred follow-ups).
  std::chrono::milliseconds poll{1000};
  /// Public base URL of the dashboard and API (no trailing slash): links in messages.
  std::string public_url{"http://localhost:8080"};
  std::chrono::milliseconds verification_ttl{24 * 3'600'000};
  /// Reports waiting in this replica's ingest (dagd: Ingest::backlog), called from the run
  /// thread; empty: rounds are never held.
  std::function<std::size_t()> ingest_backlog;
  /// The storm hold (above): more than this many waiting reports hold rounds, for at most
  /// storm_hold (0: never held).
  std::size_t storm_backlog{200};
  /// Intents per second (told through wake(), over the last 250 ms) that also hold rounds.
  /// Low enough to see a storm that reaches dagd slowly at first (a busy broker): a lone
  /// outage makes one intent per target.
  std::size_t storm_rate{40};
  std::chrono::milliseconds storm_hold{8000};
};

/// Counters, read from any thread.
struct WorkerMetrics {
  std::atomic<std::uint64_t> sent{0};           ///< messages delivered
  std::atomic<std::uint64_t> intents_done{0};   ///< intents delivered (or with no target)
  std::atomic<std::uint64_t> retries{0};        ///< transient failures scheduled again
  std::atomic<std::uint64_t> failed{0};         ///< intents given up
  std::atomic<std::uint64_t> deferred{0};       ///< intents held for a follow-up
  std::atomic<std::uint64_t> verifications{0};  ///< verification mails sent
  std::atomic<std::uint64_t> storm_holds{0};    ///< storm holds begun
  std::atomic<std::uint64_t> store_errors{0};
};

/// The channels by target kind; a null channel makes its targets' intents fail with
/// "channel not configured" (permanent).
struct Channels {
  Channel* email{nullptr};
  Verifier* verifier{nullptr};  ///< sends verification mails; null: none are sent
  Channel* webhook{nullptr};
  Channel* ntfy{nullptr};
};

/// Backoff before retry number `attempt` (1-based): initial * 2^(attempt-1), capped.
std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max);

class Worker {
 public:
  Worker(store::Store& store, const Clock& clock, WorkerOptions options, Channels channels,
         WorkerMetrics& metrics);

  /// One round (above). Returns when the next round should run at the latest (epoch ms).
  std::int64_t run_once();
  /// Rounds until stop(), sleeping until the next is due or wake() is called.
  void run();
  /// New intents were committed (`made` of them; 0: unknown, or other news such as a
  /// target verified): run a round now.
  void wake(std::size_t made = 0);
  void stop();

 private:
  struct Message;
  struct Plan;
  struct Outcome;
  struct Counts;
  /// While a storm hold lasts: when to look again (epoch ms). Run thread only.
  std::optional<std::int64_t> storm_hold(std::int64_t now);
  /// Intents told through wake() in the `window_ms` before `now`; forgets what is older
  /// than the longest window.
  std::size_t intents_made_recently(std::int64_t now, std::int64_t window_ms);
  void deliver_round(std::int64_t now);
  /// Returns claimed intents unsent: pending again, unclaimed, due as they were.
  void give_back(const std::vector<store::StoredIntent>& claimed);
  /// What to do now with one verified target's claimed intents (oldest first): a message,
  /// or deferrals; added to `plan`. Run thread only (reads last_sent_).
  void plan_target(const store::Account& account, const store::NotificationTarget& target,
                   const std::vector<store::StoredIntent>& intents, std::int64_t now,
                   Plan& plan) const;
  /// Once a round is recorded: when the next is due, counters and logs.
  void after_round(const Plan& plan, const std::vector<Outcome>& outcomes, const Counts& counts,
                   std::int64_t now);
  /// Records one delivery's outcome on its intents and target.
  store::StoreResult<void> record_outcome(store::Transaction& tx, const Outcome& o,
                                          std::int64_t now, Counts& counts) const;
  /// Through the target's channel; thread-safe (reads channels_ only).
  Delivery deliver_one(const Message& m) const;
  void send_verifications(std::int64_t now);

  store::Store& store_;
  const Clock& clock_;
  WorkerOptions options_;
  Channels channels_;
  WorkerMetrics& metrics_;
  std::map<std::string, std::int64_t> last_sent_;  ///< target id -> epoch ms (run thread)
  std::optional<std::int64_t> next_due_;           ///< earliest defer/retry we scheduled
  /// When the current storm was first seen (run thread); reset once it is gone.
  std::optional<std::int64_t> storm_since_;

  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_{false};
  bool stopping_{false};
  std::deque<std::pair<std::int64_t, std::size_t>> made_;  ///< (epoch ms, intents), mutex_
};

}  // namespace dag::notify
