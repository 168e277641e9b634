#include "dag/shadow/desired.hpp"

#include "dag/protocol/shadow.hpp"

namespace dag::shadow {

store::StoreResult<void> write_desired(store::Transaction& tx, std::string_view device_id,
                                       const nlohmann::json& desired_patch, std::int64_t now_ms) {
  if (!desired_patch.is_object()) {
    return store::fail(store::StoreErrc::invalid_argument, "desired state must be an object");
  }
  if (desired_patch.empty()) return {};
  if (auto device = tx.get_device(device_id); !device) {
    return Unexpected<store::StoreError>{device.error()};
  }
  auto stored = tx.get_shadow(device_id);
  if (!stored) return Unexpected<store::StoreError>{stored.error()};
  std::optional<protocol::ShadowDocument> current;
  if (*stored) {
    auto doc = protocol::shadow_from_json((*stored)->document);
    if (!doc) {
      return store::fail(store::StoreErrc::corrupt,
                         "stored shadow of " + std::string(device_id) + ": " + doc.error().message);
    }
    current = *std::move(doc);
  }
  const nlohmann::json request = {{"state", {{"desired", desired_patch}}}};
  auto result = protocol::update(current ? &*current : nullptr, request.dump(), now_ms / 1000);
  if (!result) {
    return store::fail(store::StoreErrc::invalid_argument,
                       "desired state refused: " + result.error().message);
  }
  auto put = tx.put_shadow(device_id, protocol::shadow_to_json(result->document),
                           *stored ? (*stored)->revision : 0);
  if (!put) return Unexpected<store::StoreError>{put.error()};
  auto timer = tx.schedule_timer(
      {std::string(kShadowDeltaTimer), std::string(device_id), now_ms, std::string()});
  if (!timer) return Unexpected<store::StoreError>{timer.error()};
  return {};
}

}  // namespace dag::shadow
