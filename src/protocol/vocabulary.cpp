#include "dag/protocol/vocabulary.hpp"

#include <nlohmann/json.hpp>

#include <limits>

#include "dag/protocol/topics.hpp"

namespace dag::protocol {

std::string_view to_string(Power power) noexcept {
  return power == Power::on ? "on" : "off";
}

std::optional<Power> parse_power(std::string_view text) noexcept {
  if (text == "on") return Power::on;
  if (text == "off") return Power::off;
  return std::nullopt;
}

std::string_view to_string(Connection connection) noexcept {
  return connection == Connection::connected ? "connected" : "disconnected";
}

std::optional<Connection> parse_connection(std::string_view text) noexcept {
  if (text == "connected") return Connection::connected;
  if (text == "disconnected") return Connection::disconnected;
  return std::nullopt;
}

std::string_view to_string(UserState state) noexcept {
  switch (state) {
    case UserState::on: return "on";
    case UserState::off: return "off";
    case UserState::was_on: return "was_on";
    case UserState::was_off: return "was_off";
  }
  return "off";
}

std::optional<UserState> parse_user_state(std::string_view text) noexcept {
  for (UserState state : kAllUserStates) {
    if (to_string(state) == text) return state;
  }
  return std::nullopt;
}

std::string_view title(UserState state) noexcept {
  switch (state) {
    case UserState::on: return "On";
    case UserState::off: return "Off";
    case UserState::was_on: return "Was On";
    case UserState::was_off: return "Was Off";
  }
  return "Off";
}

std::string_view explanation(UserState state) noexcept {
  switch (state) {
    case UserState::on: return "Your dag is in contact and the power is on.";
    case UserState::off:
      return "Your dag is in contact and the power is off; it is running on its battery.";
    case UserState::was_on:
      return "We have lost contact with your dag; the power was on when we last heard from it.";
    case UserState::was_off:
      return "The power went off and then we lost contact with your dag; its battery has "
             "probably run out.";
  }
  return "";
}

std::string_view to_string(Event event) noexcept {
  switch (event) {
    case Event::power_lost: return "power_lost";
    case Event::power_back: return "power_back";
    case Event::contact_lost: return "contact_lost";
    case Event::dag_back: return "dag_back";
  }
  return "";
}

std::optional<Event> parse_event(std::string_view text) noexcept {
  for (Event event : {Event::power_lost, Event::power_back, Event::contact_lost, Event::dag_back}) {
    if (to_string(event) == text) return event;
  }
  return std::nullopt;
}

std::string_view subject(Event event) noexcept {
  switch (event) {
    case Event::power_lost: return "You've lost power!";
    case Event::power_back: return "Your power's back!";
    case Event::contact_lost: return "We've lost contact with your dag!";
    case Event::dag_back: return "Your dag is back!";
  }
  return "";
}

UserState user_state(Power power, Connection connection) noexcept {
  if (connection == Connection::connected) {
    return power == Power::on ? UserState::on : UserState::off;
  }
  return power == Power::on ? UserState::was_on : UserState::was_off;
}

Power power_of(UserState state) noexcept {
  return (state == UserState::on || state == UserState::was_on) ? Power::on : Power::off;
}

Connection connection_of(UserState state) noexcept {
  return (state == UserState::on || state == UserState::off) ? Connection::connected
                                                             : Connection::disconnected;
}

std::optional<Event> transition_event(UserState from, UserState to) noexcept {
  if (power_of(from) != power_of(to)) {
    return power_of(to) == Power::off ? Event::power_lost : Event::power_back;
  }
  if (connection_of(from) != connection_of(to)) {
    return connection_of(to) == Connection::disconnected ? Event::contact_lost : Event::dag_back;
  }
  return std::nullopt;
}

namespace {

using nlohmann::json;

Unexpected<Error> bad(std::string message) {
  return fail(Errc::parse, "lifecycle event: " + std::move(message));
}

// Reads a required string member; nullptr when absent or not a string.
const std::string* string_member(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

// A non-negative integer member (JSON integers only; 1.0 is not accepted).
std::optional<std::int64_t> count_member(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    auto value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(value);
  }
  if (it->is_number_integer()) {
    auto value = it->get<std::int64_t>();
    if (value < 0) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

}  // namespace

Result<LifecycleEvent> parse_lifecycle_event(std::string_view payload) {
  json doc = json::parse(payload.begin(), payload.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return bad("invalid JSON");
  if (!doc.is_object()) return bad("not a JSON object");

  LifecycleEvent event;
  const std::string* client_id = string_member(doc, "clientId");
  if (client_id == nullptr || !is_valid_device_id(*client_id)) return bad("invalid clientId");
  event.client_id = *client_id;

  auto timestamp = count_member(doc, "timestamp");
  if (!timestamp) return bad("invalid timestamp");
  event.timestamp_ms = *timestamp;

  const std::string* type = string_member(doc, "eventType");
  auto connection = type != nullptr ? parse_connection(*type) : std::nullopt;
  if (!connection) return bad("invalid eventType");
  event.event_type = *connection;

  const std::string* session = string_member(doc, "sessionIdentifier");
  if (session == nullptr) return bad("invalid sessionIdentifier");
  event.session_identifier = *session;

  const std::string* principal = string_member(doc, "principalIdentifier");
  if (principal == nullptr) return bad("invalid principalIdentifier");
  event.principal_identifier = *principal;

  auto version = count_member(doc, "versionNumber");
  if (!version) return bad("invalid versionNumber");
  event.version_number = *version;

  if (doc.contains("ipAddress")) {
    const std::string* ip = string_member(doc, "ipAddress");
    if (ip == nullptr) return bad("invalid ipAddress");
    event.ip_address = *ip;
  }

  if (event.event_type == Connection::disconnected) {
    if (auto it = doc.find("clientInitiatedDisconnect"); it != doc.end()) {
      if (!it->is_boolean()) return bad("invalid clientInitiatedDisconnect");
      event.client_initiated_disconnect = it->get<bool>();
    }
    if (doc.contains("disconnectReason")) {
      const std::string* reason = string_member(doc, "disconnectReason");
      if (reason == nullptr) return bad("invalid disconnectReason");
      event.disconnect_reason = *reason;
    }
  }
  return event;
}

std::string to_json(const LifecycleEvent& event) {
  json doc = {
      {"clientId", event.client_id},
      {"timestamp", event.timestamp_ms},
      {"eventType", to_string(event.event_type)},
      {"sessionIdentifier", event.session_identifier},
      {"principalIdentifier", event.principal_identifier},
      {"versionNumber", event.version_number},
  };
  if (event.ip_address) doc["ipAddress"] = *event.ip_address;
  if (event.event_type == Connection::disconnected) {
    if (event.client_initiated_disconnect) {
      doc["clientInitiatedDisconnect"] = *event.client_initiated_disconnect;
    }
    if (event.disconnect_reason) doc["disconnectReason"] = *event.disconnect_reason;
  }
  // Strings from callers may hold invalid UTF-8; replace rather than throw.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace dag::protocol
