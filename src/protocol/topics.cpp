#include "dag/protocol/topics.hpp"

#include <algorithm>
#include <cassert>

namespace dag::protocol {

namespace {

constexpr std::string_view kThingsPrefix = "$aws/things/";
constexpr std::string_view kPresencePrefix = "$aws/events/presence/";
constexpr std::string_view kDagsPrefix = "dags/";

// Splits `text` at '/' into at most N levels; returns the count, or N + 1 when there are
// more (so callers can reject extra levels without allocating).
template <std::size_t N>
std::size_t split_levels(std::string_view text, std::array<std::string_view, N>& out) {
  std::size_t count = 0;
  while (true) {
    std::size_t slash = text.find('/');
    if (count == N) return N + 1;
    out[count++] = text.substr(0, slash);
    if (slash == std::string_view::npos) return count;
    text.remove_prefix(slash + 1);
  }
}

std::optional<ShadowOp> parse_op(std::string_view level) {
  if (level == "update") return ShadowOp::update;
  if (level == "get") return ShadowOp::get;
  if (level == "delete") return ShadowOp::remove;
  return std::nullopt;
}

std::optional<ShadowReply> parse_reply(std::string_view level) {
  if (level == "accepted") return ShadowReply::accepted;
  if (level == "rejected") return ShadowReply::rejected;
  if (level == "delta") return ShadowReply::delta;
  if (level == "documents") return ShadowReply::documents;
  return std::nullopt;
}

bool reply_allowed(ShadowOp op, ShadowReply reply) {
  return op == ShadowOp::update || reply == ShadowReply::accepted || reply == ShadowReply::rejected;
}

// {thing}/shadow/{op}[/{reply}]
std::optional<Topic> parse_shadow(std::string_view rest) {
  std::array<std::string_view, 4> levels;
  std::size_t count = split_levels(rest, levels);
  if (count < 3 || count > 4) return std::nullopt;
  if (!is_valid_device_id(levels[0]) || levels[1] != "shadow") return std::nullopt;
  auto op = parse_op(levels[2]);
  if (!op) return std::nullopt;
  if (count == 3) return ShadowRequestTopic{std::string(levels[0]), *op};
  auto reply = parse_reply(levels[3]);
  if (!reply || !reply_allowed(*op, *reply)) return std::nullopt;
  return ShadowResponseTopic{std::string(levels[0]), *op, *reply};
}

// {connected|disconnected}/{clientId}
std::optional<Topic> parse_lifecycle(std::string_view rest) {
  std::array<std::string_view, 2> levels;
  if (split_levels(rest, levels) != 2) return std::nullopt;
  auto event = parse_connection(levels[0]);
  if (!event || !is_valid_device_id(levels[1])) return std::nullopt;
  return LifecycleTopic{*event, std::string(levels[1])};
}

// {device}/presence | {device}/status/request
std::optional<Topic> parse_dags(std::string_view rest) {
  std::array<std::string_view, 3> levels;
  std::size_t count = split_levels(rest, levels);
  if (count < 2 || count > 3 || !is_valid_device_id(levels[0])) return std::nullopt;
  if (count == 2 && levels[1] == "presence") return PresenceTopic{std::string(levels[0])};
  if (count == 3 && levels[1] == "status" && levels[2] == "request") {
    return StatusRequestTopic{std::string(levels[0])};
  }
  return std::nullopt;
}

std::string join(std::initializer_list<std::string_view> parts) {
  std::size_t size = 0;
  for (auto part : parts) size += part.size();
  std::string out;
  out.reserve(size);
  for (auto part : parts) out.append(part);
  return out;
}

}  // namespace

bool is_valid_device_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > kMaxDeviceIdLength) return false;
  return std::ranges::all_of(id, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == ':' || c == '-';
  });
}

std::string_view to_string(ShadowOp op) noexcept {
  switch (op) {
    case ShadowOp::update: return "update";
    case ShadowOp::get: return "get";
    case ShadowOp::remove: return "delete";
  }
  return "update";
}

std::string_view to_string(ShadowReply reply) noexcept {
  switch (reply) {
    case ShadowReply::accepted: return "accepted";
    case ShadowReply::rejected: return "rejected";
    case ShadowReply::delta: return "delta";
    case ShadowReply::documents: return "documents";
  }
  return "accepted";
}

std::optional<Topic> parse_topic(std::string_view topic) {
  if (topic.starts_with(kThingsPrefix)) return parse_shadow(topic.substr(kThingsPrefix.size()));
  if (topic.starts_with(kPresencePrefix)) {
    return parse_lifecycle(topic.substr(kPresencePrefix.size()));
  }
  if (topic.starts_with(kDagsPrefix)) return parse_dags(topic.substr(kDagsPrefix.size()));
  return std::nullopt;
}

std::string shadow_topic(std::string_view thing, ShadowOp op) {
  assert(is_valid_device_id(thing));
  return join({kThingsPrefix, thing, "/shadow/", to_string(op)});
}

std::string shadow_topic(std::string_view thing, ShadowOp op, ShadowReply reply) {
  assert(is_valid_device_id(thing));
  assert(reply_allowed(op, reply));
  return join({kThingsPrefix, thing, "/shadow/", to_string(op), "/", to_string(reply)});
}

std::string lifecycle_topic(Connection event, std::string_view client_id) {
  assert(is_valid_device_id(client_id));
  return join({kPresencePrefix, to_string(event), "/", client_id});
}

std::string status_request_topic(std::string_view device) {
  assert(is_valid_device_id(device));
  return join({kDagsPrefix, device, "/status/request"});
}

std::string presence_topic(std::string_view device) {
  assert(is_valid_device_id(device));
  return join({kDagsPrefix, device, "/presence"});
}

std::string format_topic(const Topic& topic) {
  struct Formatter {
    std::string operator()(const ShadowRequestTopic& t) const {
      return shadow_topic(t.thing, t.op);
    }
    std::string operator()(const ShadowResponseTopic& t) const {
      return shadow_topic(t.thing, t.op, t.reply);
    }
    std::string operator()(const LifecycleTopic& t) const {
      return lifecycle_topic(t.event, t.client_id);
    }
    std::string operator()(const StatusRequestTopic& t) const {
      return status_request_topic(t.device);
    }
    std::string operator()(const PresenceTopic& t) const { return presence_topic(t.device); }
  };
  return std::visit(Formatter{}, topic);
}

std::vector<std::string> device_subscriptions(std::string_view device) {
  return {
      shadow_topic(device, ShadowOp::update, ShadowReply::accepted),
      shadow_topic(device, ShadowOp::update, ShadowReply::rejected),
      shadow_topic(device, ShadowOp::update, ShadowReply::delta),
      shadow_topic(device, ShadowOp::get, ShadowReply::accepted),
      shadow_topic(device, ShadowOp::get, ShadowReply::rejected),
      shadow_topic(device, ShadowOp::remove, ShadowReply::accepted),
      shadow_topic(device, ShadowOp::remove, ShadowReply::rejected),
      status_request_topic(device),
  };
}

bool topic_matches(std::string_view filter, std::string_view topic) noexcept {
  if (filter.empty() || topic.empty()) return false;
  // MQTT-4.7.2-1: wildcards at the first level never match '$' topics.
  if (topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) return false;

  while (true) {
    std::size_t fslash = filter.find('/');
    std::string_view flevel = filter.substr(0, fslash);
    if (flevel == "#") return fslash == std::string_view::npos;  // '#' must be last
    if (flevel.find_first_of("+#") != std::string_view::npos && flevel != "+") return false;

    std::size_t tslash = topic.find('/');
    std::string_view tlevel = topic.substr(0, tslash);
    if (flevel != "+" && flevel != tlevel) return false;

    bool filter_done = fslash == std::string_view::npos;
    bool topic_done = tslash == std::string_view::npos;
    if (filter_done || topic_done) {
      if (filter_done && topic_done) return true;
      // "a/#" also matches "a": the rest of the filter is exactly "/#".
      return topic_done && filter.substr(fslash) == "/#";
    }
    filter.remove_prefix(fslash + 1);
    topic.remove_prefix(tslash + 1);
  }
}

}  // namespace dag::protocol
