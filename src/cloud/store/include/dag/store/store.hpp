// Store: dagd's persistent state behind one interface, so that the same service runs on
// an embedded SQLite file (dag/store/sqlite.hpp) or, later, on PostgreSQL shared by
// several dagd replicas.
//
// Everything happens in a Transaction. A read_write transaction is serializable: its
// effect is as if the write transactions of every process sharing the database ran one
// after another, so a read-modify-write of a device row needs no further locking. A
// backend that cannot guarantee this without aborting reports StoreErrc::busy, and the
// caller runs the whole transaction again (transact() below does). A read_only
// transaction sees one consistent snapshot and never blocks a writer.
//
// Replicas coordinate through data, not through locks held between transactions: shadows
// carry a revision for optimistic concurrency, and timers and intents are claimed with a
// lease (owner + expiry) so that two replicas never work on the same row at once, and a
// crashed replica's claims become claimable again when their lease runs out.
//
// Thread-safety: a Store may be shared by any number of threads; begin() is safe to call
// concurrently. A Transaction is used by one thread at a time (it may be handed to another
// thread between calls) and must be destroyed before its Store.
// Blocking: every call may do disk or network I/O. begin() waits up to the backend's busy
// timeout for the write lock; commit() of a read_write transaction waits for durability
// (fsync or the database server's acknowledgement).
// Errors: StoreErrc (dag/store/error.hpp). Outside input never crashes the store: bad ids,
// unknown rows and out-of-range values come back as not_found / invalid_argument.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dag/store/error.hpp"
#include "dag/store/records.hpp"

namespace dag::store {

enum class TxMode {
  read_write,  ///< serialized with every other writer; may call every operation
  read_only,   ///< a snapshot; write operations return invalid_argument
};

/// One unit of work. Nothing it writes is visible to others before commit(); destroying
/// it without a successful commit() rolls everything back.
///
/// After an error for which leaves_transaction_usable() is true (not_found, conflict,
/// invalid_argument) the failed operation has written nothing and the transaction goes on.
/// After any other error the transaction is dead: later operations and commit() return
/// that error again, and the caller should drop it (and retry on busy).
///
/// Limits: names and addresses are checked for length (invalid_argument); list results
/// are bounded by a `limit` argument where they can grow without bound.
class Transaction {
 public:
  Transaction() = default;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  /// Rolls back unless committed. Never throws.
  virtual ~Transaction() = default;

  [[nodiscard]] virtual TxMode mode() const noexcept = 0;

  /// Makes every write durable and visible, then ends the transaction. Calling it twice,
  /// or after rollback(), is invalid_argument. Errors: busy, io, corrupt (nothing written).
  virtual StoreResult<void> commit() = 0;
  /// Discards every write and ends the transaction. Idempotent.
  virtual void rollback() noexcept = 0;

  // ---- accounts -------------------------------------------------------------------------

  /// Creates an account with default settings. Errors: conflict (username taken),
  /// invalid_argument (username 1..128 bytes, password_hash 1..512 bytes).
  virtual StoreResult<Account> create_account(std::string_view username,
                                              std::string_view password_hash,
                                              std::int64_t created_at_ms) = 0;
  /// Errors: not_found.
  virtual StoreResult<Account> get_account(std::string_view account_id) = 0;
  /// Exact match. Errors: not_found.
  virtual StoreResult<Account> find_account_by_username(std::string_view username) = 0;
  /// Every account, by username.
  virtual StoreResult<std::vector<Account>> list_accounts() = 0;
  /// Replaces all settings. Errors: not_found, invalid_argument (a value out of range, see
  /// AccountSettings).
  virtual StoreResult<void> update_account_settings(std::string_view account_id,
                                                    const AccountSettings& settings) = 0;
  /// Errors: not_found, invalid_argument.
  virtual StoreResult<void> set_password_hash(std::string_view account_id,
                                              std::string_view password_hash) = 0;

  // ---- notification targets -------------------------------------------------------------

  /// Adds a target with a clean health record; an unverified e-mail target is added with
  /// verification_requested set. Errors: not_found (account), conflict ((account, kind,
  /// address) exists), invalid_argument (address 1..512 bytes, secret up to 512 bytes,
  /// body_template up to 4096 bytes, content_type 1..128 bytes without control characters,
  /// body_template or content_type on a target that is not a webhook).
  virtual StoreResult<NotificationTarget> add_target(const NewTarget& target) = 0;
  /// The account's targets, oldest first (an unknown account has none).
  virtual StoreResult<std::vector<NotificationTarget>> list_targets(
      std::string_view account_id) = 0;
  /// Verifying also clears verification_requested. Errors: not_found.
  virtual StoreResult<void> set_target_verified(std::string_view target_id, bool verified) = 0;
  /// Removes the target with its intents and verification tokens. Errors: not_found.
  virtual StoreResult<void> remove_target(std::string_view target_id) = 0;
  /// Records the outcome of a delivery to the target, for its account to see: ok resets
  /// failure_count to 0 and sets last_success_at_ms; a failure adds one to failure_count
  /// and sets last_error (truncated to 1024 bytes, at a UTF-8 character boundary: it is
  /// for humans) and last_error_at_ms. `error` is ignored when ok. Errors: not_found.
  virtual StoreResult<void> record_delivery(std::string_view target_id, bool ok,
                                            std::string_view error, std::int64_t now_ms) = 0;

  // ---- e-mail verification --------------------------------------------------------------
  // An unverified e-mail target receives a mail with a link carrying a random token; the
  // store keeps only the token's hash (SHA-256, lower-case hex). Following the link
  // consumes the token and verifies the target.

  /// Up to `limit` unverified e-mail targets created by now_ms that have
  /// verification_requested set, oldest (created_at_ms, then id) first: the notifier sends
  /// each a verification mail. Errors: invalid_argument (limit 1..1000).
  virtual StoreResult<std::vector<NotificationTarget>> targets_needing_verification(
      std::int64_t now_ms, int limit) = 0;
  /// Stores a mailed token, valid until expires_at_ms, and records the mail on its target
  /// (verification_sent_at_ms = now_ms, verification_requested cleared). The target's used
  /// and expired tokens are removed (they would be refused anyway). Errors: not_found
  /// (target), conflict (token_hash exists), invalid_argument (token_hash not 64 lower-case
  /// hex digits, expires_at_ms <= now_ms).
  virtual StoreResult<void> create_verification(std::string_view target_id,
                                                std::string_view token_hash, std::int64_t now_ms,
                                                std::int64_t expires_at_ms) = 0;
  /// The owner asks for a (new) verification mail: sets verification_requested and returns
  /// true, or returns false and changes nothing when the target is verified already or
  /// its last mail was sent less than min_interval_ms before now_ms (rate-limited resend).
  /// Errors: not_found, invalid_argument (not an e-mail target, min_interval_ms < 0).
  virtual StoreResult<bool> request_verification(std::string_view target_id, std::int64_t now_ms,
                                                 std::int64_t min_interval_ms) = 0;
  /// Follows a link: when the token exists, is unused and expires after now_ms, marks it
  /// (and every other unused token of its target) used at now_ms, verifies the target,
  /// clears its verification_requested, and returns the target's id. Errors: not_found
  /// (unknown, used or expired: one answer for all, so that it tells nothing about tokens).
  virtual StoreResult<std::string> consume_verification(std::string_view token_hash,
                                                        std::int64_t now_ms) = 0;

  // ---- devices --------------------------------------------------------------------------

  /// Registers a device with an unknown state. Errors: invalid_argument (id not a valid
  /// device id, name 1..128 bytes), not_found (account), conflict (id taken).
  virtual StoreResult<Device> create_device(const NewDevice& device) = 0;
  /// Errors: not_found.
  virtual StoreResult<Device> get_device(std::string_view device_id) = 0;
  /// The account's devices, by name then id (an unknown account has none).
  virtual StoreResult<std::vector<Device>> list_devices(std::string_view account_id) = 0;
  /// How many devices there are, and how many of the unrevoked ones are connected (after
  /// debounce), over every account: for the metrics.
  virtual StoreResult<DeviceCounts> count_devices() = 0;
  /// Errors: not_found, invalid_argument (name 1..128 bytes).
  virtual StoreResult<void> rename_device(std::string_view device_id, std::string_view name) = 0;
  /// Errors: not_found.
  virtual StoreResult<void> set_device_revoked(std::string_view device_id, bool revoked) = 0;
  /// Replaces the derived state. Errors: not_found, invalid_argument (battery_json not a
  /// compact JSON object, marker over 256 bytes, negative last_seq).
  virtual StoreResult<void> update_device_state(std::string_view device_id,
                                                const DeviceState& state) = 0;
  /// update_device_state for a caller that read the device's state as `before` in this
  /// transaction (so it is the stored one): a backend may then leave unchanged columns
  /// alone (SQLite: no JSON check of an unchanged battery). Same errors.
  virtual StoreResult<void> change_device_state(std::string_view device_id,
                                                const DeviceState& before,
                                                const DeviceState& after) {
    static_cast<void>(before);
    return update_device_state(device_id, after);
  }
  /// Removes a device and everything of it: its shadow, events, battery readings, timers
  /// and intents, and its device-scope config entries. Its certificates stay (revoke them first:
  /// they would still authenticate it to the broker). Errors: not_found.
  virtual StoreResult<void> delete_device(std::string_view device_id) = 0;
  /// Removes an account with its devices (each as delete_device), notification targets,
  /// intents, and the config entries of the account and of its devices. The devices'
  /// certificates stay. Errors: not_found.
  virtual StoreResult<void> delete_account(std::string_view account_id) = 0;

  // ---- shadows --------------------------------------------------------------------------

  /// The stored shadow (a deleted one is its tombstone document), or nullopt when the
  /// device never had one.
  virtual StoreResult<std::optional<StoredShadow>> get_shadow(std::string_view device_id) = 0;
  /// get_device and get_shadow in one read, for ingest. The shadow's document is left out
  /// (nullopt while shadow_revision is set) when the stored shadow is `known` (revision and
  /// document both equal), which the caller keeps in parsed form: the text comparison, not
  /// the revision alone, proves it, since a device deleted and created again starts its
  /// revisions over. Errors: not_found (device).
  virtual StoreResult<DeviceWithShadow> get_device_with_shadow(std::string_view device_id,
                                                               const StoredShadow* known) {
    auto device = get_device(device_id);
    if (!device) return Unexpected<StoreError>{std::move(device).error()};
    auto shadow = get_shadow(device_id);
    if (!shadow) return Unexpected<StoreError>{std::move(shadow).error()};
    DeviceWithShadow out{*std::move(device), std::nullopt, std::nullopt};
    if (*shadow) {
      out.shadow_revision = (*shadow)->revision;
      if (known == nullptr || **shadow != *known) {
        out.shadow_document = std::move((*shadow)->document);
      }
    }
    return out;
  }
  /// Stores `document` if the stored revision equals `expected_revision` (0: no shadow
  /// stored yet) and returns the new revision (expected + 1). There is no delete: a
  /// deleted shadow is put as its tombstone (protocol::remove's document), so its version
  /// carries on when it is created again. Errors: conflict (revision differs: re-read,
  /// re-apply, retry), not_found (device), invalid_argument (document not a compact JSON
  /// object, negative revision).
  virtual StoreResult<std::int64_t> put_shadow(std::string_view device_id,
                                               std::string_view document,
                                               std::int64_t expected_revision) = 0;

  // ---- events ---------------------------------------------------------------------------

  /// Appends to a device's history and returns the event's id. Errors: conflict (a power
  /// event with this (device, seq) exists: the report was a resend), not_found (device),
  /// invalid_argument (seq on a non-power event, seq < 1).
  virtual StoreResult<std::int64_t> append_event(const Event& event) = 0;
  /// One page of a device's history (see EventQuery). Errors: invalid_argument (limit).
  virtual StoreResult<EventPage> list_events(const EventQuery& query) = 0;

  // ---- battery readings -----------------------------------------------------------------

  /// Stores a reading, replacing the device's reading of the same at_ms, and, when
  /// delete_before_ms is given, deletes the device's readings older than it (the caller's
  /// retention: the store keeps no clock). Both are ranges of one key, so the cost does not
  /// grow with the history. Errors: not_found (device), invalid_argument (percent outside
  /// 0..100, volts outside 0..100, minutes_left < 0, a value that is not finite).
  virtual StoreResult<void> record_battery(const BatteryReading& reading,
                                           std::optional<std::int64_t> delete_before_ms) = 0;
  /// The device's readings with since_ms <= at_ms < until_ms, oldest first. When there are
  /// more than `limit`, the newest `limit` of them (a chart wants the recent end). None
  /// for an unknown device. Errors: invalid_argument (limit 1..10000).
  virtual StoreResult<std::vector<BatteryReading>> list_battery(std::string_view device_id,
                                                                std::int64_t since_ms,
                                                                std::int64_t until_ms,
                                                                int limit) = 0;

  // ---- timers ---------------------------------------------------------------------------

  /// Schedules a timer, replacing (with a new id, unclaimed) any timer of the same
  /// (device, kind). Returns the id. Errors: not_found (device), invalid_argument (kind
  /// 1..64 bytes, marker up to 256 bytes).
  virtual StoreResult<std::int64_t> schedule_timer(const Timer& timer) = 0;
  /// Removes the (device, kind) timer; true when there was one.
  virtual StoreResult<bool> cancel_timer(std::string_view device_id, std::string_view kind) = 0;
  /// The (device, kind) timer, if any.
  virtual StoreResult<std::optional<StoredTimer>> find_timer(std::string_view device_id,
                                                             std::string_view kind) = 0;
  /// Claims up to `limit` timers due at `now_ms` (due_at_ms <= now_ms) that nobody holds
  /// a live lease on, earliest first: each is leased to `owner` until now_ms + lease_ms. A
  /// claimed timer stays until complete_timer(); if its owner dies, it is claimable again
  /// once the lease has run out. Errors: invalid_argument (limit 1..1000, owner 1..128
  /// bytes, lease_ms >= 1).
  virtual StoreResult<std::vector<StoredTimer>> claim_due_timers(std::int64_t now_ms, int limit,
                                                                 std::string_view owner,
                                                                 std::int64_t lease_ms) = 0;
  /// Removes a fired timer. Errors: not_found (it was cancelled or replaced meanwhile:
  /// nothing to do).
  virtual StoreResult<void> complete_timer(std::int64_t timer_id) = 0;
  /// When the next timer becomes claimable (its due time, or the end of its current lease),
  /// for the timer loop to sleep until; nullopt when there is none.
  virtual StoreResult<std::optional<std::int64_t>> next_timer_due_ms() = 0;

  // ---- notification outbox --------------------------------------------------------------

  /// Queues an intent, claimable from created_at_ms. Returns its id. Errors: not_found
  /// (account or device; the target is unknown or not the account's), invalid_argument
  /// (payload not a compact JSON object, device_name over 128 bytes).
  virtual StoreResult<std::int64_t> enqueue_intent(const Intent& intent) = 0;
  /// Claims pending intents whose next attempt is due and that nobody holds a live lease
  /// on, counting an attempt on each, by whole targets: every due intent of a target or
  /// none (a target's intents split over two claims would become two messages), targets
  /// in the order of their oldest due intent, until `limit` intents are reached (the last
  /// target may pass it). An intent without a target counts as a target of its own.
  /// Returned by next attempt, then oldest first. Same lease rules and errors as
  /// claim_due_timers.
  virtual StoreResult<std::vector<StoredIntent>> claim_intents(std::int64_t now_ms, int limit,
                                                               std::string_view owner,
                                                               std::int64_t lease_ms) = 0;
  /// Errors: not_found.
  virtual StoreResult<StoredIntent> get_intent(std::int64_t intent_id) = 0;
  /// Delivered. Idempotent on a done intent. Errors: not_found, conflict (it failed for
  /// good already).
  virtual StoreResult<void> mark_intent_done(std::int64_t intent_id, std::int64_t now_ms) = 0;
  /// Delivery failed: with retry_at_ms it goes back to pending (unclaimed) until then;
  /// without, it fails for good. A reason over 1024 bytes is truncated (it is for humans).
  /// Errors: not_found, conflict (already done or failed).
  virtual StoreResult<void> mark_intent_failed(std::int64_t intent_id, std::string_view reason,
                                               std::optional<std::int64_t> retry_at_ms,
                                               std::int64_t now_ms) = 0;
  /// Holds a pending intent (claimed or not) until until_ms without failing it: it goes
  /// back to pending, unclaimed, next attempt at until_ms; last_error stays as it was.
  /// Not a delivery attempt: a claimed intent gets back the attempt its claim counted.
  /// (The notifier defers an intent to the end of its account's coalescing window.)
  /// Errors: not_found, conflict (already done or failed).
  virtual StoreResult<void> defer_intent(std::int64_t intent_id, std::int64_t until_ms) = 0;
  /// Intents not yet done or failed (claimed or not).
  virtual StoreResult<std::int64_t> count_pending_intents() = 0;
  /// Whether an account with a pending intent due by now_ms has a dag (not revoked) that
  /// may still make a "power lost" intent: its power is not off, or its cut has not been
  /// notified yet (a power-off grace runs). false: every account waiting for an alert has
  /// already been told (in intents) everything a power cut can tell it, so no report
  /// still on its way can add to its message. (The storm hold ends on this.)
  virtual StoreResult<bool> due_intents_may_grow(std::int64_t now_ms) = 0;

  // ---- device certificates --------------------------------------------------------------

  /// Records an issued certificate (revoked_at_ms may be set already). Errors: conflict
  /// (the serial exists), invalid_argument (serial_hex not 1..64 upper-case hex digits,
  /// device id not a valid device id). The device need not exist.
  virtual StoreResult<void> add_certificate(const DeviceCertificate& cert) = 0;
  /// A device's certificates, oldest (issued_at_ms) first; none for an unknown device,
  /// but a deleted device's are still there.
  virtual StoreResult<std::vector<DeviceCertificate>> list_certificates(
      std::string_view device_id) = 0;
  /// Marks every unrevoked certificate of the device revoked at now_ms and returns their
  /// serials, oldest first (empty when there was none: revoking again is a no-op).
  virtual StoreResult<std::vector<std::string>> revoke_certificates(std::string_view device_id,
                                                                    std::int64_t now_ms) = 0;
  /// The revoked certificates that have not expired yet (not_after_ms > now_ms), by
  /// serial: what a CRL must list.
  virtual StoreResult<std::vector<DeviceCertificate>> list_revoked_certificates(
      std::int64_t now_ms) = 0;

  // ---- configuration --------------------------------------------------------------------

  /// Inserts or replaces the (scope, scope_id, key) entry. The account or device named by
  /// scope_id need not exist. Errors: invalid_argument (key 1..64 bytes; scope_id "" for
  /// fleet, 1..128 bytes otherwise; value_json not valid JSON).
  virtual StoreResult<void> set_config_entry(const ConfigEntry& entry) = 0;
  /// Removes the (scope, scope_id, key) entry; true when there was one.
  virtual StoreResult<bool> remove_config_entry(ConfigScope scope, std::string_view scope_id,
                                                std::string_view key) = 0;
  /// The entries of one scope, by key (none for an unknown scope_id).
  virtual StoreResult<std::vector<ConfigEntry>> list_config_entries(ConfigScope scope,
                                                                    std::string_view scope_id) = 0;
};

/// The store: a factory of transactions over one database. Create one with a backend's
/// open function (dag/store/sqlite.hpp) and share it.
class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  Store(Store&&) = delete;
  Store& operator=(Store&&) = delete;
  /// Closes the database. Every Transaction must have been destroyed.
  virtual ~Store() = default;

  /// Starts a transaction. A read_write one waits (up to the busy timeout) until no other
  /// writer holds the database. A thread must not begin a second read_write transaction
  /// while it holds one (that would wait for itself): invalid_argument.
  /// Errors: busy (timed out), io, corrupt.
  virtual StoreResult<std::unique_ptr<Transaction>> begin(TxMode mode = TxMode::read_write) = 0;

  /// A cheap round trip to the database, for health checks. Errors: busy, io, corrupt.
  virtual StoreResult<void> ping() = 0;

  /// A number that changes whenever a transaction was committed since the last call, by
  /// this process or any other: the key of caches of what was read (dag::api's device
  /// lists). Read it *before* reading what is cached, so that a commit in between makes
  /// the next call differ. nullopt: this store cannot tell (then nothing may be cached),
  /// or the check failed. Thread-safe; costs about a microsecond on SQLite.
  virtual std::optional<std::uint64_t> change_marker() { return std::nullopt; }
};

/// Runs `fn(Transaction&)` (which returns a StoreResult<T>) in a transaction and commits
/// it when fn succeeds; returns fn's result. When begin, fn or commit fails with busy, the
/// whole transaction runs again, up to `attempts` times, so fn must only touch the store
/// and its own locals. Other errors are returned at once (and the transaction rolled back).
template <class F>
auto transact(Store& store, TxMode mode, F&& fn, int attempts = 3)
    -> std::invoke_result_t<F&, Transaction&> {
  StoreError last{StoreErrc::busy, "transact: no attempt made"};
  for (int attempt = 0; attempt < attempts; ++attempt) {
    auto tx = store.begin(mode);
    if (!tx) {
      if (tx.error().code == StoreErrc::busy) {
        last = std::move(tx).error();
        continue;
      }
      return Unexpected<StoreError>{std::move(tx).error()};
    }
    auto result = fn(**tx);
    if (!result) {
      if (result.error().code == StoreErrc::busy) {
        last = result.error();
        continue;
      }
      return result;
    }
    auto committed = (*tx)->commit();
    if (!committed) {
      if (committed.error().code == StoreErrc::busy) {
        last = committed.error();
        continue;
      }
      return Unexpected<StoreError>{committed.error()};
    }
    return result;
  }
  return Unexpected<StoreError>{std::move(last)};
}

}  // namespace dag::store
