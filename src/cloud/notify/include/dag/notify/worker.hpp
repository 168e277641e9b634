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
// ms or the last second, so that one slow commit does not end the hold), more intents for
// the same accounts are on their way, so rounds of deliveries wait (for at most
// `storm_hold`, counted from when the storm was first seen; sooner once only the last
// second's pace holds and no account waiting for an alert has a dag that could still be
// cut). Each account then hears of the storm in one message instead of an alert that the
// ingest overtakes and a follow-up, and the mail relay carries fewer messages. A lone
// outage finds no backlog and goes out at once. Verification mails are never held.
//
// The idempotency key of a message (Message-ID, Idempotency-Key) is derived from its
// target and intents, so a retry of the same message carries the same key.
//
// Deliveries run on `concurrency` sender threads of the worker's own. run() does not wait
// for a round's deliveries before the next claim: it claims again as soon as fewer messages
// are queued than there are senders, so the relay is never idle while dagd claims, plans
// and records, and one slow delivery (a webhook that takes its full timeout) holds up
// only its own sender, not the next round. A target whose message is still on its way is
// treated as having heard from us at that round's time: what comes for it meanwhile waits
// for the follow-up. Finished deliveries are recorded at the next turn, several in one
// transaction.
//
// Thread-safety: run() or run_once() on one thread; wake() and stop() from any thread. The
// channels' deliver() is called from the sender threads, several at once when concurrency
// is above 1.
// Blocking: run_once() does store I/O and network I/O (bounded by the channels' timeouts).
// The destructor waits for the deliveries in progress (not the queued ones).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
  /// Messages delivered at once (sender threads); 1: one after another.
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
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// One round (above), its deliveries awaited and recorded before it returns. Returns
  /// when the next round should run at the latest (epoch ms).
  std::int64_t run_once();
  /// Rounds until stop(), sleeping until the next is due, wake() is called or the senders
  /// run short of messages; the next round's claim overlaps this one's deliveries. Before
  /// it returns, waits for the deliveries under way and records them.
  void run();
  /// New intents were committed (`made` of them; 0: unknown, or other news such as a
  /// target verified): run a round now.
  void wake(std::size_t made = 0);
  void stop();

 private:
  struct Message;
  struct Plan;
  struct Job;
  struct Counts;
  /// One turn of run()/run_once(): records finished deliveries, then (unless the senders
  /// have enough queued, or a storm holds) claims, plans and hands the messages to the
  /// senders; then verification mails. Run thread only; sets next_due_ and more_due_.
  void turn();
  /// When the next turn is due at the latest (epoch ms), after a turn.
  std::int64_t next_turn();
  /// While a storm hold lasts: when to look again (epoch ms). Run thread only.
  std::optional<std::int64_t> storm_hold(std::int64_t now);
  /// The store's due_intents_may_grow; true when the store cannot tell.
  bool due_intents_may_grow(std::int64_t now);
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
  /// Hands a planned round to the senders: its targets count as sent at `now` (restored
  /// if the delivery fails); its deferrals and unusable intents wait for the next record.
  void dispatch(Plan plan, std::vector<std::int64_t> no_target, std::int64_t now);
  /// Messages handed to the senders and not yet started.
  std::size_t queued();
  /// Waits until every message handed to the senders has been delivered or failed.
  void drain();
  /// Records what dispatch() left and the deliveries that finished, in one transaction;
  /// then counters, logs and retry times. Run thread only.
  void record_finished();
  /// A sender thread: delivers queued messages until the worker is destroyed.
  void sender_loop();
  /// When the next is due, counters and logs for one recorded delivery.
  void after_delivery(const Job& job);
  /// Records one delivery's outcome on its intents and target.
  store::StoreResult<void> record_outcome(store::Transaction& tx, const Job& job,
                                          Counts& counts) const;
  /// Through the target's channel; thread-safe (reads channels_ only).
  Delivery deliver_one(const Message& m) const;
  void send_verifications(std::int64_t now);

  store::Store& store_;
  const Clock& clock_;
  WorkerOptions options_;
  Channels channels_;
  WorkerMetrics& metrics_;
  /// Sender threads (concurrency, at least 1); also how few queued messages make run()
  /// claim the next round.
  const std::size_t senders_wanted_;
  /// target id -> the time of the round that sent it a message, or that is sending one
  /// (run thread)
  std::map<std::string, std::int64_t> last_sent_;
  std::optional<std::int64_t> next_due_;  ///< earliest defer/retry we scheduled
  bool more_due_{false};                  ///< the last claim was full
  /// When the current storm was first seen (run thread); reset once it is gone.
  std::optional<std::int64_t> storm_since_;

  std::mutex mutex_;
  std::condition_variable cv_;
  bool woken_{false};
  bool stopping_{false};
  std::deque<std::pair<std::int64_t, std::size_t>> made_;  ///< (epoch ms, intents), mutex_

  // Claimed intents that dispatch() decided about without a delivery (run thread).
  std::vector<std::int64_t> to_finish_;                          ///< no target: done
  std::vector<std::pair<std::int64_t, std::int64_t>> to_defer_;  ///< intent id, until
  std::vector<std::pair<std::int64_t, std::string>> to_fail_;    ///< intent id, reason

  // The senders. pool_mutex_ guards what follows it.
  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;  ///< senders: a message queued, or the worker ends
  std::condition_variable idle_cv_;  ///< drain(): nothing in flight
  std::deque<std::unique_ptr<Job>> queue_;
  std::vector<std::unique_ptr<Job>> finished_;
  std::size_t in_flight_{0};  ///< queued or being delivered
  bool senders_stopping_{false};
  std::vector<std::jthread> senders_;  ///< last: joined before the rest goes
};

}  // namespace dag::notify
