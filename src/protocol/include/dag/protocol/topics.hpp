// MQTT topic names of the device–cloud contract (see docs/protocol.md), as typed values.
//
// Every topic we publish or accept is built here and parsed here, so that a topic
// string never has to be assembled or split anywhere else. Parsing is strict: a topic
// with an extra or missing level, an empty level, a named shadow, or an id outside
// [A-Za-z0-9_.:-]{1,128} is not ours and yields std::nullopt.
//
// Thread-safety: pure functions over values; no shared state. Nothing here blocks or
// throws (apart from std::bad_alloc when building strings).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dag/protocol/vocabulary.hpp"

namespace dag::protocol {

/// Longest device id (AWS thing names are at most 128 bytes).
inline constexpr std::size_t kMaxDeviceIdLength = 128;

/// True for 1–128 characters of [A-Za-z0-9_.:-]: the AWS thing-name alphabet, which can
/// never contain an MQTT separator or wildcard ('/', '+', '#') nor a '$'.
bool is_valid_device_id(std::string_view id) noexcept;

/// The three shadow operations. `remove` is the shadow's "delete".
enum class ShadowOp {
  update,
  get,
  remove,
};

/// Which reply of a shadow operation a response topic carries.
enum class ShadowReply {
  accepted,   ///< .../{op}/accepted
  rejected,   ///< .../{op}/rejected
  delta,      ///< .../update/delta (update only)
  documents,  ///< .../update/documents (update only)
};

/// `$aws/things/{thing}/shadow/{update|get|delete}`: a request to the shadow service.
struct ShadowRequestTopic {
  std::string thing;
  ShadowOp op{ShadowOp::update};
  bool operator==(const ShadowRequestTopic&) const = default;
};

/// `$aws/things/{thing}/shadow/{op}/{reply}`: a reply of the shadow service.
/// delta and documents exist only for ShadowOp::update.
struct ShadowResponseTopic {
  std::string thing;
  ShadowOp op{ShadowOp::update};
  ShadowReply reply{ShadowReply::accepted};
  bool operator==(const ShadowResponseTopic&) const = default;
};

/// `$aws/events/presence/{connected|disconnected}/{clientId}`: broker lifecycle events.
struct LifecycleTopic {
  Connection event{Connection::connected};
  std::string client_id;
  bool operator==(const LifecycleTopic&) const = default;
};

/// `dags/{device}/status/request`: the cloud asks a dag to republish its state.
struct StatusRequestTopic {
  std::string device;
  bool operator==(const StatusRequestTopic&) const = default;
};

/// `dags/{device}/presence`: the dag's retained birth ("connected") and last-will
/// ("disconnected") message.
struct PresenceTopic {
  std::string device;
  bool operator==(const PresenceTopic&) const = default;
};

/// Any topic of the contract.
using Topic = std::variant<ShadowRequestTopic, ShadowResponseTopic, LifecycleTopic,
                           StatusRequestTopic, PresenceTopic>;

/// Parses a topic name (not a filter). std::nullopt when it is not exactly one of ours.
std::optional<Topic> parse_topic(std::string_view topic);

/// Formats a topic. Precondition: the ids satisfy is_valid_device_id and delta/documents
/// are paired with ShadowOp::update (checked by assert in debug builds); then
/// parse_topic(format_topic(t)) == t.
std::string format_topic(const Topic& topic);

/// Shorthands for format_topic.
std::string shadow_topic(std::string_view thing, ShadowOp op);
std::string shadow_topic(std::string_view thing, ShadowOp op, ShadowReply reply);
std::string lifecycle_topic(Connection event, std::string_view client_id);
std::string status_request_topic(std::string_view device);
std::string presence_topic(std::string_view device);

/// Topic level of an operation: "update", "get", "delete".
std::string_view to_string(ShadowOp op) noexcept;
/// Topic level of a reply: "accepted", "rejected", "delta", "documents".
std::string_view to_string(ShadowReply reply) noexcept;

/// Subscription filters of the cloud service.
namespace filters {
inline constexpr std::string_view kShadowUpdate = "$aws/things/+/shadow/update";
inline constexpr std::string_view kShadowGet = "$aws/things/+/shadow/get";
inline constexpr std::string_view kShadowDelete = "$aws/things/+/shadow/delete";
inline constexpr std::string_view kPresence = "dags/+/presence";
inline constexpr std::string_view kLifecycle = "$aws/events/presence/+/+";
}  // namespace filters

/// Every filter the cloud subscribes to.
inline constexpr std::array<std::string_view, 5> kCloudSubscriptions{
    filters::kShadowUpdate, filters::kShadowGet, filters::kShadowDelete, filters::kPresence,
    filters::kLifecycle};

/// The topics a dag subscribes to: its own update accepted/rejected/delta, get
/// accepted/rejected, delete accepted/rejected and status request. Precondition: valid id.
std::vector<std::string> device_subscriptions(std::string_view device);

/// MQTT 3.1.1/5 matching of a topic name against a filter with '+' and '#'. As the spec
/// requires, a filter starting with a wildcard does not match a topic starting with '$'.
/// A malformed filter ('#' not last, wildcard sharing a level) matches nothing.
bool topic_matches(std::string_view filter, std::string_view topic) noexcept;

}  // namespace dag::protocol
