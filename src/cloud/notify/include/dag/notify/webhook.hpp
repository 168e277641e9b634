// The webhook channel: an HTTP POST to the target's URL (target.address, http or https).
//
// Default body: JSON (Content-Type: application/json), version 1 of this schema:
//
//   {
//     "type": "detectordag.notification",
//     "version": 1,
//     "idempotencyKey": "...",            // the same on every retry of this message
//     "account": "<account id>",
//     "accountName": "alice",
//     "followUp": false,                  // true: a coalesced follow-up (several items)
//     "title": "You've lost power! (Home)",  // the notice's subject
//     "message": "Home: the power went off at 23:41 CET, Tue 24 Nov. Now: Off.",
//     "dashboardUrl": "https://dags.example.com",
//     "items": [{
//       "deviceId": "...", "deviceName": "Home",
//       "transition": "power_lost",       //
//       power_lost|power_back|contact_lost|dag_back|battery_low "userState": "off", //
//       on|off|was_on|was_off, after the transition "userStateTitle": "Off", "title": "You've lost
//       power!", "message": "Home: the power went off at 23:41 CET, Tue 24 Nov. Now: Off.",
//       "observedAt": "2026-11-24T22:41:36.123Z",  // ISO 8601, UTC
//       "observedAtMs": 1795560096123,
//       "extra": {"percent": 18.5}        // only when there is something (battery_low)
//     }]
//   }
//
// Consumers must ignore fields they do not know (later versions may add some).
//
// Template mode: when target.body_template is set the body is that template expanded
// (dag/notify/template.hpp) and the Content-Type is target.content_type (default
// "text/plain; charset=utf-8"): SMS gateways and chat services that want their own body.
//
// Headers of every request: Content-Type; Idempotency-Key (the notice's key);
// X-Dag-Timestamp (Unix seconds of sending); and, when the target has a secret,
// X-Dag-Signature: sha256=<lower-case hex HMAC-SHA256 of the exact body bytes, keyed with
// the secret>. A receiver recomputes the HMAC over the raw body and compares in constant
// time. Redirects are not followed.
//
// Errors: permanent for a malformed URL or content type, a refused private address (see
// HttpOptions) and HTTP 4xx other than 408/429; transient for everything else (timeouts,
// connection failures, 5xx, 408, 429). The reason quotes the status and the start of the
// answer's body.
//
// Thread-safety: deliver() from several threads at once (a pool of libcurl handles). Blocking:
// network I/O bounded by HttpOptions (connect 5 s, total 10 s by default).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "dag/common/clock.hpp"
#include "dag/notify/channel.hpp"
#include "dag/notify/http.hpp"

namespace dag::notify {

/// The JSON body above, compact.
std::string webhook_payload(const Notice& notice);

/// "sha256=" + lower-case hex HMAC-SHA256 of `body` keyed with `secret`.
std::string webhook_signature(std::string_view secret, std::string_view body);

class WebhookChannel final : public Channel {
 public:
  /// Throws std::runtime_error only when libcurl cannot be initialised (start-up).
  explicit WebhookChannel(HttpOptions options = {});
  WebhookChannel(HttpOptions options, const Clock& clock);
  ~WebhookChannel() override;
  WebhookChannel(const WebhookChannel&) = delete;
  WebhookChannel& operator=(const WebhookChannel&) = delete;

  Delivery deliver(const store::NotificationTarget& target, const Notice& notice) override;

 private:
  struct Impl;
  HttpOptions options_;
  const Clock& clock_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dag::notify
