// The state vocabulary shared by device, cloud and dashboard (see docs/protocol.md).
//
// Two observed facts make up what a user sees: the mains power reported by the dag
// (`reported.status`, "on"/"off") and whether the dag is in contact with the cloud.
// Losing contact is its own state and never means "power off": Was On and Was Off keep
// the last power the dag reported.
//
// Also here: AWS IoT lifecycle event payloads ($aws/events/presence/...), which tell the
// cloud when a dag's MQTT session comes or goes.
//
// Thread-safety: pure functions over values; no shared state. Nothing here blocks.
// Errors: string parsers return std::nullopt for unknown text; parse_lifecycle_event
// returns Errc::parse. No function throws.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag::protocol {

/// Mains power at the dag, as published in `reported.status`.
enum class Power {
  on,   ///< "on": external power present (UPS hat GPIO high).
  off,  ///< "off": external power lost; the dag runs on its battery.
};

/// Whether the dag currently has an MQTT session with the cloud (after debouncing).
/// Also the `eventType` of AWS lifecycle events ("connected"/"disconnected").
enum class Connection {
  connected,
  disconnected,
};

/// The four states a user sees on the dashboard and in notifications.
enum class UserState {
  on,       ///< In contact, power on.
  off,      ///< In contact, power off.
  was_on,   ///< Lost contact; power was on when last heard.
  was_off,  ///< Power went off, then contact was lost (the battery probably ran out).
};

/// What a change of user state tells the owner; one notification each.
enum class Event {
  power_lost,    ///< "You've lost power!"
  power_back,    ///< "Your power's back!"
  contact_lost,  ///< "We've lost contact with your dag!"
  dag_back,      ///< "Your dag is back!"
};

/// Wire text: "on" / "off".
std::string_view to_string(Power power) noexcept;
/// Exact, case-sensitive "on" / "off"; anything else is std::nullopt.
std::optional<Power> parse_power(std::string_view text) noexcept;

/// Wire text: "connected" / "disconnected".
std::string_view to_string(Connection connection) noexcept;
/// Exact "connected" / "disconnected"; anything else is std::nullopt.
std::optional<Connection> parse_connection(std::string_view text) noexcept;

/// Machine name for APIs and storage: "on", "off", "was_on", "was_off".
std::string_view to_string(UserState state) noexcept;
/// Exact machine name (see to_string); anything else is std::nullopt.
std::optional<UserState> parse_user_state(std::string_view text) noexcept;
/// Title shown to users: "On", "Off", "Was On", "Was Off".
std::string_view title(UserState state) noexcept;
/// One-line explanation shown under the title.
std::string_view explanation(UserState state) noexcept;

/// Machine name: "power_lost", "power_back", "contact_lost", "dag_back".
std::string_view to_string(Event event) noexcept;
/// Exact machine name; anything else is std::nullopt.
std::optional<Event> parse_event(std::string_view text) noexcept;
/// Notification subject, e.g. "You've lost power!".
std::string_view subject(Event event) noexcept;

/// The user state for a power reading and a connection state.
UserState user_state(Power power, Connection connection) noexcept;
/// The power part of a user state (Was On → on, Was Off → off).
Power power_of(UserState state) noexcept;
/// The connection part of a user state.
Connection connection_of(UserState state) noexcept;

/// The event a change of user state raises, or std::nullopt when there is none
/// (from == to). A change of power wins over a change of contact: a dag that comes
/// back with a different power than it left with raises the power event, because
/// that is what the owner must act on. The full table is in docs/protocol.md.
std::optional<Event> transition_event(UserState from, UserState to) noexcept;

/// All four user states, in declaration order (for tables and exhaustive tests).
inline constexpr std::array<UserState, 4> kAllUserStates{UserState::on, UserState::off,
                                                         UserState::was_on, UserState::was_off};

/// An AWS IoT lifecycle event, published by the broker on
/// `$aws/events/presence/{connected|disconnected}/{clientId}`.
struct LifecycleEvent {
  std::string client_id;                         ///< clientId
  std::int64_t timestamp_ms{0};                  ///< timestamp: epoch milliseconds
  Connection event_type{Connection::connected};  ///< eventType
  std::string session_identifier;                ///< sessionIdentifier (unique per MQTT session)
  std::string principal_identifier;       ///< principalIdentifier (certificate id, user, ...)
  std::int64_t version_number{0};         ///< versionNumber: orders events of one client id
  std::optional<std::string> ip_address;  ///< ipAddress (connected events; optional)
  /// clientInitiatedDisconnect (disconnected events only).
  std::optional<bool> client_initiated_disconnect;
  /// disconnectReason, e.g. "CLIENT_INITIATED_DISCONNECT", "MQTT_KEEP_ALIVE_TIMEOUT"
  /// (disconnected events only).
  std::optional<std::string> disconnect_reason;

  bool operator==(const LifecycleEvent&) const = default;
};

/// Parses a lifecycle payload. Required: clientId (valid device id syntax), timestamp
/// (integer >= 0), eventType ("connected"/"disconnected"), sessionIdentifier and
/// principalIdentifier (strings), versionNumber (integer >= 0). Optional, but typed when
/// present: ipAddress (string); on disconnected events clientInitiatedDisconnect (bool)
/// and disconnectReason (string). Unknown fields are ignored, as AWS may add some.
/// Errors: Errc::parse with a message naming the field; never throws.
Result<LifecycleEvent> parse_lifecycle_event(std::string_view payload);

/// Compact JSON for a lifecycle event; optional fields appear only when set, and the
/// disconnect fields only on disconnected events.
std::string to_json(const LifecycleEvent& event);

}  // namespace dag::protocol
