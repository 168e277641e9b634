#include "dag/api/api.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>

#include "dag/api/json_io.hpp"
#include "dag/common/log.hpp"
#include "dag/common/password.hpp"

#include "respond.hpp"
#include "route.hpp"

namespace dag::api {

std::optional<std::string_view> Request::header(std::string_view name) const {
  auto it = headers.find(name);
  if (it == headers.end()) return std::nullopt;
  return std::string_view(it->second);
}

std::optional<std::string_view> Request::param(std::string_view name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return std::string_view(it->second);
}

const std::vector<Api::Route>& Api::routes() {
  static const std::vector<Route> table{
      {"POST", "/v1/auth", &Api::login, Body::json},
      {"GET", "/v1/accounts/{accountId}", &Api::get_account},
      {"PATCH", "/v1/accounts/{accountId}", &Api::patch_account, Body::json},
      {"POST", "/v1/accounts/{accountId}/password", &Api::change_password, Body::json},
      {"GET", "/v1/accounts/{accountId}/preferences", &Api::get_preferences},
      {"PATCH", "/v1/accounts/{accountId}/preferences", &Api::patch_preferences, Body::json},
      {"GET", "/v1/accounts/{accountId}/devices", &Api::list_devices},
      {"GET", "/v1/accounts/{accountId}/targets", &Api::list_targets},
      {"POST", "/v1/accounts/{accountId}/targets", &Api::add_target, Body::json},
      {"DELETE", "/v1/accounts/{accountId}/targets/{targetId}", &Api::delete_target},
      {"POST", "/v1/accounts/{accountId}/targets/{targetId}/test", &Api::test_target},
      {"POST", "/v1/accounts/{accountId}/targets/{targetId}/verify", &Api::resend_verification},
      {"GET", "/v1/accounts/{accountId}/stream", &Api::stream_placeholder},
      {"GET", "/v1/devices/{deviceId}", &Api::get_device},
      {"PATCH", "/v1/devices/{deviceId}", &Api::patch_device, Body::json},
      {"GET", "/v1/devices/{deviceId}/events", &Api::list_events},
      {"GET", "/v1/devices/{deviceId}/uptime", &Api::get_uptime},
      {"GET", "/v1/devices/{deviceId}/battery", &Api::list_battery},
      {"GET", "/v1/verify", &Api::verify_link},
      {"GET", "/v1/openapi.yaml", &Api::openapi},
      {"GET", "/healthz", &Api::healthz},
      {"GET", "/readyz", &Api::readyz},
      {"GET", "/metrics", &Api::metrics},
  };
  return table;
}

Api::Api(store::Store& store, const Clock& clock, ApiOptions options, EventHub& hub, ApiHooks hooks)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      hub_(hub),
      hooks_(std::move(hooks)),
      tokens_(options_.jwt_secret, options_.token_ttl),
      limiter_(options_.login),
      dummy_hash_(password::hash("not a password of anybody").value_or("")) {}

std::int64_t Api::now_ms() const {
  return clock_.unix_ms();
}

std::string Api::route_of(std::string_view path) {
  const auto segments = split_path(path);
  std::string best;
  int best_literals = -1;
  for (const auto& route : routes()) {
    Params params;
    const int literals = match(route.pattern, segments, params);
    if (literals > best_literals) {
      best_literals = literals;
      best = std::string(route.pattern);
    }
  }
  return best;
}

std::string Api::allowed_methods(std::string_view path) {
  const auto segments = split_path(path);
  std::string allow;
  for (const auto& route : routes()) {
    Params ignored;
    if (match(route.pattern, segments, ignored) < 0) continue;
    if (!allow.empty()) allow += ", ";
    allow += route.method;
  }
  return allow;
}

Response Api::handle(const Request& request) {
  std::string route;
  auto result = dispatch(request, route);
  Response response;
  if (result) {
    response = std::move(result).value();
  } else {
    const auto& e = result.error();
    response.status = http_status(e.code);
    response.body = error_body(e);
    if (e.code == ApiErrc::unauthorized)
      response.headers.emplace_back("WWW-Authenticate", "Bearer");
    if (e.code == ApiErrc::method_not_allowed)
      response.headers.emplace_back("Allow", allowed_methods(request.path));
    if (e.code == ApiErrc::rate_limited) {
      response.headers.emplace_back("Retry-After", std::to_string(limiter_.retry_after_s()));
    }
  }
  response.route = std::move(route);
  for (auto& h : cors_headers(request)) response.headers.push_back(std::move(h));
  return response;
}

ApiResult<Response> Api::dispatch(const Request& request, std::string& route_name) {
  const auto segments = split_path(request.path);
  const Route* found = nullptr;
  int found_literals = -1;
  Params params;
  std::string allow;
  for (const auto& route : routes()) {
    Params candidate;
    const int literals = match(route.pattern, segments, candidate);
    if (literals < 0) continue;
    if (route.method != request.method) {
      if (!allow.empty()) allow += ", ";
      allow += route.method;
      continue;
    }
    if (literals > found_literals) {
      found = &route;
      found_literals = literals;
      params = std::move(candidate);
    }
  }
  if (request.method == "OPTIONS" && !allow.empty()) {
    // A CORS preflight (or a client asking): the headers are added by handle().
    Response r;
    r.status = 204;
    r.content_type.clear();
    r.headers.emplace_back("Allow", allow);
    route_name = route_of(request.path);
    return r;
  }
  if (found == nullptr) {
    if (!allow.empty()) {
      route_name = route_of(request.path);
      return fail(ApiErrc::method_not_allowed, "method not allowed here; allowed: " + allow);
    }
    return fail(ApiErrc::not_found, "no such route");
  }
  route_name = std::string(found->pattern);
  if (request.body.size() > options_.max_body) {
    return fail(ApiErrc::payload_too_large,
                "the body is over " + std::to_string(options_.max_body) + " bytes");
  }
  if (found->body == Body::json) {
    auto type = request.header("content-type").value_or("");
    auto base = type.substr(0, type.find(';'));
    while (!base.empty() && base.back() == ' ') base.remove_suffix(1);
    std::string lower(base);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower != "application/json") {
      return fail(ApiErrc::unsupported_media_type, "the body must be application/json");
    }
  }
  return (this->*(found->handler))(request, params);
}

std::vector<std::pair<std::string, std::string>> Api::cors_headers(const Request& request) const {
  std::vector<std::pair<std::string, std::string>> out;
  auto origin = request.header("origin");
  if (!origin || options_.cors_origins.empty()) return out;
  const bool any = std::find(options_.cors_origins.begin(), options_.cors_origins.end(), "*") !=
                   options_.cors_origins.end();
  const bool listed = std::find(options_.cors_origins.begin(), options_.cors_origins.end(),
                                *origin) != options_.cors_origins.end();
  if (!any && !listed) return out;
  out.emplace_back("Access-Control-Allow-Origin", any ? "*" : std::string(*origin));
  out.emplace_back("Vary", "Origin");
  out.emplace_back("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE, OPTIONS");
  out.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID");
  out.emplace_back("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate");
  out.emplace_back("Access-Control-Max-Age", "600");
  return out;
}

std::string Api::client_address(const Request& request) const {
  if (options_.trust_forwarded_for) {
    if (auto fwd = request.header("x-forwarded-for")) {
      auto first = fwd->substr(0, fwd->find(','));
      while (!first.empty() && first.front() == ' ') first.remove_prefix(1);
      while (!first.empty() && first.back() == ' ') first.remove_suffix(1);
      if (!first.empty() && first.size() <= 64) return std::string(first);
    }
  }
  return request.remote_addr;
}

ApiResult<std::string> Api::authenticate(const Request& request, bool allow_query_token) const {
  std::string_view token;
  if (auto h = request.header("authorization")) {
    constexpr std::string_view kBearer = "Bearer ";
    if (h->size() <= kBearer.size() ||
        !std::equal(kBearer.begin(), kBearer.end(), h->begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return fail(ApiErrc::unauthorized, "Authorization must be a Bearer token");
    }
    token = h->substr(kBearer.size());
  } else if (allow_query_token) {
    token = request.param("access_token").value_or("");
  }
  if (token.empty()) return fail(ApiErrc::unauthorized, "a Bearer token is required");
  return tokens_.verify(token, now_ms());
}

ApiResult<store::Account> Api::own_account(const Request& request, std::string_view account_id) {
  auto subject = authenticate(request, false);
  if (!subject) return Unexpected<ApiError>{subject.error()};
  return account_of(*subject, account_id);
}

ApiResult<store::Account> Api::account_of(const std::string& subject, std::string_view account_id) {
  auto account = store::transact(store_, store::TxMode::read_only,
                                 [&](store::Transaction& tx) { return tx.get_account(subject); });
  if (!account) {
    // A valid signature for an account deleted since: the token is worth nothing now.
    if (account.error().code == store::StoreErrc::not_found) {
      return fail(ApiErrc::unauthorized, "the token's account no longer exists");
    }
    log::error("api.store_failed", {{"error", account.error().message}});
    return Unexpected<ApiError>{from_store(account.error())};
  }
  if (account->id != account_id) return fail(ApiErrc::not_found, "not found");
  return std::move(account).value();
}

ApiResult<store::Device> Api::own_device(const Request& request, std::string_view device_id) {
  auto subject = authenticate(request, false);
  if (!subject) return Unexpected<ApiError>{subject.error()};
  auto device = store::transact(store_, store::TxMode::read_only,
                                [&](store::Transaction& tx) { return tx.get_device(device_id); });
  if (!device) {
    if (device.error().code != store::StoreErrc::not_found) {
      log::error("api.store_failed", {{"error", device.error().message}});
    }
    return Unexpected<ApiError>{from_store(device.error())};
  }
  if (device->account_id != *subject) return fail(ApiErrc::not_found, "not found");
  return std::move(device).value();
}

void publish_device(EventHub& hub, const store::Device& device) {
  // Only an account with a stream open (or lately) pays for the text.
  hub.publish(device.account_id, "device", [&device] { return device_text(device); });
}

void Api::publish_device(const store::Device& device) {
  api::publish_device(hub_, device);
}

// ---- streams ------------------------------------------------------------------------------

ApiResult<StreamStart> Api::open_stream(const Request& request, std::string_view account_id) {
  auto subject = authenticate(request, true);
  if (!subject) return Unexpected<ApiError>{subject.error()};
  if (*subject != account_id) return fail(ApiErrc::not_found, "not found");
  StreamStart start;
  start.account_id = *subject;
  // A valid signature for an account deleted since is worth nothing, resumed or not.
  auto account = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.get_account(start.account_id);
  });
  if (!account) {
    if (account.error().code == store::StoreErrc::not_found) {
      return fail(ApiErrc::unauthorized, "the token's account no longer exists");
    }
    return Unexpected<ApiError>{store_failure(account.error(), "get_account")};
  }
  // Before since() and last_id(): from here on the account's events are kept, and what
  // was published before is in the snapshot (or, resumed, ends in a snapshot).
  hub_.watch(start.account_id);
  auto last = request.header("last-event-id");
  if (!last) last = request.param("lastEventId");
  if (last) {
    auto id = parse_int(*last, "Last-Event-ID", 0, INT64_MAX);
    if (id) {
      if (auto missed = hub_.since(start.account_id, static_cast<std::uint64_t>(*id))) {
        start.after = missed->empty() ? static_cast<std::uint64_t>(*id) : missed->back().id;
        start.initial = std::move(*missed);
        return start;
      }
    }
  }
  // Before reading the devices: a change committed meanwhile is then sent after the
  // snapshot too (twice is harmless; never is not).
  start.after = hub_.last_id();
  auto devices = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_devices(start.account_id);
  });
  if (!devices) return Unexpected<ApiError>{store_failure(devices.error(), "list_devices")};
  start.initial.push_back(StreamEvent{start.after, "snapshot", devices_text(*devices)});
  return start;
}

std::string format_sse(const StreamEvent& e) {
  std::string out;
  out.reserve(e.data.size() + e.name.size() + 40);
  out += "id: ";
  out += std::to_string(e.id);
  out += "\nevent: ";
  out += e.name;
  out += "\ndata: ";
  out += e.data;  // compact JSON: one line
  out += "\n\n";
  return out;
}

ApiResult<Response> Api::stream_placeholder(const Request& r, const Params& p) {
  // The server streams this route itself; answering here (tests, fuzzer) sends what a
  // stream starts with and ends.
  auto start = open_stream(r, p.get("accountId"));
  if (!start) return Unexpected<ApiError>{start.error()};
  Response out;
  out.content_type = "text/event-stream";
  for (const auto& e : start->initial) out.body += format_sse(e);
  return out;
}

// ---- service routes -----------------------------------------------------------------------

// Handlers share one member-pointer type, so none is static or const.
// NOLINTNEXTLINE(readability-convert-member-functions-to-static)
ApiResult<Response> Api::healthz(const Request& /*r*/, const Params& /*p*/) {
  Response out;
  out.body = R"({"status":"ok"})";
  return out;
}

ApiResult<Response> Api::readyz(const Request& /*r*/, const Params& /*p*/) {
  const bool database = static_cast<bool>(store_.ping());
  const bool broker = hooks_.broker_ok ? hooks_.broker_ok() : false;
  Response out;
  out.status = database && broker ? 200 : 503;
  out.body = dump({{"status", database && broker ? "ok" : "unavailable"},
                   {"database", database},
                   {"broker", broker}});
  return out;
}

// NOLINTNEXTLINE(readability-make-member-function-const)
ApiResult<Response> Api::metrics(const Request& r, const Params& /*p*/) {
  if (!hooks_.metrics) return fail(ApiErrc::not_found, "no metrics here");
  if (!options_.metrics_token.empty()) {
    const auto given = r.header("authorization").value_or("");
    const std::string wanted = "Bearer " + options_.metrics_token;
    // Constant time: the comparison must not tell how much of a guess was right.
    if (given.size() != wanted.size() ||
        CRYPTO_memcmp(given.data(), wanted.data(), wanted.size()) != 0) {
      return fail(ApiErrc::unauthorized, "/metrics wants the metrics token");
    }
  }
  Response out;
  out.content_type = "text/plain; version=0.0.4; charset=utf-8";
  out.body = hooks_.metrics();
  return out;
}

// NOLINTNEXTLINE(readability-make-member-function-const)
ApiResult<Response> Api::openapi(const Request& /*r*/, const Params& /*p*/) {
  Response out;
  out.content_type = "application/yaml";
  out.body = options_.openapi_yaml;
  return out;
}

}  // namespace dag::api

namespace dag::api {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') {
    out.emplace_back(path);  // matches nothing: every pattern starts with '/'
    out.emplace_back();
    return out;
  }
  path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  while (true) {
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

int match(std::string_view pattern, const std::vector<std::string_view>& segments,
          Api::Params& params) {
  const auto parts = split_path(pattern);
  if (parts.size() != segments.size()) return -1;
  int literals = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto part = parts[i];
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      if (segments[i].empty()) return -1;
      params.values.emplace_back(part.substr(1, part.size() - 2), std::string(segments[i]));
      continue;
    }
    if (part != segments[i]) return -1;
    ++literals;
  }
  return literals;
}

}  // namespace dag::api
