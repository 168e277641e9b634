// WebhookChannel and NtfyChannel against a small in-test HTTP server (cpp-httplib): body,
// signature (recomputed here), templates, headers, status mapping, timeouts and the
// private-address guard.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "dag/notify/ntfy.hpp"
#include "dag/notify/webhook.hpp"

namespace dag::notify {
namespace {

using protocol::UserState;
using store::Transition;
using namespace std::chrono_literals;

struct Request {
  std::string path;
  std::string body;
  httplib::Headers headers;
  [[nodiscard]] std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string{} : it->second;
  }
};

/// Records every POST and answers with the status set by respond(); hold() makes it wait
/// (until release()) before answering, to test timeouts.
class HookServer {
 public:
  HookServer() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      std::unique_lock lock{mutex_};
      requests_.push_back({req.path, req.body, req.headers});
      cv_.notify_all();
      cv_.wait(lock, [this] { return !holding_; });
      res.status = status_;
      res.set_content(answer_, "text/plain");
    });
    server_.Get("/ready", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ready", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Answered once the accept loop runs: a stop() before that would be lost (httplib
    // 0.11 only stops a running server) and the destructor would wait forever.
    httplib::Client client{"127.0.0.1", port_};
    const auto ready = client.Get("/ready");
    if (!ready || ready->status != 200) ADD_FAILURE() << "the test HTTP server did not start";
  }
  ~HookServer() {
    release();
    server_.stop();
    thread_.join();
  }
  HookServer(const HookServer&) = delete;
  HookServer& operator=(const HookServer&) = delete;

  [[nodiscard]] std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  void respond(int status, std::string answer = "") {
    std::lock_guard lock{mutex_};
    status_ = status;
    answer_ = std::move(answer);
  }
  void hold() {
    std::lock_guard lock{mutex_};
    holding_ = true;
  }
  void release() {
    {
      std::lock_guard lock{mutex_};
      holding_ = false;
    }
    cv_.notify_all();
  }
  std::vector<Request> requests() {
    std::lock_guard lock{mutex_};
    return requests_;
  }

 private:
  httplib::Server server_;
  int port_{0};
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  int status_{200};
  std::string answer_;
  bool holding_{false};
};

HttpOptions local() {
  HttpOptions o;
  o.allow_private_addresses = true;  // the test server is on loopback
  return o;
}

Notice notice(std::string device_name = "Home", Transition t = Transition::power_lost,
              UserState s = UserState::off) {
  Notice n;
  n.account_id = "acc-1";
  n.account_name = "alice";
  n.time_zone = "Europe/Oslo";
  n.dashboard_url = "https://dags.example.com";
  Item item;
  item.device_id = "dev-1";
  item.device_name = std::move(device_name);
  item.transition = t;
  item.user_state = s;
  item.observed_at_ms = 1'795'560'096'123;
  n.items.push_back(item);
  n.idempotency_key = "n.42";
  return n;
}

store::NotificationTarget hook(const std::string& url, std::optional<std::string> secret = {}) {
  store::NotificationTarget t;
  t.id = "t-1";
  t.account_id = "acc-1";
  t.kind = store::TargetKind::webhook;
  t.address = url;
  t.verified = true;
  t.secret = std::move(secret);
  return t;
}

std::string hmac_hex(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &length);
  std::string out;
  for (unsigned int i = 0; i < length; ++i) out += fmt::format("{:02x}", mac[i]);
  return out;
}

TEST(Webhook, PostsTheDocumentedJson) {
  HookServer server;
  FakeClock clock{1'700'000'000'000};
  WebhookChannel channel{local(), clock};
  auto n = notice();
  n.items.front().extra = {{"note", "x"}};
  const auto sent = channel.deliver(hook(server.url()), n);
  ASSERT_TRUE(sent) << sent.error().reason;
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 1U);
  const auto& r = requests.front();
  EXPECT_EQ(r.path, "/hook");
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("Idempotency-Key"), "n.42");
  EXPECT_EQ(r.header("X-Dag-Timestamp"), "1700000000");
  EXPECT_EQ(r.header("X-Dag-Signature"), "");  // no secret, no signature
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["type"], "detectordag.notification");
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["idempotencyKey"], "n.42");
  EXPECT_EQ(j["account"], "acc-1");
  EXPECT_EQ(j["accountName"], "alice");
  EXPECT_EQ(j["followUp"], false);
  EXPECT_EQ(j["title"], "You've lost power! (Home)");
  EXPECT_EQ(j["dashboardUrl"], "https://dags.example.com");
  ASSERT_EQ(j["items"].size(), 1U);
  const auto& item = j["items"][0];
  EXPECT_EQ(item["deviceId"], "dev-1");
  EXPECT_EQ(item["deviceName"], "Home");
  EXPECT_EQ(item["transition"], "power_lost");
  EXPECT_EQ(item["userState"], "off");
  EXPECT_EQ(item["userStateTitle"], "Off");
  EXPECT_EQ(item["title"], "You've lost power!");
  EXPECT_EQ(item["message"], "Home: the power went off at 23:41 CET, Tue 24 Nov. Now: Off.");
  EXPECT_EQ(item["observedAt"], "2026-11-24T22:41:36.123Z");
  EXPECT_EQ(item["observedAtMs"], 1'795'560'096'123);
  EXPECT_EQ(item["extra"]["note"], "x");
}

TEST(Webhook, SignsTheBodyWithTheSecret) {
  HookServer server;
  WebhookChannel channel{local()};
  ASSERT_TRUE(channel.deliver(hook(server.url(), "k3y"), notice("Hütte <b>")));
  const auto r = server.requests().at(0);
  EXPECT_EQ(r.header("X-Dag-Signature"), "sha256=" + hmac_hex("k3y", r.body));
  EXPECT_EQ(webhook_signature("k3y", r.body), r.header("X-Dag-Signature"));
  EXPECT_EQ(nlohmann::json::parse(r.body)["items"][0]["deviceName"], "Hütte <b>");
  // RFC 4231 test case 2.
  EXPECT_EQ(webhook_signature("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Webhook, FollowUpCarriesEveryItem) {
  HookServer server;
  WebhookChannel channel{local()};
  auto n = notice("North");
  auto south = n.items.front();
  south.device_id = "dev-2";
  south.device_name = "South";
  south.transition = Transition::dag_back;
  south.user_state = UserState::on;
  n.items.push_back(south);
  n.follow_up = true;
  ASSERT_TRUE(channel.deliver(hook(server.url()), n));
  const auto j = nlohmann::json::parse(server.requests().at(0).body);
  EXPECT_EQ(j["followUp"], true);
  ASSERT_EQ(j["items"].size(), 2U);
  EXPECT_EQ(j["items"][1]["deviceName"], "South");
  EXPECT_EQ(j["items"][1]["transition"], "dag_back");
  EXPECT_EQ(j["title"], "Updates on 2 more of your dags: 1 lost power, 1 came back");
}

TEST(Webhook, TemplateBodies) {
  HookServer server;
  WebhookChannel channel{local()};
  auto target = hook(server.url("/sms"), "k");

  target.body_template = R"({"to": "+4712345678", "text": "{{title}} {{message}}"})";
  target.content_type = "application/json";
  ASSERT_TRUE(channel.deliver(target, notice("Hütte \"x\"")));
  auto r = server.requests().back();
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("X-Dag-Signature"), "sha256=" + hmac_hex("k", r.body));
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["to"], "+4712345678");
  EXPECT_EQ(j["text"],
            "You've lost power! (Hütte \"x\") Hütte \"x\": the power went off at 23:41 CET, Tue "
            "24 Nov. Now: Off.");

  target.body_template = "to=%2B4712345678&msg={{device}}+{{transition}}+{{state}}";
  target.content_type = "application/x-www-form-urlencoded";
  ASSERT_TRUE(channel.deliver(target, notice("Hütte & co")));
  r = server.requests().back();
  EXPECT_EQ(r.body, "to=%2B4712345678&msg=H%C3%BCtte+%26+co+power_lost+Off");

  target.body_template = "{{device}} at {{time}}: {{dashboard}}";
  target.content_type.reset();
  ASSERT_TRUE(channel.deliver(target, notice("Home")));
  r = server.requests().back();
  EXPECT_EQ(r.header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(r.body, "Home at 23:41 CET, Tue 24 Nov: https://dags.example.com");

  target.content_type = "text/plain\r\nX-Evil: 1";
  const auto bad = channel.deliver(target, notice());
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().permanent);
  EXPECT_EQ(server.requests().size(), 3U);
}

TEST(Webhook, StatusMapping) {
  HookServer server;
  WebhookChannel channel{local()};
  const auto target = hook(server.url());
  for (const int ok : {200, 201, 202, 204}) {
    server.respond(ok);
    EXPECT_TRUE(channel.deliver(target, notice())) << ok;
  }
  for (const int permanent : {400, 401, 403, 404, 410, 413, 422}) {
    server.respond(permanent, "nope\x01 go away");
    const auto sent = channel.deliver(target, notice());
    ASSERT_FALSE(sent) << permanent;
    EXPECT_TRUE(sent.error().permanent) << permanent;
    EXPECT_NE(sent.error().reason.find(std::to_string(permanent)), std::string::npos);
    EXPECT_NE(sent.error().reason.find("nope? go away"), std::string::npos) << sent.error().reason;
  }
  for (const int transient : {301, 302, 408, 429, 500, 502, 503, 504}) {
    server.respond(transient);
    const auto sent = channel.deliver(target, notice());
    ASSERT_FALSE(sent) << transient;
    EXPECT_FALSE(sent.error().permanent) << transient;
  }
}

TEST(Webhook, ConnectionFailuresAndTimeoutsAreTransient) {
  std::string url;
  {
    HookServer gone;
    url = gone.url();
  }
  WebhookChannel channel{local()};
  auto refused = channel.deliver(hook(url), notice());
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().permanent);

  HookServer slow;
  slow.hold();
  auto options = local();
  options.timeout = 300ms;
  WebhookChannel impatient{options};
  const auto started = std::chrono::steady_clock::now();
  const auto timed_out = impatient.deliver(hook(slow.url()), notice());
  ASSERT_FALSE(timed_out);
  EXPECT_FALSE(timed_out.error().permanent);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  slow.release();
}

TEST(Webhook, PrivateAddressesNeedPermission) {
  HookServer server;
  WebhookChannel guarded{HttpOptions{}};
  for (const std::string& url : {server.url(), "http://localhost:" + server.url().substr(17)}) {
    const auto sent = guarded.deliver(hook(url), notice());
    ASSERT_FALSE(sent) << url;
    EXPECT_TRUE(sent.error().permanent) << url;
    EXPECT_NE(sent.error().reason.find("private"), std::string::npos);
  }
  EXPECT_TRUE(server.requests().empty());
}

TEST(Webhook, BadTargetsArePermanent) {
  WebhookChannel channel{local()};
  for (const char* url : {"ftp://example.com/", "https://user:pw@example.com/", "not a url", ""}) {
    const auto sent = channel.deliver(hook(url), notice());
    ASSERT_FALSE(sent) << url;
    EXPECT_TRUE(sent.error().permanent) << url;
  }
  auto email = hook("https://example.com/");
  email.kind = store::TargetKind::email;
  EXPECT_FALSE(channel.deliver(email, notice()));
}

TEST(Webhook, StatusClassification) {
  EXPECT_TRUE(classify_http_status(200, ""));
  EXPECT_TRUE(classify_http_status(299, ""));
  EXPECT_TRUE(classify_http_status(404, "").error().permanent);
  EXPECT_FALSE(classify_http_status(408, "").error().permanent);
  EXPECT_FALSE(classify_http_status(429, "").error().permanent);
  EXPECT_FALSE(classify_http_status(500, "").error().permanent);
  EXPECT_FALSE(classify_http_status(0, "").error().permanent);
  EXPECT_LE(classify_http_status(500, std::string(5000, 'x')).error().reason.size(), 260U);
}

store::NotificationTarget topic(const std::string& url, std::optional<std::string> token = {}) {
  auto t = hook(url, std::move(token));
  t.kind = store::TargetKind::ntfy;
  return t;
}

TEST(Ntfy, PostsPlainTextWithHeaders) {
  HookServer server;
  NtfyChannel channel{local()};
  ASSERT_TRUE(channel.deliver(topic(server.url("/my-dags"), "tk_abc"), notice()));
  const auto r = server.requests().at(0);
  EXPECT_EQ(r.path, "/my-dags");
  EXPECT_EQ(r.body, "Home: the power went off at 23:41 CET, Tue 24 Nov. Now: Off.");
  EXPECT_EQ(r.header("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(r.header("Title"), "You've lost power! (Home)");
  EXPECT_EQ(r.header("Priority"), "high");
  EXPECT_EQ(r.header("Tags"), "warning");
  EXPECT_EQ(r.header("Click"), "https://dags.example.com");
  EXPECT_EQ(r.header("Authorization"), "Bearer tk_abc");
}

TEST(Ntfy, BackIsDefaultPriority) {
  HookServer server;
  NtfyChannel channel{local()};
  ASSERT_TRUE(
      channel.deliver(topic(server.url()), notice("Home", Transition::power_back, UserState::on)));
  const auto r = server.requests().at(0);
  EXPECT_EQ(r.header("Priority"), "default");
  EXPECT_EQ(r.header("Tags"), "white_check_mark");
  EXPECT_EQ(r.header("Authorization"), "");
  EXPECT_EQ(r.header("Title"), "Your power's back! (Home)");
}

TEST(Ntfy, NonAsciiTitlesAreEncodedWords) {
  const auto headers = ntfy_headers(notice("Hütte\r\nX-Evil: 1"));
  ASSERT_EQ(headers.front().first, "Title");
  EXPECT_TRUE(headers.front().second.starts_with("=?UTF-8?B?")) << headers.front().second;
  EXPECT_EQ(headers.front().second.find_first_of("\r\n"), std::string::npos);

  auto mixed = notice("A");
  auto b = mixed.items.front();
  b.device_name = "B";
  b.device_id = "dev-b";
  b.transition = Transition::dag_back;
  mixed.items.push_back(b);
  auto c = b;
  c.transition = Transition::battery_low;
  mixed.items.push_back(c);
  const auto h = ntfy_headers(mixed);
  EXPECT_EQ(h[1], (std::pair<std::string, std::string>{"Priority", "high"}));
  EXPECT_EQ(h[2],
            (std::pair<std::string, std::string>{"Tags", "warning,white_check_mark,battery"}));
}

TEST(Ntfy, ErrorsAndGuards) {
  HookServer server;
  NtfyChannel channel{local()};
  server.respond(403, "forbidden");
  auto sent = channel.deliver(topic(server.url()), notice());
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().permanent);
  server.respond(429);
  sent = channel.deliver(topic(server.url()), notice());
  ASSERT_FALSE(sent);
  EXPECT_FALSE(sent.error().permanent);
  sent = channel.deliver(topic(server.url(), "tok\r\nX-Evil: 1"), notice());
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().permanent);
  EXPECT_EQ(server.requests().size(), 2U);
  NtfyChannel guarded{HttpOptions{}};
  sent = guarded.deliver(topic(server.url()), notice());
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().permanent);
}

}  // namespace
}  // namespace dag::notify
