// The ntfy channel (https://ntfy.sh or a self-hosted ntfy server): a plain-text POST to the
// target's topic URL (target.address, e.g. "https://ntfy.sh/my-dags-4f2a").
//
// Body: the notice's short message (one line per item, at most 4000 bytes so ntfy never
// turns it into an attachment). Headers:
//   Title     the notice's subject (RFC 2047 encoded-words when not ASCII; ntfy decodes them)
//   Priority  "high" when an item is power_lost, contact_lost or battery_low, else "default"
//   Tags      emoji short codes: "warning" (power or contact lost), "white_check_mark"
//             (power back, dag back), "battery" (battery low)
//   Click     the dashboard URL (when it is an http(s) URL)
//   Authorization: Bearer <target.secret> when the target has a secret (an access token)
//
// Errors, thread-safety and blocking: as WebhookChannel (dag/notify/webhook.hpp); a
// secret containing a control character fails permanently.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dag/notify/channel.hpp"
#include "dag/notify/http.hpp"

namespace dag::notify {

/// The headers NtfyChannel sends for `notice` (without Authorization and Content-Type),
/// as (name, value) pairs in the order above.
std::vector<std::pair<std::string, std::string>> ntfy_headers(const Notice& notice);

class NtfyChannel final : public Channel {
 public:
  /// Throws std::runtime_error only when libcurl cannot be initialised (start-up).
  explicit NtfyChannel(HttpOptions options = {});
  ~NtfyChannel() override;
  NtfyChannel(const NtfyChannel&) = delete;
  NtfyChannel& operator=(const NtfyChannel&) = delete;

  Delivery deliver(const store::NotificationTarget& target, const Notice& notice) override;

 private:
  struct Impl;
  HttpOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dag::notify
