#include "presence_tracker.hpp"

#include <algorithm>

#include "dag/protocol/topics.hpp"

namespace dag::broker::presence {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Publication publication_of(const protocol::LifecycleEvent& event) {
  return {protocol::lifecycle_topic(event.event_type, event.client_id), protocol::to_json(event)};
}

}  // namespace

bool Options::is_service(std::string_view username) const {
  return std::find(ignore_usernames.begin(), ignore_usernames.end(), username) !=
         ignore_usernames.end();
}

Result<Options> parse_options(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Options options;
  for (const auto& [key, value] : pairs) {
    if (key != "ignore_usernames") {
      return fail(Errc::config, "unknown option '" + key + "' (known: ignore_usernames)");
    }
    std::string_view rest = value;
    while (true) {
      const auto comma = rest.find(',');
      const std::string_view name = trim(rest.substr(0, comma));
      if (name.empty()) {
        return fail(Errc::config, "ignore_usernames '" + value + "' has an empty name");
      }
      options.ignore_usernames.emplace_back(name);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return options;
}

std::string_view disconnect_reason(DisconnectKind kind) noexcept {
  switch (kind) {
    case DisconnectKind::client_initiated: return "CLIENT_INITIATED_DISCONNECT";
    case DisconnectKind::duplicate_client_id: return "DUPLICATE_CLIENTID";
    case DisconnectKind::connection_lost: return "CONNECTION_LOST";
    case DisconnectKind::server_initiated: return "SERVER_INITIATED_DISCONNECT";
    case DisconnectKind::unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

KickCommand parse_kick(const Options& options, std::string_view sender_username,
                       std::string_view payload) {
  if (sender_username.empty() || !options.is_service(sender_username)) {
    return {KickVerdict::not_a_service, {}};
  }
  if (!protocol::is_valid_device_id(payload)) return {KickVerdict::invalid_device_id, {}};
  // Client ids are usernames (use_username_as_clientid), so this also keeps a service from
  // dropping its own connection from inside the broker's handling of its command.
  if (options.is_service(payload)) return {KickVerdict::target_is_service, std::string{payload}};
  return {KickVerdict::accepted, std::string{payload}};
}

std::string_view kick_verdict_name(KickVerdict verdict) noexcept {
  switch (verdict) {
    case KickVerdict::accepted: return "accepted";
    case KickVerdict::not_a_service: return "not_a_service";
    case KickVerdict::invalid_device_id: return "invalid_device_id";
    case KickVerdict::target_is_service: return "target_is_service";
  }
  return "?";
}

PresenceTracker::PresenceTracker(Options options, std::int64_t first_version,
                                 std::function<std::string()> new_session_id)
    : options_(std::move(options)),
      next_version_(first_version),
      new_session_id_(std::move(new_session_id)) {}

bool PresenceTracker::is_new(Key key) const {
  return key != closing_ && !connections_.contains(key);
}

FirstSeen PresenceTracker::first_seen(Key key, ClientInfo info, std::int64_t now_ms) {
  Connection c;
  if (options_.is_service(info.username)) {
    c.verdict = Verdict::ignored_username;
  } else if (!protocol::is_valid_device_id(info.client_id)) {
    c.verdict = Verdict::invalid_client_id;
  }
  FirstSeen result{c.verdict, std::nullopt};
  if (c.verdict == Verdict::tracked) {
    protocol::LifecycleEvent& e = c.connected;
    e.client_id = std::move(info.client_id);
    e.timestamp_ms = now_ms;
    e.event_type = protocol::Connection::connected;
    e.session_identifier = new_session_id_();
    e.principal_identifier = std::move(info.username);
    e.version_number = next_version_++;
    if (!info.ip_address.empty()) e.ip_address = std::move(info.ip_address);
    result.publication = publication_of(e);
    // One live connection per client id: a takeover disconnects the old one first.
    tracked_by_id_.insert_or_assign(e.client_id, key);
  }
  connections_.insert_or_assign(key, std::move(c));
  return result;
}

std::optional<Publication> PresenceTracker::disconnected(Key key, DisconnectKind kind,
                                                         std::int64_t now_ms) {
  closing_ = key;
  auto it = connections_.find(key);
  if (it == connections_.end()) return std::nullopt;
  Connection c = std::move(it->second);
  connections_.erase(it);
  if (c.verdict != Verdict::tracked) return std::nullopt;
  if (auto by_id = tracked_by_id_.find(c.connected.client_id);
      by_id != tracked_by_id_.end() && by_id->second == key) {
    tracked_by_id_.erase(by_id);
  }

  protocol::LifecycleEvent e = std::move(c.connected);
  e.timestamp_ms = now_ms;
  e.event_type = protocol::Connection::disconnected;
  e.version_number = next_version_++;
  e.ip_address.reset();
  if (kind != DisconnectKind::unknown) {
    e.client_initiated_disconnect = kind == DisconnectKind::client_initiated;
  }
  e.disconnect_reason = std::string{disconnect_reason(kind)};
  return publication_of(e);
}

std::optional<PresenceTracker::Key> PresenceTracker::tracked_connection(
    const std::string& client_id) const {
  const auto it = tracked_by_id_.find(client_id);
  if (it == tracked_by_id_.end()) return std::nullopt;
  return it->second;
}

}  // namespace dag::broker::presence
