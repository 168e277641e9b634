// Desired state written by the operator (dagctl's fleet configuration) rather than by an
// MQTT update: the shadow is changed in the caller's transaction, and a `shadow_delta`
// timer due at once tells dagd (any replica, also one started later) to publish the
// resulting /update/delta to the dag. A dag that is offline gets the delta from the
// /get/accepted it asks for after connecting.
//
// Thread-safety: as the Transaction. Blocking: store I/O.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string_view>

#include "dag/store/store.hpp"

namespace dag::shadow {

/// Timer kind: publish the device's current delta (if any) as `/update/delta`.
inline constexpr std::string_view kShadowDeltaTimer = "shadow_delta";

/// Applies `{"state":{"desired": desired_patch}}` to the device's shadow with the protocol
/// engine (AWS semantics: objects merge, null deletes) and schedules the delta timer.
/// An empty patch changes nothing. Errors: not_found (device), invalid_argument (the engine
/// rejected the patch, e.g. too deep or too large; the message says why), conflict or
/// busy (another writer changed the shadow meanwhile: retry the transaction), others from
/// the store.
store::StoreResult<void> write_desired(store::Transaction& tx, std::string_view device_id,
                                       const nlohmann::json& desired_patch, std::int64_t now_ms);

}  // namespace dag::shadow
