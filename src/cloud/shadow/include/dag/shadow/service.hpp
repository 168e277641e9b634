// The shadow service: what dagd does with each message it receives, and with each durable
// timer that comes due.
//
// A batch of inbound messages is processed in ONE store transaction (so a burst costs few
// fsyncs) and the replies are returned only after that transaction committed: a device
// never sees /accepted for state that a crash could still take back (docs/protocol.md).
// Per message:
// - shadow update/get/delete of a registered, unrevoked device: the protocol engine
//   (dag::protocol), the stored shadow with its revision, and for an update carrying
//   `reported` the rules (dag::rules): device state, events, notification intents and
//   timers are written in the same transaction as the shadow, and so is a battery reading
//   for the chart of battery levels (thinned: see ServiceOptions::battery_interval_ms);
// - a request for an unknown or revoked device: 404 on .../rejected; over the per-device
//   rate limit: 429; a malformed one: the engine's 400/409/413/415;
// - presence (birth/will) and lifecycle events: dag::presence, then the rules' connection
//   tracking; an unknown device, a malformed payload, a duplicate or an older event is
//   dropped and counted (there is nobody to reply to);
// - any other topic: ignored and counted.
// If the batch's transaction fails, each message is retried in its own transaction, so
// that one message the store refuses cannot hold back the others; a request whose own
// transaction fails gets 500 on .../rejected.
//
// Thread-safety: process() and fire_due_timers() must not run concurrently (dagd's ingest
// worker calls both from one thread). Metrics may be read from any thread.
// Blocking: both do store I/O and wait for the commit's fsync.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/shadow/rate_limiter.hpp"
#include "dag/store/store.hpp"

namespace dag::shadow {

/// A message as received from the broker.
struct Inbound {
  std::string topic;
  std::string payload;
  bool retained{false};
  std::int64_t received_ms{0};  ///< dagd's clock at receipt (epoch ms)
};

/// A message to publish (QoS 1, not retained) once process() returned.
struct Outbound {
  std::string topic;
  std::string payload;

  bool operator==(const Outbound&) const = default;
};

/// Every shadow error code dagd can send, in the order of Metrics::rejected.
inline constexpr std::array<int, 7> kRejectCodes{400, 404, 409, 413, 415, 429, 500};

/// Counters and health, updated by the service; read from any thread (relaxed).
struct Metrics {
  std::atomic<std::uint64_t> messages{0};          ///< every inbound message
  std::atomic<std::uint64_t> updates_accepted{0};  ///< committed shadow updates
  std::atomic<std::uint64_t> gets_accepted{0};
  std::atomic<std::uint64_t> deletes_accepted{0};
  std::array<std::atomic<std::uint64_t>, kRejectCodes.size()> rejected{};  ///< by code
  std::atomic<std::uint64_t> presence_applied{0};  ///< presence/lifecycle news applied
  std::atomic<std::uint64_t> presence_dropped{0};  ///< malformed, unknown, stale, duplicate
  std::atomic<std::uint64_t> ignored{0};           ///< not a topic of ours
  std::atomic<std::uint64_t> events{0};            ///< history events appended
  std::atomic<std::uint64_t> duplicate_events{0};  ///< resent reports refused by (device, seq)
  std::atomic<std::uint64_t> intents{0};           ///< notification intents queued
  std::atomic<std::uint64_t> timers_fired{0};
  std::atomic<std::uint64_t> batches{0};          ///< committed batch transactions
  std::atomic<std::uint64_t> batch_fallbacks{0};  ///< batches redone message by message
  std::atomic<std::uint64_t> store_errors{0};     ///< transactions that failed for good
  /// Wall clock (Unix ms) of the last commit that accepted a shadow update; 0: none yet.
  /// How far behind the ingest is, seen from outside (and storm_bench's "committed").
  std::atomic<std::int64_t> last_update_commit_ms{0};
  /// False after a transaction failed for good, true again after the next commit.
  std::atomic<bool> database_ok{true};

  void count_reject(int code) noexcept;
  [[nodiscard]] std::uint64_t rejects(int code) const noexcept;
};

struct ServiceOptions {
  /// Per-device shadow requests per second and burst; rate <= 0: no limit.
  double rate_per_s{20};
  double rate_burst{20};
  /// Lease owner for claimed timers (unique per replica: its MQTT client id).
  std::string owner{"dagd"};
  /// Timers claimed per transaction, and how long a claim protects them from other
  /// replicas (a crashed replica's timers fire after this).
  int timer_batch{100};
  std::int64_t timer_lease_ms{60'000};
  /// A report's battery becomes a reading (store::BatteryReading) when none of its device
  /// was recorded for this long, or when the report changed the power state (so that the
  /// chart has points at the transitions). The last recorded time per device is kept in
  /// memory: after a restart, or on another replica, the first battery report records.
  std::int64_t battery_interval_ms{std::int64_t{5} * 60'000};
  /// Readings older than this (before the new reading) are deleted as a device records,
  /// at most once per battery_prune_every_ms per device, counted from its last pruning or
  /// from the service's start: so an outage storm, where every report records, pays no
  /// delete statements.
  std::int64_t battery_retention_ms{std::int64_t{35} * 86'400'000};
  std::int64_t battery_prune_every_ms{86'400'000};
  /// Called after a commit, on the calling thread, with each device whose derived state
  /// (power, connection, battery, last seen) the transaction changed, as it is now: dagd
  /// feeds the API's live event streams with it. Must not block for long.
  std::function<void(const store::Device&)> on_device_changed;
};

/// The outcome of one round of due timers.
struct TimerRound {
  int fired{0};  ///< timers claimed and handled (== timer_batch: more may be due)
  std::vector<Outbound> outbound;
};

class Service {
 public:
  /// `store`, `clock` and `metrics` must outlive the service.
  Service(store::Store& store, const Clock& clock, ServiceOptions options, Metrics& metrics);

  /// Processes `batch` (see above) and returns what to publish, in order. Never fails:
  /// store failures become 500 replies, counters and logs.
  std::vector<Outbound> process(std::span<const Inbound> batch);

  /// Claims and handles up to timer_batch due timers (due at the clock's now) in one
  /// transaction. Errors: the store's, after its retries (nothing was done).
  store::StoreResult<TimerRound> fire_due_timers();

  /// When a timer next becomes claimable (store::Transaction::next_timer_due_ms).
  store::StoreResult<std::optional<std::int64_t>> next_timer_due_ms();

  /// The earliest due time of the timers scheduled since the last call (so the worker can
  /// shorten its sleep without asking the store); resets it.
  std::optional<std::int64_t> take_scheduled_hint() noexcept;

 private:
  struct Work;
  struct Pass;
  store::StoreResult<void> apply(store::Transaction& tx, const Work& work, Pass& pass);
  store::StoreResult<void> apply_shadow(store::Transaction& tx, const Work& work, Pass& pass);
  /// A shadow as stored (revision and text: the text is what proves a cached parse still
  /// current) with its parsed form.
  struct CachedShadow {
    store::StoredShadow stored;
    protocol::ShadowDocument document;
  };
  /// The newest shadow of `thing` this service knows of: written in this pass, else
  /// committed earlier (then possibly stale); nullptr when none. Valid until `pass` or the
  /// cache changes.
  [[nodiscard]] const CachedShadow* cached_shadow(const std::string& thing, const Pass& pass) const;
  /// No battery reading of the device was recorded (committed, or earlier in this pass)
  /// for battery_interval_ms before now_ms.
  [[nodiscard]] bool battery_due(const std::string& device_id, std::int64_t now_ms,
                                 const Pass& pass) const;
  /// The device's readings were last pruned (committed, or in this pass; the service's
  /// start when never) battery_prune_every_ms before now_ms or longer ago.
  [[nodiscard]] bool battery_prune_due(const std::string& device_id, std::int64_t now_ms,
                                       const Pass& pass) const;
  store::StoreResult<void> record_battery(store::Transaction& tx,
                                          const store::BatteryReading& reading, Pass& pass) const;
  static store::StoreResult<void> apply_presence(store::Transaction& tx, const Work& work,
                                                 Pass& pass);
  void commit_pass(Pass& pass, std::vector<Outbound>& out);

  store::Store& store_;
  const Clock& clock_;
  ServiceOptions options_;
  Metrics& metrics_;
  RateLimiter limiter_;
  std::optional<std::int64_t> scheduled_hint_;
  /// Parsed shadows by device with the stored form they were written as, so that an update
  /// need not read and parse the stored document again (a sixth of an update's cost).
  /// Only committed writes enter it. Bounded: cleared when it outgrows kShadowCacheMax.
  /// Small on purpose: an entry costs ~5 KB (a parsed document is a tree of nodes), so
  /// holding all of a 10,000-dag storm's shadows took 46 MB of dagd's RSS for ~7 % of the
  /// ingest's CPU; it pays for a dag that reports again soon (battery after power).
  static constexpr std::size_t kShadowCacheMax = 2048;
  /// Bound of the per-device battery bookkeeping below (~100 bytes an entry).
  static constexpr std::size_t kBatteryBookMax = 200'000;
  std::unordered_map<std::string, CachedShadow> shadow_cache_;
  /// When each device's last battery reading was recorded (committed ones only); cleared
  /// when it outgrows kBatteryBookMax (a clear costs one extra reading per device).
  std::unordered_map<std::string, std::int64_t> battery_recorded_ms_;
  /// When each device's old readings were last deleted (committed ones only).
  std::unordered_map<std::string, std::int64_t> battery_pruned_ms_;
  std::int64_t started_ms_{0};
};

}  // namespace dag::shadow
