#include "dag/api/json_io.hpp"

#include <date/date.h>

#include <charconv>
#include <limits>

#include "dag/notify/render.hpp"
#include "dag/protocol/vocabulary.hpp"

namespace dag::api {

using nlohmann::json;

json time_json(std::optional<std::int64_t> epoch_ms) {
  if (!epoch_ms) return nullptr;
  return notify::iso8601_utc(*epoch_ms);
}

namespace {

template <class E>
json name_or_null(const std::optional<E>& value) {
  if (!value) return nullptr;
  return std::string(to_string(*value));
}

json optional_string(const std::optional<std::string>& value) {
  if (!value) return nullptr;
  return *value;
}

}  // namespace

namespace {

// "2026-11-27T05:00:00.123Z" without a format parser: the device list formats four per
// device, and this is the API's hottest path.
void append_time(std::string& out, std::optional<std::int64_t> epoch_ms) {
  if (!epoch_ms) {
    out += "null";
    return;
  }
  out += '"';
  out += notify::iso8601_utc(*epoch_ms);
  out += '"';
}

// A JSON string; invalid UTF-8 is replaced rather than thrown on.
void append_string(std::string& out, std::string_view text) {
  bool plain = true;
  for (const unsigned char c : text) {
    if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out += '"';
    out += text;
    out += '"';
    return;
  }
  out += dump(json(std::string(text)));
}

template <class E>
void append_name(std::string& out, const std::optional<E>& value) {
  if (!value) {
    out += "null";
    return;
  }
  append_string(out, to_string(*value));
}

}  // namespace

void append_device_json(std::string& out, const store::Device& device) {
  const auto& s = device.state;
  out += R"({"deviceId":)";
  append_string(out, device.id);
  out += R"(,"name":)";
  append_string(out, device.name);
  out += R"(,"state":{"power":)";
  append_name(out, s.power);
  out += R"(,"updated":)";
  append_time(out, s.power_since_ms);
  out += R"(},"connection":{"status":)";
  append_name(out, s.connection);
  out += R"(,"updated":)";
  append_time(out, s.connection_since_ms);
  out += R"(},"userState":{"state":)";
  if (s.user_state) {
    append_string(out, protocol::to_string(*s.user_state));
    out += R"(,"title":)";
    append_string(out, protocol::title(*s.user_state));
    out += R"(,"explanation":)";
    append_string(out, protocol::explanation(*s.user_state));
  } else {
    out += R"(null,"title":null,"explanation":null)";
  }
  out += R"(},"battery":)";
  // The store keeps it as a compact JSON object (it checks json_valid and the '{').
  if (s.battery_json && s.battery_json->size() >= 2 && s.battery_json->front() == '{' &&
      s.battery_json->back() == '}') {
    out += *s.battery_json;
  } else {
    out += "null";
  }
  out += R"(,"lastSeen":)";
  append_time(out, s.last_seen_ms);
  out += R"(,"provisionedAt":)";
  append_time(out, device.provisioned_at_ms);
  out += '}';
}

std::string device_text(const store::Device& device) {
  std::string out;
  out.reserve(512);
  append_device_json(out, device);
  return out;
}

std::string devices_text(const std::vector<store::Device>& devices) {
  std::string out;
  out.reserve(devices.size() * 480 + 2);
  out += '[';
  for (std::size_t i = 0; i < devices.size(); ++i) {
    if (i != 0) out += ',';
    append_device_json(out, devices[i]);
  }
  out += ']';
  return out;
}

json device_json(const store::Device& device) {
  return json::parse(device_text(device), nullptr, false);
}

json event_json(const store::StoredEvent& event) {
  const auto& e = event.event;
  return {
      {"id", std::to_string(event.id)},
      {"kind", store::to_string(e.kind)},
      {"observedAt", time_json(e.observed_at_ms)},
      {"receivedAt", time_json(e.received_at_ms)},
      {"seq", e.seq ? json(*e.seq) : json(nullptr)},
      {"clockFallback", e.clock_fallback},
      {"userState", name_or_null(e.user_state_after)},
  };
}

json battery_reading_json(const store::BatteryReading& reading) {
  const auto or_null = [](const auto& value) { return value ? json(*value) : json(nullptr); };
  return {
      {"at", time_json(reading.at_ms)},           {"percent", or_null(reading.percent)},
      {"volts", or_null(reading.volts)},          {"minutesLeft", or_null(reading.minutes_left)},
      {"onBattery", or_null(reading.on_battery)},
  };
}

json target_json(const store::NotificationTarget& t) {
  return {
      {"targetId", t.id},
      {"kind", store::to_string(t.kind)},
      {"address", t.address},
      {"verified", t.verified},
      {"verificationSentAt", time_json(t.verification_sent_at_ms)},
      {"createdAt", time_json(t.created_at_ms)},
      {"hasSecret", t.secret.has_value() && !t.secret->empty()},
      {"bodyTemplate", optional_string(t.body_template)},
      {"contentType", optional_string(t.content_type)},
      {"health",
       {{"failureCount", t.failure_count},
        {"lastError", optional_string(t.last_error)},
        {"lastErrorAt", time_json(t.last_error_at_ms)},
        {"lastSuccessAt", time_json(t.last_success_at_ms)}}},
  };
}

json preferences_json(const store::AccountSettings& s) {
  return {
      {"powerOffGraceSeconds", s.power_off_grace_s},
      {"disconnectGraceSeconds", s.disconnect_grace_s},
      {"lowBatteryPercent", s.low_battery_percent},
      {"timeZone", s.time_zone},
      {"notify",
       {{"powerLost", s.notify_power_lost},
        {"powerBack", s.notify_power_back},
        {"contactLost", s.notify_contact_lost},
        {"dagBack", s.notify_dag_back},
        {"batteryLow", s.notify_battery_low}}},
  };
}

json account_json(const store::Account& account, const json& emails) {
  return {{"accountId", account.id},
          {"username", account.username},
          {"emails", emails},
          {"createdAt", time_json(account.created_at_ms)}};
}

json uptime_json(std::string_view device_id, int days, std::int64_t from_ms, std::int64_t until_ms,
                 const Uptime& u) {
  json availability = nullptr;
  if (u.availability_percent) availability = *u.availability_percent;
  return {{"deviceId", device_id},
          {"days", days},
          {"from", time_json(from_ms)},
          {"until", time_json(until_ms)},
          {"monitoredMs", u.monitored_ms},
          {"availability", availability},
          {"outageCount", u.outage_count},
          {"totalOutageMs", u.total_outage_ms},
          {"longestOutageMs", u.longest_outage_ms},
          {"ongoing", u.ongoing}};
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

bool all_digits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// Reads exactly `n` digits at `pos`.
bool digits(std::string_view s, std::size_t& pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  out = v;
  return true;
}

bool expect(std::string_view s, std::size_t& pos, char c) {
  if (pos >= s.size() || (s[pos] != c && !(c == 'T' && s[pos] == 't'))) return false;
  ++pos;
  return true;
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  std::size_t p = 0;
  int y = 0;
  int mo = 0;
  int d = 0;
  int h = 0;
  int mi = 0;
  int sec = 0;
  if (!digits(s, p, 4, y) || !expect(s, p, '-') || !digits(s, p, 2, mo) || !expect(s, p, '-') ||
      !digits(s, p, 2, d) || !expect(s, p, 'T') || !digits(s, p, 2, h) || !expect(s, p, ':') ||
      !digits(s, p, 2, mi) || !expect(s, p, ':') || !digits(s, p, 2, sec)) {
    return std::nullopt;
  }
  int ms = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int n = 0;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      if (n < 3) ms = ms * 10 + (s[p] - '0');
      ++n;
      ++p;
    }
    if (n == 0) return std::nullopt;
    for (; n < 3; ++n) ms *= 10;
  }
  int offset_min = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    const int sign = s[p] == '-' ? -1 : 1;
    ++p;
    int oh = 0;
    int om = 0;
    if (!digits(s, p, 2, oh) || !expect(s, p, ':') || !digits(s, p, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_min = sign * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (p != s.size() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  const date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                                 date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  const auto days = date::sys_days{ymd}.time_since_epoch().count();
  const std::int64_t seconds = std::int64_t{days} * 86'400 + std::int64_t{h} * 3600 +
                               std::int64_t{mi} * 60 + sec - std::int64_t{offset_min} * 60;
  return seconds * 1000 + ms;
}

}  // namespace

ApiResult<std::int64_t> parse_time(std::string_view text, std::string_view field) {
  if (all_digits(text)) return parse_int(text, field, 0, std::int64_t{253'402'300'799'999});
  if (auto t = parse_rfc3339(text)) return *t;
  return fail(ApiErrc::bad_request,
              std::string(field) + ": expected an RFC 3339 time or epoch milliseconds");
}

ApiResult<std::int64_t> parse_int(std::string_view text, std::string_view field, std::int64_t min,
                                  std::int64_t max) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || value < min || value > max) {
    return fail(ApiErrc::bad_request, std::string(field) + ": expected an integer from " +
                                          std::to_string(min) + " to " + std::to_string(max));
  }
  return value;
}

ApiResult<json> parse_object(std::string_view body) {
  json value = json::parse(body, nullptr, false);
  if (value.is_discarded()) return fail(ApiErrc::bad_request, "the body is not valid JSON");
  if (!value.is_object()) return fail(ApiErrc::bad_request, "the body must be a JSON object");
  return value;
}

namespace {

ApiResult<void> read_int(const json& obj, const char* key, int min, int max, int& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_number_integer() || it->get<std::int64_t>() < min || it->get<std::int64_t>() > max) {
    return fail(ApiErrc::bad_request, std::string(key) + ": expected an integer from " +
                                          std::to_string(min) + " to " + std::to_string(max));
  }
  out = it->get<int>();
  return {};
}

ApiResult<void> read_bool(const json& obj, const char* key, bool& out) {
  auto it = obj.find(key);
  if (it == obj.end()) return {};
  if (!it->is_boolean())
    return fail(ApiErrc::bad_request, std::string(key) + ": expected a boolean");
  out = it->get<bool>();
  return {};
}

}  // namespace

ApiResult<void> apply_preferences(const json& patch, store::AccountSettings& s) {
  auto r = read_int(patch, "powerOffGraceSeconds", 0, store::kMaxGraceSeconds, s.power_off_grace_s);
  if (r)
    r = read_int(patch, "disconnectGraceSeconds", 0, store::kMaxGraceSeconds, s.disconnect_grace_s);
  if (r) r = read_int(patch, "lowBatteryPercent", 0, 100, s.low_battery_percent);
  if (!r) return r;
  if (auto it = patch.find("timeZone"); it != patch.end()) {
    if (!it->is_string()) return fail(ApiErrc::bad_request, "timeZone: expected a string");
    const auto& zone = it->get_ref<const std::string&>();
    if (!notify::is_known_time_zone(zone)) {
      return fail(ApiErrc::bad_request, "timeZone: not a time zone of the tz database");
    }
    s.time_zone = zone;
  }
  if (auto it = patch.find("notify"); it != patch.end()) {
    if (!it->is_object()) return fail(ApiErrc::bad_request, "notify: expected an object");
    auto n = read_bool(*it, "powerLost", s.notify_power_lost);
    if (n) n = read_bool(*it, "powerBack", s.notify_power_back);
    if (n) n = read_bool(*it, "contactLost", s.notify_contact_lost);
    if (n) n = read_bool(*it, "dagBack", s.notify_dag_back);
    if (n) n = read_bool(*it, "batteryLow", s.notify_battery_low);
    if (!n) return n;
  }
  return {};
}

}  // namespace dag::api
