#include "dag/notify/ntfy.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "dag/common/validate.hpp"
#include "dag/notify/mime.hpp"
#include "dag/notify/render.hpp"

#include "curl_handle.hpp"

namespace dag::notify {
namespace {

using store::Transition;

// ntfy turns bodies above 4096 bytes into attachments.
constexpr std::size_t kMaxBody = 4000;

bool is_alarm(Transition t) {
  return t == Transition::power_lost || t == Transition::contact_lost ||
         t == Transition::battery_low;
}

std::string_view tag_of(Transition t) {
  switch (t) {
    case Transition::power_lost:
    case Transition::contact_lost: return "warning";
    case Transition::power_back:
    case Transition::dag_back: return "white_check_mark";
    case Transition::battery_low: return "battery";
  }
  return "warning";
}

// `text` cut to at most `limit` bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string text, std::size_t limit) {
  if (text.size() <= limit) return text;
  std::size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  text.resize(end);
  text += "\n...";
  return text;
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

}  // namespace

std::vector<std::pair<std::string, std::string>> ntfy_headers(const Notice& notice) {
  std::vector<std::pair<std::string, std::string>> headers;
  headers.emplace_back("Title", mime::http_header_text(notice_subject(notice)));
  const bool alarm = std::any_of(notice.items.begin(), notice.items.end(),
                                 [](const Item& i) { return is_alarm(i.transition); });
  headers.emplace_back("Priority", alarm ? "high" : "default");
  std::vector<std::string_view> tags;
  for (const auto& item : notice.items) {
    const auto tag = tag_of(item.transition);
    if (std::find(tags.begin(), tags.end(), tag) == tags.end()) tags.push_back(tag);
  }
  if (!tags.empty()) {
    std::string joined;
    for (const auto tag : tags) {
      if (!joined.empty()) joined += ',';
      joined += tag;
    }
    headers.emplace_back("Tags", joined);
  }
  if (!notice.dashboard_url.empty() && !validate::url_error(notice.dashboard_url)) {
    headers.emplace_back("Click", notice.dashboard_url);
  }
  return headers;
}

struct NtfyChannel::Impl {
  detail::HandlePool handles;
};

NtfyChannel::NtfyChannel(HttpOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

NtfyChannel::~NtfyChannel() = default;

Delivery NtfyChannel::deliver(const store::NotificationTarget& target, const Notice& notice) {
  if (target.kind != store::TargetKind::ntfy) {
    return Unexpected{DeliveryError{true, "not an ntfy target"}};
  }
  if (auto why = validate::url_error(target.address)) {
    return Unexpected{DeliveryError{true, "the ntfy topic URL is not valid: " + *why}};
  }
  detail::HttpPost request;
  request.url = target.address;
  request.body = cut_utf8(notice_message(notice), kMaxBody);
  request.headers.emplace_back("Content-Type: text/plain; charset=utf-8");
  for (const auto& [name, value] : ntfy_headers(notice)) {
    request.headers.push_back(fmt::format("{}: {}", name, value));
  }
  if (target.secret && !target.secret->empty()) {
    if (has_control(*target.secret)) {
      return Unexpected{DeliveryError{true, "the ntfy access token contains a control character"}};
    }
    request.headers.push_back("Authorization: Bearer " + *target.secret);
  }
  const auto handle = impl_->handles.acquire();
  return detail::http_post(handle.get(), options_, request);
}

}  // namespace dag::notify
