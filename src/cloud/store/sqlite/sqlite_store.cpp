// The SQLite Store: connection management (one writer, a pool of readers) and every
// Transaction operation as a prepared statement. See dag/store/sqlite.hpp for the design.
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "dag/common/encoding.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/store/sqlite.hpp"

#include "migration.hpp"
#include "sqlite/checkpointer.hpp"
#include "sqlite/connection.hpp"
#include "sqlite/migrate.hpp"

namespace dag::store {

namespace {

using detail::Connection;
using detail::Statement;

constexpr std::size_t kMaxUsername = 128;
constexpr std::size_t kMaxPasswordHash = 512;
constexpr std::size_t kMaxAddress = 512;
constexpr std::size_t kMaxSecret = 512;
constexpr std::size_t kMaxBodyTemplate = 4096;
constexpr std::size_t kMaxContentType = 128;
constexpr std::size_t kTokenHashSize = 64;  // SHA-256 in hex
constexpr std::size_t kMaxName = 128;
constexpr std::size_t kMaxTimeZone = 64;
constexpr std::size_t kMaxMarker = 256;
constexpr std::size_t kMaxTimerKind = 64;
constexpr std::size_t kMaxOwner = 128;
constexpr std::size_t kMaxReason = 1024;
constexpr std::size_t kMaxSerial = 64;
constexpr std::size_t kMaxConfigKey = 64;
constexpr std::size_t kMaxScopeId = 128;
constexpr int kMaxLimit = 1000;
constexpr int kMaxBatteryLimit = 10'000;  // a week of readings at one per 5 minutes is 2016
constexpr std::int64_t kMaxLeaseMs = std::int64_t{7} * 24 * 3600 * 1000;
constexpr int kMaxReadConnections = 64;

Unexpected<StoreError> invalid(std::string_view op, std::string_view what) {
  return fail(StoreErrc::invalid_argument, std::string{op} + ": " + std::string{what});
}

/// invalid_argument unless min <= size(value) <= max.
std::optional<StoreError> check_length(std::string_view op, std::string_view what,
                                       std::string_view value, std::size_t min, std::size_t max) {
  if (value.size() >= min && value.size() <= max) return std::nullopt;
  return StoreError{StoreErrc::invalid_argument,
                    std::string{op} + ": " + std::string{what} + " must be " + std::to_string(min) +
                        ".." + std::to_string(max) + " bytes, got " + std::to_string(value.size())};
}

std::optional<StoreError> check_settings(const AccountSettings& s) {
  constexpr std::string_view op = "update_account_settings";
  auto out_of_range = [&](std::string_view what, int value, int max) {
    return StoreError{StoreErrc::invalid_argument, std::string{op} + ": " + std::string{what} +
                                                       " must be 0.." + std::to_string(max) +
                                                       ", got " + std::to_string(value)};
  };
  if (s.power_off_grace_s < 0 || s.power_off_grace_s > kMaxGraceSeconds) {
    return out_of_range("power_off_grace_s", s.power_off_grace_s, kMaxGraceSeconds);
  }
  if (s.disconnect_grace_s < 0 || s.disconnect_grace_s > kMaxGraceSeconds) {
    return out_of_range("disconnect_grace_s", s.disconnect_grace_s, kMaxGraceSeconds);
  }
  if (s.low_battery_percent < 0 || s.low_battery_percent > 100) {
    return out_of_range("low_battery_percent", s.low_battery_percent, 100);
  }
  return check_length(op, "time_zone", s.time_zone, 1, kMaxTimeZone);
}

/// `text` cut to at most `max` bytes, at a UTF-8 character boundary: a cut through a
/// character would leave text that a JSON encoder refuses. (Cuts at most 3 bytes more,
/// the continuation bytes of one character, whatever the text holds.)
std::string_view truncate_utf8(std::string_view text, std::size_t max) {
  if (text.size() <= max) return text;
  std::size_t cut = max;
  for (int i = 0; i < 3 && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U;
       ++i) {
    --cut;
  }
  return text.substr(0, cut);
}

/// invalid_argument unless the webhook-only fields of a new target are acceptable.
std::optional<StoreError> check_target_format(std::string_view op, const NewTarget& target) {
  if (!target.body_template && !target.content_type) return std::nullopt;
  if (target.kind != TargetKind::webhook) {
    return StoreError{StoreErrc::invalid_argument,
                      std::string{op} + ": body_template and content_type are for webhooks only"};
  }
  if (target.body_template) {
    if (auto bad = check_length(op, "body_template", *target.body_template, 0, kMaxBodyTemplate)) {
      return bad;
    }
  }
  if (target.content_type) {
    const std::string_view type = *target.content_type;
    if (auto bad = check_length(op, "content_type", type, 1, kMaxContentType)) return bad;
    // It becomes a header line: no CR/LF (or other control characters) may split it.
    const bool control = std::any_of(type.begin(), type.end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return byte < 0x20 || byte == 0x7f;
    });
    if (control) {
      return StoreError{StoreErrc::invalid_argument,
                        std::string{op} + ": content_type must not hold control characters"};
    }
  }
  return std::nullopt;
}

/// invalid_argument unless `hash` is a SHA-256 in lower-case hex (one token must not be
/// stored twice in two spellings).
std::optional<StoreError> check_token_hash(std::string_view op, std::string_view hash) {
  const bool hex =
      hash.size() == kTokenHashSize && std::all_of(hash.begin(), hash.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
      });
  if (hex) return std::nullopt;
  return StoreError{StoreErrc::invalid_argument,
                    std::string{op} + ": token_hash must be 64 lower-case hex digits"};
}

/// invalid_argument unless `serial` is 1..64 upper-case hex digits (dag::pki's spelling:
/// one serial must not be stored twice in two spellings).
std::optional<StoreError> check_serial(std::string_view op, std::string_view serial) {
  if (auto bad = check_length(op, "serial_hex", serial, 1, kMaxSerial)) return bad;
  const bool hex = std::all_of(serial.begin(), serial.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
  });
  if (hex) return std::nullopt;
  return StoreError{StoreErrc::invalid_argument,
                    std::string{op} + ": serial_hex must be upper-case hex digits"};
}

/// invalid_argument unless scope_id is "" for the fleet and 1..128 bytes otherwise.
std::optional<StoreError> check_scope_id(std::string_view op, ConfigScope scope,
                                         std::string_view scope_id) {
  if (scope != ConfigScope::fleet) return check_length(op, "scope_id", scope_id, 1, kMaxScopeId);
  if (scope_id.empty()) return std::nullopt;
  return StoreError{StoreErrc::invalid_argument,
                    std::string{op} + ": scope_id must be empty for the fleet scope"};
}

/// Checks a claim's arguments and computes the lease's end without overflow.
StoreResult<std::int64_t> lease_end(std::string_view op, std::int64_t now_ms, int limit,
                                    std::string_view owner, std::int64_t lease_ms) {
  if (limit < 1 || limit > kMaxLimit) return invalid(op, "limit must be 1..1000");
  if (auto bad = check_length(op, "owner", owner, 1, kMaxOwner)) {
    return Unexpected<StoreError>{std::move(*bad)};
  }
  if (lease_ms < 1 || lease_ms > kMaxLeaseMs) return invalid(op, "lease_ms must be 1..7 days");
  if (now_ms > std::numeric_limits<std::int64_t>::max() - lease_ms) {
    return invalid(op, "now_ms + lease_ms overflows");
  }
  return now_ms + lease_ms;
}

// Storage text of the "unknown"-able vocabulary: nullopt is 'unknown'.
template <class E>
std::string_view text_or_unknown(const std::optional<E>& value) {
  return value ? protocol::to_string(*value) : std::string_view{"unknown"};
}

/// Reads typed columns of one row, remembering the first value that does not decode
/// (only possible if something other than this store wrote the row: the CHECK
/// constraints admit nothing else).
class RowReader {
 public:
  RowReader(const Statement& st, std::string_view table) : st_(st), table_(table) {}

  [[nodiscard]] std::int64_t integer(int col) const { return st_.column_int(col); }
  [[nodiscard]] bool boolean(int col) const { return st_.column_bool(col); }
  [[nodiscard]] std::string text(int col) const { return st_.column_text(col); }
  [[nodiscard]] std::optional<std::int64_t> opt_integer(int col) const {
    return st_.column_opt_int(col);
  }
  [[nodiscard]] std::optional<std::string> opt_text(int col) const {
    return st_.column_opt_text(col);
  }

  /// A required enum; a value `parse` rejects is recorded and `fallback` returned.
  template <class E, class Parse>
  E enumeration(int col, Parse parse, E fallback) {
    const std::string value = st_.column_text(col);
    if (auto parsed = parse(value)) return *parsed;
    note(col, value);
    return fallback;
  }
  /// An enum that may be 'unknown' (nullopt).
  template <class Parse>
  auto optional_enum(int col, Parse parse) -> decltype(parse(std::string_view{})) {
    const std::string value = st_.column_text(col);
    if (value == "unknown") return std::nullopt;
    auto parsed = parse(value);
    if (!parsed) note(col, value);
    return parsed;
  }

  template <class T>
  StoreResult<T> finish(T value) {
    if (error_) return Unexpected<StoreError>{std::move(*error_)};
    return value;
  }

 private:
  void note(int col, const std::string& value) {
    if (!error_) {
      error_ = StoreError{StoreErrc::corrupt, std::string{table_} + ": column " +
                                                  std::to_string(col) + " holds '" + value +
                                                  "', which this program cannot read"};
    }
  }

  const Statement& st_;
  std::string_view table_;
  std::optional<StoreError> error_;
};

// ---- SQL --------------------------------------------------------------------------------
// Every statement is a literal: the connection caches the prepared form by its address.

#define DAG_ACCOUNT_COLUMNS                                                             \
  "id, username, password_hash, created_at_ms, power_off_grace_s, disconnect_grace_s, " \
  "low_battery_percent, time_zone, notify_power_lost, notify_power_back, "              \
  "notify_contact_lost, notify_dag_back, notify_battery_low"
#define DAG_TARGET_COLUMNS                                                          \
  "id, account_id, kind, address, verified, secret, created_at_ms, body_template, " \
  "content_type, failure_count, last_error, last_error_at_ms, last_success_at_ms, " \
  "verification_requested, verification_sent_at_ms"
#define DAG_DEVICE_COLUMNS                                                                \
  "id, account_id, name, provisioned_at_ms, revoked, power, power_since_ms, last_seq, "   \
  "connection, connection_since_ms, last_seen_ms, user_state, battery, presence_marker, " \
  "last_lifecycle_version, notified_lost_contact, notified_power_lost, notified_battery_low"
#define DAG_EVENT_COLUMNS \
  "id, device_id, kind, observed_at_ms, received_at_ms, seq, clock_fallback, user_state_after"
#define DAG_TIMER_COLUMNS "id, device_id, kind, due_at_ms, marker, claimed_by, claimed_until_ms"
#define DAG_INTENT_COLUMNS                                                           \
  "id, account_id, device_id, device_name, transition, user_state, observed_at_ms, " \
  "created_at_ms, payload, status, attempts, next_attempt_at_ms, claimed_by, "       \
  "claimed_until_ms, last_error, finished_at_ms, target_id"
#define DAG_CERTIFICATE_COLUMNS "serial_hex, device_id, issued_at_ms, not_after_ms, revoked_at_ms"
#define DAG_CONFIG_COLUMNS "scope, scope_id, key, value, updated_at_ms"

constexpr const char* kInsertAccount =
    "INSERT INTO accounts (id, username, password_hash, created_at_ms) VALUES (?1, ?2, ?3, ?4) "
    "RETURNING " DAG_ACCOUNT_COLUMNS;
constexpr const char* kSelectAccountById =
    "SELECT " DAG_ACCOUNT_COLUMNS " FROM accounts WHERE id = ?1";
constexpr const char* kSelectAccountByUsername =
    "SELECT " DAG_ACCOUNT_COLUMNS " FROM accounts WHERE username = ?1";
constexpr const char* kSelectAccounts =
    "SELECT " DAG_ACCOUNT_COLUMNS " FROM accounts ORDER BY username";
constexpr const char* kUpdateAccountSettings =
    "UPDATE accounts SET power_off_grace_s = ?2, disconnect_grace_s = ?3, "
    "low_battery_percent = ?4, time_zone = ?5, notify_power_lost = ?6, notify_power_back = ?7, "
    "notify_contact_lost = ?8, notify_dag_back = ?9, notify_battery_low = ?10 WHERE id = ?1";
constexpr const char* kUpdatePasswordHash = "UPDATE accounts SET password_hash = ?2 WHERE id = ?1";

constexpr const char* kInsertTarget =
    "INSERT INTO notification_targets (id, account_id, kind, address, verified, secret, "
    "created_at_ms, body_template, content_type, verification_requested) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING " DAG_TARGET_COLUMNS;
constexpr const char* kSelectTargets = "SELECT " DAG_TARGET_COLUMNS
                                       " FROM notification_targets WHERE account_id = ?1 "
                                       "ORDER BY created_at_ms, id";
constexpr const char* kUpdateTargetVerified =
    "UPDATE notification_targets SET verified = ?2, "
    "verification_requested = CASE WHEN ?2 THEN 0 ELSE verification_requested END WHERE id = ?1";
// ON DELETE CASCADE takes the target's intents and verification tokens along.
constexpr const char* kDeleteTarget = "DELETE FROM notification_targets WHERE id = ?1";
constexpr const char* kRecordDeliveryOk =
    "UPDATE notification_targets SET failure_count = 0, last_success_at_ms = ?2 WHERE id = ?1";
constexpr const char* kRecordDeliveryFailed =
    "UPDATE notification_targets SET failure_count = failure_count + 1, last_error = ?3, "
    "last_error_at_ms = ?2 WHERE id = ?1";

// The terms of the partial index targets_needing_verification, spelled as in it.
constexpr const char* kSelectTargetsNeedingVerification =
    "SELECT " DAG_TARGET_COLUMNS
    " FROM notification_targets WHERE kind = 'email' AND verified = 0 "
    "AND verification_requested = 1 AND created_at_ms <= ?1 ORDER BY created_at_ms, id LIMIT ?2";
constexpr const char* kInsertVerification =
    "INSERT INTO verifications (token_hash, target_id, created_at_ms, expires_at_ms) "
    "VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kUpdateVerificationSent =
    "UPDATE notification_targets SET verification_sent_at_ms = ?2, verification_requested = 0 "
    "WHERE id = ?1";
constexpr const char* kDeleteStaleVerifications =
    "DELETE FROM verifications WHERE target_id = ?1 AND token_hash <> ?2 "
    "AND (used_at_ms IS NOT NULL OR expires_at_ms <= ?3)";
constexpr const char* kSelectVerificationState =
    "SELECT kind, verified, verification_sent_at_ms FROM notification_targets WHERE id = ?1";
constexpr const char* kUpdateVerificationRequested =
    "UPDATE notification_targets SET verification_requested = 1 WHERE id = ?1";
constexpr const char* kUseVerification =
    "UPDATE verifications SET used_at_ms = ?2 "
    "WHERE token_hash = ?1 AND used_at_ms IS NULL AND expires_at_ms > ?2 RETURNING target_id";
constexpr const char* kUseTargetVerifications =
    "UPDATE verifications SET used_at_ms = ?2 WHERE target_id = ?1 AND used_at_ms IS NULL";
constexpr const char* kVerifyTarget =
    "UPDATE notification_targets SET verified = 1, verification_requested = 0 WHERE id = ?1";

constexpr const char* kInsertDevice =
    "INSERT INTO devices (id, account_id, name, provisioned_at_ms) VALUES (?1, ?2, ?3, ?4) "
    "RETURNING " DAG_DEVICE_COLUMNS;
constexpr const char* kSelectDevice = "SELECT " DAG_DEVICE_COLUMNS " FROM devices WHERE id = ?1";
constexpr const char* kSelectDevices =
    "SELECT " DAG_DEVICE_COLUMNS " FROM devices WHERE account_id = ?1 ORDER BY name, id";
constexpr const char* kUpdateDeviceName = "UPDATE devices SET name = ?2 WHERE id = ?1";
constexpr const char* kUpdateDeviceRevoked = "UPDATE devices SET revoked = ?2 WHERE id = ?1";
constexpr const char* kUpdateDeviceState =
    "UPDATE devices SET power = ?2, power_since_ms = ?3, last_seq = ?4, connection = ?5, "
    "connection_since_ms = ?6, last_seen_ms = ?7, user_state = ?8, battery = ?9, "
    "presence_marker = ?10, last_lifecycle_version = ?11, notified_lost_contact = ?12, "
    "notified_power_lost = ?13, notified_battery_low = ?14 WHERE id = ?1";
// The same without the battery: SQLite evaluates only the CHECKs of the columns set, and
// the battery's is a JSON parse. ?9 is left unused (it is still a slot: ?10 and up exist),
// so that both are bound alike.
constexpr const char* kUpdateDeviceStateKeepBattery =
    "UPDATE devices SET power = ?2, power_since_ms = ?3, last_seq = ?4, connection = ?5, "
    "connection_since_ms = ?6, last_seen_ms = ?7, user_state = ?8, "
    "presence_marker = ?10, last_lifecycle_version = ?11, notified_lost_contact = ?12, "
    "notified_power_lost = ?13, notified_battery_low = ?14 WHERE id = ?1";
// ON DELETE CASCADE takes the device's shadow, events, timers and intents along.
constexpr const char* kDeleteDevice = "DELETE FROM devices WHERE id = ?1";
constexpr const char* kDeleteDeviceConfig =
    "DELETE FROM config_entries WHERE scope = 'device' AND scope_id = ?1";
constexpr const char* kAccountExists = "SELECT 1 FROM accounts WHERE id = ?1";
constexpr const char* kDeleteAccountDevicesConfig =
    "DELETE FROM config_entries WHERE scope = 'device' "
    "AND scope_id IN (SELECT id FROM devices WHERE account_id = ?1)";
constexpr const char* kDeleteAccountDevices = "DELETE FROM devices WHERE account_id = ?1";
constexpr const char* kDeleteAccountConfig =
    "DELETE FROM config_entries WHERE scope = 'account' AND scope_id = ?1";
// ON DELETE CASCADE takes the account's targets (and any intent left) along.
constexpr const char* kDeleteAccount = "DELETE FROM accounts WHERE id = ?1";

constexpr const char* kSelectShadow = "SELECT document, revision FROM shadows WHERE device_id = ?1";
// The device's columns as in kSelectDevice (no shadows column shares a name with them),
// then the shadow's revision and, unless the shadow is (?2, ?3), its document.
constexpr const char* kSelectDeviceWithShadow =
    "SELECT " DAG_DEVICE_COLUMNS
    ", shadows.revision, CASE WHEN shadows.revision = ?2 AND shadows.document = ?3 THEN NULL "
    "ELSE shadows.document END "
    "FROM devices LEFT JOIN shadows ON shadows.device_id = devices.id WHERE devices.id = ?1";
constexpr const char* kInsertShadow =
    "INSERT INTO shadows (device_id, revision, document) VALUES (?1, 1, ?2)";
constexpr const char* kUpdateShadow =
    "UPDATE shadows SET revision = revision + 1, document = ?3 "
    "WHERE device_id = ?1 AND revision = ?2";

constexpr const char* kInsertEvent =
    "INSERT INTO events (device_id, kind, observed_at_ms, received_at_ms, seq, clock_fallback, "
    "user_state_after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
// A device's events are found through the dedupe index and sorted (see the migration for
// why there is no (device_id, id) index); INDEXED BY keeps the planner from ever choosing
// a backwards scan of the whole table instead.
constexpr const char* kSelectEvents =
    "SELECT " DAG_EVENT_COLUMNS
    " FROM events INDEXED BY events_device_seq WHERE device_id = ?1 AND id < ?2 "
    "AND (?3 IS NULL OR observed_at_ms >= ?3) AND (?4 IS NULL OR observed_at_ms < ?4) "
    "ORDER BY id DESC LIMIT ?5";

// A device's readings are one range of the primary key (device_id, at_ms): recording,
// the retention delete and a chart's window never touch another device's rows.
constexpr const char* kUpsertBatteryReading =
    "INSERT INTO battery_readings (device_id, at_ms, percent, volts, minutes_left, on_battery) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (device_id, at_ms) DO UPDATE SET "
    "percent = excluded.percent, volts = excluded.volts, minutes_left = excluded.minutes_left, "
    "on_battery = excluded.on_battery";
constexpr const char* kDeleteOldBatteryReadings =
    "DELETE FROM battery_readings WHERE device_id = ?1 AND at_ms < ?2";
// Newest first so that LIMIT keeps the recent end of the window; list_battery reverses.
constexpr const char* kSelectBatteryReadings =
    "SELECT at_ms, percent, volts, minutes_left, on_battery FROM battery_readings "
    "WHERE device_id = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms DESC LIMIT ?4";

constexpr const char* kDeleteTimerOfKind = "DELETE FROM timers WHERE device_id = ?1 AND kind = ?2";
constexpr const char* kInsertTimer =
    "INSERT INTO timers (device_id, kind, due_at_ms, marker) VALUES (?1, ?2, ?3, ?4)";
constexpr const char* kSelectTimer =
    "SELECT " DAG_TIMER_COLUMNS " FROM timers WHERE device_id = ?1 AND kind = ?2";
constexpr const char* kClaimTimers =
    "UPDATE timers SET claimed_by = ?3, claimed_until_ms = ?4 WHERE id IN ("
    "SELECT id FROM timers WHERE due_at_ms <= ?1 "
    "AND (claimed_until_ms IS NULL OR claimed_until_ms <= ?1) "
    "ORDER BY due_at_ms, id LIMIT ?2) RETURNING " DAG_TIMER_COLUMNS;
constexpr const char* kDeleteTimer = "DELETE FROM timers WHERE id = ?1";
constexpr const char* kNextTimerDue =
    "SELECT min(CASE WHEN claimed_until_ms > due_at_ms THEN claimed_until_ms "
    "ELSE due_at_ms END) FROM timers";

// The foreign key finds an unknown target; the WHERE also refuses (inserts nothing) a
// target of another account, whose owner must never be sent this account's news.
constexpr const char* kInsertIntent =
    "INSERT INTO outbox (account_id, device_id, device_name, transition, user_state, "
    "observed_at_ms, created_at_ms, payload, next_attempt_at_ms, target_id) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9 WHERE ?9 IS NULL OR EXISTS ("
    "SELECT 1 FROM notification_targets WHERE id = ?9 AND account_id = ?1)";
// Whole targets: every due intent of each target taken, targets in the order of their
// oldest due intent, until the limit ?2 is reached (the last target may pass it). A
// target's intents split over two claims would go out as two messages. An intent without
// a target is a group of its own.
//
// Only the ?2 oldest due intents can hold the chosen targets' oldest ones (those targets
// alone have ?2 due intents), so the ranking reads just those rows and counts each of
// their targets' due intents through outbox_by_target: a claim costs what ?2 makes it,
// not what the backlog is. Ranking every due intent, as an earlier version did, cost a
// storm's worker ~80 ms per claim at 10,000 due intents, with the write lock held.
// (In the count's subquery the unqualified columns are those of `o`.)
#define DAG_DUE_INTENT                                                                \
  "status = 'pending' AND next_attempt_at_ms <= ?1 AND (claimed_until_ms IS NULL OR " \
  "claimed_until_ms <= ?1)"
constexpr const char* kClaimIntents =
    "WITH first AS (SELECT id, target_id, next_attempt_at_ms FROM outbox WHERE " DAG_DUE_INTENT
    " ORDER BY next_attempt_at_ms, id LIMIT ?2), "
    "grps AS (SELECT coalesce(target_id, '#' || id) AS grp, target_id, min(id) AS lone, "
    "min(next_attempt_at_ms) AS at FROM first GROUP BY grp), "
    "sized AS (SELECT grp, target_id, lone, at, CASE WHEN target_id IS NULL THEN 1 ELSE "
    "(SELECT count(*) FROM outbox o WHERE o.target_id = grps.target_id AND " DAG_DUE_INTENT
    ") END AS n FROM grps), "
    "chosen AS (SELECT target_id, lone FROM (SELECT target_id, lone, n, "
    "sum(n) OVER (ORDER BY at, grp) AS upto FROM sized) WHERE upto - n < ?2) "
    "UPDATE outbox SET claimed_by = ?3, claimed_until_ms = ?4, attempts = attempts + 1 "
    "WHERE " DAG_DUE_INTENT
    " AND (target_id IN (SELECT target_id FROM chosen WHERE target_id IS NOT NULL) "
    "OR id IN (SELECT lone FROM chosen WHERE target_id IS NULL)) "
    "RETURNING " DAG_INTENT_COLUMNS;
#undef DAG_DUE_INTENT
constexpr const char* kSelectIntent = "SELECT " DAG_INTENT_COLUMNS " FROM outbox WHERE id = ?1";
constexpr const char* kSelectIntentStatus = "SELECT status FROM outbox WHERE id = ?1";
constexpr const char* kUpdateIntentDone =
    "UPDATE outbox SET status = 'done', finished_at_ms = ?2, claimed_until_ms = NULL "
    "WHERE id = ?1";
constexpr const char* kUpdateIntentRetry =
    "UPDATE outbox SET next_attempt_at_ms = ?2, last_error = ?3, claimed_by = NULL, "
    "claimed_until_ms = NULL WHERE id = ?1";
constexpr const char* kUpdateIntentFailed =
    "UPDATE outbox SET status = 'failed', finished_at_ms = ?2, last_error = ?3, "
    "claimed_until_ms = NULL WHERE id = ?1";
// Unclaimed again; a claim since the last release gives its attempt back.
constexpr const char* kDeferIntent =
    "UPDATE outbox SET next_attempt_at_ms = ?2, "
    "attempts = CASE WHEN claimed_by IS NULL THEN attempts ELSE max(attempts - 1, 0) END, "
    "claimed_by = NULL, claimed_until_ms = NULL WHERE id = ?1";
constexpr const char* kCountDevices =
    "SELECT count(*), coalesce(sum(revoked), 0), "
    "coalesce(sum(revoked = 0 AND connection = 'connected'), 0) FROM devices";
constexpr const char* kCountPendingIntents = "SELECT count(*) FROM outbox WHERE status = 'pending'";
// The accounts first (outbox_ready gives the due intents), then one pass over the devices.
constexpr const char* kDueIntentsMayGrow =
    "SELECT EXISTS (SELECT 1 FROM devices WHERE revoked = 0"
    " AND NOT (power = 'off' AND notified_power_lost = 1)"
    " AND account_id IN (SELECT account_id FROM outbox"
    " WHERE status = 'pending' AND next_attempt_at_ms <= ?1))";

constexpr const char* kInsertCertificate =
    "INSERT INTO certificates (" DAG_CERTIFICATE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr const char* kSelectCertificates = "SELECT " DAG_CERTIFICATE_COLUMNS
                                            " FROM certificates WHERE device_id = ?1 "
                                            "ORDER BY issued_at_ms, serial_hex";
constexpr const char* kRevokeCertificates =
    "UPDATE certificates SET revoked_at_ms = ?2 WHERE device_id = ?1 AND revoked_at_ms IS NULL "
    "RETURNING " DAG_CERTIFICATE_COLUMNS;
constexpr const char* kSelectRevokedCertificates =
    "SELECT " DAG_CERTIFICATE_COLUMNS
    " FROM certificates WHERE revoked_at_ms IS NOT NULL AND not_after_ms > ?1 "
    "ORDER BY serial_hex";

constexpr const char* kUpsertConfig =
    "INSERT INTO config_entries (" DAG_CONFIG_COLUMNS
    ") VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (scope, scope_id, key) "
    "DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms";
constexpr const char* kDeleteConfig =
    "DELETE FROM config_entries WHERE scope = ?1 AND scope_id = ?2 AND key = ?3";
constexpr const char* kSelectConfig = "SELECT " DAG_CONFIG_COLUMNS
                                      " FROM config_entries WHERE scope = ?1 AND scope_id = ?2 "
                                      "ORDER BY key";

constexpr const char* kPing = "SELECT count(*) FROM schema_migrations";

#undef DAG_ACCOUNT_COLUMNS
#undef DAG_TARGET_COLUMNS
#undef DAG_DEVICE_COLUMNS
#undef DAG_EVENT_COLUMNS
#undef DAG_TIMER_COLUMNS
#undef DAG_INTENT_COLUMNS
#undef DAG_CERTIFICATE_COLUMNS
#undef DAG_CONFIG_COLUMNS

// ---- row decoding -----------------------------------------------------------------------

StoreResult<Account> read_account(const Statement& st) {
  RowReader row{st, "accounts"};
  Account a;
  a.id = row.text(0);
  a.username = row.text(1);
  a.password_hash = row.text(2);
  a.created_at_ms = row.integer(3);
  a.settings.power_off_grace_s = static_cast<int>(row.integer(4));
  a.settings.disconnect_grace_s = static_cast<int>(row.integer(5));
  a.settings.low_battery_percent = static_cast<int>(row.integer(6));
  a.settings.time_zone = row.text(7);
  a.settings.notify_power_lost = row.boolean(8);
  a.settings.notify_power_back = row.boolean(9);
  a.settings.notify_contact_lost = row.boolean(10);
  a.settings.notify_dag_back = row.boolean(11);
  a.settings.notify_battery_low = row.boolean(12);
  return row.finish(std::move(a));
}

StoreResult<NotificationTarget> read_target(const Statement& st) {
  RowReader row{st, "notification_targets"};
  NotificationTarget t;
  t.id = row.text(0);
  t.account_id = row.text(1);
  t.kind = row.enumeration(2, parse_target_kind, TargetKind::email);
  t.address = row.text(3);
  t.verified = row.boolean(4);
  t.secret = row.opt_text(5);
  t.created_at_ms = row.integer(6);
  t.body_template = row.opt_text(7);
  t.content_type = row.opt_text(8);
  t.failure_count = static_cast<int>(row.integer(9));
  t.last_error = row.opt_text(10);
  t.last_error_at_ms = row.opt_integer(11);
  t.last_success_at_ms = row.opt_integer(12);
  t.verification_requested = row.boolean(13);
  t.verification_sent_at_ms = row.opt_integer(14);
  return row.finish(std::move(t));
}

StoreResult<Device> read_device(const Statement& st) {
  RowReader row{st, "devices"};
  Device d;
  d.id = row.text(0);
  d.account_id = row.text(1);
  d.name = row.text(2);
  d.provisioned_at_ms = row.integer(3);
  d.revoked = row.boolean(4);
  DeviceState& s = d.state;
  s.power = row.optional_enum(5, protocol::parse_power);
  s.power_since_ms = row.opt_integer(6);
  s.last_seq = row.integer(7);
  s.connection = row.optional_enum(8, protocol::parse_connection);
  s.connection_since_ms = row.opt_integer(9);
  s.last_seen_ms = row.opt_integer(10);
  s.user_state = row.optional_enum(11, protocol::parse_user_state);
  s.battery_json = row.opt_text(12);
  s.presence_marker = row.text(13);
  s.last_lifecycle_version = row.opt_integer(14);
  s.notified_lost_contact = row.boolean(15);
  s.notified_power_lost = row.boolean(16);
  s.notified_battery_low = row.boolean(17);
  return row.finish(std::move(d));
}

StoreResult<StoredEvent> read_event(const Statement& st) {
  RowReader row{st, "events"};
  StoredEvent e;
  e.id = row.integer(0);
  e.event.device_id = row.text(1);
  e.event.kind = row.enumeration(2, parse_event_kind, EventKind::power_off);
  e.event.observed_at_ms = row.integer(3);
  e.event.received_at_ms = row.integer(4);
  e.event.seq = row.opt_integer(5);
  e.event.clock_fallback = row.boolean(6);
  e.event.user_state_after = row.optional_enum(7, protocol::parse_user_state);
  return row.finish(std::move(e));
}

StoreResult<BatteryReading> read_battery_reading(const Statement& st, std::string_view device_id) {
  BatteryReading r;
  r.device_id = std::string{device_id};
  r.at_ms = st.column_int(0);
  r.percent = st.column_opt_double(1);
  r.volts = st.column_opt_double(2);
  r.minutes_left = st.column_opt_int(3);
  if (auto on = st.column_opt_int(4)) r.on_battery = *on != 0;
  return r;
}

StoreResult<StoredTimer> read_timer(const Statement& st) {
  RowReader row{st, "timers"};
  StoredTimer t;
  t.id = row.integer(0);
  t.timer.device_id = row.text(1);
  t.timer.kind = row.text(2);
  t.timer.due_at_ms = row.integer(3);
  t.timer.marker = row.text(4);
  t.claimed_by = row.opt_text(5);
  t.claimed_until_ms = row.opt_integer(6);
  return row.finish(std::move(t));
}

StoreResult<StoredIntent> read_intent(const Statement& st) {
  RowReader row{st, "outbox"};
  StoredIntent s;
  s.id = row.integer(0);
  Intent& i = s.intent;
  i.account_id = row.text(1);
  i.device_id = row.text(2);
  i.device_name = row.text(3);
  i.transition = row.enumeration(4, parse_transition, Transition::power_lost);
  i.user_state = row.enumeration(5, protocol::parse_user_state, protocol::UserState::on);
  i.observed_at_ms = row.integer(6);
  i.created_at_ms = row.integer(7);
  i.payload = row.text(8);
  s.status = row.enumeration(9, parse_intent_status, IntentStatus::pending);
  s.attempts = static_cast<int>(row.integer(10));
  s.next_attempt_at_ms = row.integer(11);
  s.claimed_by = row.opt_text(12);
  s.claimed_until_ms = row.opt_integer(13);
  s.last_error = row.opt_text(14);
  s.finished_at_ms = row.opt_integer(15);
  i.target_id = row.opt_text(16);
  return row.finish(std::move(s));
}

StoreResult<DeviceCertificate> read_certificate(const Statement& st) {
  RowReader row{st, "certificates"};
  DeviceCertificate c;
  c.serial_hex = row.text(0);
  c.device_id = row.text(1);
  c.issued_at_ms = row.integer(2);
  c.not_after_ms = row.integer(3);
  c.revoked_at_ms = row.opt_integer(4);
  return row.finish(std::move(c));
}

StoreResult<ConfigEntry> read_config_entry(const Statement& st) {
  RowReader row{st, "config_entries"};
  ConfigEntry e;
  e.scope = row.enumeration(0, parse_config_scope, ConfigScope::fleet);
  e.scope_id = row.text(1);
  e.key = row.text(2);
  e.value_json = row.text(3);
  e.updated_at_ms = row.integer(4);
  return row.finish(std::move(e));
}

/// Steps `st` to the end, decoding every row with `read`.
template <class Read>
auto read_all(Statement& st, std::string_view context, Read read)
    -> StoreResult<std::vector<typename decltype(read(st))::value_type>> {
  std::vector<typename decltype(read(st))::value_type> rows;
  for (;;) {
    auto more = st.step(context);
    if (!more) return Unexpected<StoreError>{std::move(more).error()};
    if (!*more) return rows;
    auto value = read(st);
    if (!value) return Unexpected<StoreError>{std::move(value).error()};
    rows.push_back(std::move(value).value());
  }
}

/// Steps `st` once and decodes the row, or not_found with `missing` as the message.
template <class Read>
auto read_one(Statement& st, std::string_view context, Read read, std::string missing)
    -> decltype(read(st)) {
  auto row = st.step(context);
  if (!row) return Unexpected<StoreError>{std::move(row).error()};
  if (!*row) return fail(StoreErrc::not_found, std::move(missing));
  return read(st);
}

/// Runs a one-row UPDATE/DELETE: not_found when no row matched.
StoreResult<void> run_on_one(Connection& conn, Statement& st, std::string_view context,
                             std::string missing) {
  if (auto ran = st.run(context); !ran) return ran;
  if (conn.changes() == 0) return fail(StoreErrc::not_found, std::move(missing));
  return {};
}

StoreResult<std::string> new_id(std::string_view op) {
  auto id = new_uuid();
  if (!id) return fail(StoreErrc::internal, std::string{op} + ": " + id.error().message);
  return std::move(id).value();
}

}  // namespace

// ---- the store --------------------------------------------------------------------------

class SqliteTransaction;

class SqliteStore final : public Store {
 public:
  SqliteStore(std::filesystem::path path, SqliteOptions options, std::unique_ptr<Connection> writer,
              std::unique_ptr<detail::Checkpointer> checkpointer, std::unique_ptr<Connection> probe)
      : path_(std::move(path)),
        options_(options),
        writer_(std::move(writer)),
        checkpointer_(std::move(checkpointer)),
        probe_(std::move(probe)),
        shared_reads_(options.read_connections == 0 || path_ == ":memory:") {
    if (checkpointer_) checkpointer_->attach(writer_->handle());
  }

  ~SqliteStore() override {
    // A transaction outliving its store would use a closed connection.
    assert(live_transactions_.load() == 0);
    if (checkpointer_) {
      detail::Checkpointer::detach(writer_->handle());
      checkpointer_.reset();
    }
  }

  StoreResult<std::unique_ptr<Transaction>> begin(TxMode mode) override;
  StoreResult<void> ping() override;
  std::optional<std::uint64_t> change_marker() override;

  /// Gives a transaction's connection back (called once by the transaction's end()).
  void release(Connection& connection, bool writer) noexcept;

 private:
  StoreResult<Connection*> acquire_writer();
  StoreResult<Connection*> acquire_reader();

  std::filesystem::path path_;
  SqliteOptions options_;
  std::unique_ptr<Connection> writer_;
  std::unique_ptr<detail::Checkpointer> checkpointer_;  ///< null without WAL (:memory:)
  /// Asked for `PRAGMA data_version`, which changes when another connection committed:
  /// every writer (ours, dagctl's) is another connection. Null for :memory:.
  std::unique_ptr<Connection> probe_;
  std::mutex probe_mutex_;
  bool shared_reads_;

  std::mutex writer_mutex_;
  std::condition_variable writer_free_;
  bool writer_taken_{false};
  std::thread::id writer_thread_;

  std::mutex readers_mutex_;
  std::condition_variable reader_free_;
  std::vector<std::unique_ptr<Connection>> readers_;
  std::vector<Connection*> idle_readers_;

  std::atomic<int> live_transactions_{0};
  friend class SqliteTransaction;
};

class SqliteTransaction final : public Transaction {
 public:
  SqliteTransaction(SqliteStore& store, Connection& connection, bool writer, TxMode mode)
      : store_(store), conn_(&connection), writer_(writer), mode_(mode) {
    ++store_.live_transactions_;
  }
  ~SqliteTransaction() override {
    rollback();
    --store_.live_transactions_;
  }
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  SqliteTransaction(SqliteTransaction&&) = delete;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;

  [[nodiscard]] TxMode mode() const noexcept override { return mode_; }

  StoreResult<void> commit() override {
    if (conn_ == nullptr) return fail(StoreErrc::invalid_argument, "commit: transaction ended");
    if (dead_) {
      StoreError error = *dead_;
      rollback();
      return Unexpected<StoreError>{std::move(error)};
    }
    auto committed = conn_->exec("COMMIT", "commit");
    if (!committed) {
      rollback();  // SQLite keeps the transaction open after a failed COMMIT
      return committed;
    }
    end();
    return {};
  }

  void rollback() noexcept override {
    if (conn_ == nullptr) return;
    if (!conn_->autocommit()) {
      // ROLLBACK only fails when there is no transaction left, which autocommit rules out.
      static_cast<void>(conn_->exec("ROLLBACK", "rollback"));
    }
    end();
  }

  // accounts
  StoreResult<Account> create_account(std::string_view username, std::string_view password_hash,
                                      std::int64_t created_at_ms) override;
  StoreResult<Account> get_account(std::string_view account_id) override;
  StoreResult<Account> find_account_by_username(std::string_view username) override;
  StoreResult<std::vector<Account>> list_accounts() override;
  StoreResult<void> update_account_settings(std::string_view account_id,
                                            const AccountSettings& settings) override;
  StoreResult<void> set_password_hash(std::string_view account_id,
                                      std::string_view password_hash) override;
  // targets
  StoreResult<NotificationTarget> add_target(const NewTarget& target) override;
  StoreResult<std::vector<NotificationTarget>> list_targets(std::string_view account_id) override;
  StoreResult<void> set_target_verified(std::string_view target_id, bool verified) override;
  StoreResult<void> remove_target(std::string_view target_id) override;
  StoreResult<void> record_delivery(std::string_view target_id, bool ok, std::string_view error,
                                    std::int64_t now_ms) override;
  // e-mail verification
  StoreResult<std::vector<NotificationTarget>> targets_needing_verification(std::int64_t now_ms,
                                                                            int limit) override;
  StoreResult<void> create_verification(std::string_view target_id, std::string_view token_hash,
                                        std::int64_t now_ms, std::int64_t expires_at_ms) override;
  StoreResult<bool> request_verification(std::string_view target_id, std::int64_t now_ms,
                                         std::int64_t min_interval_ms) override;
  StoreResult<std::string> consume_verification(std::string_view token_hash,
                                                std::int64_t now_ms) override;
  // devices
  StoreResult<Device> create_device(const NewDevice& device) override;
  StoreResult<Device> get_device(std::string_view device_id) override;
  StoreResult<std::vector<Device>> list_devices(std::string_view account_id) override;
  StoreResult<void> rename_device(std::string_view device_id, std::string_view name) override;
  StoreResult<void> set_device_revoked(std::string_view device_id, bool revoked) override;
  StoreResult<void> update_device_state(std::string_view device_id,
                                        const DeviceState& state) override;
  StoreResult<void> change_device_state(std::string_view device_id, const DeviceState& before,
                                        const DeviceState& after) override;
  StoreResult<void> delete_device(std::string_view device_id) override;
  StoreResult<void> delete_account(std::string_view account_id) override;
  // shadows
  StoreResult<std::optional<StoredShadow>> get_shadow(std::string_view device_id) override;
  StoreResult<DeviceWithShadow> get_device_with_shadow(std::string_view device_id,
                                                       const StoredShadow* known) override;
  StoreResult<std::int64_t> put_shadow(std::string_view device_id, std::string_view document,
                                       std::int64_t expected_revision) override;
  // events
  StoreResult<std::int64_t> append_event(const Event& event) override;
  StoreResult<EventPage> list_events(const EventQuery& query) override;
  // battery readings
  StoreResult<void> record_battery(const BatteryReading& reading,
                                   std::optional<std::int64_t> delete_before_ms) override;
  StoreResult<std::vector<BatteryReading>> list_battery(std::string_view device_id,
                                                        std::int64_t since_ms,
                                                        std::int64_t until_ms, int limit) override;
  // timers
  StoreResult<std::int64_t> schedule_timer(const Timer& timer) override;
  StoreResult<bool> cancel_timer(std::string_view device_id, std::string_view kind) override;
  StoreResult<std::optional<StoredTimer>> find_timer(std::string_view device_id,
                                                     std::string_view kind) override;
  StoreResult<std::vector<StoredTimer>> claim_due_timers(std::int64_t now_ms, int limit,
                                                         std::string_view owner,
                                                         std::int64_t lease_ms) override;
  StoreResult<void> complete_timer(std::int64_t timer_id) override;
  StoreResult<std::optional<std::int64_t>> next_timer_due_ms() override;
  // outbox
  StoreResult<std::int64_t> enqueue_intent(const Intent& intent) override;
  StoreResult<std::vector<StoredIntent>> claim_intents(std::int64_t now_ms, int limit,
                                                       std::string_view owner,
                                                       std::int64_t lease_ms) override;
  StoreResult<StoredIntent> get_intent(std::int64_t intent_id) override;
  StoreResult<void> mark_intent_done(std::int64_t intent_id, std::int64_t now_ms) override;
  StoreResult<void> mark_intent_failed(std::int64_t intent_id, std::string_view reason,
                                       std::optional<std::int64_t> retry_at_ms,
                                       std::int64_t now_ms) override;
  StoreResult<void> defer_intent(std::int64_t intent_id, std::int64_t until_ms) override;
  StoreResult<std::int64_t> count_pending_intents() override;
  StoreResult<bool> due_intents_may_grow(std::int64_t now_ms) override;
  StoreResult<DeviceCounts> count_devices() override;
  // certificates
  StoreResult<void> add_certificate(const DeviceCertificate& cert) override;
  StoreResult<std::vector<DeviceCertificate>> list_certificates(
      std::string_view device_id) override;
  StoreResult<std::vector<std::string>> revoke_certificates(std::string_view device_id,
                                                            std::int64_t now_ms) override;
  StoreResult<std::vector<DeviceCertificate>> list_revoked_certificates(
      std::int64_t now_ms) override;
  // configuration
  StoreResult<void> set_config_entry(const ConfigEntry& entry) override;
  StoreResult<bool> remove_config_entry(ConfigScope scope, std::string_view scope_id,
                                        std::string_view key) override;
  StoreResult<std::vector<ConfigEntry>> list_config_entries(ConfigScope scope,
                                                            std::string_view scope_id) override;

 private:
  enum class Access { read, write };

  /// Runs one operation: refuses it on an ended or dead transaction or (for writes) in a
  /// read-only one, and kills the transaction after an error that ends it.
  template <class F>
  auto guarded(Access access, std::string_view op, F&& body) -> decltype(body()) {
    if (conn_ == nullptr) return invalid(op, "transaction ended");
    if (dead_) return Unexpected<StoreError>{*dead_};
    if (access == Access::write && mode_ == TxMode::read_only) {
      return invalid(op, "write in a read-only transaction");
    }
    auto result = body();
    if (!result) {
      if (!leaves_transaction_usable(result.error().code)) {
        dead_ = result.error();
      } else if (conn_->autocommit()) {
        // SQLite ended the transaction on its own (it does so after some I/O and memory
        // errors): earlier writes are gone, so nothing more may run in it.
        dead_ = StoreError{StoreErrc::internal, std::string{op} +
                                                    ": SQLite rolled the transaction back after: " +
                                                    result.error().message};
      }
    }
    return result;
  }

  void end() noexcept {
    if (conn_ == nullptr) return;
    Connection* connection = std::exchange(conn_, nullptr);
    store_.release(*connection, writer_);
  }

  Connection& conn() { return *conn_; }
  StoreResult<void> write_device_state(std::string_view device_id, const DeviceState& state,
                                       bool battery);

  friend class SqliteStore;  // ping() runs its statement on the transaction's connection
  SqliteStore& store_;
  Connection* conn_;  ///< nullptr once committed or rolled back
  bool writer_;
  TxMode mode_;
  std::optional<StoreError> dead_;
};

StoreResult<Connection*> SqliteStore::acquire_writer() {
  std::unique_lock lock{writer_mutex_};
  if (writer_taken_ && writer_thread_ == std::this_thread::get_id()) {
    return fail(StoreErrc::invalid_argument,
                "begin: this thread already holds a transaction on the write connection");
  }
  if (!writer_free_.wait_for(lock, options_.busy_timeout, [this] { return !writer_taken_; })) {
    return fail(StoreErrc::busy,
                "begin: another transaction of this process holds the database "
                "for longer than the busy timeout");
  }
  writer_taken_ = true;
  writer_thread_ = std::this_thread::get_id();
  return writer_.get();
}

StoreResult<Connection*> SqliteStore::acquire_reader() {
  std::unique_lock lock{readers_mutex_};
  if (idle_readers_.empty() &&
      readers_.size() < static_cast<std::size_t>(options_.read_connections)) {
    // Opened under the lock: it is rare (at most read_connections times) and quick.
    auto opened = Connection::open(path_, SQLITE_OPEN_READWRITE, options_.busy_timeout);
    if (!opened) return Unexpected<StoreError>{std::move(opened).error()};
    // A reader never writes, even by mistake in our SQL.
    if (auto ro = (*opened)->exec("PRAGMA query_only = ON", "open reader"); !ro) {
      return Unexpected<StoreError>{std::move(ro).error()};
    }
    readers_.push_back(std::move(opened).value());
    return readers_.back().get();
  }
  if (!reader_free_.wait_for(lock, options_.busy_timeout,
                             [this] { return !idle_readers_.empty(); })) {
    return fail(StoreErrc::busy,
                "begin: every read connection stayed in use for longer than "
                "the busy timeout");
  }
  Connection* connection = idle_readers_.back();
  idle_readers_.pop_back();
  return connection;
}

void SqliteStore::release(Connection& connection, bool writer) noexcept {
  if (writer) {
    {
      std::lock_guard lock{writer_mutex_};
      writer_taken_ = false;
      writer_thread_ = {};
    }
    writer_free_.notify_one();
    return;
  }
  {
    std::lock_guard lock{readers_mutex_};
    idle_readers_.push_back(&connection);
  }
  reader_free_.notify_one();
}

StoreResult<std::unique_ptr<Transaction>> SqliteStore::begin(TxMode mode) {
  const bool writer = mode == TxMode::read_write || shared_reads_;
  auto acquired = writer ? acquire_writer() : acquire_reader();
  if (!acquired) return Unexpected<StoreError>{std::move(acquired).error()};
  auto tx = std::make_unique<SqliteTransaction>(*this, **acquired, writer, mode);
  // IMMEDIATE takes the write lock now (waiting up to the busy timeout for another
  // process), so no statement of the transaction can fail later for want of it. A read
  // transaction's snapshot starts at its first read.
  const char* sql = mode == TxMode::read_write ? "BEGIN IMMEDIATE" : "BEGIN";
  if (auto begun = (*acquired)->exec(sql, "begin"); !begun) {
    return Unexpected<StoreError>{std::move(begun).error()};  // tx's destructor releases
  }
  return std::unique_ptr<Transaction>{std::move(tx)};
}

StoreResult<void> SqliteStore::ping() {
  // A checkpoint that keeps failing means the disk refuses writes: unhealthy even though
  // commits to the WAL still succeed.
  if (checkpointer_) {
    if (auto error = checkpointer_->last_error()) return Unexpected<StoreError>{*error};
  }
  auto tx = begin(TxMode::read_only);
  if (!tx) return Unexpected<StoreError>{std::move(tx).error()};
  auto& self = static_cast<SqliteTransaction&>(**tx);
  auto st = self.conn().statement(kPing);
  if (auto ran = st.run("ping"); !ran) return ran;
  return {};
}

std::optional<std::uint64_t> SqliteStore::change_marker() {
  if (!probe_) return std::nullopt;
  std::lock_guard lock{probe_mutex_};
  auto st = probe_->statement("PRAGMA data_version");
  auto row = st.step("change_marker");
  if (!row || !*row) return std::nullopt;
  return static_cast<std::uint64_t>(st.column_int(0));
}

// ---- accounts ---------------------------------------------------------------------------

StoreResult<Account> SqliteTransaction::create_account(std::string_view username,
                                                       std::string_view password_hash,
                                                       std::int64_t created_at_ms) {
  constexpr std::string_view op = "create_account";
  return guarded(Access::write, op, [&]() -> StoreResult<Account> {
    if (auto bad = check_length(op, "username", username, 1, kMaxUsername)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    if (auto bad = check_length(op, "password_hash", password_hash, 1, kMaxPasswordHash)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto id = new_id(op);
    if (!id) return Unexpected<StoreError>{std::move(id).error()};
    auto st = conn().statement(kInsertAccount);
    st.bind_text(1, *id)
        .bind_text(2, username)
        .bind_text(3, password_hash)
        .bind_int(4, created_at_ms);
    return read_one(st, "create_account (username must be free)", read_account,
                    "create_account: no row returned");
  });
}

StoreResult<Account> SqliteTransaction::get_account(std::string_view account_id) {
  return guarded(Access::read, "get_account", [&]() -> StoreResult<Account> {
    auto st = conn().statement(kSelectAccountById);
    st.bind_text(1, account_id);
    return read_one(st, "get_account", read_account,
                    "get_account: no account " + std::string{account_id});
  });
}

StoreResult<Account> SqliteTransaction::find_account_by_username(std::string_view username) {
  return guarded(Access::read, "find_account_by_username", [&]() -> StoreResult<Account> {
    auto st = conn().statement(kSelectAccountByUsername);
    st.bind_text(1, username);
    return read_one(st, "find_account_by_username", read_account,
                    "find_account_by_username: no such user");
  });
}

StoreResult<std::vector<Account>> SqliteTransaction::list_accounts() {
  return guarded(Access::read, "list_accounts", [&]() -> StoreResult<std::vector<Account>> {
    auto st = conn().statement(kSelectAccounts);
    return read_all(st, "list_accounts", read_account);
  });
}

StoreResult<void> SqliteTransaction::update_account_settings(std::string_view account_id,
                                                             const AccountSettings& settings) {
  return guarded(Access::write, "update_account_settings", [&]() -> StoreResult<void> {
    if (auto bad = check_settings(settings)) return Unexpected<StoreError>{std::move(*bad)};
    auto st = conn().statement(kUpdateAccountSettings);
    st.bind_text(1, account_id)
        .bind_int(2, settings.power_off_grace_s)
        .bind_int(3, settings.disconnect_grace_s)
        .bind_int(4, settings.low_battery_percent)
        .bind_text(5, settings.time_zone)
        .bind_bool(6, settings.notify_power_lost)
        .bind_bool(7, settings.notify_power_back)
        .bind_bool(8, settings.notify_contact_lost)
        .bind_bool(9, settings.notify_dag_back)
        .bind_bool(10, settings.notify_battery_low);
    return run_on_one(conn(), st, "update_account_settings",
                      "update_account_settings: no account " + std::string{account_id});
  });
}

StoreResult<void> SqliteTransaction::set_password_hash(std::string_view account_id,
                                                       std::string_view password_hash) {
  constexpr std::string_view op = "set_password_hash";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (auto bad = check_length(op, "password_hash", password_hash, 1, kMaxPasswordHash)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(kUpdatePasswordHash);
    st.bind_text(1, account_id).bind_text(2, password_hash);
    return run_on_one(conn(), st, op, "set_password_hash: no account " + std::string{account_id});
  });
}

// ---- notification targets ---------------------------------------------------------------

StoreResult<NotificationTarget> SqliteTransaction::add_target(const NewTarget& target) {
  constexpr std::string_view op = "add_target";
  return guarded(Access::write, op, [&]() -> StoreResult<NotificationTarget> {
    if (auto bad = check_length(op, "address", target.address, 1, kMaxAddress)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    if (target.secret) {
      if (auto bad = check_length(op, "secret", *target.secret, 0, kMaxSecret)) {
        return Unexpected<StoreError>{std::move(*bad)};
      }
    }
    if (auto bad = check_target_format(op, target)) return Unexpected<StoreError>{std::move(*bad)};
    auto id = new_id(op);
    if (!id) return Unexpected<StoreError>{std::move(id).error()};
    auto st = conn().statement(kInsertTarget);
    st.bind_text(1, *id)
        .bind_text(2, target.account_id)
        .bind_text(3, to_string(target.kind))
        .bind_text(4, target.address)
        .bind_bool(5, target.verified)
        .bind_opt_text(6, target.secret)
        .bind_int(7, target.created_at_ms)
        .bind_opt_text(8, target.body_template)
        .bind_opt_text(9, target.content_type)
        .bind_bool(10, target.kind == TargetKind::email && !target.verified);
    return read_one(st, "add_target (the account must exist; kind and address must be new)",
                    read_target, "add_target: no row returned");
  });
}

StoreResult<std::vector<NotificationTarget>> SqliteTransaction::list_targets(
    std::string_view account_id) {
  return guarded(Access::read, "list_targets",
                 [&]() -> StoreResult<std::vector<NotificationTarget>> {
                   auto st = conn().statement(kSelectTargets);
                   st.bind_text(1, account_id);
                   return read_all(st, "list_targets", read_target);
                 });
}

StoreResult<void> SqliteTransaction::set_target_verified(std::string_view target_id,
                                                         bool verified) {
  return guarded(Access::write, "set_target_verified", [&]() -> StoreResult<void> {
    auto st = conn().statement(kUpdateTargetVerified);
    st.bind_text(1, target_id).bind_bool(2, verified);
    return run_on_one(conn(), st, "set_target_verified",
                      "set_target_verified: no target " + std::string{target_id});
  });
}

StoreResult<void> SqliteTransaction::remove_target(std::string_view target_id) {
  return guarded(Access::write, "remove_target", [&]() -> StoreResult<void> {
    auto st = conn().statement(kDeleteTarget);
    st.bind_text(1, target_id);
    return run_on_one(conn(), st, "remove_target",
                      "remove_target: no target " + std::string{target_id});
  });
}

StoreResult<void> SqliteTransaction::record_delivery(std::string_view target_id, bool ok,
                                                     std::string_view error, std::int64_t now_ms) {
  constexpr std::string_view op = "record_delivery";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    auto st = conn().statement(ok ? kRecordDeliveryOk : kRecordDeliveryFailed);
    st.bind_text(1, target_id).bind_int(2, now_ms);
    if (!ok) st.bind_text(3, truncate_utf8(error, kMaxReason));
    return run_on_one(conn(), st, op, "record_delivery: no target " + std::string{target_id});
  });
}

// ---- e-mail verification ----------------------------------------------------------------

StoreResult<std::vector<NotificationTarget>> SqliteTransaction::targets_needing_verification(
    std::int64_t now_ms, int limit) {
  constexpr std::string_view op = "targets_needing_verification";
  return guarded(Access::read, op, [&]() -> StoreResult<std::vector<NotificationTarget>> {
    if (limit < 1 || limit > kMaxLimit) return invalid(op, "limit must be 1..1000");
    auto st = conn().statement(kSelectTargetsNeedingVerification);
    st.bind_int(1, now_ms).bind_int(2, limit);
    return read_all(st, op, read_target);
  });
}

StoreResult<void> SqliteTransaction::create_verification(std::string_view target_id,
                                                         std::string_view token_hash,
                                                         std::int64_t now_ms,
                                                         std::int64_t expires_at_ms) {
  constexpr std::string_view op = "create_verification";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (auto bad = check_token_hash(op, token_hash)) return Unexpected<StoreError>{std::move(*bad)};
    if (expires_at_ms <= now_ms) return invalid(op, "expires_at_ms must be after now_ms");
    // The insert first: when it is refused, nothing has been written.
    {
      auto st = conn().statement(kInsertVerification);
      st.bind_text(1, token_hash)
          .bind_text(2, target_id)
          .bind_int(3, now_ms)
          .bind_int(4, expires_at_ms);
      auto ran = st.run("create_verification (the target must exist)");
      if (!ran) {
        if (ran.error().code == StoreErrc::conflict) {
          return fail(StoreErrc::conflict, "create_verification: the token hash exists already");
        }
        return ran;
      }
    }
    {
      auto st = conn().statement(kUpdateVerificationSent);
      st.bind_text(1, target_id).bind_int(2, now_ms);
      if (auto ran = st.run(op); !ran) return ran;
    }
    auto st = conn().statement(kDeleteStaleVerifications);
    st.bind_text(1, target_id).bind_text(2, token_hash).bind_int(3, now_ms);
    return st.run(op);
  });
}

StoreResult<bool> SqliteTransaction::request_verification(std::string_view target_id,
                                                          std::int64_t now_ms,
                                                          std::int64_t min_interval_ms) {
  constexpr std::string_view op = "request_verification";
  return guarded(Access::write, op, [&]() -> StoreResult<bool> {
    if (min_interval_ms < 0) return invalid(op, "min_interval_ms must be >= 0");
    struct State {
      TargetKind kind;
      bool verified;
      std::optional<std::int64_t> sent_at_ms;
    };
    auto st = conn().statement(kSelectVerificationState);
    st.bind_text(1, target_id);
    auto state = read_one(
        st, op,
        [](const Statement& s) -> StoreResult<State> {
          RowReader row{s, "notification_targets"};
          State out{row.enumeration(0, parse_target_kind, TargetKind::email), row.boolean(1),
                    row.opt_integer(2)};
          return row.finish(out);
        },
        "request_verification: no target " + std::string{target_id});
    if (!state) return Unexpected<StoreError>{std::move(state).error()};
    if (state->kind != TargetKind::email) return invalid(op, "not an e-mail target");
    if (state->verified) return false;
    if (state->sent_at_ms) {
      // A mail stamped after now_ms (a clock step back) counts as just sent. The difference
      // is taken unsigned: it cannot overflow.
      const std::int64_t sent = *state->sent_at_ms;
      if (now_ms < sent || static_cast<std::uint64_t>(now_ms) - static_cast<std::uint64_t>(sent) <
                               static_cast<std::uint64_t>(min_interval_ms)) {
        return false;
      }
    }
    auto update = conn().statement(kUpdateVerificationRequested);
    update.bind_text(1, target_id);
    if (auto ran = update.run(op); !ran) return Unexpected<StoreError>{std::move(ran).error()};
    return true;
  });
}

StoreResult<std::string> SqliteTransaction::consume_verification(std::string_view token_hash,
                                                                 std::int64_t now_ms) {
  constexpr std::string_view op = "consume_verification";
  return guarded(Access::write, op, [&]() -> StoreResult<std::string> {
    std::string target_id;
    {
      auto st = conn().statement(kUseVerification);
      st.bind_text(1, token_hash).bind_int(2, now_ms);
      // One message for unknown, used and expired tokens; the token is not in it (logs).
      auto used = read_one(
          st, op, [](const Statement& s) -> StoreResult<std::string> { return s.column_text(0); },
          "consume_verification: no valid token");
      if (!used) return Unexpected<StoreError>{std::move(used).error()};
      target_id = std::move(used).value();
    }
    {
      auto st = conn().statement(kUseTargetVerifications);
      st.bind_text(1, target_id).bind_int(2, now_ms);
      if (auto ran = st.run(op); !ran) return Unexpected<StoreError>{std::move(ran).error()};
    }
    auto st = conn().statement(kVerifyTarget);
    st.bind_text(1, target_id);
    if (auto ran = st.run(op); !ran) return Unexpected<StoreError>{std::move(ran).error()};
    return target_id;
  });
}

// ---- devices ----------------------------------------------------------------------------

StoreResult<Device> SqliteTransaction::create_device(const NewDevice& device) {
  constexpr std::string_view op = "create_device";
  return guarded(Access::write, op, [&]() -> StoreResult<Device> {
    if (!protocol::is_valid_device_id(device.id)) {
      return invalid(op, "device id must be 1..128 characters of [A-Za-z0-9_.:-]");
    }
    if (auto bad = check_length(op, "name", device.name, 1, kMaxName)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(kInsertDevice);
    st.bind_text(1, device.id)
        .bind_text(2, device.account_id)
        .bind_text(3, device.name)
        .bind_int(4, device.provisioned_at_ms);
    return read_one(st, "create_device (the account must exist; the id must be new)", read_device,
                    "create_device: no row returned");
  });
}

StoreResult<Device> SqliteTransaction::get_device(std::string_view device_id) {
  return guarded(Access::read, "get_device", [&]() -> StoreResult<Device> {
    auto st = conn().statement(kSelectDevice);
    st.bind_text(1, device_id);
    return read_one(st, "get_device", read_device,
                    "get_device: no device " + std::string{device_id});
  });
}

StoreResult<std::vector<Device>> SqliteTransaction::list_devices(std::string_view account_id) {
  return guarded(Access::read, "list_devices", [&]() -> StoreResult<std::vector<Device>> {
    auto st = conn().statement(kSelectDevices);
    st.bind_text(1, account_id);
    return read_all(st, "list_devices", read_device);
  });
}

StoreResult<void> SqliteTransaction::rename_device(std::string_view device_id,
                                                   std::string_view name) {
  constexpr std::string_view op = "rename_device";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (auto bad = check_length(op, "name", name, 1, kMaxName)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(kUpdateDeviceName);
    st.bind_text(1, device_id).bind_text(2, name);
    return run_on_one(conn(), st, op, "rename_device: no device " + std::string{device_id});
  });
}

StoreResult<void> SqliteTransaction::set_device_revoked(std::string_view device_id, bool revoked) {
  return guarded(Access::write, "set_device_revoked", [&]() -> StoreResult<void> {
    auto st = conn().statement(kUpdateDeviceRevoked);
    st.bind_text(1, device_id).bind_bool(2, revoked);
    return run_on_one(conn(), st, "set_device_revoked",
                      "set_device_revoked: no device " + std::string{device_id});
  });
}

StoreResult<void> SqliteTransaction::update_device_state(std::string_view device_id,
                                                         const DeviceState& state) {
  return write_device_state(device_id, state, true);
}

StoreResult<void> SqliteTransaction::change_device_state(std::string_view device_id,
                                                         const DeviceState& before,
                                                         const DeviceState& after) {
  return write_device_state(device_id, after, before.battery_json != after.battery_json);
}

StoreResult<void> SqliteTransaction::write_device_state(std::string_view device_id,
                                                        const DeviceState& state, bool battery) {
  constexpr std::string_view op = "update_device_state";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (state.last_seq < 0) return invalid(op, "last_seq must be >= 0");
    if (auto bad = check_length(op, "presence_marker", state.presence_marker, 0, kMaxMarker)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(battery ? kUpdateDeviceState : kUpdateDeviceStateKeepBattery);
    st.bind_text(1, device_id)
        .bind_text(2, text_or_unknown(state.power))
        .bind_opt_int(3, state.power_since_ms)
        .bind_int(4, state.last_seq)
        .bind_text(5, text_or_unknown(state.connection))
        .bind_opt_int(6, state.connection_since_ms)
        .bind_opt_int(7, state.last_seen_ms)
        .bind_text(8, text_or_unknown(state.user_state))
        .bind_opt_text(9, state.battery_json)
        .bind_text(10, state.presence_marker)
        .bind_opt_int(11, state.last_lifecycle_version)
        .bind_bool(12, state.notified_lost_contact)
        .bind_bool(13, state.notified_power_lost)
        .bind_bool(14, state.notified_battery_low);
    // Not run_on_one: its message would be built on every call of this hot path.
    if (auto ran = st.run("update_device_state (battery must be a JSON object)"); !ran) return ran;
    if (conn().changes() == 0) {
      return fail(StoreErrc::not_found, "update_device_state: no device " + std::string{device_id});
    }
    return {};
  });
}

StoreResult<void> SqliteTransaction::delete_device(std::string_view device_id) {
  constexpr std::string_view op = "delete_device";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    // The device first: when it is unknown, nothing (not even a stray config entry of
    // that id) has been deleted.
    {
      auto st = conn().statement(kDeleteDevice);
      st.bind_text(1, device_id);
      if (auto deleted =
              run_on_one(conn(), st, op, "delete_device: no device " + std::string{device_id});
          !deleted) {
        return deleted;
      }
    }
    auto st = conn().statement(kDeleteDeviceConfig);
    st.bind_text(1, device_id);
    return st.run(op);
  });
}

StoreResult<void> SqliteTransaction::delete_account(std::string_view account_id) {
  constexpr std::string_view op = "delete_account";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    // Checked first, so that an unknown account deletes nothing. The account's row goes
    // last: its devices refer to it without a cascade.
    {
      auto st = conn().statement(kAccountExists);
      st.bind_text(1, account_id);
      auto row = st.step(op);
      if (!row) return Unexpected<StoreError>{std::move(row).error()};
      if (!*row)
        return fail(StoreErrc::not_found, "delete_account: no account " + std::string{account_id});
    }
    for (const char* sql :
         {kDeleteAccountDevicesConfig, kDeleteAccountDevices, kDeleteAccountConfig}) {
      auto st = conn().statement(sql);
      st.bind_text(1, account_id);
      if (auto ran = st.run(op); !ran) return ran;
    }
    auto st = conn().statement(kDeleteAccount);
    st.bind_text(1, account_id);
    return run_on_one(conn(), st, op, "delete_account: no account " + std::string{account_id});
  });
}

// ---- shadows ----------------------------------------------------------------------------

StoreResult<std::optional<StoredShadow>> SqliteTransaction::get_shadow(std::string_view device_id) {
  return guarded(Access::read, "get_shadow", [&]() -> StoreResult<std::optional<StoredShadow>> {
    auto st = conn().statement(kSelectShadow);
    st.bind_text(1, device_id);
    auto row = st.step("get_shadow");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    if (!*row) return std::optional<StoredShadow>{};
    return std::optional<StoredShadow>{StoredShadow{st.column_text(0), st.column_int(1)}};
  });
}

StoreResult<DeviceWithShadow> SqliteTransaction::get_device_with_shadow(std::string_view device_id,
                                                                        const StoredShadow* known) {
  return guarded(Access::read, "get_device_with_shadow", [&]() -> StoreResult<DeviceWithShadow> {
    auto st = conn().statement(kSelectDeviceWithShadow);
    st.bind_text(1, device_id);
    if (known != nullptr) st.bind_int(2, known->revision).bind_text(3, known->document);
    auto row = st.step("get_device_with_shadow");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    if (!*row) {
      return fail(StoreErrc::not_found,
                  "get_device_with_shadow: no device " + std::string{device_id});
    }
    auto device = read_device(st);
    if (!device) return Unexpected<StoreError>{std::move(device).error()};
    constexpr int kRevision = 18;  // after the 18 device columns
    return DeviceWithShadow{*std::move(device), st.column_opt_int(kRevision),
                            st.column_opt_text(kRevision + 1)};
  });
}

StoreResult<std::int64_t> SqliteTransaction::put_shadow(std::string_view device_id,
                                                        std::string_view document,
                                                        std::int64_t expected_revision) {
  constexpr std::string_view op = "put_shadow";
  return guarded(Access::write, op, [&]() -> StoreResult<std::int64_t> {
    if (expected_revision < 0) return invalid(op, "expected_revision must be >= 0");
    if (expected_revision == 0) {
      auto st = conn().statement(kInsertShadow);
      st.bind_text(1, device_id).bind_text(2, document);
      auto ran = st.run(
          "put_shadow (a new shadow: the device must exist, the document be a "
          "JSON object)");
      if (!ran) {
        if (ran.error().code == StoreErrc::conflict) {
          return fail(StoreErrc::conflict,
                      "put_shadow: a shadow is already stored (expected revision 0)");
        }
        return Unexpected<StoreError>{std::move(ran).error()};
      }
      return std::int64_t{1};
    }
    auto st = conn().statement(kUpdateShadow);
    st.bind_text(1, device_id).bind_int(2, expected_revision).bind_text(3, document);
    if (auto ran = st.run("put_shadow (the document must be a JSON object)"); !ran) {
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    if (conn().changes() == 0) {
      return fail(StoreErrc::conflict,
                  "put_shadow: the stored revision is not " + std::to_string(expected_revision));
    }
    return expected_revision + 1;
  });
}

// ---- events -----------------------------------------------------------------------------

StoreResult<std::int64_t> SqliteTransaction::append_event(const Event& event) {
  constexpr std::string_view op = "append_event";
  return guarded(Access::write, op, [&]() -> StoreResult<std::int64_t> {
    if (event.seq) {
      if (!is_power_event(event.kind)) return invalid(op, "only power events carry a seq");
      if (*event.seq < 1) return invalid(op, "seq must be >= 1");
    }
    auto st = conn().statement(kInsertEvent);
    st.bind_text(1, event.device_id)
        .bind_text(2, to_string(event.kind))
        .bind_int(3, event.observed_at_ms)
        .bind_int(4, event.received_at_ms)
        .bind_opt_int(5, event.seq)
        .bind_bool(6, event.clock_fallback)
        .bind_text(7, text_or_unknown(event.user_state_after));
    auto ran = st.run("append_event (the device must exist)");
    if (!ran) {
      if (ran.error().code == StoreErrc::conflict) {
        return fail(StoreErrc::conflict, "append_event: device " + event.device_id +
                                             " already has an event with seq " +
                                             std::to_string(event.seq.value_or(0)));
      }
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    return conn().last_insert_id();
  });
}

StoreResult<EventPage> SqliteTransaction::list_events(const EventQuery& query) {
  constexpr std::string_view op = "list_events";
  return guarded(Access::read, op, [&]() -> StoreResult<EventPage> {
    if (query.limit < 1 || query.limit > kMaxLimit) return invalid(op, "limit must be 1..1000");
    auto st = conn().statement(kSelectEvents);
    st.bind_text(1, query.device_id)
        .bind_int(2, query.before_id.value_or(std::numeric_limits<std::int64_t>::max()))
        .bind_opt_int(3, query.from_ms)
        .bind_opt_int(4, query.until_ms)
        .bind_int(5, query.limit + 1);  // one more tells whether another page exists
    auto rows = read_all(st, op, read_event);
    if (!rows) return Unexpected<StoreError>{std::move(rows).error()};
    EventPage page;
    page.events = std::move(rows).value();
    if (page.events.size() > static_cast<std::size_t>(query.limit)) {
      page.events.pop_back();
      page.next_cursor = page.events.back().id;
    }
    return page;
  });
}

// ---- battery readings -------------------------------------------------------------------

StoreResult<void> SqliteTransaction::record_battery(const BatteryReading& reading,
                                                    std::optional<std::int64_t> delete_before_ms) {
  constexpr std::string_view op = "record_battery";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    // SQLite binds a NaN as NULL, which the schema's CHECKs accept: checked here instead.
    const auto in_range = [](const std::optional<double>& v) {
      return !v || (std::isfinite(*v) && *v >= 0 && *v <= 100);
    };
    if (!in_range(reading.percent)) return invalid(op, "percent must be 0..100");
    if (!in_range(reading.volts)) return invalid(op, "volts must be 0..100");
    if (reading.minutes_left && *reading.minutes_left < 0) {
      return invalid(op, "minutes_left must be >= 0");
    }
    {
      auto st = conn().statement(kUpsertBatteryReading);
      st.bind_text(1, reading.device_id)
          .bind_int(2, reading.at_ms)
          .bind_opt_double(3, reading.percent)
          .bind_opt_double(4, reading.volts)
          .bind_opt_int(5, reading.minutes_left)
          .bind_opt_int(6, reading.on_battery ? std::optional<std::int64_t>{*reading.on_battery}
                                              : std::nullopt);
      if (auto ran = st.run("record_battery (the device must exist)"); !ran) return ran;
    }
    if (!delete_before_ms) return {};
    auto del = conn().statement(kDeleteOldBatteryReadings);
    del.bind_text(1, reading.device_id).bind_int(2, *delete_before_ms);
    return del.run(op);
  });
}

StoreResult<std::vector<BatteryReading>> SqliteTransaction::list_battery(std::string_view device_id,
                                                                         std::int64_t since_ms,
                                                                         std::int64_t until_ms,
                                                                         int limit) {
  constexpr std::string_view op = "list_battery";
  return guarded(Access::read, op, [&]() -> StoreResult<std::vector<BatteryReading>> {
    if (limit < 1 || limit > kMaxBatteryLimit) return invalid(op, "limit must be 1..10000");
    auto st = conn().statement(kSelectBatteryReadings);
    st.bind_text(1, device_id).bind_int(2, since_ms).bind_int(3, until_ms).bind_int(4, limit);
    auto rows =
        read_all(st, op, [&](const Statement& s) { return read_battery_reading(s, device_id); });
    if (!rows) return rows;
    std::reverse(rows->begin(), rows->end());
    return rows;
  });
}

// ---- timers -----------------------------------------------------------------------------

StoreResult<std::int64_t> SqliteTransaction::schedule_timer(const Timer& timer) {
  constexpr std::string_view op = "schedule_timer";
  return guarded(Access::write, op, [&]() -> StoreResult<std::int64_t> {
    if (auto bad = check_length(op, "kind", timer.kind, 1, kMaxTimerKind)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    if (auto bad = check_length(op, "marker", timer.marker, 0, kMaxMarker)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    // Delete and insert rather than update: the replacement gets a new id, so a replica
    // that claimed the old timer cannot complete the new one.
    {
      auto del = conn().statement(kDeleteTimerOfKind);
      del.bind_text(1, timer.device_id).bind_text(2, timer.kind);
      if (auto ran = del.run(op); !ran) return Unexpected<StoreError>{std::move(ran).error()};
    }
    auto st = conn().statement(kInsertTimer);
    st.bind_text(1, timer.device_id)
        .bind_text(2, timer.kind)
        .bind_int(3, timer.due_at_ms)
        .bind_text(4, timer.marker);
    if (auto ran = st.run("schedule_timer (the device must exist)"); !ran) {
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    return conn().last_insert_id();
  });
}

StoreResult<bool> SqliteTransaction::cancel_timer(std::string_view device_id,
                                                  std::string_view kind) {
  return guarded(Access::write, "cancel_timer", [&]() -> StoreResult<bool> {
    auto st = conn().statement(kDeleteTimerOfKind);
    st.bind_text(1, device_id).bind_text(2, kind);
    if (auto ran = st.run("cancel_timer"); !ran) {
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    return conn().changes() > 0;
  });
}

StoreResult<std::optional<StoredTimer>> SqliteTransaction::find_timer(std::string_view device_id,
                                                                      std::string_view kind) {
  return guarded(Access::read, "find_timer", [&]() -> StoreResult<std::optional<StoredTimer>> {
    auto st = conn().statement(kSelectTimer);
    st.bind_text(1, device_id).bind_text(2, kind);
    auto row = st.step("find_timer");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    if (!*row) return std::optional<StoredTimer>{};
    auto timer = read_timer(st);
    if (!timer) return Unexpected<StoreError>{std::move(timer).error()};
    return std::optional<StoredTimer>{std::move(timer).value()};
  });
}

StoreResult<std::vector<StoredTimer>> SqliteTransaction::claim_due_timers(std::int64_t now_ms,
                                                                          int limit,
                                                                          std::string_view owner,
                                                                          std::int64_t lease_ms) {
  constexpr std::string_view op = "claim_due_timers";
  return guarded(Access::write, op, [&]() -> StoreResult<std::vector<StoredTimer>> {
    auto until = lease_end(op, now_ms, limit, owner, lease_ms);
    if (!until) return Unexpected<StoreError>{std::move(until).error()};
    auto st = conn().statement(kClaimTimers);
    st.bind_int(1, now_ms).bind_int(2, limit).bind_text(3, owner).bind_int(4, *until);
    auto timers = read_all(st, op, read_timer);
    if (!timers) return timers;
    // RETURNING comes in no promised order.
    std::sort(timers->begin(), timers->end(), [](const StoredTimer& a, const StoredTimer& b) {
      return std::tie(a.timer.due_at_ms, a.id) < std::tie(b.timer.due_at_ms, b.id);
    });
    return timers;
  });
}

StoreResult<void> SqliteTransaction::complete_timer(std::int64_t timer_id) {
  return guarded(Access::write, "complete_timer", [&]() -> StoreResult<void> {
    auto st = conn().statement(kDeleteTimer);
    st.bind_int(1, timer_id);
    return run_on_one(
        conn(), st, "complete_timer",
        "complete_timer: timer " + std::to_string(timer_id) + " was cancelled or replaced");
  });
}

StoreResult<std::optional<std::int64_t>> SqliteTransaction::next_timer_due_ms() {
  return guarded(Access::read, "next_timer_due_ms",
                 [&]() -> StoreResult<std::optional<std::int64_t>> {
                   auto st = conn().statement(kNextTimerDue);
                   auto row = st.step("next_timer_due_ms");
                   if (!row) return Unexpected<StoreError>{std::move(row).error()};
                   if (!*row) return std::optional<std::int64_t>{};
                   return st.column_opt_int(0);
                 });
}

// ---- outbox -----------------------------------------------------------------------------

StoreResult<std::int64_t> SqliteTransaction::enqueue_intent(const Intent& intent) {
  constexpr std::string_view op = "enqueue_intent";
  return guarded(Access::write, op, [&]() -> StoreResult<std::int64_t> {
    if (auto bad = check_length(op, "device_name", intent.device_name, 0, kMaxName)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(kInsertIntent);
    st.bind_text(1, intent.account_id)
        .bind_text(2, intent.device_id)
        .bind_text(3, intent.device_name)
        .bind_text(4, to_string(intent.transition))
        .bind_text(5, protocol::to_string(intent.user_state))
        .bind_int(6, intent.observed_at_ms)
        .bind_int(7, intent.created_at_ms)
        .bind_text(8, intent.payload)
        .bind_opt_text(9, intent.target_id);
    if (auto ran = st.run("enqueue_intent (account, device and target must exist, the payload "
                          "be a JSON object)");
        !ran) {
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    if (conn().changes() == 0) {
      return fail(StoreErrc::not_found, "enqueue_intent: account " + intent.account_id +
                                            " has no target " + intent.target_id.value_or(""));
    }
    return conn().last_insert_id();
  });
}

StoreResult<std::vector<StoredIntent>> SqliteTransaction::claim_intents(std::int64_t now_ms,
                                                                        int limit,
                                                                        std::string_view owner,
                                                                        std::int64_t lease_ms) {
  constexpr std::string_view op = "claim_intents";
  return guarded(Access::write, op, [&]() -> StoreResult<std::vector<StoredIntent>> {
    auto until = lease_end(op, now_ms, limit, owner, lease_ms);
    if (!until) return Unexpected<StoreError>{std::move(until).error()};
    auto st = conn().statement(kClaimIntents);
    st.bind_int(1, now_ms).bind_int(2, limit).bind_text(3, owner).bind_int(4, *until);
    auto intents = read_all(st, op, read_intent);
    if (!intents) return intents;
    std::sort(intents->begin(), intents->end(), [](const StoredIntent& a, const StoredIntent& b) {
      return std::tie(a.next_attempt_at_ms, a.id) < std::tie(b.next_attempt_at_ms, b.id);
    });
    return intents;
  });
}

StoreResult<StoredIntent> SqliteTransaction::get_intent(std::int64_t intent_id) {
  return guarded(Access::read, "get_intent", [&]() -> StoreResult<StoredIntent> {
    auto st = conn().statement(kSelectIntent);
    st.bind_int(1, intent_id);
    return read_one(st, "get_intent", read_intent,
                    "get_intent: no intent " + std::to_string(intent_id));
  });
}

namespace {

/// The status of an intent, or not_found.
StoreResult<IntentStatus> intent_status(Connection& conn, std::int64_t intent_id,
                                        std::string_view op) {
  auto st = conn.statement(kSelectIntentStatus);
  st.bind_int(1, intent_id);
  return read_one(
      st, op,
      [](const Statement& s) -> StoreResult<IntentStatus> {
        RowReader row{s, "outbox"};
        return row.finish(row.enumeration(0, parse_intent_status, IntentStatus::pending));
      },
      std::string{op} + ": no intent " + std::to_string(intent_id));
}

}  // namespace

StoreResult<void> SqliteTransaction::mark_intent_done(std::int64_t intent_id, std::int64_t now_ms) {
  constexpr std::string_view op = "mark_intent_done";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    auto status = intent_status(conn(), intent_id, op);
    if (!status) return Unexpected<StoreError>{std::move(status).error()};
    if (*status == IntentStatus::done) return {};
    if (*status == IntentStatus::failed) {
      return fail(StoreErrc::conflict, "mark_intent_done: intent " + std::to_string(intent_id) +
                                           " has failed for good already");
    }
    auto st = conn().statement(kUpdateIntentDone);
    st.bind_int(1, intent_id).bind_int(2, now_ms);
    return st.run(op);
  });
}

StoreResult<void> SqliteTransaction::mark_intent_failed(std::int64_t intent_id,
                                                        std::string_view reason,
                                                        std::optional<std::int64_t> retry_at_ms,
                                                        std::int64_t now_ms) {
  constexpr std::string_view op = "mark_intent_failed";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    auto status = intent_status(conn(), intent_id, op);
    if (!status) return Unexpected<StoreError>{std::move(status).error()};
    if (*status != IntentStatus::pending) {
      return fail(StoreErrc::conflict, "mark_intent_failed: intent " + std::to_string(intent_id) +
                                           " is " + std::string{to_string(*status)} + " already");
    }
    const std::string_view kept = truncate_utf8(reason, kMaxReason);
    auto st = conn().statement(retry_at_ms ? kUpdateIntentRetry : kUpdateIntentFailed);
    st.bind_int(1, intent_id).bind_int(2, retry_at_ms.value_or(now_ms)).bind_text(3, kept);
    return st.run(op);
  });
}

StoreResult<void> SqliteTransaction::defer_intent(std::int64_t intent_id, std::int64_t until_ms) {
  constexpr std::string_view op = "defer_intent";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    auto status = intent_status(conn(), intent_id, op);
    if (!status) return Unexpected<StoreError>{std::move(status).error()};
    if (*status != IntentStatus::pending) {
      return fail(StoreErrc::conflict, "defer_intent: intent " + std::to_string(intent_id) +
                                           " is " + std::string{to_string(*status)} + " already");
    }
    auto st = conn().statement(kDeferIntent);
    st.bind_int(1, intent_id).bind_int(2, until_ms);
    return st.run(op);
  });
}

StoreResult<DeviceCounts> SqliteTransaction::count_devices() {
  return guarded(Access::read, "count_devices", [&]() -> StoreResult<DeviceCounts> {
    auto st = conn().statement(kCountDevices);
    auto row = st.step("count_devices");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    if (!*row) return DeviceCounts{};
    return DeviceCounts{st.column_int(0), st.column_int(1), st.column_int(2)};
  });
}

StoreResult<std::int64_t> SqliteTransaction::count_pending_intents() {
  return guarded(Access::read, "count_pending_intents", [&]() -> StoreResult<std::int64_t> {
    auto st = conn().statement(kCountPendingIntents);
    auto row = st.step("count_pending_intents");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    return *row ? st.column_int(0) : 0;
  });
}

StoreResult<bool> SqliteTransaction::due_intents_may_grow(std::int64_t now_ms) {
  return guarded(Access::read, "due_intents_may_grow", [&]() -> StoreResult<bool> {
    auto st = conn().statement(kDueIntentsMayGrow);
    st.bind_int(1, now_ms);
    auto row = st.step("due_intents_may_grow");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    return *row && st.column_int(0) != 0;
  });
}

// ---- device certificates ----------------------------------------------------------------

StoreResult<void> SqliteTransaction::add_certificate(const DeviceCertificate& cert) {
  constexpr std::string_view op = "add_certificate";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (auto bad = check_serial(op, cert.serial_hex))
      return Unexpected<StoreError>{std::move(*bad)};
    if (!protocol::is_valid_device_id(cert.device_id)) {
      return invalid(op, "device id must be 1..128 characters of [A-Za-z0-9_.:-]");
    }
    auto st = conn().statement(kInsertCertificate);
    st.bind_text(1, cert.serial_hex)
        .bind_text(2, cert.device_id)
        .bind_int(3, cert.issued_at_ms)
        .bind_int(4, cert.not_after_ms)
        .bind_opt_int(5, cert.revoked_at_ms);
    auto ran = st.run(op);
    if (!ran && ran.error().code == StoreErrc::conflict) {
      return fail(StoreErrc::conflict,
                  "add_certificate: serial " + cert.serial_hex + " is recorded already");
    }
    return ran;
  });
}

StoreResult<std::vector<DeviceCertificate>> SqliteTransaction::list_certificates(
    std::string_view device_id) {
  return guarded(Access::read, "list_certificates",
                 [&]() -> StoreResult<std::vector<DeviceCertificate>> {
                   auto st = conn().statement(kSelectCertificates);
                   st.bind_text(1, device_id);
                   return read_all(st, "list_certificates", read_certificate);
                 });
}

StoreResult<std::vector<std::string>> SqliteTransaction::revoke_certificates(
    std::string_view device_id, std::int64_t now_ms) {
  constexpr std::string_view op = "revoke_certificates";
  return guarded(Access::write, op, [&]() -> StoreResult<std::vector<std::string>> {
    auto st = conn().statement(kRevokeCertificates);
    st.bind_text(1, device_id).bind_int(2, now_ms);
    auto revoked = read_all(st, op, read_certificate);
    if (!revoked) return Unexpected<StoreError>{std::move(revoked).error()};
    // RETURNING comes in no promised order.
    std::sort(revoked->begin(), revoked->end(),
              [](const DeviceCertificate& a, const DeviceCertificate& b) {
                return std::tie(a.issued_at_ms, a.serial_hex) <
                       std::tie(b.issued_at_ms, b.serial_hex);
              });
    std::vector<std::string> serials;
    serials.reserve(revoked->size());
    for (DeviceCertificate& cert : *revoked) serials.push_back(std::move(cert.serial_hex));
    return serials;
  });
}

StoreResult<std::vector<DeviceCertificate>> SqliteTransaction::list_revoked_certificates(
    std::int64_t now_ms) {
  return guarded(Access::read, "list_revoked_certificates",
                 [&]() -> StoreResult<std::vector<DeviceCertificate>> {
                   auto st = conn().statement(kSelectRevokedCertificates);
                   st.bind_int(1, now_ms);
                   return read_all(st, "list_revoked_certificates", read_certificate);
                 });
}

// ---- configuration ----------------------------------------------------------------------

StoreResult<void> SqliteTransaction::set_config_entry(const ConfigEntry& entry) {
  constexpr std::string_view op = "set_config_entry";
  return guarded(Access::write, op, [&]() -> StoreResult<void> {
    if (auto bad = check_length(op, "key", entry.key, 1, kMaxConfigKey)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    if (auto bad = check_scope_id(op, entry.scope, entry.scope_id)) {
      return Unexpected<StoreError>{std::move(*bad)};
    }
    auto st = conn().statement(kUpsertConfig);
    st.bind_text(1, to_string(entry.scope))
        .bind_text(2, entry.scope_id)
        .bind_text(3, entry.key)
        .bind_text(4, entry.value_json)
        .bind_int(5, entry.updated_at_ms);
    return st.run("set_config_entry (value_json must be valid JSON)");
  });
}

StoreResult<bool> SqliteTransaction::remove_config_entry(ConfigScope scope,
                                                         std::string_view scope_id,
                                                         std::string_view key) {
  return guarded(Access::write, "remove_config_entry", [&]() -> StoreResult<bool> {
    auto st = conn().statement(kDeleteConfig);
    st.bind_text(1, to_string(scope)).bind_text(2, scope_id).bind_text(3, key);
    if (auto ran = st.run("remove_config_entry"); !ran) {
      return Unexpected<StoreError>{std::move(ran).error()};
    }
    return conn().changes() > 0;
  });
}

StoreResult<std::vector<ConfigEntry>> SqliteTransaction::list_config_entries(
    ConfigScope scope, std::string_view scope_id) {
  return guarded(Access::read, "list_config_entries",
                 [&]() -> StoreResult<std::vector<ConfigEntry>> {
                   auto st = conn().statement(kSelectConfig);
                   st.bind_text(1, to_string(scope)).bind_text(2, scope_id);
                   return read_all(st, "list_config_entries", read_config_entry);
                 });
}

// ---- opening ----------------------------------------------------------------------------

StoreResult<std::unique_ptr<Store>> open_sqlite(const std::filesystem::path& path,
                                                const SqliteOptions& options) {
  if (options.writer_cache_mib < 1 || options.writer_cache_mib > 65536) {
    return fail(StoreErrc::invalid_argument, "open_sqlite: writer_cache_mib must be 1..65536");
  }
  if (options.busy_timeout.count() < 0 ||
      options.busy_timeout.count() > std::numeric_limits<int>::max()) {
    return fail(StoreErrc::invalid_argument, "open_sqlite: busy_timeout out of range");
  }
  if (options.read_connections < 0 || options.read_connections > kMaxReadConnections) {
    return fail(StoreErrc::invalid_argument, "open_sqlite: read_connections must be 0..64");
  }
  if (options.checkpoint_pages < 100 || options.checkpoint_pages > 1'000'000) {
    return fail(StoreErrc::invalid_argument, "open_sqlite: checkpoint_pages must be 100..1000000");
  }
  if (sqlite3_threadsafe() == 0) {
    return fail(StoreErrc::internal, "open_sqlite: libsqlite3 was built without threads");
  }
  const int flags = SQLITE_OPEN_READWRITE | (options.create_if_missing ? SQLITE_OPEN_CREATE : 0);
  auto writer = Connection::open(path, flags, options.busy_timeout);
  if (!writer) return Unexpected<StoreError>{std::move(writer).error()};
  Connection& conn = **writer;

  // journal_mode answers with the mode in force; anything but "wal" (or "memory" for an
  // in-memory database) means WAL is unavailable here, e.g. on a network file system.
  std::string mode;
  {
    auto st = conn.statement("PRAGMA journal_mode = WAL");
    auto row = st.step("open_sqlite: enable WAL");
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    mode = *row ? st.column_text(0) : std::string{};
    if (mode != "wal" && mode != "memory") {
      return fail(StoreErrc::io, "open_sqlite: cannot use WAL on " + path.string() +
                                     " (journal mode stays '" + mode + "')");
    }
  }
  const char* sync = options.durability == SqliteOptions::Durability::power_safe
                         ? "PRAGMA synchronous = FULL"
                         : "PRAGMA synchronous = NORMAL";
  if (auto set = conn.exec(sync, "open_sqlite: synchronous"); !set) {
    return Unexpected<StoreError>{std::move(set).error()};
  }
  // Negative: a size in KiB rather than in pages.
  const std::string cache =
      "PRAGMA cache_size = -" + std::to_string(options.writer_cache_mib * 1024);
  if (auto set = conn.exec(cache, "open_sqlite: cache size"); !set) {
    return Unexpected<StoreError>{std::move(set).error()};
  }
  // A storm can grow the WAL to 8 x checkpoint_pages; once checkpointed it is cut back to
  // this size rather than keeping the disk space for good.
  if (auto set = conn.exec("PRAGMA journal_size_limit = 67108864", "open_sqlite: wal limit");
      !set) {
    return Unexpected<StoreError>{std::move(set).error()};
  }
  if (auto migrated = detail::migrate(conn, detail::sqlite_migrations()); !migrated) {
    return Unexpected<StoreError>{std::move(migrated).error()};
  }
  std::unique_ptr<detail::Checkpointer> checkpointer;
  std::unique_ptr<Connection> probe;
  if (mode == "wal") {
    auto started =
        detail::Checkpointer::start(path, options.busy_timeout, options.checkpoint_pages);
    if (!started) return Unexpected<StoreError>{std::move(started).error()};
    checkpointer = std::move(started).value();
    auto opened = Connection::open(path, SQLITE_OPEN_READWRITE, options.busy_timeout);
    if (!opened) return Unexpected<StoreError>{std::move(opened).error()};
    if (auto ro = (*opened)->exec("PRAGMA query_only = ON", "open probe"); !ro) {
      return Unexpected<StoreError>{std::move(ro).error()};
    }
    probe = std::move(opened).value();
  }
  return std::unique_ptr<Store>{std::make_unique<SqliteStore>(
      path, options, std::move(writer).value(), std::move(checkpointer), std::move(probe))};
}

}  // namespace dag::store
