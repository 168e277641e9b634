// The API's JSON shapes (docs/api.md "Shapes", docs/openapi.yaml) built from store
// records, and the parsing of the values clients send (times, bodies).
//
// Thread-safety: pure functions. Errors: ApiErrc::bad_request with a message naming the
// field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/api/error.hpp"
#include "dag/api/uptime.hpp"
#include "dag/store/records.hpp"

namespace dag::api {

/// RFC 3339 in UTC with milliseconds, or null.
nlohmann::json time_json(std::optional<std::int64_t> epoch_ms);

/// The Device shape as JSON text, written directly (the device list is the hottest path).
std::string device_text(const store::Device& device);
/// `[Device, ...]` as JSON text.
std::string devices_text(const std::vector<store::Device>& devices);
/// The Device shape as a value (device_text parsed; for tests and callers that edit it).
nlohmann::json device_json(const store::Device& device);
nlohmann::json event_json(const store::StoredEvent& event);
nlohmann::json battery_reading_json(const store::BatteryReading& reading);
nlohmann::json target_json(const store::NotificationTarget& target);
nlohmann::json preferences_json(const store::AccountSettings& settings);
/// `emails`: the addresses of the account's e-mail targets.
nlohmann::json account_json(const store::Account& account, const nlohmann::json& emails);
nlohmann::json uptime_json(std::string_view device_id, int days, std::int64_t from_ms,
                           std::int64_t until_ms, const Uptime& uptime);

/// Compact JSON text that never throws (invalid UTF-8 is replaced).
std::string dump(const nlohmann::json& value);

/// A time given in a query: epoch milliseconds (digits) or RFC 3339 with a `Z` or
/// `±hh:mm` offset and optional fractional seconds.
ApiResult<std::int64_t> parse_time(std::string_view text, std::string_view field);
/// A decimal integer in [min, max].
ApiResult<std::int64_t> parse_int(std::string_view text, std::string_view field, std::int64_t min,
                                  std::int64_t max);
/// A request body that must be a JSON object.
ApiResult<nlohmann::json> parse_object(std::string_view body);

/// Applies a Preferences patch (any subset) to `settings`. Errors: bad_request (a field of
/// the wrong type or out of range, an unknown time zone).
ApiResult<void> apply_preferences(const nlohmann::json& patch, store::AccountSettings& settings);

}  // namespace dag::api
