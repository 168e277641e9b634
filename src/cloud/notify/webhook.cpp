#include "dag/notify/webhook.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>

#include "dag/common/validate.hpp"
#include "dag/notify/mime.hpp"
#include "dag/notify/render.hpp"
#include "dag/notify/template.hpp"

#include "curl_handle.hpp"

namespace dag::notify {
namespace {

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

constexpr std::string_view kDefaultTemplateType = "text/plain; charset=utf-8";

}  // namespace

std::string webhook_payload(const Notice& notice) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& item : notice.items) {
    nlohmann::json j{
        {"deviceId", item.device_id},
        {"deviceName", item.device_name},
        {"transition", store::to_string(item.transition)},
        {"userState", protocol::to_string(item.user_state)},
        {"userStateTitle", protocol::title(item.user_state)},
        {"title", transition_subject(item.transition)},
        {"message", item_message(item, notice.time_zone)},
        {"observedAt", iso8601_utc(item.observed_at_ms)},
        {"observedAtMs", item.observed_at_ms},
    };
    if (item.extra.is_object() && !item.extra.empty()) j["extra"] = item.extra;
    items.push_back(std::move(j));
  }
  const nlohmann::json body{
      {"type", "detectordag.notification"},       {"version", 1},
      {"idempotencyKey", notice.idempotency_key}, {"account", notice.account_id},
      {"accountName", notice.account_name},       {"followUp", notice.follow_up},
      {"title", notice_subject(notice)},          {"message", notice_message(notice)},
      {"dashboardUrl", notice.dashboard_url},     {"items", std::move(items)},
  };
  // Names and keys come from outside: invalid UTF-8 becomes U+FFFD instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string webhook_signature(std::string_view secret, std::string_view body) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int length = 0;
  const unsigned char* ok =
      HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(body.data()),  // NOLINT: OpenSSL's byte API
           body.size(), mac.data(), &length);
  if (ok == nullptr) return "sha256=";
  return "sha256=" +
         mime::hex(std::string_view{reinterpret_cast<const char*>(mac.data()), length});  // NOLINT
}

struct WebhookChannel::Impl {
  detail::HandlePool handles;
};

WebhookChannel::WebhookChannel(HttpOptions options)
    : WebhookChannel(std::move(options), system_clock()) {}

WebhookChannel::WebhookChannel(HttpOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), impl_(std::make_unique<Impl>()) {}

WebhookChannel::~WebhookChannel() = default;

Delivery WebhookChannel::deliver(const store::NotificationTarget& target, const Notice& notice) {
  if (target.kind != store::TargetKind::webhook) {
    return Unexpected{DeliveryError{true, "not a webhook target"}};
  }
  if (auto why = validate::url_error(target.address)) {
    return Unexpected{DeliveryError{true, "the webhook URL is not valid: " + *why}};
  }
  detail::HttpPost request;
  request.url = target.address;
  std::string content_type = "application/json";
  if (target.body_template && !target.body_template->empty()) {
    content_type = target.content_type && !target.content_type->empty()
                       ? *target.content_type
                       : std::string{kDefaultTemplateType};
    if (auto why = content_type_error(content_type)) {
      return Unexpected{DeliveryError{true, "the webhook content type is not valid: " + *why}};
    }
    request.body = expand_template(*target.body_template, template_values(notice),
                                   escape_for_content_type(content_type));
  } else {
    request.body = webhook_payload(notice);
  }
  request.headers.push_back("Content-Type: " + content_type);
  request.headers.push_back("X-Dag-Timestamp: " + std::to_string(clock_.unix_s()));
  if (!notice.idempotency_key.empty()) {
    request.headers.push_back("Idempotency-Key: " + detail::printable(notice.idempotency_key, 200));
  }
  if (target.secret && !target.secret->empty()) {
    request.headers.push_back("X-Dag-Signature: " +
                              webhook_signature(*target.secret, request.body));
  }
  const auto handle = impl_->handles.acquire();
  return detail::http_post(handle.get(), options_, request);
}

}  // namespace dag::notify
