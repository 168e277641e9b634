// libFuzzer target for dagd's REST API: arbitrary requests through dag::api::Api::handle
// over an in-memory SQLite store holding two accounts (A and B), their devices, events and
// notification targets, with valid tokens of both accounts so that inputs get past
// authentication.
//
// Input: a 6-byte header, then the rest split on 0xFF bytes into parts:
//   byte 0  bits 0..2  method: GET POST PATCH DELETE OPTIONS PUT HEAD "get"
//           bits 3..4  Origin: none, the allowed one, another, <text>
//           bit 5      a trailing '/' on the path
//           bit 6      Last-Event-ID: <text>
//           bit 7      X-Forwarded-For: <text> (not trusted: ignored by the Api)
//   byte 1  path shape (kShapes below, modulo their number): every route template, then
//           a raw <text> path and near misses, then the routes added since
//   byte 2  bits 0..1  {accountId}: A, B, <text>, an unknown UUID
//           bits 2..3  {deviceId}: A's dag-a1, B's dag-b1, <text>, A's revoked dag-a2
//           bits 4..7  {targetId}: 0..5 one of A's current targets (oldest first; the
//                      seeds are e-mail, webhook, ntfy), 6..11 one of B's, 12..13 <text>,
//                      14..15 an unknown UUID
//   byte 3  bits 0..2  credentials: Bearer A, Bearer B, none, "Authorization: <text>",
//                      "Bearer <text>", A as ?access_token=, A's expired token, a valid
//                      token of an account that does not exist
//           bit 3      "bearer" in lower case
//   byte 4  query parameters present: since until limit cursor days token lastEventId
//           access_token (bit 0..7); values from parts[2...], in that order ("" if short)
//   byte 5  bits 0..2  Content-Type: application/json, application/json; charset=utf-8,
//                      none, text/plain, " APPLICATION/JSON ; q=1", <text>,
//                      application/jsonx, ""
//   parts[0] the body, parts[1] <text>.
//
// The world evolves from input to input (targets are added and removed, devices renamed,
// preferences changed); the fake clock moves 1 s per input and the tokens are reissued
// every hour of it. Targets are pruned to kMaxTargets per account (and the seed targets
// put back when an account has none), and a successful password change is undone, so the
// state stays small and the login seed keeps working. Logins and password changes cost an
// argon2id each (~0.1 s): the Api's login limiter (set low here) keeps them rare.
// FUZZ_API_TRACE=1 prints every request and answer.
//
// Invariants besides "no crash, no sanitizer report, no exception":
// - the status is one of 200 201 202 204 400 401 403 404 405 409 413 415 429 503: never 500
//   (this store does not fail);
// - an error (>= 400) is JSON {"code", "message"} with the code of its status (except the
//   HTML page of /v1/verify), 401 carries WWW-Authenticate, 405 Allow, 429 Retry-After;
// - 204 has neither body nor content type; a JSON answer parses; an event stream's data
//   lines parse;
// - no 2xx (but a preflight OPTIONS) on /v1/accounts/X/... unless the token is X's, on
//   /v1/devices/D/... unless D is the token's account's, on .../targets/T/... unless T was
//   that account's target: cross-account access is a 404, as for nothing;
// - the token's owner reading its own account, preferences, devices, targets and device
//   (GET, well-formed path) gets 200.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dag/api/api.hpp"
#include "dag/api/auth.hpp"
#include "dag/api/hub.hpp"
#include "dag/common/clock.hpp"
#include "dag/common/encoding.hpp"
#include "dag/common/log.hpp"
#include "dag/common/password.hpp"
#include "dag/notify/channel.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"

namespace {

using nlohmann::json;
namespace api = dag::api;
namespace store = dag::store;

constexpr std::string_view kSecret = "fuzz-api-secret-fuzz-api-secret!";
constexpr std::string_view kPasswordA = "alice-password";
constexpr std::string_view kPasswordB = "bob-password";
constexpr std::string_view kVerifyToken = "fuzz-verify-token";
constexpr std::string_view kUnknownUuid = "00000000-0000-4000-8000-000000000000";
constexpr std::string_view kOrigin = "https://dash.example";
constexpr std::size_t kMaxTargets = 12;
constexpr auto kStep = std::chrono::seconds{1};

const api::Request* g_request = nullptr;
const api::Response* g_response = nullptr;

// Aborts (a crash for libFuzzer) naming the invariant that failed, with the exchange.
void fail_check(const char* what, int line) {
  std::fprintf(stderr, "fuzz_api.cpp:%d: invariant failed: %s\n", line, what);
  if (g_request != nullptr) {
    std::fprintf(stderr, "  request %s %.300s\n", g_request->method.c_str(),
                 g_request->path.c_str());
    for (const auto& [k, v] : g_request->query)
      std::fprintf(stderr, "    ?%s=%.200s\n", k.c_str(), v.c_str());
    for (const auto& [k, v] : g_request->headers)
      std::fprintf(stderr, "    %s: %.200s\n", k.c_str(), v.c_str());
    std::fprintf(stderr, "    body %.300s\n", g_request->body.c_str());
  }
  if (g_response != nullptr) {
    std::fprintf(stderr, "  response %d %s route=%s\n    %.500s\n", g_response->status,
                 g_response->content_type.c_str(), g_response->route.c_str(),
                 g_response->body.c_str());
  }
  std::abort();
}
#define CHECK(condition) ((condition) ? void() : fail_check(#condition, __LINE__))

bool tracing() {
  static const bool on = std::getenv("FUZZ_API_TRACE") != nullptr;  // NOLINT(concurrency-mt-unsafe)
  return on;
}

template <class T>
T must(store::StoreResult<T> r) {
  CHECK(r.has_value());
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

// Test notifications without a network: webhooks are delivered, ntfy refuses (quoting the
// address, which the account owner typed), e-mail is not configured.
class FakeChannel final : public dag::notify::Channel {
 public:
  explicit FakeChannel(bool ok) : ok_(ok) {}
  dag::notify::Delivery deliver(const store::NotificationTarget& target,
                                const dag::notify::Notice& notice) override {
    CHECK(!notice.items.empty());
    if (ok_) return {};
    return dag::Unexpected<dag::notify::DeliveryError>{
        dag::notify::DeliveryError{true, "refused by " + target.address}};
  }

 private:
  bool ok_;
};

struct World {
  World() {
    dag::log::set_level(tracing() ? dag::log::Level::debug : dag::log::Level::off);
    db = must(store::open_sqlite(":memory:"));
    hash_a = dag::password::hash(kPasswordA).value_or("");
    hash_b = dag::password::hash(kPasswordB).value_or("");
    CHECK(!hash_a.empty() && !hash_b.empty());
    const std::int64_t now = clock.unix_ms();
    constexpr std::int64_t kHourMs = 3'600'000;
    constexpr std::int64_t kDayMs = 24 * kHourMs;
    must(store::transact(
        *db, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<void> {
          auto a = tx.create_account("alice", hash_a, now - 400 * kDayMs);
          if (!a) return dag::Unexpected<store::StoreError>{a.error()};
          auto b = tx.create_account("bob", hash_b, now - 10 * kDayMs);
          if (!b) return dag::Unexpected<store::StoreError>{b.error()};
          account_a = a->id;
          account_b = b->id;
          const std::pair<const char*, const std::string*> devices[] = {
              {"dag-a1", &a->id}, {"dag-a2", &a->id}, {"dag-b1", &b->id}};
          for (const auto& [id, owner] : devices) {
            auto d = tx.create_device({id, *owner, std::string("Dag ") + id, now - 90 * kHourMs});
            if (!d) return dag::Unexpected<store::StoreError>{d.error()};
          }
          store::DeviceState s;
          s.power = dag::protocol::Power::on;
          s.power_since_ms = now - 2 * kHourMs;
          s.last_seq = 4;
          s.connection = dag::protocol::Connection::connected;
          s.connection_since_ms = now - 50 * kHourMs;
          s.last_seen_ms = now - 1000;
          s.user_state = dag::protocol::UserState::on;
          s.battery_json = R"({"percent":87.5,"charging":true})";
          if (auto r = tx.update_device_state("dag-a1", s); !r) return r;
          s.power = dag::protocol::Power::off;
          s.user_state = dag::protocol::UserState::was_off;
          s.connection = dag::protocol::Connection::disconnected;
          s.battery_json = std::nullopt;
          if (auto r = tx.update_device_state("dag-b1", s); !r) return r;
          if (auto r = tx.set_device_revoked("dag-a2", true); !r) return r;
          // A history: outages inside and before the uptime windows, contact lost and back.
          using K = store::EventKind;
          const std::pair<K, std::int64_t> history[] = {{K::power_off, 40 * 24},
                                                        {K::power_on, 39 * 24},
                                                        {K::power_off, 20 * 24},
                                                        {K::battery_low, 20 * 24 - 1},
                                                        {K::lost_contact, 20 * 24 - 2},
                                                        {K::back, 19 * 24},
                                                        {K::power_on, 19 * 24},
                                                        {K::power_off, 3},
                                                        {K::power_on, 2}};
          std::int64_t seq = 0;
          for (const auto& [kind, hours_ago] : history) {
            store::Event e;
            e.device_id = "dag-a1";
            e.kind = kind;
            e.observed_at_ms = now - hours_ago * kHourMs;
            e.received_at_ms = e.observed_at_ms + 500;
            if (store::is_power_event(kind)) e.seq = ++seq;
            e.clock_fallback = kind == K::back;
            e.user_state_after =
                kind == K::power_off ? dag::protocol::UserState::off : dag::protocol::UserState::on;
            if (auto r = tx.append_event(e); !r)
              return dag::Unexpected<store::StoreError>{r.error()};
            e.device_id = "dag-b1";
            if (auto r = tx.append_event(e); !r)
              return dag::Unexpected<store::StoreError>{r.error()};
          }
          // Battery readings, a week of them, for the battery route's windows and limits.
          for (std::int64_t hours_ago = 0; hours_ago < 7 * 24; hours_ago += 6) {
            for (const char* id : {"dag-a1", "dag-b1"}) {
              store::BatteryReading reading{id,
                                            now - hours_ago * kHourMs,
                                            50.0 + static_cast<double>(hours_ago % 50),
                                            3.9,
                                            hours_ago,
                                            hours_ago % 12 == 0};
              if (auto r = tx.record_battery(reading, 0); !r) return r;
            }
          }
          return {};
        }));
    seed_targets(account_a);
    seed_targets(account_b);

    api::ApiOptions options;
    options.jwt_secret = std::string(kSecret);
    options.openapi_yaml = "x";
    options.public_url = "https://dag.example";
    options.cors_origins = {std::string(kOrigin)};
    // Each allowed attempt costs an argon2id: few of them, so that they do not dominate.
    options.login = {.per_user_per_minute = 6,
                     .per_user_burst = 2,
                     .per_address_per_minute = 6,
                     .per_address_burst = 3};
    api::ApiHooks hooks;
    hooks.broker_ok = [] { return true; };
    hooks.metrics = [] { return std::string("m"); };
    hooks.wake_notifier = [this] { ++wakes; };
    hooks.test_channels.webhook = &webhook;
    hooks.test_channels.ntfy = &ntfy;
    the_api = std::make_unique<api::Api>(*db, clock, std::move(options), hub, std::move(hooks));
    issue_tokens();
  }

  // The seed targets: A (or B) gets an unverified e-mail with a pending verification
  // link, a verified webhook with secret and template, and a verified ntfy topic.
  void seed_targets(const std::string& account) {
    const std::int64_t now = clock.unix_ms();
    const bool is_a = account == account_a;
    must(store::transact(
        *db, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<void> {
          store::NewTarget mail;
          mail.account_id = account;
          mail.kind = store::TargetKind::email;
          mail.address = is_a ? "alice@example.com" : "bob@example.com";
          mail.created_at_ms = now - 3;  // oldest first: e-mail, webhook, ntfy
          auto m = tx.add_target(mail);
          if (!m) return dag::Unexpected<store::StoreError>{m.error()};
          if (is_a) {
            // Follow the link: /v1/verify?token=fuzz-verify-token (until it is used).
            if (auto r = tx.create_verification(m->id, dag::sha256_hex(kVerifyToken), now,
                                                now + 86'400'000'000);
                !r && r.error().code != store::StoreErrc::conflict) {
              return r;
            }
          }
          store::NewTarget hook;
          hook.account_id = account;
          hook.kind = store::TargetKind::webhook;
          hook.address = is_a ? "https://hooks.example/a" : "https://hooks.example/b";
          hook.verified = true;
          hook.secret = "s3cret";
          hook.body_template = R"({"text":"{{device}}"})";
          hook.content_type = "application/json";
          hook.created_at_ms = now - 2;
          if (auto r = tx.add_target(hook); !r)
            return dag::Unexpected<store::StoreError>{r.error()};
          store::NewTarget topic;
          topic.account_id = account;
          topic.kind = store::TargetKind::ntfy;
          topic.address = is_a ? "https://ntfy.example/a" : "https://ntfy.example/b";
          topic.verified = true;
          topic.created_at_ms = now - 1;
          if (auto r = tx.add_target(topic); !r)
            return dag::Unexpected<store::StoreError>{r.error()};
          return {};
        }));
  }

  void issue_tokens() {
    const std::int64_t now = clock.unix_ms();
    const api::TokenService tokens(std::string(kSecret), std::chrono::seconds{7200});
    token_a = tokens.issue(account_a, now).value().token;
    token_b = tokens.issue(account_b, now).value().token;
    expired_a = tokens.issue(account_a, now - std::int64_t{10'800'000}).value().token;
    token_ghost = tokens.issue(kUnknownUuid, now).value().token;
    issued_ms = now;
  }

  std::vector<store::NotificationTarget> targets(const std::string& account) const {
    return must(store::transact(*db, store::TxMode::read_only,
                                [&](store::Transaction& tx) { return tx.list_targets(account); }));
  }

  // Keeps at most kMaxTargets per account (the oldest), and puts the seeds back when
  // everything was deleted.
  void bound_targets(const std::string& account) {
    auto list = targets(account);
    if (list.empty()) {
      seed_targets(account);
      return;
    }
    if (list.size() <= kMaxTargets) return;
    must(store::transact(*db, store::TxMode::read_write,
                         [&](store::Transaction& tx) -> store::StoreResult<void> {
                           for (std::size_t i = kMaxTargets; i < list.size(); ++i) {
                             if (auto r = tx.remove_target(list[i].id); !r) return r;
                           }
                           return {};
                         }));
  }

  dag::FakeClock clock{1'800'000'000'000};
  std::unique_ptr<store::Store> db;
  api::EventHub hub{clock, 1'000'000};
  FakeChannel webhook{true};
  FakeChannel ntfy{false};
  std::unique_ptr<api::Api> the_api;
  std::string hash_a, hash_b;
  std::string account_a, account_b;
  std::string token_a, token_b, expired_a, token_ghost;
  std::int64_t issued_ms{0};
  int wakes{0};
};

// Path shapes: {a} {d} {t} are the chosen ids, {x} the <text> part.
constexpr std::string_view kShapes[] = {
    "/v1/auth",
    "/v1/accounts/{a}",
    "/v1/accounts/{a}/password",
    "/v1/accounts/{a}/preferences",
    "/v1/accounts/{a}/devices",
    "/v1/accounts/{a}/targets",
    "/v1/accounts/{a}/targets/{t}",
    "/v1/accounts/{a}/targets/{t}/test",
    "/v1/accounts/{a}/targets/{t}/verify",
    "/v1/accounts/{a}/stream",
    "/v1/devices/{d}",
    "/v1/devices/{d}/events",
    "/v1/devices/{d}/uptime",
    "/v1/verify",
    "/v1/openapi.yaml",
    "/healthz",
    "/readyz",
    "/metrics",
    "{x}",
    "/v1/{x}",
    "/v1/accounts/{a}/{x}",
    "/v1/devices/{d}/{x}",
    "/",
    "/v1/devices//events",
    // Routes added later go last, so that the seeds' shape bytes keep their meaning.
    "/v1/devices/{d}/battery",
};
constexpr std::size_t kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

std::string expand(std::string_view shape, const std::string& a, const std::string& d,
                   const std::string& t, const std::string& x) {
  std::string out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == '{' && i + 2 < shape.size() && shape[i + 2] == '}') {
      switch (shape[i + 1]) {
        case 'a': out += a; break;
        case 'd': out += d; break;
        case 't': out += t; break;
        default: out += x; break;
      }
      i += 2;
    } else {
      out += shape[i];
    }
  }
  return out;
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> out;
  while (true) {
    const auto at = text.find(separator);
    out.push_back(text.substr(0, at));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return out;
}

// The path's segments as the Api splits them (one trailing '/' dropped).
std::vector<std::string_view> segments_of(std::string_view path) {
  if (path.empty() || path.front() != '/') return {};
  path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return split(path, '/');
}

std::string_view expected_code(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 429: return "rate_limited";
    case 503: return "unavailable";
    default: return "";
  }
}

bool has_header(const api::Response& r, std::string_view name) {
  return std::ranges::any_of(r.headers, [&](const auto& h) { return h.first == name; });
}

bool iequals_prefix(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

// A decoded input: the request, and the choices behind it that the checks need.
struct Decoded {
  api::Request req;
  std::size_t shape{0};
  unsigned credentials{0};
  std::string account;
  std::string device;
};

std::string pick_target(unsigned selector, const std::vector<store::NotificationTarget>& a,
                        const std::vector<store::NotificationTarget>& b, const std::string& text) {
  if (selector < 6) return a.empty() ? std::string(kUnknownUuid) : a[selector % a.size()].id;
  if (selector < 12) return b.empty() ? std::string(kUnknownUuid) : b[(selector - 6) % b.size()].id;
  if (selector < 14) return text;
  return std::string(kUnknownUuid);
}

void set_credentials(api::Request& req, unsigned selector, const World& world,
                     const std::string& text) {
  const std::string bearer = (selector & 8U) != 0 ? "bearer " : "Bearer ";
  switch (selector & 7U) {
    case 0: req.headers["authorization"] = bearer + world.token_a; break;
    case 1: req.headers["authorization"] = bearer + world.token_b; break;
    case 3: req.headers["authorization"] = text; break;
    case 4: req.headers["authorization"] = bearer + text; break;
    case 5: req.query["access_token"] = world.token_a; break;
    case 6: req.headers["authorization"] = bearer + world.expired_a; break;
    case 7: req.headers["authorization"] = bearer + world.token_ghost; break;
    default: break;  // 2: none
  }
}

void set_content_type(api::Request& req, unsigned selector, const std::string& text) {
  static constexpr const char* kTypes[] = {"application/json",
                                           "application/json; charset=utf-8",
                                           nullptr,
                                           "text/plain",
                                           " APPLICATION/JSON ; q=1",
                                           nullptr,
                                           "application/jsonx",
                                           ""};
  if ((selector & 7U) == 5) {
    req.headers["content-type"] = text;
  } else if (kTypes[selector & 7U] != nullptr) {
    req.headers["content-type"] = kTypes[selector & 7U];
  }
}

Decoded decode(const std::uint8_t* data, std::size_t size, const World& world,
               const std::vector<store::NotificationTarget>& targets_a,
               const std::vector<store::NotificationTarget>& targets_b) {
  std::array<std::uint8_t, 6> head{};
  for (std::size_t i = 0; i < head.size() && i < size; ++i) head.at(i) = data[i];
  const std::string_view rest =
      size > head.size()
          ? std::string_view(reinterpret_cast<const char*>(data) + head.size(), size - head.size())
          : std::string_view();
  const auto parts = split(rest, '\xff');
  const std::string text(parts.size() > 1 ? parts[1] : std::string_view());

  Decoded d;
  api::Request& req = d.req;
  req.remote_addr = "192.0.2.7";
  req.body = std::string(parts[0]);
  static constexpr const char* kMethods[] = {"GET",     "POST", "PATCH", "DELETE",
                                             "OPTIONS", "PUT",  "HEAD",  "get"};
  req.method = kMethods[head[0] & 7U];
  switch ((head[0] >> 3U) & 3U) {
    case 1: req.headers["origin"] = std::string(kOrigin); break;
    case 2: req.headers["origin"] = "https://evil.example"; break;
    case 3: req.headers["origin"] = text; break;
    default: break;
  }
  if ((head[0] & 0x40U) != 0) req.headers["last-event-id"] = text;
  if ((head[0] & 0x80U) != 0) req.headers["x-forwarded-for"] = text;

  const std::string accounts[] = {world.account_a, world.account_b, text,
                                  std::string(kUnknownUuid)};
  d.account = accounts[head[2] & 3U];
  const std::string devices[] = {"dag-a1", "dag-b1", text, "dag-a2"};
  d.device = devices[(head[2] >> 2U) & 3U];
  const std::string target = pick_target(head[2] >> 4U, targets_a, targets_b, text);
  d.shape = head[1] % kShapeCount;
  req.path = expand(kShapes[d.shape], d.account, d.device, target, text);
  if ((head[0] & 0x20U) != 0) req.path += '/';

  static constexpr const char* kParams[] = {"since", "until", "limit",       "cursor",
                                            "days",  "token", "lastEventId", "access_token"};
  std::size_t next = 2;
  for (unsigned bit = 0; bit < 8; ++bit) {
    if ((head[4] & (1U << bit)) != 0) {
      req.query[kParams[bit]] = std::string(next < parts.size() ? parts[next++] : "");
    }
  }
  d.credentials = head[3] & 7U;
  set_credentials(req, head[3], world, text);
  set_content_type(req, head[5], text);
  return d;
}

// The answer is well-formed, whatever the request.
void check_form(const api::Request& req, const api::Response& res) {
  static const std::set<int> kStatuses = {200, 201, 202, 204, 400, 401, 403,
                                          404, 405, 409, 413, 415, 429, 503};
  CHECK(kStatuses.contains(res.status));
  std::optional<json> parsed;
  if (res.content_type == api::kJson) {
    json v = json::parse(res.body, nullptr, false);
    CHECK(!v.is_discarded());
    parsed = std::move(v);
  }
  if (res.status == 204) {
    CHECK(res.body.empty());
    CHECK(res.content_type.empty());
  } else {
    CHECK(!res.content_type.empty());
  }
  if (res.status >= 400) {
    const bool verify_page =
        res.route == "/v1/verify" && res.content_type.starts_with("text/html") && res.status == 404;
    const bool readyz = res.route == "/readyz" && res.status == 503;
    if (!verify_page && !readyz) {
      CHECK(parsed && parsed->is_object() && parsed->size() == 2);
      CHECK(parsed->contains("code") && (*parsed)["code"].is_string());
      CHECK(parsed->contains("message") && (*parsed)["message"].is_string());
      CHECK((*parsed)["code"].get<std::string>() == expected_code(res.status));
    }
    if (res.status == 401) CHECK(has_header(res, "WWW-Authenticate"));
    if (res.status == 405) CHECK(has_header(res, "Allow"));
    if (res.status == 429) CHECK(has_header(res, "Retry-After"));
  }
  if (res.content_type == "text/event-stream") {
    for (auto line : split(res.body, '\n')) {
      if (!line.starts_with("data: ")) continue;
      line.remove_prefix(6);
      CHECK(!json::parse(line, nullptr, false).is_discarded());
    }
  }
  // CORS headers for the allowed origin only.
  CHECK(has_header(res, "Access-Control-Allow-Origin") == (req.header("origin") == kOrigin));
}

// The `sub` of the token the Api should take the request to be from (the Authorization
// header's Bearer token, else, for the stream only, ?access_token=) when it verifies; "".
std::string signed_for(const api::Request& req, bool stream_route, const World& world) {
  std::string_view token;
  if (auto h = req.header("authorization")) {
    if (h->size() > 7 && iequals_prefix(*h, "Bearer ")) token = h->substr(7);
  } else if (stream_route) {
    token = req.param("access_token").value_or("");
  }
  if (token.empty()) return {};
  const api::TokenService tokens(std::string(kSecret), std::chrono::seconds{7200});
  auto sub = tokens.verify(token, world.clock.unix_ms());
  return sub ? *sub : std::string();
}

// Nobody gets at another account's things; the owner reads its own. Returns the account
// the request was from ("" for nobody).
std::string check_access(const Decoded& d, const api::Response& res, const World& world,
                         const std::vector<store::NotificationTarget>& targets_a,
                         const std::vector<store::NotificationTarget>& targets_b) {
  const api::Request& req = d.req;
  const auto segments = segments_of(req.path);
  const bool stream_route = segments.size() == 4 && segments[0] == "v1" &&
                            segments[1] == "accounts" && segments[3] == "stream";
  const std::string sub = signed_for(req, stream_route, world);
  // An account that exists: "" for nobody.
  std::string subject = sub == world.account_a || sub == world.account_b ? sub : "";
  const bool success = res.status >= 200 && res.status < 300 && req.method != "OPTIONS";
  if (success && segments.size() >= 3 && segments[0] == "v1") {
    if (segments[1] == "accounts") {
      CHECK(!subject.empty() && segments[2] == subject);
      if (segments.size() >= 5 && segments[3] == "targets") {
        const auto& own = subject == world.account_a ? targets_a : targets_b;
        CHECK(std::ranges::any_of(own, [&](const auto& t) { return t.id == segments[4]; }));
      }
    } else if (segments[1] == "devices") {
      const bool own_device =
          (subject == world.account_a && (segments[2] == "dag-a1" || segments[2] == "dag-a2")) ||
          (subject == world.account_b && segments[2] == "dag-b1");
      CHECK(own_device);
    }
  }
  // Reading one's own account, preferences, devices, targets, device works.
  const bool own_ids = (d.credentials == 0 && d.account == world.account_a &&
                        (d.device == "dag-a1" || d.device == "dag-a2")) ||
                       (d.credentials == 1 && d.account == world.account_b && d.device == "dag-b1");
  if (req.method == "GET" && own_ids &&
      (d.shape == 1 || d.shape == 3 || d.shape == 4 || d.shape == 5 || d.shape == 10)) {
    CHECK(res.status == 200);
  }
  return subject;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  world.clock.advance(kStep);
  if (world.clock.unix_ms() - world.issued_ms > 3'600'000) world.issue_tokens();
  world.bound_targets(world.account_a);
  world.bound_targets(world.account_b);
  const auto targets_a = world.targets(world.account_a);
  const auto targets_b = world.targets(world.account_b);

  const Decoded d = decode(data, size, world, targets_a, targets_b);
  g_request = &d.req;
  g_response = nullptr;
  const api::Response res = world.the_api->handle(d.req);
  g_response = &res;
  if (tracing()) {
    std::fprintf(stderr, "%s %.300s -> %d %.300s\n", d.req.method.c_str(), d.req.path.c_str(),
                 res.status, res.body.c_str());
  }
  check_form(d.req, res);
  const std::string subject = check_access(d, res, world, targets_a, targets_b);

  // Keep the login seed working: undo a password change.
  if (res.status == 204 && d.req.method == "POST" &&
      res.route == "/v1/accounts/{accountId}/password") {
    CHECK(!subject.empty());
    const bool is_a = subject == world.account_a;
    must(store::transact(*world.db, store::TxMode::read_write, [&](store::Transaction& tx) {
      return tx.set_password_hash(subject, is_a ? world.hash_a : world.hash_b);
    }));
  }
  g_request = nullptr;
  g_response = nullptr;
  return 0;
}
