// PresenceTracker: the mosquitto-independent core of the presence plugin.
//
// It turns "a live connection did something" and "a connection ended" into AWS IoT
// lifecycle events ($aws/events/presence/{connected|disconnected}/{clientId}, payload
// dag::protocol::to_json). A connection is an opaque key (the broker's client pointer);
// the plugin glue (presence_plugin.cpp) decides what counts as activity of a live
// connection and why a connection ended.
//
// Guarantees:
// - One `connected` event per connection, on its first activity, and one `disconnected`
//   event, only for a connection that had its `connected` event (never a disconnected
//   event for a connection nobody was told about).
// - versionNumber is one counter for the whole tracker, incremented for every event
//   (connected and disconnected alike), so it is strictly increasing per client id and
//   "the higher version wins" orders the events of one client id. It starts at the value
//   given to the constructor (the plugin passes epoch-ms at start-up x 1000, so numbers keep
//   increasing across broker restarts unless the broker published more than 1000 events
//   per millisecond of its lifetime or the clock went backwards).
// - sessionIdentifier is a fresh value per connection (the plugin passes random UUIDs).
// - Connections whose username is in Options::ignore_usernames (service identities) or
//   whose client id is not a valid device id (it would make an invalid topic) get no events.
//
// parse_kick decides about the plugin's one command (kKickTopic): only the service
// identities (Options::ignore_usernames) may send it, and only for a device id.
//
// Blocking: none. Thread-safety: none; mosquitto 2.0 calls plugins from its single thread.
// Errors: only std::bad_alloc can escape (the plugin glue catches everything).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dag/common/result.hpp"
#include "dag/protocol/vocabulary.hpp"

namespace dag::broker::presence {

/// The plugin's options (`plugin_opt_<key> <value>` lines in mosquitto.conf).
struct Options {
  /// `ignore_usernames`: comma-separated usernames (certificate CNs) of the service
  /// identities, e.g. "dagd,dagctl". They get no events, and they alone may send commands
  /// (kKickTopic). Default: none, every client gets events and nobody may send commands.
  std::vector<std::string> ignore_usernames;

  /// True when `username` is listed in ignore_usernames (a service identity).
  [[nodiscard]] bool is_service(std::string_view username) const;
};

/// Parses (key, value) option pairs. Errors: Errc::config for an unknown key (a typo must
/// not silently fall back to a default) or an empty name in a list.
Result<Options> parse_options(const std::vector<std::pair<std::string, std::string>>& pairs);

/// How a connection ended, as far as the broker lets the plugin tell.
enum class DisconnectKind {
  client_initiated,     ///< The client sent DISCONNECT.
  duplicate_client_id,  ///< Another connection with the same client id took over.
  connection_lost,      ///< Socket closed or failed, keep-alive timeout, protocol error.
  server_initiated,     ///< The broker dropped it on command (kKickTopic).
  unknown,
};

/// disconnectReason for a kind: "CLIENT_INITIATED_DISCONNECT", "DUPLICATE_CLIENTID",
/// "CONNECTION_LOST", "SERVER_INITIATED_DISCONNECT", "UNKNOWN" (AWS IoT's names).
std::string_view disconnect_reason(DisconnectKind kind) noexcept;

/// What the broker knows about a client when it is first seen.
struct ClientInfo {
  std::string client_id;
  std::string username;    ///< Empty when the client has none.
  std::string ip_address;  ///< Empty when unknown.
};

/// A message for the broker to publish (QoS 1, not retained).
struct Publication {
  std::string topic;
  std::string payload;
};

/// What first_seen decided about a connection.
enum class Verdict {
  tracked,            ///< A connected event was made; a disconnected event will follow.
  ignored_username,   ///< Its username is in Options::ignore_usernames.
  invalid_client_id,  ///< Its client id is not a valid device id (see protocol.md).
};

struct FirstSeen {
  Verdict verdict{Verdict::tracked};
  std::optional<Publication> publication;  ///< The connected event when tracked.
};

/// The command topic: a PUBLISH here whose payload is a device id (plain text, exactly the
/// id) asks the broker to drop that client's connection without sending its will.
inline constexpr char kKickTopic[] = "$CONTROL/dag-presence/v1/kick";

/// What parse_kick decided about a command.
enum class KickVerdict {
  accepted,           ///< Drop the connection of KickCommand::client_id.
  not_a_service,      ///< The sender's username is not in Options::ignore_usernames.
  invalid_device_id,  ///< The payload is not a valid device id (empty, too long, '/', ...).
  target_is_service,  ///< The payload names a service identity (never dropped this way).
};

struct KickCommand {
  KickVerdict verdict{KickVerdict::accepted};
  std::string client_id;  ///< The payload when it is a valid device id, else empty.
};

/// Decides about a kick command sent by a client with `sender_username` (empty when it has
/// none). The payload must be exactly a device id: no surrounding whitespace, no newline.
/// Checks, in order: sender, payload syntax, target. Never throws except bad_alloc.
KickCommand parse_kick(const Options& options, std::string_view sender_username,
                       std::string_view payload);

/// The name of a verdict, for logs: "accepted", "not_a_service", ...
std::string_view kick_verdict_name(KickVerdict verdict) noexcept;

class PresenceTracker {
 public:
  using Key = const void*;

  /// `new_session_id` makes sessionIdentifier values (must not throw except bad_alloc).
  PresenceTracker(Options options, std::int64_t first_version,
                  std::function<std::string()> new_session_id);

  /// True when `key` has not been seen since its connection began, and so needs
  /// first_seen(). False for known connections and for a connection whose disconnect was
  /// just handled (until tick()): mosquitto checks a will's topic right after telling
  /// plugins of the disconnect, and that check is not a new connection.
  [[nodiscard]] bool is_new(Key key) const;

  /// Records a connection on its first activity; returns its connected event unless the
  /// connection is ignored (see Verdict).
  FirstSeen first_seen(Key key, ClientInfo info, std::int64_t now_ms);

  /// The connection ended: returns its disconnected event if it was tracked, and forgets it.
  std::optional<Publication> disconnected(Key key, DisconnectKind kind, std::int64_t now_ms);

  /// The live tracked connection (first_seen, not yet disconnected) with this client id, if
  /// any. Ignored connections are not found.
  [[nodiscard]] std::optional<Key> tracked_connection(const std::string& client_id) const;

  /// The broker finished an iteration of its loop: a later activity of a key that was
  /// disconnected before is a new connection (the broker reuses freed memory).
  void tick() noexcept { closing_ = nullptr; }

  /// Connections currently known (tracked or ignored).
  [[nodiscard]] std::size_t size() const noexcept { return connections_.size(); }
  [[nodiscard]] const Options& options() const noexcept { return options_; }

 private:
  struct Connection {
    Verdict verdict{Verdict::tracked};
    protocol::LifecycleEvent connected;  // meaningful when tracked
  };

  Options options_;
  std::int64_t next_version_;
  std::function<std::string()> new_session_id_;
  std::unordered_map<Key, Connection> connections_;
  std::unordered_map<std::string, Key> tracked_by_id_;  // client id -> key, tracked only
  Key closing_{nullptr};
};

}  // namespace dag::broker::presence
