#include "dag/edge/agent.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace dag::edge {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

class FakeTransport final : public Transport {
 public:
  struct Sent {
    std::string topic;
    std::string payload;
    bool retain;
  };
  Result<int> publish(const std::string& topic, std::string_view payload, int /*qos*/,
                      bool retain) override {
    if (!up) return fail(Errc::unavailable, "down");
    sent.push_back({topic, std::string(payload), retain});
    return static_cast<int>(sent.size());
  }
  [[nodiscard]] bool connected() const override { return up; }

  std::vector<json> updates() const {
    std::vector<json> out;
    for (const auto& s : sent) {
      if (s.topic == "$aws/things/dag-1/shadow/update") out.push_back(json::parse(s.payload));
    }
    return out;
  }
  bool up{false};
  std::vector<Sent> sent;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dag-agent-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    settings_.device_id = "dag-1";
    settings_.state_dir = dir_;
    make();
  }
  void TearDown() override {
    agent_.reset();
    outbox_.reset();
    fs::remove_all(dir_);
  }

  void make() {
    agent_.reset();
    outbox_.reset();
    auto box = Outbox::open(dir_);
    ASSERT_TRUE(box);
    outbox_ = std::make_unique<Outbox>(std::move(*box));
    agent_ = std::make_unique<Agent>(settings_, AgentInfo{"1.2.3", "boot-1"}, clock_, line_, gauge_,
                                     *outbox_, transport_);
  }

  void settle() {  // let the debounce window pass
    clock_.advance(std::chrono::milliseconds{settings_.tunables.debounce_ms});
    agent_->on_timer();
  }
  void flip(bool level) {
    line_.set_level(level);
    auto edges = line_.drain();
    ASSERT_TRUE(edges);
    agent_->on_line_events(*edges);
    settle();
  }
  void connect() {
    transport_.up = true;
    agent_->on_transport({TransportEvent::Kind::connected, {}, {}});
  }
  void reply(const std::string& op_reply, const json& doc) {
    agent_->on_transport(
        {TransportEvent::Kind::message, "$aws/things/dag-1/shadow/" + op_reply, doc.dump()});
  }
  void accept_all() {
    for (const auto& u : transport_.updates()) {
      reply("update/accepted", {{"clientToken", u["clientToken"]}, {"version", 1}});
    }
  }

  fs::path dir_;
  EdgeSettings settings_;
  FakeClock clock_{1'700'000'000'000};
  SimLine line_{true};
  SimGauge gauge_;
  FakeTransport transport_;
  std::unique_ptr<Outbox> outbox_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, ReportsTheCurrentStateOnStartWithEveryField) {
  gauge_.set({87.5, 4.05});
  agent_->start();
  settle();
  ASSERT_EQ(outbox_->pending().size(), 1U);
  connect();
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 1U);
  const json& r = updates[0]["state"]["reported"];
  EXPECT_EQ(r["status"], "on");
  EXPECT_EQ(r["observedAt"], 1'700'000'000'000);
  EXPECT_EQ(r["seq"], 1);
  EXPECT_EQ(r["battery"]["percent"], 87.5);
  EXPECT_EQ(r["battery"]["volts"], 4.05);
  EXPECT_TRUE(r["battery"]["minutesLeft"].is_null());
  EXPECT_EQ(r["agent"]["version"], "1.2.3");
  EXPECT_EQ(r["agent"]["bootId"], "boot-1");
  EXPECT_TRUE(r["agent"]["uptimeS"].is_number_integer());
  EXPECT_EQ(updates[0]["clientToken"], "e1");
  // Birth message and a shadow get go out on connect.
  EXPECT_EQ(transport_.sent[0].topic, "dags/dag-1/presence");
  EXPECT_EQ(transport_.sent[0].payload, "connected");
  EXPECT_TRUE(transport_.sent[0].retain);
  EXPECT_EQ(transport_.sent[1].topic, "$aws/things/dag-1/shadow/get");
}

TEST_F(AgentTest, EntryLeavesTheOutboxOnlyOnItsAccepted) {
  agent_->start();
  settle();
  connect();
  reply("update/accepted", {{"clientToken", "e99"}});
  EXPECT_EQ(outbox_->pending().size(), 1U);
  reply("update/accepted", {{"clientToken", "e1"}});
  EXPECT_TRUE(outbox_->pending().empty());
  EXPECT_FALSE(agent_->status()["lastAck"].is_null());
}

TEST_F(AgentTest, TransitionsWhileOfflineGoOutInOrderWithOriginalTimesAfterConnect) {
  agent_->start();
  settle();
  std::vector<std::int64_t> times;
  for (int i = 0; i < 5; ++i) {
    clock_.advance(10s);
    times.push_back(clock_.unix_ms());
    flip(i % 2 == 0 ? false : true);
  }
  ASSERT_EQ(outbox_->pending().size(), 6U);
  clock_.advance(1h);
  connect();
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 6U);
  for (int i = 0; i < 5; ++i) {
    const json& r = updates[static_cast<std::size_t>(i + 1)]["state"]["reported"];
    EXPECT_EQ(r["seq"], i + 2);
    EXPECT_EQ(r["observedAt"], times[static_cast<std::size_t>(i)]);
    EXPECT_EQ(r["status"], i % 2 == 0 ? "off" : "on");
  }
}

TEST_F(AgentTest, AtMostAWindowIsInFlightAndAcksReleaseMore) {
  agent_->start();
  settle();
  for (int i = 0; i < 15; ++i) {
    clock_.advance(1s);
    flip(i % 2 != 0);
  }
  connect();
  EXPECT_EQ(transport_.updates().size(), Agent::kWindow);
  reply("update/accepted", {{"clientToken", "e1"}});
  EXPECT_EQ(transport_.updates().size(), Agent::kWindow + 1);
  EXPECT_EQ(transport_.updates().back()["clientToken"], "e9");
}

TEST_F(AgentTest, ChatterNeverBecomesAReport) {
  agent_->start();
  settle();
  connect();
  accept_all();
  const auto before = transport_.updates().size();
  for (int i = 0; i < 4; ++i) {
    line_.set_level(false);
    agent_->on_line_events(*line_.drain());
    clock_.advance(50ms);
    agent_->on_timer();
    line_.set_level(true);
    agent_->on_line_events(*line_.drain());
    clock_.advance(50ms);
    agent_->on_timer();
  }
  clock_.advance(1s);
  agent_->on_timer();
  EXPECT_EQ(transport_.updates().size(), before);
}

TEST_F(AgentTest, PendingEntriesSurviveARestartWithTheSameSeq) {
  agent_->start();
  settle();
  clock_.advance(5s);
  flip(false);
  connect();
  reply("update/accepted", {{"clientToken", "e1"}});
  // Crash before e2 was accepted.
  make();
  transport_.sent.clear();
  agent_->start();
  settle();  // the line still reads off: no new transition is invented... but the start report is
  connect();
  const auto updates = transport_.updates();
  ASSERT_GE(updates.size(), 1U);
  EXPECT_EQ(updates[0]["clientToken"], "e2");
  EXPECT_EQ(updates[0]["state"]["reported"]["seq"], 2);
  EXPECT_EQ(updates[0]["state"]["reported"]["status"], "off");
}

TEST_F(AgentTest, ReconnectResendsWhatWasInFlight) {
  agent_->start();
  settle();
  connect();
  agent_->on_transport({TransportEvent::Kind::disconnected, {}, {}});
  transport_.sent.clear();
  connect();
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 1U);
  EXPECT_EQ(updates[0]["clientToken"], "e1");
}

TEST_F(AgentTest, ThrottledEntriesAreRetriedAndBadOnesDropped) {
  agent_->start();
  settle();
  connect();
  reply("update/rejected", {{"clientToken", "e1"}, {"code", 429}, {"message", "slow down"}});
  EXPECT_EQ(outbox_->pending().size(), 1U);
  transport_.sent.clear();
  clock_.advance(Agent::kRetryAfterThrottle);
  agent_->on_timer();
  ASSERT_EQ(transport_.updates().size(), 1U);
  reply("update/rejected", {{"clientToken", "e1"}, {"code", 400}, {"message", "Invalid JSON"}});
  EXPECT_TRUE(outbox_->pending().empty());
  EXPECT_EQ(agent_->status()["rejected"], 1);
}

TEST_F(AgentTest, StatusRequestRepublishesTheCurrentState) {
  agent_->start();
  settle();
  connect();
  accept_all();
  transport_.sent.clear();
  agent_->on_transport({TransportEvent::Kind::message, "dags/dag-1/status/request", ""});
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 1U);
  EXPECT_EQ(updates[0]["state"]["reported"]["status"], "on");
  EXPECT_EQ(updates[0]["state"]["reported"]["seq"], 1);
}

TEST_F(AgentTest, DeltaConfigIsAppliedReportedAndBadKeysRejected) {
  agent_->start();
  settle();
  connect();
  accept_all();
  std::optional<Tunables> saved;
  agent_->set_tunables_listener([&](const Tunables& t) { saved = t; });
  transport_.sent.clear();
  reply("update/delta",
        {{"version", 3},
         {"state", {{"config", {{"debounceMs", 50}, {"rereadS", 1}, {"colour", "red"}}}}}});
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->debounce_ms, 50);
  EXPECT_EQ(saved->reread_s, 60);  // out of range: unchanged
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 1U);
  const json& cfg = updates[0]["state"]["reported"]["config"];
  EXPECT_EQ(cfg["debounceMs"], 50);
  EXPECT_EQ(cfg["rereadS"], 60);
  EXPECT_EQ(cfg["rejected"]["colour"], "unknown key");
  EXPECT_EQ(cfg["rejected"]["rereadS"], "must be within 5..3600");
  // The new debounce window is in force.
  line_.set_level(false);
  agent_->on_line_events(*line_.drain());
  clock_.advance(50ms);
  agent_->on_timer();
  EXPECT_EQ(outbox_->pending().size(), 1U);
}

TEST_F(AgentTest, ConfigFromGetAcceptedDeltaIsApplied) {
  agent_->start();
  settle();
  connect();
  reply("get/accepted", {{"state", {{"delta", {{"config", {{"logLevel", "debug"}}}}}}}});
  EXPECT_EQ(agent_->tunables().log_level, "debug");
}

TEST_F(AgentTest, GarbageRepliesAreIgnored) {
  agent_->start();
  settle();
  connect();
  agent_->on_transport(
      {TransportEvent::Kind::message, "$aws/things/dag-1/shadow/update/accepted", "{"});
  agent_->on_transport(
      {TransportEvent::Kind::message, "$aws/things/dag-1/shadow/update/delta", "[]"});
  agent_->on_transport({TransportEvent::Kind::message, "not/a/topic", "x"});
  reply("update/delta", {{"state", {{"config", "nope"}}}});
  EXPECT_EQ(outbox_->pending().size(), 1U);
}

TEST_F(AgentTest, BatteryReportsEachWholePercentAtMostOncePerMinuteAndEstimatesRuntime) {
  gauge_.set({80, 4.0});
  agent_->start();
  settle();
  connect();
  flip(false);
  accept_all();
  transport_.sent.clear();
  for (int i = 1; i <= 12; ++i) {  // 1 % per 10 s poll
    gauge_.set({80.0 - i, 3.9});
    clock_.advance(std::chrono::seconds{settings_.tunables.battery_poll_battery_s});
    agent_->on_timer();
  }
  const auto updates = transport_.updates();
  ASSERT_EQ(updates.size(), 2U);  // 120 s of drain: two reports, a minute apart
  const json& b = updates[1]["state"]["reported"]["battery"];
  EXPECT_LT(b["percent"].get<double>(), 75.0);
  ASSERT_TRUE(b["minutesLeft"].is_number());
  EXPECT_NEAR(b["minutesLeft"].get<int>(), 11, 2);  // ~6 %/min from ~70 %
}

// The cut's report carries the battery; repeating it one poll later doubled an outage
// storm's reports.
TEST_F(AgentTest, NoBatteryReportRepeatsTheCutsReading) {
  gauge_.set({80.4, 4.0});
  agent_->start();
  settle();
  connect();
  flip(false);
  ASSERT_EQ(transport_.updates().size(), 2U);  // start-up and the cut
  EXPECT_EQ(transport_.updates()[1]["state"]["reported"]["battery"]["percent"], 80.4);
  accept_all();
  transport_.sent.clear();
  for (int i = 1; i <= 30; ++i) {  // five minutes on battery, the charge steady
    gauge_.set({80.0 + (i % 2 == 0 ? 0.3 : 0.1), 4.0});
    clock_.advance(std::chrono::seconds{settings_.tunables.battery_poll_battery_s});
    agent_->on_timer();
  }
  EXPECT_TRUE(transport_.updates().empty());
  gauge_.set({79.9, 3.9});  // the first whole percent lost
  clock_.advance(std::chrono::seconds{settings_.tunables.battery_poll_battery_s});
  agent_->on_timer();
  ASSERT_EQ(transport_.updates().size(), 1U);
  EXPECT_EQ(transport_.updates()[0]["state"]["reported"]["battery"]["percent"], 79.9);
}

TEST_F(AgentTest, CriticalBatteryReportsThenRunsTheShutdownHookOnce) {
  settings_.shutdown_percent = 10;
  settings_.shutdown_command = "true";
  make();
  int shutdowns = 0;
  agent_->set_shutdown_hook([&] { ++shutdowns; });
  agent_->start();
  settle();
  connect();
  flip(false);
  gauge_.set({9, 3.5});
  clock_.advance(10s);
  agent_->on_timer();
  clock_.advance(10s);
  agent_->on_timer();
  EXPECT_EQ(shutdowns, 1);
  bool reported = false;
  for (const auto& u : transport_.updates()) {
    reported = reported || u["state"]["reported"].value("shuttingDown", false);
  }
  EXPECT_TRUE(reported);
}

}  // namespace
}  // namespace dag::edge
