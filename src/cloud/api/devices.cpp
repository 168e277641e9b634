// Handlers of the device routes: one device, rename, its history, its uptime, its battery
// levels over time.
#include <algorithm>

#include "dag/api/api.hpp"
#include "dag/api/json_io.hpp"
#include "dag/api/uptime.hpp"
#include "dag/common/log.hpp"
#include "dag/common/validate.hpp"

#include "respond.hpp"
#include "route.hpp"

namespace dag::api {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxNameChars = 64;
constexpr int kMaxUptimeDays = 365;
// The uptime of a window reads at most this many events (a dag that flaps this much in
// a year has bigger problems; the answer then covers the newest part, see docs/api.md).
constexpr int kMaxUptimePages = 50;
constexpr std::int64_t kDayMs = 86'400'000;
// Battery readings: the dashboard's default window, and how many readings one answer holds
// (a week at one per 5 minutes is about 2,000; the maximum covers the 35 days kept).
constexpr std::int64_t kBatteryWindowMs = 7 * kDayMs;
constexpr int kBatteryLimit = 2000;
constexpr int kMaxBatteryLimit = 10'000;

}  // namespace

ApiResult<Response> Api::get_device(const Request& r, const Params& p) {
  auto device = own_device(r, p.get("deviceId"));
  if (!device) return Unexpected<ApiError>{device.error()};
  Response out;
  out.body = device_text(*device);
  return out;
}

ApiResult<Response> Api::patch_device(const Request& r, const Params& p) {
  auto device = own_device(r, p.get("deviceId"));
  if (!device) return Unexpected<ApiError>{device.error()};
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  auto it = body->find("name");
  if (it != body->end()) {
    if (!it->is_string()) return fail(ApiErrc::bad_request, "name: expected a string");
    const auto& name = it->get_ref<const std::string&>();
    if (auto why = validate::display_name_error(name, kMaxNameChars)) {
      return fail(ApiErrc::bad_request, "name: " + *why);
    }
    auto renamed =
        store::transact(store_, store::TxMode::read_write,
                        [&](store::Transaction& tx) -> store::StoreResult<store::Device> {
                          if (auto rn = tx.rename_device(device->id, name); !rn) {
                            return Unexpected<store::StoreError>{rn.error()};
                          }
                          return tx.get_device(device->id);
                        });
    if (!renamed) return Unexpected<ApiError>{store_failure(renamed.error(), "rename_device")};
    *device = std::move(renamed).value();
    publish_device(*device);
  }
  Response out;
  out.body = device_text(*device);
  return out;
}

ApiResult<Response> Api::list_events(const Request& r, const Params& p) {
  auto device = own_device(r, p.get("deviceId"));
  if (!device) return Unexpected<ApiError>{device.error()};
  store::EventQuery q;
  q.device_id = device->id;
  if (auto v = r.param("since")) {
    auto t = parse_time(*v, "since");
    if (!t) return Unexpected<ApiError>{t.error()};
    q.from_ms = *t;
  }
  if (auto v = r.param("until")) {
    auto t = parse_time(*v, "until");
    if (!t) return Unexpected<ApiError>{t.error()};
    q.until_ms = *t;
  }
  if (auto v = r.param("limit")) {
    auto n = parse_int(*v, "limit", 1, 1000);
    if (!n) return Unexpected<ApiError>{n.error()};
    q.limit = static_cast<int>(*n);
  }
  if (auto v = r.param("cursor")) {
    auto c = parse_int(*v, "cursor", 1, INT64_MAX);
    if (!c) return Unexpected<ApiError>{c.error()};
    q.before_id = *c;
  }
  auto page = store::transact(store_, store::TxMode::read_only,
                              [&](store::Transaction& tx) { return tx.list_events(q); });
  if (!page) return Unexpected<ApiError>{store_failure(page.error(), "list_events")};
  auto events = json::array();
  for (const auto& e : page->events) events.push_back(event_json(e));
  Response out;
  out.body = dump({{"events", std::move(events)},
                   {"nextCursor",
                    page->next_cursor ? json(std::to_string(*page->next_cursor)) : json(nullptr)}});
  return out;
}

ApiResult<Response> Api::list_battery(const Request& r, const Params& p) {
  auto device = own_device(r, p.get("deviceId"));
  if (!device) return Unexpected<ApiError>{device.error()};
  std::int64_t until = now_ms();
  std::optional<std::int64_t> since;
  if (auto v = r.param("since")) {
    auto t = parse_time(*v, "since");
    if (!t) return Unexpected<ApiError>{t.error()};
    since = *t;
  }
  if (auto v = r.param("until")) {
    auto t = parse_time(*v, "until");
    if (!t) return Unexpected<ApiError>{t.error()};
    until = *t;
  }
  // The default window ends at `until`, so ?until= alone pages back by weeks.
  const std::int64_t from = since.value_or(std::max<std::int64_t>(0, until - kBatteryWindowMs));
  int limit = kBatteryLimit;
  if (auto v = r.param("limit")) {
    auto n = parse_int(*v, "limit", 1, kMaxBatteryLimit);
    if (!n) return Unexpected<ApiError>{n.error()};
    limit = static_cast<int>(*n);
  }
  auto readings = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_battery(device->id, from, until, limit);
  });
  if (!readings) return Unexpected<ApiError>{store_failure(readings.error(), "list_battery")};
  auto list = json::array();
  for (const auto& reading : *readings) list.push_back(battery_reading_json(reading));
  Response out;
  out.body = dump({{"deviceId", device->id}, {"readings", std::move(list)}});
  return out;
}

namespace {

// The power changes of a window, and the power at its start: the newest power event
// observed before it. Reads the history newest first, page by page.
store::StoreResult<std::pair<std::optional<bool>, std::vector<PowerChange>>> power_history(
    store::Transaction& tx, const std::string& device_id, std::int64_t from_ms,
    std::int64_t until_ms) {
  std::vector<PowerChange> changes;
  std::optional<bool> at_start;
  store::EventQuery q;
  q.device_id = device_id;
  q.until_ms = until_ms;
  q.limit = 1000;
  for (int page_no = 0; page_no < kMaxUptimePages; ++page_no) {
    auto page = tx.list_events(q);
    if (!page) return Unexpected<store::StoreError>{page.error()};
    for (const auto& e : page->events) {
      if (!store::is_power_event(e.event.kind)) continue;
      const bool on = e.event.kind == store::EventKind::power_on;
      if (e.event.observed_at_ms >= from_ms) {
        changes.push_back({e.event.observed_at_ms, on});
      } else if (!at_start) {
        // Ids follow receipt, not observation: an event reported late may sit among older
        // ones; the first one before the window (newest received) is the best estimate.
        at_start = on;
      }
    }
    if (at_start || !page->next_cursor) break;
    q.before_id = page->next_cursor;
  }
  // Newest first from the store; compute_uptime wants input order = oldest first for ties.
  std::reverse(changes.begin(), changes.end());
  return std::pair{at_start, std::move(changes)};
}

}  // namespace

ApiResult<Response> Api::get_uptime(const Request& r, const Params& p) {
  auto device = own_device(r, p.get("deviceId"));
  if (!device) return Unexpected<ApiError>{device.error()};
  int days = 30;
  if (auto v = r.param("days")) {
    auto n = parse_int(*v, "days", 1, kMaxUptimeDays);
    if (!n) return Unexpected<ApiError>{n.error()};
    days = static_cast<int>(*n);
  }
  const std::int64_t until = now_ms();
  const std::int64_t from = until - days * kDayMs;
  auto history = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return power_history(tx, device->id, from, until);
  });
  if (!history) return Unexpected<ApiError>{store_failure(history.error(), "list_events")};
  const auto uptime = compute_uptime(history->first, std::move(history->second), from, until);
  Response out;
  out.body = dump(uptime_json(device->id, days, from, until, uptime));
  return out;
}

}  // namespace dag::api
