#include "dag/presence/presence.hpp"

namespace dag::presence {
namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

}  // namespace

Result<News> from_presence(const protocol::PresenceTopic& topic, std::string_view payload,
                           bool retained) {
  const auto word = trim(payload);
  News news{topic.device, protocol::Connection::connected, std::nullopt, retained};
  if (word == "connected") return news;
  if (word == "disconnected") {
    news.connection = protocol::Connection::disconnected;
    return news;
  }
  return fail(Errc::parse, "presence payload is neither 'connected' nor 'disconnected'");
}

Result<News> from_lifecycle(const protocol::LifecycleTopic& topic, std::string_view payload) {
  auto event = protocol::parse_lifecycle_event(payload);
  if (!event) return Unexpected<Error>{event.error()};
  if (event->client_id != topic.client_id) {
    return fail(Errc::parse, "lifecycle clientId differs from the topic's");
  }
  if (event->event_type != topic.event) {
    return fail(Errc::parse, "lifecycle eventType differs from the topic's");
  }
  if (event->version_number > kMaxVersionNumber) {
    return fail(Errc::parse, "lifecycle versionNumber out of range");
  }
  const bool gone = event->event_type == protocol::Connection::disconnected;
  return News{std::move(event->client_id), event->event_type,
              event->version_number * 2 + (gone ? 1 : 0), false};
}

bool is_news(const News& news, std::optional<std::int64_t> last_order) noexcept {
  if (!news.order || !last_order) return true;
  return *news.order > *last_order;
}

}  // namespace dag::presence
