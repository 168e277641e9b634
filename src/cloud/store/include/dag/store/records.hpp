// The rows of the store, as plain values: accounts and their settings, notification
// targets, devices with their derived state, shadows, events, battery readings, timers,
// notification intents, device certificates and configuration entries. Shared by every backend;
// nothing here touches a database.
//
// Conventions: times are epoch milliseconds (`*_ms`) or seconds (`*_s`) as int64; ids of
// accounts and targets are lower-case UUIDs made by the store, device ids are given by the
// caller (the AWS thing name, a UUID for our dags); ids of events, timers and intents are
// positive int64s that only grow (so they order rows and serve as pagination cursors).
// "Unknown" states (a dag that never reported) are std::nullopt. Every member has an
// initializer, so `Event{id, kind, observed, received}` may leave the rest at defaults
// (clang's -Wmissing-field-initializers stays quiet for members that have one).
//
// Thread-safety: value types, no shared state. Nothing here blocks or throws (except
// std::bad_alloc).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/protocol/vocabulary.hpp"

namespace dag::store {

// ---- accounts ---------------------------------------------------------------------------

/// Per-account tunables of the rules. The defaults here are also the schema's column
/// defaults (a test keeps the two equal).
struct AccountSettings {
  /// Alert "power lost" only once power has stayed off this long (NUT's upssched idiom);
  /// 0 alerts at once, as the original did. Range 0..604800 (a week).
  int power_off_grace_s{0};
  /// How long a dag may stay disconnected before "lost contact" (the original's 15 min).
  /// Range 0..604800.
  int disconnect_grace_s{900};
  /// Battery state of charge at or below which "battery low" is raised. Range 0..100.
  int low_battery_percent{20};
  /// IANA time zone name used to format times in notifications; 1..64 characters (not
  /// checked against the tz database here).
  std::string time_zone{"UTC"};
  /// Which transitions notify; all do by default.
  bool notify_power_lost{true};
  bool notify_power_back{true};
  bool notify_contact_lost{true};
  bool notify_dag_back{true};
  bool notify_battery_low{true};

  bool operator==(const AccountSettings&) const = default;
};

/// Largest grace period accepted by the store (a week).
inline constexpr int kMaxGraceSeconds = 7 * 24 * 3600;

struct Account {
  std::string id{};        ///< UUID, made by create_account
  std::string username{};  ///< unique, compared exactly (callers normalise case if they want)
  std::string password_hash{};
  std::int64_t created_at_ms{0};
  AccountSettings settings{};

  bool operator==(const Account&) const = default;
};

// ---- notification targets ---------------------------------------------------------------

enum class TargetKind {
  email,    ///< address: an e-mail address
  webhook,  ///< address: an https URL; secret: the HMAC key for signing bodies
  ntfy,     ///< address: an ntfy topic URL; secret: an access token
};

/// "email", "webhook", "ntfy".
std::string_view to_string(TargetKind kind) noexcept;
std::optional<TargetKind> parse_target_kind(std::string_view text) noexcept;

/// A target to add. (kind, address) is unique per account.
struct NewTarget {
  std::string account_id{};
  TargetKind kind{TargetKind::email};
  std::string address{};  ///< 1..512 bytes
  bool verified{false};
  std::optional<std::string> secret{};  ///< up to 512 bytes
  std::int64_t created_at_ms{0};
  /// Webhooks only: the body to send instead of dagd's JSON document (an SMS gateway
  /// wants its own format); up to 4096 bytes. nullopt: the JSON document.
  std::optional<std::string> body_template{};
  /// Webhooks only: the Content-Type of body_template; 1..128 bytes, no control
  /// characters. nullopt: the channel's default.
  std::optional<std::string> content_type{};
};

struct NotificationTarget {
  std::string id{};  ///< UUID, made by add_target
  std::string account_id{};
  TargetKind kind{TargetKind::email};
  std::string address{};
  bool verified{false};  ///< only verified targets receive alerts
  std::optional<std::string> secret{};
  std::int64_t created_at_ms{0};
  std::optional<std::string> body_template{};  ///< webhooks only, see NewTarget
  std::optional<std::string> content_type{};   ///< webhooks only, see NewTarget

  // Health, shown to the account (record_delivery).
  int failure_count{0};                     ///< failed deliveries since the last success
  std::optional<std::string> last_error{};  ///< reason of the last failed delivery
  std::optional<std::int64_t> last_error_at_ms{};
  std::optional<std::int64_t> last_success_at_ms{};

  // E-mail verification (create_verification, request_verification).
  /// A verification mail is wanted: set for a new unverified e-mail target and by
  /// request_verification, cleared when a mail is sent (create_verification) or the
  /// target is verified.
  bool verification_requested{false};
  std::optional<std::int64_t> verification_sent_at_ms{};  ///< the last verification mail

  bool operator==(const NotificationTarget&) const = default;
};

// ---- devices ----------------------------------------------------------------------------

/// What the cloud has derived about a dag; written whole by update_device_state, in the
/// same transaction as the shadow, events and intents that the change produced.
struct DeviceState {
  std::optional<protocol::Power> power{};             ///< last reported mains power; nullopt: never
  std::optional<std::int64_t> power_since_ms{};       ///< when `power` took its value (observed)
  std::int64_t last_seq{0};                           ///< highest power-report seq applied; 0: none
  std::optional<protocol::Connection> connection{};   ///< after debounce; nullopt: never seen
  std::optional<std::int64_t> connection_since_ms{};  ///< when `connection` took its value
  std::optional<std::int64_t> last_seen_ms{};         ///< receipt time of the last message
  std::optional<protocol::UserState> user_state{};    ///< what the owner sees; nullopt: unknown
  std::optional<std::string> battery_json{};          ///< the last reported `battery` object (JSON)
  /// Transient marker of a pending disconnect debounce: set when a disconnect arrives,
  /// replaced by any newer news; the timer acts only if it still matches. "" when none.
  std::string presence_marker{};
  /// versionNumber of the last lifecycle event applied, to drop duplicates and stale
  /// reorderings; nullopt before the first one.
  std::optional<std::int64_t> last_lifecycle_version{};
  /// "Lost contact" was notified, so "back" may be ("back" alone would puzzle the owner).
  bool notified_lost_contact{false};
  /// "Power lost" was notified (after the power-off grace), so "power back" may be.
  bool notified_power_lost{false};
  /// "Battery low" was notified during the current outage (once per outage).
  bool notified_battery_low{false};

  bool operator==(const DeviceState&) const = default;
};

/// A device to register. The id must satisfy protocol::is_valid_device_id.
struct NewDevice {
  std::string id{};
  std::string account_id{};
  std::string name{};  ///< 1..128 bytes
  std::int64_t provisioned_at_ms{0};
};

struct Device {
  std::string id{};
  std::string account_id{};
  std::string name{};
  std::int64_t provisioned_at_ms{0};
  bool revoked{false};  ///< a revoked dag's messages are rejected (404), its history kept
  DeviceState state{};

  bool operator==(const Device&) const = default;
};

/// Fleet-wide device counts (Transaction::count_devices).
struct DeviceCounts {
  std::int64_t total{0};
  std::int64_t revoked{0};
  std::int64_t connected{0};  ///< unrevoked and connected

  bool operator==(const DeviceCounts&) const = default;
};

// ---- shadows ----------------------------------------------------------------------------

/// A stored shadow: the engine's storage form (protocol::shadow_to_json) and the row's
/// revision. The revision is the store's optimistic-concurrency token, distinct from the
/// shadow's own version inside the document: it goes up by one on every put, including
/// the put of a delete's tombstone (which keeps the shadow version unchanged), so a
/// replica that read the shadow before a delete cannot overwrite the tombstone.
struct StoredShadow {
  std::string document{};
  std::int64_t revision{0};  ///< >= 1 for a stored row

  bool operator==(const StoredShadow&) const = default;
};

/// A device with its shadow's revision (nullopt: it never had a shadow) and document
/// (nullopt also when the reader already knows it: Transaction::get_device_with_shadow).
struct DeviceWithShadow {
  Device device{};
  std::optional<std::int64_t> shadow_revision{};
  std::optional<std::string> shadow_document{};
};

// ---- events (history) -------------------------------------------------------------------

enum class EventKind {
  power_off,     ///< mains lost (a power report)
  power_on,      ///< mains back (a power report)
  lost_contact,  ///< the disconnect debounce expired
  back,          ///< contact again after lost_contact
  battery_low,   ///< state of charge fell to the account's threshold while on battery
};

/// "power_off", "power_on", "lost_contact", "back", "battery_low".
std::string_view to_string(EventKind kind) noexcept;
std::optional<EventKind> parse_event_kind(std::string_view text) noexcept;
/// power_off and power_on: the kinds that carry a seq and are deduplicated by it.
constexpr bool is_power_event(EventKind kind) noexcept {
  return kind == EventKind::power_off || kind == EventKind::power_on;
}

struct Event {
  std::string device_id{};
  EventKind kind{EventKind::power_off};
  std::int64_t observed_at_ms{0};  ///< the device's observedAt, or receipt time (fallback)
  std::int64_t received_at_ms{0};
  /// The report's seq (power events only; >= 1). (device_id, seq) is unique: appending a
  /// report again returns conflict, so a resent report never makes a second event.
  std::optional<std::int64_t> seq{};
  /// The device's clock was implausible and observed_at_ms is the receipt time.
  bool clock_fallback{false};
  std::optional<protocol::UserState> user_state_after{};

  bool operator==(const Event&) const = default;
};

struct StoredEvent {
  std::int64_t id{0};
  Event event{};

  bool operator==(const StoredEvent&) const = default;
};

/// A page of one device's history, newest (highest id) first.
struct EventQuery {
  std::string device_id{};
  std::optional<std::int64_t> from_ms{};    ///< observed_at_ms >= from_ms
  std::optional<std::int64_t> until_ms{};   ///< observed_at_ms < until_ms
  int limit{100};                           ///< 1..1000
  std::optional<std::int64_t> before_id{};  ///< cursor: only ids below it (next_cursor)
};

struct EventPage {
  std::vector<StoredEvent> events{};
  /// Pass as before_id for the next page; nullopt when this page is the last.
  std::optional<std::int64_t> next_cursor{};
};

// ---- battery readings -------------------------------------------------------------------

/// One sample of a device's battery, for the chart of battery levels over time. At most
/// one per (device_id, at_ms). Each value is optional: a gauge reports what it knows.
struct BatteryReading {
  std::string device_id{};
  std::int64_t at_ms{0};                       ///< when dagd received it
  std::optional<double> percent{};             ///< state of charge, 0..100
  std::optional<double> volts{};               ///< cell voltage, 0..100
  std::optional<std::int64_t> minutes_left{};  ///< estimated run time, >= 0
  std::optional<bool> on_battery{};            ///< mains off at the time; nullopt: unknown

  bool operator==(const BatteryReading&) const = default;
};

// ---- timers (durable debounce) ----------------------------------------------------------

/// A durable timer. At most one exists per (device_id, kind): scheduling replaces it.
struct Timer {
  std::string kind{};  ///< e.g. "disconnect", "power_off_grace"; 1..64 bytes
  std::string device_id{};
  std::int64_t due_at_ms{0};
  std::string marker{};  ///< what the timer was set for (compare with the device's marker)

  bool operator==(const Timer&) const = default;
};

inline constexpr std::string_view kDisconnectTimer = "disconnect";
inline constexpr std::string_view kPowerOffGraceTimer = "power_off_grace";

struct StoredTimer {
  /// New on every schedule: completing a timer that was replaced meanwhile leaves the
  /// replacement alone.
  std::int64_t id{0};
  Timer timer{};
  std::optional<std::string> claimed_by{};  ///< owner of the current or last lease
  std::optional<std::int64_t> claimed_until_ms{};

  bool operator==(const StoredTimer&) const = default;
};

// ---- notification outbox ----------------------------------------------------------------

/// What a notification is about (machine names as in protocol::Event, plus battery_low).
enum class Transition {
  power_lost,
  power_back,
  contact_lost,
  dag_back,
  battery_low,
};

/// "power_lost", "power_back", "contact_lost", "dag_back", "battery_low".
std::string_view to_string(Transition transition) noexcept;
std::optional<Transition> parse_transition(std::string_view text) noexcept;
/// The transition of a user-state change event.
Transition transition_of(protocol::Event event) noexcept;

/// A notification intent, written in the same transaction as the change that caused it
/// (transactional outbox); notifiers deliver it later.
struct Intent {
  std::string account_id{};
  std::string device_id{};
  std::string device_name{};  ///< as it was when the intent was made
  Transition transition{Transition::power_lost};
  protocol::UserState user_state{protocol::UserState::on};
  std::int64_t observed_at_ms{0};
  std::int64_t created_at_ms{0};
  std::string payload{"{}"};  ///< JSON object with channel-independent extras
  /// The target to deliver to, a target of account_id. dagd writes one intent per verified
  /// target that wants the notification; nullopt when the account had none (the notifier
  /// marks such an intent done at once). Removing the target removes its intents.
  std::optional<std::string> target_id{};

  bool operator==(const Intent&) const = default;
};

enum class IntentStatus {
  pending,  ///< waiting for delivery (maybe claimed, maybe waiting for a retry)
  done,     ///< delivered
  failed,   ///< given up for good
};

/// "pending", "done", "failed".
std::string_view to_string(IntentStatus status) noexcept;
std::optional<IntentStatus> parse_intent_status(std::string_view text) noexcept;

struct StoredIntent {
  std::int64_t id{0};
  Intent intent{};
  IntentStatus status{IntentStatus::pending};
  /// Claims so far (a crashed delivery counts), less those given back by defer_intent.
  int attempts{0};
  std::int64_t next_attempt_at_ms{0};  ///< not claimable before
  std::optional<std::string> claimed_by{};
  std::optional<std::int64_t> claimed_until_ms{};
  /// Reason given to the last mark_intent_failed (defer_intent leaves it alone).
  std::optional<std::string> last_error{};
  std::optional<std::int64_t> finished_at_ms{};  ///< when it became done or failed

  bool operator==(const StoredIntent&) const = default;
};

// ---- device certificates ----------------------------------------------------------------

/// A client certificate issued to a device (by dagctl through dag::pki), kept so that it
/// can be revoked and listed in the CRL until it expires.
struct DeviceCertificate {
  std::string serial_hex{};  ///< upper-case hex as dag::pki prints it (1..64 digits); unique
  /// The device it was issued to: not a foreign key, so a deleted device's certificates
  /// stay (and stay revocable).
  std::string device_id{};
  std::int64_t issued_at_ms{0};
  std::int64_t not_after_ms{0};                 ///< expiry: a CRL lists it until then
  std::optional<std::int64_t> revoked_at_ms{};  ///< nullopt: not revoked

  bool operator==(const DeviceCertificate&) const = default;
};

// ---- configuration ----------------------------------------------------------------------

/// Whom a configuration entry applies to.
enum class ConfigScope {
  fleet,    ///< every device (scope_id "")
  account,  ///< one account's devices (scope_id: the account id)
  device,   ///< one device (scope_id: the device id)
};

/// "fleet", "account", "device".
std::string_view to_string(ConfigScope scope) noexcept;
std::optional<ConfigScope> parse_config_scope(std::string_view text) noexcept;

/// A configuration value, unique per (scope, scope_id, key).
struct ConfigEntry {
  ConfigScope scope{ConfigScope::fleet};
  std::string scope_id{};    ///< "" for fleet, else the account or device id (1..128 bytes)
  std::string key{};         ///< 1..64 bytes
  std::string value_json{};  ///< any JSON value, compact
  std::int64_t updated_at_ms{0};

  bool operator==(const ConfigEntry&) const = default;
};

}  // namespace dag::store
