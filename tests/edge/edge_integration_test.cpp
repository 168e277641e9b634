// dag-edge as a real process against a real Mosquitto with TLS client certificates.
// A test-side responder plays the cloud's /accepted role (dagd arrives in a later issue).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "dag/edge/run.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kWait = 10s;
constexpr std::string_view kUpdates = "$aws/things/+/shadow/update";

// Answers every shadow update with /accepted carrying its clientToken, and keeps them.
class Responder {
 public:
  explicit Responder(std::unique_ptr<MqttTestClient> client) : client_(std::move(client)) {
    EXPECT_TRUE(client_->subscribe(kUpdates, 1));
    thread_ = std::thread([this] { loop(); });
  }
  ~Responder() {
    stop_ = true;
    thread_.join();
  }
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // The next update whose reported state satisfies `pred`, in arrival order.
  std::optional<json> wait_for(const std::function<bool(const json&)>& pred,
                               std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mu_);
    std::optional<json> found;
    cv_.wait_for(lock, timeout, [&] {
      for (; cursor_ < updates_.size(); ++cursor_) {
        if (pred(updates_[cursor_]["state"]["reported"])) {
          found = updates_[cursor_++];
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::vector<json> updates() const {
    std::lock_guard lock(mu_);
    return updates_;
  }
  MqttTestClient& client() { return *client_; }

 private:
  void loop() {
    while (!stop_) {
      auto m = client_->wait_for_message(kUpdates, 100ms);
      if (!m) continue;
      json doc = json::parse(m->payload, nullptr, false);
      const std::string reply_topic = m->topic + "/accepted";
      json accepted = {{"version", 1}, {"timestamp", 0}};
      if (doc.is_object() && doc.contains("clientToken"))
        accepted["clientToken"] = doc["clientToken"];
      (void)client_->publish(reply_topic, accepted.dump(), 1);
      std::lock_guard lock(mu_);
      updates_.push_back(doc);
      cv_.notify_all();
    }
  }

  std::unique_ptr<MqttTestClient> client_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> updates_;
  std::size_t cursor_{0};
};

class EdgeIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = MosquittoBroker::start(pki_);
    ASSERT_TRUE(b) << b.error().message;
    broker_ = std::move(*b);
    start_responder();
  }
  void TearDown() override {
    if (HasFailure() && edge_) std::cerr << "--- dag-edge output\n" << edge_->output();
  }

  void start_responder() {
    responder_.reset();
    auto c = MqttTestClient::connect(client_options(*broker_, pki_.client("dagd"), "dagd-test"));
    ASSERT_TRUE(c) << c.error().message;
    responder_ = std::make_unique<Responder>(std::move(*c));
  }

  std::vector<std::pair<std::string, std::string>> env() {
    const auto& cert = pki_.client("dag-a");
    return {{"DAG_DEVICE_ID", "dag-a"},
            {"DAG_DEVICE_STATE_DIR", state_.path().string()},
            {"DAG_BROKER_HOST", broker_->host()},
            {"DAG_BROKER_PORT", std::to_string(broker_->port())},
            {"DAG_TLS_CA", broker_->ca_file().string()},
            {"DAG_TLS_CERT", cert.cert.string()},
            {"DAG_TLS_KEY", cert.key.string()},
            {"DAG_POWER_SOURCE", "sim"},
            {"DAG_POWER_DEBOUNCE_MS", "20"},
            {"DAG_BATTERY_GAUGE", "sim"},
            {"DAG_LOG_LEVEL", "debug"}};
  }

  void start_edge() {
    auto p = Process::spawn(
        {.argv = {DAG_EDGE_BIN, "run"}, .env = env(), .log_file = state_.path() / "dag-edge.log"});
    ASSERT_TRUE(p) << p.error().message;
    edge_ = std::move(*p);
    ASSERT_TRUE(edge_->wait_for_line("agent.start", kWait)) << edge_->output();
  }

  // Drives the simulated line and waits until the agent has committed the transition.
  void flip(const std::string& level) {
    const std::size_t from = edge_->line_count();
    auto r = edge::control_request(state_.path(), level);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(*r, "ok");
    ASSERT_TRUE(edge_->wait_for_line("power.transition status=" + level, kWait, from))
        << edge_->output();
  }

  TestPki pki_;
  TempDir state_{"dag-edge-state"};
  std::unique_ptr<MosquittoBroker> broker_;
  std::unique_ptr<Responder> responder_;
  std::unique_ptr<Process> edge_;
};

auto status_is(const std::string& s) {
  return [s](const json& r) { return r.value("status", "") == s; };
}

TEST_F(EdgeIntegration, SimulatedFlipArrivesAsAShadowUpdateWithEveryField) {
  start_edge();
  auto first = responder_->wait_for(status_is("on"));
  ASSERT_TRUE(first) << edge_->output();
  ASSERT_TRUE(edge::control_request(state_.path(), "battery 76.5 3.98"));
  flip("off");
  auto off = responder_->wait_for(status_is("off"));
  ASSERT_TRUE(off);
  const json& r = (*off)["state"]["reported"];
  EXPECT_EQ(r["seq"], (*first)["state"]["reported"]["seq"].get<int>() + 1);
  EXPECT_TRUE(r["observedAt"].is_number_integer());
  EXPECT_EQ(r["battery"]["percent"], 76.5);
  EXPECT_EQ(r["battery"]["volts"], 3.98);
  EXPECT_TRUE(r["battery"].contains("minutesLeft"));
  EXPECT_EQ(r["agent"]["version"], "0.1.0");
  EXPECT_FALSE(r["agent"]["bootId"].get<std::string>().empty());
  EXPECT_TRUE(r["agent"]["uptimeS"].is_number_integer());
  EXPECT_EQ((*off)["clientToken"], "e" + std::to_string(r["seq"].get<int>()));

  // The agent saw the /accepted: its outbox is empty.
  auto status = edge::control_request(state_.path(), "status");
  ASSERT_TRUE(status);
  const json s = json::parse(*status);
  EXPECT_EQ(s["power"], "off");
  EXPECT_EQ(s["connected"], true);
  // The accepted reply may still be on its way: wait for it through the log.
  ASSERT_TRUE(edge_->wait_for_line("shadow.accepted seq=" + r["seq"].dump(), kWait));
}

TEST_F(EdgeIntegration, FlipsDuringABrokerOutageArriveInOrderWithOriginalTimes) {
  start_edge();
  ASSERT_TRUE(responder_->wait_for(status_is("on")));
  responder_.reset();
  ASSERT_TRUE(broker_->stop());
  ASSERT_TRUE(edge_->wait_for_line("mqtt.disconnected", kWait));
  std::vector<std::string> levels = {"off", "on", "off", "on", "off"};
  for (const auto& l : levels) flip(l);
  ASSERT_TRUE(broker_->restart());
  start_responder();
  std::vector<json> got;
  for (const auto& l : levels) {
    auto u = responder_->wait_for(status_is(l));
    ASSERT_TRUE(u) << edge_->output();
    got.push_back((*u)["state"]["reported"]);
  }
  for (std::size_t i = 1; i < got.size(); ++i) {
    EXPECT_EQ(got[i]["seq"].get<int>(), got[i - 1]["seq"].get<int>() + 1);
    EXPECT_GT(got[i]["observedAt"].get<std::int64_t>(),
              got[i - 1]["observedAt"].get<std::int64_t>());
  }
  // observedAt is when the line changed, not when the broker came back.
  auto status = json::parse(*edge::control_request(state_.path(), "status"));
  EXPECT_LE(got.back()["observedAt"].get<std::int64_t>(), status["powerSince"].get<std::int64_t>());
}

TEST_F(EdgeIntegration, PendingEntriesSurviveKill9AndKeepTheirSeq) {
  start_edge();
  ASSERT_TRUE(responder_->wait_for(status_is("on")));
  responder_.reset();
  ASSERT_TRUE(broker_->stop());
  flip("off");
  flip("on");
  flip("off");
  const auto before = json::parse(*edge::control_request(state_.path(), "status"));
  EXPECT_EQ(before["outboxDepth"], 3);
  edge_->kill9();
  ASSERT_TRUE(broker_->restart());
  start_responder();
  start_edge();
  // The three pending entries, then the start-up report of the current level.
  const int last_seq = before["lastSeq"].get<int>();
  std::set<int> seqs;
  for (int i = 0; i < 4; ++i) {
    auto u = responder_->wait_for([](const json& r) { return r.contains("seq"); });
    ASSERT_TRUE(u) << edge_->output();
    seqs.insert((*u)["state"]["reported"]["seq"].get<int>());
  }
  EXPECT_EQ(seqs, (std::set<int>{last_seq - 2, last_seq - 1, last_seq, last_seq + 1}));
  // None was sent twice as new: every seq arrived with the same observedAt each time.
  std::map<int, std::int64_t> observed;
  for (const auto& u : responder_->updates()) {
    const json& r = u["state"]["reported"];
    if (!r.contains("seq")) continue;
    auto [it, fresh] = observed.emplace(r["seq"].get<int>(), r["observedAt"].get<std::int64_t>());
    if (!fresh) {
      EXPECT_EQ(it->second, r["observedAt"].get<std::int64_t>());
    }
  }
}

TEST_F(EdgeIntegration, AnswersAStatusRequest) {
  start_edge();
  ASSERT_TRUE(responder_->wait_for(status_is("on")));
  ASSERT_TRUE(edge_->wait_for_line("shadow.accepted", kWait));
  ASSERT_TRUE(responder_->client().publish("dags/dag-a/status/request", "", 1));
  auto again = responder_->wait_for(status_is("on"));
  ASSERT_TRUE(again) << edge_->output();
  EXPECT_EQ((*again)["state"]["reported"]["seq"], 1);
}

TEST_F(EdgeIntegration, AppliesAndReportsADeltaConfig) {
  start_edge();
  ASSERT_TRUE(responder_->wait_for(status_is("on")));
  const json delta = {{"version", 4},
                      {"timestamp", 1},
                      {"state", {{"config", {{"debounceMs", 75}, {"nonsense", true}}}}}};
  ASSERT_TRUE(
      responder_->client().publish("$aws/things/dag-a/shadow/update/delta", delta.dump(), 1));
  auto cfg = responder_->wait_for([](const json& r) { return r.contains("config"); });
  ASSERT_TRUE(cfg) << edge_->output();
  const json& c = (*cfg)["state"]["reported"]["config"];
  EXPECT_EQ(c["debounceMs"], 75);
  EXPECT_EQ(c["rejected"]["nonsense"], "unknown key");
  auto status = json::parse(*edge::control_request(state_.path(), "status"));
  EXPECT_EQ(status["config"]["debounceMs"], 75);
}

TEST_F(EdgeIntegration, InvalidCertificatesExitWithCode2BeforeConnecting) {
  auto e = env();
  for (auto& [k, v] : e) {
    if (k == "DAG_TLS_KEY") v = pki_.client("dag-b").key.string();  // someone else's key
  }
  auto p = Process::spawn({.argv = {DAG_EDGE_BIN, "run"}, .env = e});
  ASSERT_TRUE(p);
  const auto st = (*p)->wait();
  EXPECT_EQ(st.code, 2) << (*p)->output();
  EXPECT_NE((*p)->output().find("does not belong"), std::string::npos) << (*p)->output();
}

TEST_F(EdgeIntegration, PresenceIsRetainedBirthThenCleanGoodbyeOnSigterm) {
  ASSERT_TRUE(responder_->client().subscribe("dags/+/presence", 1));
  start_edge();
  auto birth = responder_->client().wait_for_message("dags/dag-a/presence", kWait);
  ASSERT_TRUE(birth);
  EXPECT_EQ(birth->payload, "connected");
  // The status command talks to the running agent.
  auto st =
      Process::spawn({.argv = {DAG_EDGE_BIN, "status", "--state-dir", state_.path().string()}});
  ASSERT_TRUE(st);
  ASSERT_TRUE((*st)->wait().success()) << (*st)->output();
  const auto status = json::parse((*st)->output(), nullptr, false);
  ASSERT_TRUE(status.is_object()) << (*st)->output();
  EXPECT_EQ(status["deviceId"], "dag-a");
  EXPECT_TRUE(status.contains("outboxDepth"));

  const auto stopped = edge_->stop(SIGTERM);
  EXPECT_TRUE(stopped.success()) << stopped.to_string();
  auto bye = responder_->client().wait_for_message("dags/dag-a/presence", kWait);
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->payload, "disconnected");
  // A clean DISCONNECT (after which the broker discards the will), not a dropped socket.
  EXPECT_TRUE(broker_->wait_for_log("Client dag-a disconnected.", kWait)) << broker_->log();
  EXPECT_EQ(broker_->log().find("Client dag-a closed its connection"), std::string::npos);
  // Retained: a late subscriber learns the last presence at once.
  auto late = MqttTestClient::connect(client_options(*broker_, pki_.client("dagd"), "late"));
  ASSERT_TRUE(late);
  ASSERT_TRUE((*late)->subscribe("dags/dag-a/presence", 1));
  auto retained = (*late)->wait_for_message("dags/dag-a/presence", kWait);
  ASSERT_TRUE(retained);
  EXPECT_EQ(retained->payload, "disconnected");
  EXPECT_TRUE(retained->retain);
}

TEST_F(EdgeIntegration, LastWillAnnouncesAnAgentThatVanished) {
  ASSERT_TRUE(responder_->client().subscribe("dags/+/presence", 1));
  start_edge();
  auto birth = responder_->client().wait_for_message("dags/dag-a/presence", kWait);
  ASSERT_TRUE(birth);
  edge_->kill9();
  auto will = responder_->client().wait_for_message("dags/dag-a/presence", kWait);
  ASSERT_TRUE(will) << broker_->log();
  EXPECT_EQ(will->payload, "disconnected");
}

TEST_F(EdgeIntegration, MissingGpioChipIsAConfigurationError) {
  auto e = env();
  e.emplace_back("DAG_POWER_SOURCE", "gpiod");
  e.emplace_back("DAG_POWER_GPIO_CHIP", "gpiochip-that-does-not-exist");
  auto p = Process::spawn({.argv = {DAG_EDGE_BIN, "run"}, .env = e});
  ASSERT_TRUE(p);
  EXPECT_EQ((*p)->wait().code, 2) << (*p)->output();
  EXPECT_NE((*p)->output().find("gpio chip"), std::string::npos) << (*p)->output();
}

TEST(EdgeKeygen, MakesAPrivateKeyAndACsrForTheDeviceId) {
  TempDir dir("dag-keygen");
  auto p = Process::spawn(
      {.argv = {DAG_EDGE_BIN, "keygen", "--out", dir.path().string(), "--id", "dag-k1"}});
  ASSERT_TRUE(p);
  ASSERT_TRUE((*p)->wait().success()) << (*p)->output();
  const auto key = dir.path() / "key.pem";
  EXPECT_EQ(std::filesystem::status(key).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ifstream in(dir.path() / "csr.pem");
  const std::string csr((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto id = pki::csr_identity(csr);
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, "dag-k1");
  // A second run must not replace the key that certificates were issued for.
  auto again = Process::spawn({.argv = {DAG_EDGE_BIN, "keygen", "--out", dir.path().string()}});
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)->wait().code, 2);
}

}  // namespace
}  // namespace dag::test
