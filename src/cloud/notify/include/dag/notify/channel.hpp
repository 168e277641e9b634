// Notification channels: what an owner is told, and the interface every channel (e-mail,
// webhook, ntfy) implements. The outbox worker (dag/notify/worker.hpp) decides when and to
// whom; a channel only renders and delivers one notice to one target.
//
// Errors: a DeliveryError is permanent (the target refuses: SMTP 5xx, HTTP 4xx other than
// 408/429, a malformed address) or transient (anything that may work later: timeouts,
// connection refused, SMTP 4xx, HTTP 5xx/408/429); the worker retries only transient ones.
// Thread-safety: deliver() may be called from several threads at once (the worker
// delivers a round's messages in parallel); implementations lock what they share.
// Blocking: deliver() does network I/O, bounded by the channel's timeouts.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "dag/common/result.hpp"
#include "dag/protocol/vocabulary.hpp"
#include "dag/store/records.hpp"

namespace dag::notify {

/// One thing that happened to one dag (one intent).
struct Item {
  std::string device_id;
  std::string device_name;
  store::Transition transition{store::Transition::power_lost};
  protocol::UserState user_state{protocol::UserState::on};  ///< after the transition
  std::int64_t observed_at_ms{0};
  nlohmann::json extra = nlohmann::json::object();  ///< e.g. {"percent": 18.5} for battery_low
};

/// One message to one target.
struct Notice {
  std::string account_id;
  std::string account_name;      ///< the username, for the greeting
  std::string time_zone{"UTC"};  ///< IANA name; times are shown in it
  std::string dashboard_url;     ///< public base URL of the dashboard (no trailing slash)
  /// The first alert of a quiet account: every item due when it went out (one, unless a
  /// backlog had several). A coalesced follow-up (follow_up): every item gathered during
  /// the coalescing window after a message ("3 more of your dags lost power").
  std::vector<Item> items;
  bool follow_up{false};
  /// Stable across retries of the same message (Message-ID, Idempotency-Key header).
  std::string idempotency_key;
};

struct DeliveryError {
  bool permanent{false};
  std::string reason;  ///< for humans: shown to the account as the target's last error
};
using Delivery = Expected<void, DeliveryError>;

class Channel {
 public:
  virtual ~Channel() = default;
  /// Delivers `notice` to `target` (whose kind is this channel's).
  virtual Delivery deliver(const store::NotificationTarget& target, const Notice& notice) = 0;
};

}  // namespace dag::notify
