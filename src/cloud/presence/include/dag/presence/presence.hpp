// Presence news: what the two presence sources say about a dag, and whether it is news.
//
// Sources (docs/protocol.md "Presence" and "Lifecycle events"):
// - `dags/{id}/presence`, the dag's retained birth ("connected") and last will
//   ("disconnected"). It carries no order: the broker keeps only the latest, and a
//   retained copy is delivered again whenever dagd subscribes.
// - `$aws/events/presence/{connected|disconnected}/{clientId}`, lifecycle events from
//   AWS IoT or our broker plugin. AWS warns that they may come twice or out of order, so
//   each carries versionNumber. AWS gives a connection's `disconnected` event the same
//   number as its `connected` event; our plugin gives it a higher one. The order key
//   `versionNumber * 2 + (disconnected ? 1 : 0)` orders both correctly: within one number
//   the disconnect comes after the connect, and a higher number is a later connection.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "dag/common/result.hpp"
#include "dag/protocol/topics.hpp"

namespace dag::presence {

struct News {
  std::string device_id;
  protocol::Connection connection{protocol::Connection::connected};
  /// Lifecycle events only: the order key (above). Birth and will carry none.
  std::optional<std::int64_t> order;
  /// A retained presence message, delivered because dagd (re)subscribed: it says what was
  /// last known, not that something happened now.
  bool retained{false};
};

/// Largest versionNumber whose order key fits in int64.
inline constexpr std::int64_t kMaxVersionNumber =
    (std::numeric_limits<std::int64_t>::max() - 1) / 2;

/// `connected` or `disconnected` (surrounding ASCII whitespace allowed, as a hand-typed
/// `mosquitto_pub` adds a newline). Errors: Errc::parse for any other payload.
Result<News> from_presence(const protocol::PresenceTopic& topic, std::string_view payload,
                           bool retained);

/// A lifecycle event. Errors: Errc::parse when the payload is not a valid event
/// (protocol::parse_lifecycle_event), or its clientId or eventType differs from the
/// topic's, or versionNumber is above kMaxVersionNumber.
Result<News> from_lifecycle(const protocol::LifecycleTopic& topic, std::string_view payload);

/// True when `news` should be applied after the last applied order key: news without an
/// order always is; ordered news only when its key is higher (a duplicate or an older
/// event is dropped).
bool is_news(const News& news, std::optional<std::int64_t> last_order) noexcept;

}  // namespace dag::presence
