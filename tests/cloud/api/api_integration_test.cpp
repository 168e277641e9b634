// The REST API of a real dagd (SQLite, Mosquitto with TLS) over real HTTP: every route,
// the cross-account 404s, token forgeries, login throttling, the live event stream,
// static files, CORS, and malformed requests. Every response is also written to a JSON
// Lines file that the OpenAPI check (tests/api/openapi_check.mjs) validates afterwards.
//
// One broker and one dagd serve the whole suite (each test makes its own accounts);
// tests that need other settings start their own dagd.
#include <gtest/gtest.h>
#include <httplib.h>
#include <jwt.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dag/api/api.hpp"
#include "dag/api/auth.hpp"
#include "dag/common/encoding.hpp"
#include "dag/common/password.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"
#include "dag/test/dagd_process.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSecret = "integration-test-secret-integration-test-secret";
constexpr const char* kTester = "tester";
constexpr const char* kPassword = "correct horse battery";
constexpr const char* kOrigin = "https://dash.example";
constexpr std::int64_t kMinuteMs = 60'000;
constexpr std::int64_t kHourMs = 3'600'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Reply {
  int status{0};
  std::string body;
  std::string content_type;
  httplib::Headers headers;
  [[nodiscard]] json js() const { return json::parse(body, nullptr, false); }
  [[nodiscard]] std::string header(const char* name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Appends every response to the file the OpenAPI check reads.
class Recorder {
 public:
  static Recorder& get() {
    static Recorder r;
    return r;
  }
  void add(const std::string& method, const std::string& path, const Reply& reply) {
    // Only answers of documented operations: not unknown routes, methods or static files.
    const auto route = api::Api::route_of(path.substr(0, path.find('?')));
    if (route.empty() || reply.status == 405 || method == "OPTIONS") return;
    std::lock_guard lock(mutex_);
    const json line = {{"method", method},
                       {"path", path},
                       {"status", reply.status},
                       {"contentType", reply.content_type},
                       {"body", reply.body}};
    out_ << line.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    out_.flush();
  }

 private:
  Recorder() : out_(DAG_API_RECORD, std::ios::trunc) {}
  std::mutex mutex_;
  std::ofstream out_;
};

class Http {
 public:
  explicit Http(int port) : client_("127.0.0.1", port) {
    client_.set_connection_timeout(5s);
    client_.set_read_timeout(10s);
  }
  Reply call(const std::string& method, const std::string& path, const std::string& token = "",
             const std::optional<json>& body = std::nullopt, httplib::Headers extra = {}) {
    httplib::Headers h = std::move(extra);
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    httplib::Result r{nullptr, httplib::Error::Unknown};
    const std::string text = body ? body->dump() : std::string();
    if (method == "GET") {
      r = client_.Get(path, h);
    } else if (method == "POST") {
      r = client_.Post(path, h, text, "application/json");
    } else if (method == "PATCH") {
      r = client_.Patch(path, h, text, "application/json");
    } else if (method == "DELETE") {
      r = client_.Delete(path, h);
    } else if (method == "OPTIONS") {
      r = client_.Options(path, h);
    }
    Reply out;
    EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
    if (!r) return out;
    out.status = r->status;
    out.body = r->body;
    out.content_type = r->get_header_value("Content-Type");
    out.headers = r->headers;
    Recorder::get().add(method, path, out);
    return out;
  }
  Reply get(const std::string& path, const std::string& token = "") {
    return call("GET", path, token);
  }
  httplib::Client& raw() { return client_; }

 private:
  httplib::Client client_;
};

// Expects `{code, message}` with the status.
void expect_error(const Reply& r, int status, const std::string& code) {
  EXPECT_EQ(r.status, status) << r.body;
  const auto j = r.js();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("code", ""), code) << r.body;
  EXPECT_TRUE(j.contains("message") && j["message"].is_string()) << r.body;
}

// A token made here with libjwt: forgeries the server must refuse.
std::string make_token(jwt_alg_t alg, const std::string& key, const json& claims) {
  jwt_t* jwt = nullptr;
  jwt_new(&jwt);
  for (const auto& [k, v] : claims.items()) {
    if (v.is_string()) jwt_add_grant(jwt, k.c_str(), v.get<std::string>().c_str());
    if (v.is_number_integer()) jwt_add_grant_int(jwt, k.c_str(), v.get<long>());
  }
  jwt_set_alg(jwt, alg,
              key.empty() ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),  // NOLINT
              static_cast<int>(key.size()));
  char* s = jwt_encode_str(jwt);
  std::string out = s != nullptr ? s : "";
  std::free(s);  // NOLINT
  jwt_free(jwt);
  return out;
}

struct Env {
  TestPki pki;
  std::unique_ptr<MosquittoBroker> broker;
  std::unique_ptr<DagdProcess> dagd;
  std::unique_ptr<store::Store> db;
  TempDir web{"dag-web"};
};

class ApiIntegration : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env_ = new Env();  // NOLINT: lives for the suite
    {
      std::ofstream(env_->web.path() / "index.html") << "<!doctype html><title>dag</title>";
      std::filesystem::create_directories(env_->web.path() / "assets");
      std::ofstream(env_->web.path() / "assets" / "app-1234.js") << "console.log(1)";
    }
    BrokerOptions bo;
    bo.service_identities = {"dagd", kTester};
    auto b = MosquittoBroker::start(env_->pki, bo);
    ASSERT_TRUE(b) << b.error().message;
    env_->broker = std::move(*b);
    DagdOptions o;
    o.binary = DAG_DAGD_BIN;
    o.port = env_->broker->port();
    o.env = {{"DAG_API_CORS_ORIGINS", kOrigin},
             {"DAG_API_WEB_ROOT", env_->web.path().string()},
             {"DAG_API_LOGIN_PER_ADDRESS_PER_MINUTE", "100000"},
             {"DAG_INGEST_RATE_PER_S", "0"},
             {"DAG_API_PUBLIC_URL", "https://dag.example"}};
    auto d = DagdProcess::start(env_->pki, std::move(o));
    ASSERT_TRUE(d) << d.error().message;
    env_->dagd = std::move(*d);
    ASSERT_GT(env_->dagd->api_port(), 0) << env_->dagd->log();
    store::SqliteOptions so;
    so.durability = store::SqliteOptions::Durability::crash_safe;
    auto s = store::open_sqlite(env_->dagd->database(), so);
    ASSERT_TRUE(s) << s.error().message;
    env_->db = std::move(*s);
  }
  static void TearDownTestSuite() {
    delete env_;  // NOLINT
    env_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(env_, nullptr);
    ASSERT_TRUE(env_->dagd);
    http_ = std::make_unique<Http>(env_->dagd->api_port());
  }
  void TearDown() override {
    if (HasFailure() && env_ && env_->dagd) std::cerr << "--- dagd log\n" << env_->dagd->log();
  }

  template <class F>
  auto in_tx(F&& fn) {
    return store::transact(*env_->db, store::TxMode::read_write, std::forward<F>(fn));
  }

  struct Account {
    std::string id;
    std::string username;
    std::string token;
  };

  // A new account with kPassword, logged in.
  Account account() {
    static int n = 0;
    Account a;
    a.username = "user" + std::to_string(++n) + "-" + std::to_string(now_ms());
    static const std::string hash = password::hash(kPassword).value();
    auto made = in_tx(
        [&](store::Transaction& tx) { return tx.create_account(a.username, hash, now_ms()); });
    EXPECT_TRUE(made) << made.error().message;
    if (!made) return a;
    a.id = made->id;
    auto r = http_->call("POST", "/v1/auth", "",
                         json{{"username", a.username}, {"password", kPassword}});
    EXPECT_EQ(r.status, 200) << r.body;
    a.token = r.js().value("token", "");
    return a;
  }

  void provision(const std::string& id, const std::string& account_id, const std::string& name) {
    auto d = in_tx([&](store::Transaction& tx) {
      return tx.create_device({id, account_id, name, now_ms() - 86'400'000});
    });
    ASSERT_TRUE(d) << d.error().message;
  }

  static std::unique_ptr<MqttTestClient> tester() {
    auto c = MqttTestClient::connect(client_options(*env_->broker, env_->pki.client(kTester)));
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  // A dag-edge report through the broker, awaited as its /accepted reply.
  static void report(MqttTestClient& c, const std::string& id, const std::string& status,
                     std::int64_t seq, std::int64_t observed_at) {
    const auto accepted =
        protocol::shadow_topic(id, protocol::ShadowOp::update, protocol::ShadowReply::accepted);
    auto s = c.subscribe(accepted, 1);
    ASSERT_TRUE(s) << s.error().message;
    const std::string token = "t" + std::to_string(seq);
    const json body = {
        {"state", {{"reported", {{"status", status}, {"observedAt", observed_at}, {"seq", seq}}}}},
        {"clientToken", token}};
    ASSERT_TRUE(c.publish(protocol::shadow_topic(id, protocol::ShadowOp::update), body.dump(), 1));
    // Earlier replies may be queued too: wait for this report's own token.
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      auto m = c.wait_for_message(accepted, 10s);
      ASSERT_TRUE(m && std::chrono::steady_clock::now() < deadline)
          << "no /accepted for " << id << " seq " << seq;
      if (json::parse(m->payload, nullptr, false).value("clientToken", "") == token) break;
    }
  }

  static Env* env_;
  std::unique_ptr<Http> http_;
};

Env* ApiIntegration::env_ = nullptr;

// ---- service routes -------------------------------------------------------------------

TEST_F(ApiIntegration, HealthReadinessMetricsAndTheOpenApiDocument) {
  auto h = http_->get("/healthz");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.js(), json({{"status", "ok"}}));
  auto r = http_->get("/readyz");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.js(), json({{"status", "ok"}, {"database", true}, {"broker", true}}));
  auto m = http_->get("/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.content_type.find("text/plain"), std::string::npos);
  for (const char* name : {"dagd_messages_total", "dagd_shadow_rejects_total{code=\"404\"}",
                           "dagd_notifications_sent_total", "dagd_outbox_depth",
                           "dagd_devices_connected", "dagd_http_request_duration_seconds_bucket"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
  auto o = http_->get("/v1/openapi.yaml");
  EXPECT_EQ(o.status, 200);
  EXPECT_NE(o.body.find("openapi: 3.1"), std::string::npos);
  expect_error(http_->get("/v1/nothing/here"), 404, "not_found");
  auto wrong = http_->call("DELETE", "/healthz");
  expect_error(wrong, 405, "method_not_allowed");
  EXPECT_EQ(wrong.header("Allow"), "GET");
}

// ---- login and tokens -----------------------------------------------------------------

TEST_F(ApiIntegration, LoginAnswersUnknownUsersAndWrongPasswordsAlike) {
  auto a = account();
  ASSERT_FALSE(a.token.empty());
  auto ok =
      http_->call("POST", "/v1/auth", "", json{{"username", a.username}, {"password", kPassword}});
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(ok.js()["accountId"], a.id);
  EXPECT_TRUE(ok.js()["expiresAt"].is_string());

  auto timed = [&](const std::string& user, const std::string& pw) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = http_->call("POST", "/v1/auth", "", json{{"username", user}, {"password", pw}});
    return std::pair{r, std::chrono::steady_clock::now() - t0};
  };
  auto [wrong, wrong_took] = timed(a.username, "not the password");
  auto [unknown, unknown_took] = timed("nobody-" + a.username, "not the password");
  expect_error(wrong, 403, "forbidden");
  expect_error(unknown, 403, "forbidden");
  EXPECT_EQ(wrong.body, unknown.body);
  // Both verify an argon2id hash (~0.1 s): an unknown user is not answered at once.
  EXPECT_GT(unknown_took * 3, wrong_took);
  EXPECT_GT(wrong_took * 3, unknown_took);
}

TEST_F(ApiIntegration, LoginIsThrottledPerUsername) {
  auto a = account();  // one attempt used
  int throttled = 0;
  Reply last;
  for (int i = 0; i < 6; ++i) {
    last =
        http_->call("POST", "/v1/auth", "", json{{"username", a.username}, {"password", "nope"}});
    if (last.status == 429) {
      ++throttled;
      break;
    }
    EXPECT_EQ(last.status, 403);
  }
  ASSERT_EQ(throttled, 1);
  expect_error(last, 429, "rate_limited");
  EXPECT_FALSE(last.header("Retry-After").empty());
  // Even the right password waits now.
  auto right =
      http_->call("POST", "/v1/auth", "", json{{"username", a.username}, {"password", kPassword}});
  EXPECT_EQ(right.status, 429);
}

TEST_F(ApiIntegration, LoginRejectsMalformedBodies) {
  auto& raw = http_->raw();
  auto r = raw.Post("/v1/auth", "{not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = raw.Post("/v1/auth", R"({"username":"a","password":"b"})", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 415);
  EXPECT_EQ(json::parse(r->body)["code"], "unsupported_media_type");
  expect_error(http_->call("POST", "/v1/auth", "", json{{"username", 7}, {"password", "x"}}), 400,
               "bad_request");
  expect_error(http_->call("POST", "/v1/auth", "", json::array()), 400, "bad_request");
  r = raw.Post("/v1/auth", std::string(std::size_t{70} * 1024, ' '), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(json::parse(r->body, nullptr, false).value("code", ""), "payload_too_large");
}

TEST_F(ApiIntegration, ForgedExpiredAndMissingTokensGet401) {
  auto a = account();
  const std::string path = "/v1/accounts/" + a.id;
  ASSERT_EQ(http_->get(path, a.token).status, 200);
  const std::int64_t exp = now_ms() / 1000 + 3600;
  const std::vector<std::pair<std::string, std::string>> forgeries{
      {"none", ""},
      {"alg none", make_token(JWT_ALG_NONE, "", {{"sub", a.id}, {"exp", exp}})},
      {"HS512", make_token(JWT_ALG_HS512, kSecret, {{"sub", a.id}, {"exp", exp}})},
      {"other key", make_token(JWT_ALG_HS256, "another-secret-another-secret-another",
                               {{"sub", a.id}, {"exp", exp}})},
      {"expired", make_token(JWT_ALG_HS256, kSecret, {{"sub", a.id}, {"exp", exp - 7200}})},
      {"no exp", make_token(JWT_ALG_HS256, kSecret, {{"sub", a.id}})},
      {"no sub", make_token(JWT_ALG_HS256, kSecret, {{"exp", exp}})},
      {"garbage", "a.b.c"},
      {"tampered", a.token.substr(0, a.token.size() - 2) + (a.token.back() == 'A' ? "BB" : "AA")},
  };
  for (const auto& [what, token] : forgeries) {
    SCOPED_TRACE(what);
    auto r = http_->get(path, token);
    expect_error(r, 401, "unauthorized");
    EXPECT_EQ(r.header("WWW-Authenticate"), "Bearer");
  }
  // The control: a well-made token with the shared secret works.
  EXPECT_EQ(
      http_->get(path, make_token(JWT_ALG_HS256, kSecret, {{"sub", a.id}, {"exp", exp}})).status,
      200);
  auto basic = http_->call("GET", path, "", std::nullopt, {{"Authorization", "Basic eDp5"}});
  expect_error(basic, 401, "unauthorized");
}

// ---- ownership ------------------------------------------------------------------------

TEST_F(ApiIntegration, AnotherAccountsResourcesAre404LikeMissingOnes) {
  auto alice = account();
  auto bob = account();
  provision("own-bob-1", bob.id, "Bob's dag");
  std::string bob_target;
  {
    auto t = http_->call("POST", "/v1/accounts/" + bob.id + "/targets", bob.token,
                         json{{"kind", "webhook"}, {"address", "https://hooks.example.com/b"}});
    ASSERT_EQ(t.status, 201) << t.body;
    bob_target = t.js()["targetId"];
  }
  const std::string acc = "/v1/accounts/" + bob.id;
  const std::string dev = "/v1/devices/own-bob-1";
  const std::vector<std::pair<std::string, std::string>> routes{
      {"GET", acc},
      {"PATCH", acc},
      {"POST", acc + "/password"},
      {"GET", acc + "/preferences"},
      {"PATCH", acc + "/preferences"},
      {"GET", acc + "/devices"},
      {"GET", acc + "/targets"},
      {"POST", acc + "/targets"},
      {"DELETE", acc + "/targets/" + bob_target},
      {"POST", acc + "/targets/" + bob_target + "/test"},
      {"POST", acc + "/targets/" + bob_target + "/verify"},
      {"GET", acc + "/stream"},
      {"GET", dev},
      {"PATCH", dev},
      {"GET", dev + "/events"},
      {"GET", dev + "/uptime"},
      {"GET", dev + "/battery"},
  };
  for (const auto& [method, path] : routes) {
    SCOPED_TRACE(std::string(method).append(" ").append(path));
    auto theirs = http_->call(method, path, alice.token, json{{"name", "mine now"}});
    expect_error(theirs, 404, "not_found");
    // The same answer as for something that does not exist at all.
    std::string missing = path;
    missing.replace(
        missing.find(path.find("own-bob-1") != std::string::npos ? "own-bob-1" : bob.id),
        path.find("own-bob-1") != std::string::npos ? 9 : bob.id.size(),
        path.find("own-bob-1") != std::string::npos ? "no-such-dag"
                                                    : "00000000-0000-0000-0000-000000000000");
    auto nothing = http_->call(method, missing, alice.token, json{{"name", "mine now"}});
    EXPECT_EQ(nothing.status, 404);
    EXPECT_EQ(nothing.body, theirs.body);
  }
  // Bob's things are untouched.
  auto still = http_->get(dev, bob.token);
  ASSERT_EQ(still.status, 200);
  EXPECT_EQ(still.js()["name"], "Bob's dag");
  auto targets = http_->get(acc + "/targets", bob.token);
  EXPECT_EQ(targets.js().size(), 1U);
}

// ---- accounts -------------------------------------------------------------------------

TEST_F(ApiIntegration, AccountEmailsArePatchedAsTargets) {
  auto a = account();
  const std::string path = "/v1/accounts/" + a.id;
  auto got = http_->get(path, a.token);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.js()["username"], a.username);
  EXPECT_EQ(got.js()["emails"], json::array());

  auto patched =
      http_->call("PATCH", path, a.token, json{{"emails", {"one@example.com", "two@example.com"}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  auto addresses = [](const json& list) {
    std::set<std::string> out;
    for (const auto& e : list)
      out.insert(e.is_string() ? e.get<std::string>() : e.value("address", ""));
    return out;
  };
  EXPECT_EQ(addresses(patched.js()["emails"]),
            (std::set<std::string>{"one@example.com", "two@example.com"}));
  auto targets = http_->get(path + "/targets", a.token).js();
  ASSERT_EQ(targets.size(), 2U);
  std::string kept_id;
  for (const auto& t : targets) {
    EXPECT_EQ(t["kind"], "email");
    EXPECT_FALSE(t["verified"].get<bool>());
    if (t["address"] == "two@example.com") kept_id = t["targetId"];
  }
  patched = http_->call("PATCH", path, a.token,
                        json{{"emails", {"two@example.com", "three@example.com"}}});
  ASSERT_EQ(patched.status, 200);
  targets = http_->get(path + "/targets", a.token).js();
  ASSERT_EQ(targets.size(), 2U);
  EXPECT_EQ(addresses(targets), (std::set<std::string>{"two@example.com", "three@example.com"}));
  for (const auto& t : targets) {
    if (t["address"] == "two@example.com") {
      EXPECT_EQ(t["targetId"], kept_id);  // kept as it was
    }
  }

  expect_error(http_->call("PATCH", path, a.token, json{{"emails", {"not an address"}}}), 400,
               "bad_request");
  expect_error(http_->call("PATCH", path, a.token, json{{"emails", "x@example.com"}}), 400,
               "bad_request");
  json many = json::array();
  for (int i = 0; i < 21; ++i) many.push_back("a" + std::to_string(i) + "@example.com");
  expect_error(http_->call("PATCH", path, a.token, json{{"emails", many}}), 400, "bad_request");
  EXPECT_EQ(http_->get(path, a.token).js()["emails"].size(), 2U);
}

TEST_F(ApiIntegration, PasswordChange) {
  auto a = account();
  const std::string path = "/v1/accounts/" + a.id + "/password";
  expect_error(http_->call("POST", path, a.token,
                           json{{"currentPassword", "wrong"}, {"newPassword", "a new password"}}),
               403, "forbidden");
  expect_error(http_->call("POST", path, a.token,
                           json{{"currentPassword", kPassword}, {"newPassword", "short"}}),
               400, "bad_request");
  auto changed =
      http_->call("POST", path, a.token,
                  json{{"currentPassword", kPassword}, {"newPassword", "a new password"}});
  EXPECT_EQ(changed.status, 204) << changed.body;
  EXPECT_EQ(http_
                ->call("POST", "/v1/auth", "",
                       json{{"username", a.username}, {"password", "a new password"}})
                .status,
            200);
  EXPECT_EQ(
      http_->call("POST", "/v1/auth", "", json{{"username", a.username}, {"password", kPassword}})
          .status,
      403);
}

TEST_F(ApiIntegration, Preferences) {
  auto a = account();
  const std::string path = "/v1/accounts/" + a.id + "/preferences";
  auto got = http_->get(path, a.token);
  ASSERT_EQ(got.status, 200);
  EXPECT_EQ(got.js()["disconnectGraceSeconds"], 900);
  EXPECT_EQ(got.js()["timeZone"], "UTC");
  auto patched = http_->call("PATCH", path, a.token,
                             json{{"timeZone", "Europe/Oslo"},
                                  {"powerOffGraceSeconds", 120},
                                  {"notify", {{"batteryLow", false}}}});
  ASSERT_EQ(patched.status, 200) << patched.body;
  EXPECT_EQ(patched.js()["timeZone"], "Europe/Oslo");
  EXPECT_EQ(patched.js()["powerOffGraceSeconds"], 120);
  EXPECT_EQ(patched.js()["notify"]["batteryLow"], false);
  EXPECT_EQ(patched.js()["notify"]["powerLost"], true);
  EXPECT_EQ(patched.js()["disconnectGraceSeconds"], 900);
  for (const json& bad :
       {json{{"timeZone", "Mars/Olympus"}}, json{{"lowBatteryPercent", 101}},
        json{{"disconnectGraceSeconds", -1}}, json{{"powerOffGraceSeconds", "60"}},
        json{{"notify", {{"powerLost", "yes"}}}}, json{{"notify", true}}}) {
    SCOPED_TRACE(bad.dump());
    expect_error(http_->call("PATCH", path, a.token, bad), 400, "bad_request");
  }
  EXPECT_EQ(http_->get(path, a.token).body, patched.body);  // nothing half-applied
}

// ---- devices, history, uptime ---------------------------------------------------------

TEST_F(ApiIntegration, DevicesAreListedShownAndRenamed) {
  auto a = account();
  provision("dev-list-b", a.id, "Boathouse");
  provision("dev-list-a", a.id, "Attic");
  auto list = http_->get("/v1/accounts/" + a.id + "/devices", a.token);
  ASSERT_EQ(list.status, 200);
  const auto arr = list.js();
  ASSERT_EQ(arr.size(), 2U);
  EXPECT_EQ(arr[0]["name"], "Attic");
  EXPECT_EQ(arr[0]["deviceId"], "dev-list-a");
  EXPECT_TRUE(arr[0]["state"]["power"].is_null());
  EXPECT_TRUE(arr[0]["connection"]["status"].is_null());

  const std::string path = "/v1/devices/dev-list-a";
  auto renamed = http_->call("PATCH", path, a.token, json{{"name", "Loft ☀"}});
  ASSERT_EQ(renamed.status, 200) << renamed.body;
  EXPECT_EQ(renamed.js()["name"], "Loft ☀");
  EXPECT_EQ(http_->get(path, a.token).js()["name"], "Loft ☀");
  for (const json& bad : {json{{"name", ""}}, json{{"name", std::string(65, 'x')}},
                          json{{"name", "tab\there"}}, json{{"name", 42}}, json{{"name", "   "}}}) {
    SCOPED_TRACE(bad.dump());
    expect_error(http_->call("PATCH", path, a.token, bad), 400, "bad_request");
  }
  EXPECT_EQ(http_->call("PATCH", path, a.token, json{{"name", std::string(64, 'y')}}).status, 200);
}

// dagd keeps rendered lists while nothing was committed: a write by another process (here
// the test's own connection, as dagctl's would be) must show at once.
TEST_F(ApiIntegration, TheDeviceListIsNeverStaleAfterWritesFromOutside) {
  auto a = account();
  auto b = account();
  provision("dev-fresh-1", a.id, "Barn");
  const std::string path = "/v1/accounts/" + a.id + "/devices";
  for (int i = 0; i < 3; ++i) ASSERT_EQ(http_->get(path, a.token).js().size(), 1U);
  // Another account's list, asked while a's is cached: still 404.
  expect_error(http_->get("/v1/accounts/" + b.id + "/devices", a.token), 404, "not_found");

  ASSERT_TRUE(
      in_tx([&](store::Transaction& tx) { return tx.rename_device("dev-fresh-1", "Shed"); }));
  EXPECT_EQ(http_->get(path, a.token).js()[0]["name"], "Shed");
  provision("dev-fresh-2", a.id, "Attic");
  const auto two = http_->get(path, a.token).js();
  ASSERT_EQ(two.size(), 2U);
  EXPECT_EQ(two[0]["name"], "Attic");

  ASSERT_EQ(http_->get("/v1/accounts/" + b.id + "/devices", b.token).status, 200);
  ASSERT_TRUE(in_tx([&](store::Transaction& tx) { return tx.delete_account(b.id); }));
  expect_error(http_->get("/v1/accounts/" + b.id + "/devices", b.token), 401, "unauthorized");
}

TEST_F(ApiIntegration, HistoryIsPaginatedAndFiltered) {
  auto a = account();
  provision("dev-hist", a.id, "History");
  auto c = tester();
  ASSERT_TRUE(c);
  const std::int64_t t0 = now_ms() - 10 * kMinuteMs;
  for (int seq = 1; seq <= 5; ++seq) {
    ASSERT_NO_FATAL_FAILURE(
        report(*c, "dev-hist", seq % 2 == 1 ? "off" : "on", seq, t0 + seq * kMinuteMs));
  }
  const std::string path = "/v1/devices/dev-hist/events";
  auto all = http_->get(path, a.token);
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(all.js()["events"].size(), 5U);
  EXPECT_EQ(all.js()["events"][0]["seq"], 5);  // newest first
  EXPECT_EQ(all.js()["events"][0]["kind"], "power_off");
  EXPECT_TRUE(all.js()["nextCursor"].is_null());

  std::vector<std::int64_t> seqs;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto r = http_->get(path + "?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor), a.token);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto page_json = r.js();
    for (const auto& e : page_json["events"]) seqs.push_back(e["seq"].get<std::int64_t>());
    if (page_json["nextCursor"].is_null()) break;
    cursor = page_json["nextCursor"];
  }
  EXPECT_EQ(seqs, (std::vector<std::int64_t>{5, 4, 3, 2, 1}));

  // since (RFC 3339) and until (epoch ms) on the observed time.
  const auto since = http_->get(path + "?since=" + std::to_string(t0 + 2 * kMinuteMs) +
                                    "&until=" + std::to_string(t0 + 4 * kMinuteMs),
                                a.token);
  ASSERT_EQ(since.status, 200);
  ASSERT_EQ(since.js()["events"].size(), 2U);
  EXPECT_EQ(since.js()["events"][0]["seq"], 3);
  EXPECT_EQ(http_->get(path + "?since=2020-01-01T00:00:00Z", a.token).js()["events"].size(), 5U);
  EXPECT_EQ(
      http_->get(path + "?since=2999-01-01T00:00:00.000%2B01:00", a.token).js()["events"].size(),
      0U);
  for (const char* bad : {"?limit=0", "?limit=1001", "?limit=x", "?since=yesterday", "?cursor=-1",
                          "?until=2026-13-01T00:00:00Z"}) {
    SCOPED_TRACE(bad);
    expect_error(http_->get(path + bad, a.token), 400, "bad_request");
  }
}

TEST_F(ApiIntegration, BatteryLevelsOverTimeComeFromTheReports) {
  auto a = account();
  provision("dev-batt", a.id, "Battery");
  const std::string path = "/v1/devices/dev-batt/battery";
  // A dag that never reported a battery has no readings (and that is no error).
  auto none = http_->get(path, a.token);
  ASSERT_EQ(none.status, 200) << none.body;
  EXPECT_EQ(none.js(), (json{{"deviceId", "dev-batt"}, {"readings", json::array()}}));

  // Older readings, as dagd would have recorded them over the past days.
  const std::int64_t now = now_ms();
  for (int day = 1; day <= 9; ++day) {
    ASSERT_TRUE(in_tx([&](store::Transaction& tx) {
      return tx.record_battery(store::BatteryReading{"dev-batt", now - day * 86'400'000,
                                                     100.0 - day, 4.1, std::nullopt, false},
                               0);
    }));
  }
  // A live report through the broker and ingest: a transition report with a battery.
  auto c = tester();
  ASSERT_TRUE(c);
  {
    const auto accepted = protocol::shadow_topic("dev-batt", protocol::ShadowOp::update,
                                                 protocol::ShadowReply::accepted);
    auto s = c->subscribe(accepted, 1);
    ASSERT_TRUE(s) << s.error().message;
    const json body = {
        {"state",
         {{"reported",
           {{"status", "off"},
            {"observedAt", now},
            {"seq", 1},
            {"battery",
             {{"percent", 87.5}, {"volts", 4.05}, {"minutesLeft", 312}, {"low", false}}}}}}},
        {"clientToken", "e1"}};
    ASSERT_TRUE(
        c->publish(protocol::shadow_topic("dev-batt", protocol::ShadowOp::update), body.dump(), 1));
    ASSERT_TRUE(c->wait_for_message(accepted, 10s));
  }

  // The default window is the last 7 days: 6 old readings and the live one, oldest first.
  auto week = http_->get(path, a.token);
  ASSERT_EQ(week.status, 200) << week.body;
  const auto readings = week.js()["readings"];
  ASSERT_EQ(readings.size(), 7U) << week.body;
  EXPECT_EQ(readings[0]["percent"], 94.0);
  EXPECT_EQ(readings[0]["onBattery"], false);
  EXPECT_TRUE(readings[0]["minutesLeft"].is_null());
  const auto live = readings[6];
  EXPECT_EQ(live["percent"], 87.5);
  EXPECT_EQ(live["volts"], 4.05);
  EXPECT_EQ(live["minutesLeft"], 312);
  EXPECT_EQ(live["onBattery"], true);
  EXPECT_TRUE(live["at"].get<std::string>().ends_with("Z"));

  // An explicit window (epoch ms and RFC 3339), and a limit keeping the newest.
  auto old = http_->get(path + "?since=" + std::to_string(now - 10 * 86'400'000) +
                            "&until=" + std::to_string(now - 7 * 86'400'000 + 1),
                        a.token);
  ASSERT_EQ(old.status, 200) << old.body;
  EXPECT_EQ(old.js()["readings"].size(), 3U);
  EXPECT_EQ(http_->get(path + "?since=2020-01-01T00:00:00Z", a.token).js()["readings"].size(), 10U);
  auto newest = http_->get(path + "?since=2020-01-01T00:00:00Z&limit=2", a.token).js()["readings"];
  ASSERT_EQ(newest.size(), 2U);
  EXPECT_EQ(newest[1]["percent"], 87.5);
  EXPECT_EQ(newest[0]["percent"], 99.0);
  for (const char* bad : {"?limit=0", "?limit=10001", "?limit=x", "?since=yesterday",
                          "?until=2026-13-01T00:00:00Z"}) {
    SCOPED_TRACE(bad);
    expect_error(http_->get(path + bad, a.token), 400, "bad_request");
  }
  expect_error(http_->get(path), 401, "unauthorized");
}

TEST_F(ApiIntegration, UptimeCountsOutagesByObservedTime) {
  auto a = account();
  provision("dev-up", a.id, "Uptime");
  auto c = tester();
  ASSERT_TRUE(c);
  const std::int64_t now = now_ms();
  // On 3 h ago, off for 30 min from 2 h ago, off again from 10 min ago (ongoing).
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-up", "on", 1, now - 3 * kHourMs));
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-up", "off", 2, now - 2 * kHourMs));
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-up", "on", 3, now - 2 * kHourMs + 1'800'000));
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-up", "off", 4, now - 600'000));
  auto r = http_->get("/v1/devices/dev-up/uptime?days=1", a.token);
  ASSERT_EQ(r.status, 200) << r.body;
  const auto u = r.js();
  EXPECT_EQ(u["days"], 1);
  EXPECT_EQ(u["outageCount"], 2);
  EXPECT_EQ(u["longestOutageMs"], 1'800'000);
  EXPECT_TRUE(u["ongoing"].get<bool>());
  const auto total = u["totalOutageMs"].get<std::int64_t>();
  EXPECT_GE(total, 1'800'000 + 600'000);
  EXPECT_LT(total, 1'800'000 + 600'000 + 60'000);
  const auto monitored = u["monitoredMs"].get<std::int64_t>();
  EXPECT_GE(monitored, 3 * kHourMs);
  EXPECT_LT(monitored, 3 * kHourMs + 60'000);
  EXPECT_NEAR(u["availability"].get<double>(), 100.0 * (monitored - total) / monitored, 1e-6);
  expect_error(http_->get("/v1/devices/dev-up/uptime?days=0", a.token), 400, "bad_request");
  expect_error(http_->get("/v1/devices/dev-up/uptime?days=366", a.token), 400, "bad_request");
  // A dag that never reported has no monitored time.
  provision("dev-up-new", a.id, "Fresh");
  auto fresh = http_->get("/v1/devices/dev-up-new/uptime", a.token);
  ASSERT_EQ(fresh.status, 200);
  EXPECT_TRUE(fresh.js()["availability"].is_null());
  EXPECT_EQ(fresh.js()["days"], 30);
}

// ---- targets --------------------------------------------------------------------------

TEST_F(ApiIntegration, TargetsAreAddedListedTestedAndDeleted) {
  auto a = account();
  const std::string base = "/v1/accounts/" + a.id + "/targets";
  auto mail =
      http_->call("POST", base, a.token, json{{"kind", "email"}, {"address", "me@example.com"}});
  ASSERT_EQ(mail.status, 201) << mail.body;
  EXPECT_FALSE(mail.js()["verified"].get<bool>());
  auto hook = http_->call("POST", base, a.token,
                          json{{"kind", "webhook"},
                               {"address", "https://hooks.example.com/x"},
                               {"secret", "s3cret-value"},
                               {"bodyTemplate", R"({"text":"{{message}}"})"},
                               {"contentType", "application/json"}});
  ASSERT_EQ(hook.status, 201) << hook.body;
  EXPECT_TRUE(hook.js()["verified"].get<bool>());
  EXPECT_TRUE(hook.js()["hasSecret"].get<bool>());
  EXPECT_EQ(hook.body.find("s3cret-value"), std::string::npos);
  EXPECT_EQ(hook.js()["health"]["failureCount"], 0);
  expect_error(
      http_->call("POST", base, a.token, json{{"kind", "email"}, {"address", "me@example.com"}}),
      409, "conflict");
  for (const json& bad :
       {json{{"kind", "pigeon"}, {"address", "x"}}, json{{"kind", "email"}, {"address", "nope"}},
        json{{"kind", "webhook"}, {"address", "ftp://x.example.com"}},
        json{{"kind", "webhook"}, {"address", "https://u:p@x.example.com"}},
        json{{"kind", "email"}, {"address", "a@example.com"}, {"secret", "x"}},
        json{{"kind", "ntfy"}, {"address", "https://ntfy.sh/t"}, {"bodyTemplate", "x"}},
        json{{"kind", "webhook"},
             {"address", "https://x.example.com"},
             {"bodyTemplate", "{{nope}}"}},
        json{{"address", "a@example.com"}}}) {
    SCOPED_TRACE(bad.dump());
    expect_error(http_->call("POST", base, a.token, bad), 400, "bad_request");
  }
  auto list = http_->get(base, a.token);
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.js().size(), 2U);
  EXPECT_EQ(list.js()[0]["kind"], "email");

  const std::string mail_id = mail.js()["targetId"];
  const std::string hook_id = hook.js()["targetId"];
  expect_error(http_->call("POST", base + "/" + mail_id + "/test", a.token), 409, "conflict");
  // The webhook points at a name that does not resolve: a test that reports the failure.
  auto tested = http_->call("POST", base + "/" + hook_id + "/test", a.token);
  ASSERT_EQ(tested.status, 200) << tested.body;
  EXPECT_FALSE(tested.js()["delivered"].get<bool>());
  EXPECT_TRUE(tested.js()["error"].is_string());

  auto resend = http_->call("POST", base + "/" + mail_id + "/verify", a.token);
  EXPECT_EQ(resend.status, 202) << resend.body;
  EXPECT_TRUE(resend.js()["requested"].is_boolean());
  expect_error(http_->call("POST", base + "/" + hook_id + "/verify", a.token), 409, "conflict");

  auto removed = http_->call("DELETE", base + "/" + hook_id, a.token);
  EXPECT_EQ(removed.status, 204);
  EXPECT_TRUE(removed.body.empty());
  expect_error(http_->call("DELETE", base + "/" + hook_id, a.token), 404, "not_found");
  EXPECT_EQ(http_->get(base, a.token).js().size(), 1U);
}

TEST_F(ApiIntegration, TheVerificationLinkVerifiesOnce) {
  auto a = account();
  auto mail = http_->call("POST", "/v1/accounts/" + a.id + "/targets", a.token,
                          json{{"kind", "email"}, {"address", "verify-me@example.com"}});
  ASSERT_EQ(mail.status, 201);
  const std::string id = mail.js()["targetId"];
  const std::string token = "a-token-from-a-mail-" + id;
  auto made = in_tx([&](store::Transaction& tx) {
    return tx.create_verification(id, sha256_hex(token), now_ms(), now_ms() + 3'600'000);
  });
  ASSERT_TRUE(made) << made.error().message;
  auto page = http_->get("/v1/verify?token=" + token);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  auto list = http_->get("/v1/accounts/" + a.id + "/targets", a.token).js();
  ASSERT_EQ(list.size(), 1U);
  EXPECT_TRUE(list[0]["verified"].get<bool>());
  EXPECT_EQ(http_->get("/v1/verify?token=" + token).status, 404);  // used
  EXPECT_EQ(http_->get("/v1/verify?token=never-issued").status, 404);
  EXPECT_EQ(http_->get("/v1/verify").status, 404);
}

// ---- live events ----------------------------------------------------------------------

// An SSE client on its own thread, collecting events.
class SseClient {
 public:
  SseClient(int port, std::string path, httplib::Headers headers = {})
      : client_("127.0.0.1", port), path_(path) {
    client_.set_read_timeout(30s);
    thread_ = std::thread([this, path = std::move(path), headers = std::move(headers)] {
      auto r = client_.Get(
          path, headers,
          [this](const httplib::Response& res) {
            std::lock_guard lock(mutex_);
            status_ = res.status;
            content_type_ = res.get_header_value("Content-Type");
            changed_.notify_all();
            return true;
          },
          [this](const char* data, std::size_t n) {
            std::lock_guard lock(mutex_);
            buffer_.append(data, n);
            if (raw_.size() < 4096) raw_.append(data, std::min<std::size_t>(n, 4096 - raw_.size()));
            for (auto end = buffer_.find("\n\n"); end != std::string::npos;
                 end = buffer_.find("\n\n")) {
              parse(buffer_.substr(0, end));
              buffer_.erase(0, end + 2);
            }
            changed_.notify_all();
            return !stop_;
          });
      std::lock_guard lock(mutex_);
      done_ = true;
      if (r) {
        status_ = r->status;
        body_ = r->body;
      }
      changed_.notify_all();
    });
  }
  ~SseClient() {
    {
      std::unique_lock lock(mutex_);
      // An error answer ends by itself: read it whole (for the record below).
      changed_.wait_for(lock, 5s, [&] { return done_ || status_ == 200; });
      stop_ = true;
    }
    client_.stop();
    thread_.join();
    // For the OpenAPI check: the stream's status, type and what was read of it.
    Reply r;
    r.status = status_;
    r.content_type = content_type_;
    r.body = body_.empty() ? raw_ : body_;
    if (r.status != 0) Recorder::get().add("GET", path_, r);
  }
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  struct Event {
    std::string id, name;
    json data;
  };
  // Waits for an event matching `pred` among those not yet taken.
  template <class Pred>
  std::optional<Event> wait_for(Pred pred, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    std::optional<Event> found;
    changed_.wait_for(lock, timeout, [&] {
      for (auto it = events_.begin(); it != events_.end(); ++it) {
        if (pred(*it)) {
          found = *it;
          events_.erase(events_.begin(), it + 1);
          return true;
        }
      }
      return done_;
    });
    return found;
  }
  std::string dump() {
    std::lock_guard lock(mutex_);
    std::string out = "events left:";
    for (const auto& e : events_) out += " [" + e.id + " " + e.name + " " + e.data.dump() + "]";
    return out + " buffer: " + buffer_;
  }
  int status() {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, 10s, [&] { return status_ != 0 || done_; });
    return status_;
  }
  std::string content_type() {
    std::lock_guard lock(mutex_);
    return content_type_;
  }

 private:
  void parse(const std::string& block) {
    Event e;
    std::size_t pos = 0;
    while (pos < block.size()) {
      auto nl = block.find('\n', pos);
      if (nl == std::string::npos) nl = block.size();
      const auto line = block.substr(pos, nl - pos);
      pos = nl + 1;
      if (line.rfind("id: ", 0) == 0) e.id = line.substr(4);
      if (line.rfind("event: ", 0) == 0) e.name = line.substr(7);
      if (line.rfind("data: ", 0) == 0) e.data = json::parse(line.substr(6), nullptr, false);
    }
    if (!e.name.empty()) events_.push_back(std::move(e));
  }

  httplib::Client client_;
  std::string path_;
  std::string raw_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string buffer_, body_, content_type_;
  std::vector<Event> events_;
  int status_{0};
  bool done_{false};
  bool stop_{false};
};

TEST_F(ApiIntegration, TheStreamShowsAPowerChangeWithinASecondAndResumes) {
  auto a = account();
  provision("dev-live", a.id, "Live");
  auto c = tester();
  ASSERT_TRUE(c);
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-live", "on", 1, now_ms() - 60'000));
  std::string last_id;
  {
    SseClient sse(env_->dagd->api_port(),
                  "/v1/accounts/" + a.id + "/stream?access_token=" + a.token);
    ASSERT_EQ(sse.status(), 200);
    EXPECT_NE(sse.content_type().find("text/event-stream"), std::string::npos);
    auto snapshot = sse.wait_for([](const auto& e) { return e.name == "snapshot"; }, 10s);
    ASSERT_TRUE(snapshot);
    ASSERT_EQ(snapshot->data.size(), 1U);
    EXPECT_EQ(snapshot->data[0]["state"]["power"], "on");

    const auto published = std::chrono::steady_clock::now();
    const json off = {
        {"state", {{"reported", {{"status", "off"}, {"observedAt", now_ms()}, {"seq", 2}}}}}};
    ASSERT_TRUE(
        c->publish(protocol::shadow_topic("dev-live", protocol::ShadowOp::update), off.dump(), 1));
    auto change = sse.wait_for(
        [](const auto& e) { return e.name == "device" && e.data["state"]["power"] == "off"; }, 10s);
    const auto took = std::chrono::steady_clock::now() - published;
    ASSERT_TRUE(change) << "no power change on the stream";
    EXPECT_LT(took, 1s) << "the change took "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                        << " ms";
    EXPECT_EQ(change->data["deviceId"], "dev-live");
    EXPECT_EQ(change->data["userState"]["state"], "off");
    last_id = change->id;
    ASSERT_FALSE(last_id.empty());
  }
  // Missed while away: resumed from Last-Event-ID without a snapshot.
  ASSERT_NO_FATAL_FAILURE(report(*c, "dev-live", "on", 3, now_ms()));
  auto renamed = http_->call("PATCH", "/v1/devices/dev-live", a.token, json{{"name", "Renamed"}});
  ASSERT_EQ(renamed.status, 200);
  SseClient again(env_->dagd->api_port(), "/v1/accounts/" + a.id + "/stream",
                  {{"Authorization", "Bearer " + a.token}, {"Last-Event-ID", last_id}});
  ASSERT_EQ(again.status(), 200);
  auto back_on = again.wait_for(
      [](const auto& e) { return e.name == "device" && e.data["state"]["power"] == "on"; }, 10s);
  ASSERT_TRUE(back_on);
  auto name = again.wait_for(
      [](const auto& e) { return e.name == "device" && e.data["name"] == "Renamed"; }, 10s);
  EXPECT_TRUE(name) << again.dump();
  EXPECT_FALSE(again.wait_for([](const auto& e) { return e.name == "snapshot"; }, 0ms));
  // A Last-Event-ID from long ago (or another run) gets a snapshot.
  SseClient stale(env_->dagd->api_port(), "/v1/accounts/" + a.id + "/stream",
                  {{"Authorization", "Bearer " + a.token}, {"Last-Event-ID", "12"}});
  EXPECT_TRUE(stale.wait_for([](const auto& e) { return e.name == "snapshot"; }, 10s));
}

TEST_F(ApiIntegration, StreamsNeedTheirAccountsToken) {
  auto alice = account();
  auto bob = account();
  SseClient none(env_->dagd->api_port(), "/v1/accounts/" + alice.id + "/stream");
  EXPECT_EQ(none.status(), 401);
  SseClient other(env_->dagd->api_port(),
                  "/v1/accounts/" + alice.id + "/stream?access_token=" + bob.token);
  EXPECT_EQ(other.status(), 404);
}

// ---- serving --------------------------------------------------------------------------

TEST_F(ApiIntegration, StaticFilesWithCacheHeadersAndTheAppFallback) {
  auto index = http_->get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("<title>dag</title>"), std::string::npos);
  EXPECT_EQ(index.header("Cache-Control"), "no-cache");
  auto asset = http_->get("/assets/app-1234.js");
  EXPECT_EQ(asset.status, 200);
  EXPECT_EQ(asset.header("Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_NE(asset.content_type.find("javascript"), std::string::npos);
  auto route = http_->get("/devices/some-dag");
  EXPECT_EQ(route.status, 200);
  EXPECT_EQ(route.body, index.body);
  EXPECT_EQ(http_->get("/assets/missing-99.js").status, 404);
  EXPECT_EQ(http_->get("/../../etc/passwd").status, 404);
  EXPECT_EQ(http_->get("/%2e%2e/%2e%2e/etc/passwd").status, 404);
}

TEST_F(ApiIntegration, CorsForConfiguredOriginsOnly) {
  auto pre = http_->call("OPTIONS", "/v1/auth", "", std::nullopt,
                         {{"Origin", kOrigin}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(pre.status, 204);
  EXPECT_EQ(pre.header("Access-Control-Allow-Origin"), kOrigin);
  EXPECT_NE(pre.header("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  auto other =
      http_->call("GET", "/healthz", "", std::nullopt, {{"Origin", "https://evil.example"}});
  EXPECT_EQ(other.status, 200);
  EXPECT_TRUE(other.header("Access-Control-Allow-Origin").empty());
  auto same = http_->call("GET", "/healthz", "", std::nullopt, {{"Origin", kOrigin}});
  EXPECT_EQ(same.header("Access-Control-Allow-Origin"), kOrigin);
}

// Raw bytes on a socket: broken requests get a 4xx (or a closed connection), never a
// crash; the server answers normally afterwards.
std::string raw_exchange(int port, const std::string& bytes) {
  httplib::Client probe("127.0.0.1", port);
  (void)probe;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {  // NOLINT
    ::close(fd);
    return "connect failed";
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST_F(ApiIntegration, MalformedRequestsNeverCrashTheServer) {
  const int port = env_->dagd->api_port();
  const std::vector<std::string> corpus{
      "GET",
      "GET / HTTP/1.1\r\n",
      "GARBAGE\r\n\r\n",
      "GET /v1/auth HTTP/9.9\r\nHost: x\r\n\r\n",
      "POST /v1/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"username\"",
      "POST /v1/auth HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
      std::string("POST /v1/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n") +
          "Content-Length: 9\r\n\r\n{\"a\":\xff\xfe}",
      "POST /v1/auth HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "GET /" + std::string(20'000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20'000, 'b') + "\r\n\r\n",
      "GET /v1/devices/%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /v1/devices/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
      "PATCH /v1/devices/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\nContent-Length: "
      "2\r\n\r\n{}",
      std::string("GET /\0 HTTP/1.1\r\n\r\n", 19),
  };
  for (const auto& bytes : corpus) {
    SCOPED_TRACE(bytes.substr(0, 60));
    const auto answer = raw_exchange(port, bytes);
    if (answer.rfind("HTTP/1.1 ", 0) == 0) {
      const int status = std::atoi(answer.c_str() + 9);  // NOLINT
      EXPECT_GE(status, 400) << answer.substr(0, 200);
      EXPECT_LT(status, 500) << answer.substr(0, 200);
    }
    EXPECT_EQ(http_->get("/healthz").status, 200);
  }
}

// ---- HTTPS ----------------------------------------------------------------------------

TEST(ApiTls, DagdServesHttpsWithItsOwnCertificate) {
  TestPki pki;
  BrokerOptions bo;
  bo.service_identities = {"dagd"};
  auto broker = MosquittoBroker::start(pki, bo);
  ASSERT_TRUE(broker) << broker.error().message;
  DagdOptions o;
  o.binary = DAG_DAGD_BIN;
  o.port = (*broker)->port();
  o.env = {{"DAG_API_TLS_CERT", pki.server_cert_file().string()},
           {"DAG_API_TLS_KEY", pki.server_key_file().string()},
           {"DAG_API_METRICS_TOKEN", "scrape-token"}};
  auto dagd = DagdProcess::start(pki, std::move(o));
  ASSERT_TRUE(dagd) << dagd.error().message;
  httplib::SSLClient https("127.0.0.1", (*dagd)->api_port());
  https.set_ca_cert_path(pki.ca_file().string());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/healthz");
  ASSERT_TRUE(r) << httplib::to_string(r.error()) << "\n" << (*dagd)->log();
  EXPECT_EQ(r->status, 200);
  // This dagd guards /metrics with a token.
  auto open = https.Get("/metrics");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->status, 401);
  auto wrong = https.Get("/metrics", {{"Authorization", "Bearer scrape-tokeN"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  auto scraped = https.Get("/metrics", {{"Authorization", "Bearer scrape-token"}});
  ASSERT_TRUE(scraped);
  EXPECT_EQ(scraped->status, 200);
  EXPECT_NE(scraped->body.find("dagd_messages_total"), std::string::npos);
  // Plain HTTP on the TLS port gets nothing useful.
  httplib::Client plain("127.0.0.1", (*dagd)->api_port());
  plain.set_read_timeout(5s);
  auto p = plain.Get("/healthz");
  EXPECT_TRUE(!p || p->status != 200);
}

}  // namespace
}  // namespace dag::test
