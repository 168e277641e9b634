#include "dag/shadow/service.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dag/protocol/topics.hpp"
#include "dag/shadow/desired.hpp"
#include "dag/store/sqlite.hpp"

#include "faulty_store.hpp"

namespace dag::shadow {
namespace {

using nlohmann::json;
using protocol::Connection;
using protocol::Power;
using protocol::UserState;
using store::EventKind;
using store::Transition;

constexpr std::int64_t kT0 = 1'700'000'000'000;
constexpr const char* kDag = "dag-1";
constexpr const char* kOther = "dag-2";

template <class T>
T must(store::StoreResult<T> r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
  return std::move(r).value();
}
inline void must(const store::StoreResult<void>& r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
}

std::string report(std::string_view status, std::int64_t seq, std::int64_t observed,
                   std::string_view token) {
  return json{
      {"state", {{"reported", {{"status", status}, {"observedAt", observed}, {"seq", seq}}}}},
      {"clientToken", token}}
      .dump();
}

std::string lifecycle(std::string_view type, std::int64_t version, std::string_view id = kDag) {
  return json{{"clientId", id},           {"timestamp", kT0},          {"eventType", type},
              {"sessionIdentifier", "s"}, {"principalIdentifier", id}, {"versionNumber", version}}
      .dump();
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    real_ = must(store::open_sqlite(":memory:"));
    faulty_ = std::make_unique<test::FaultyStore>(*real_);
    clock_.set_unix_ms(kT0 + 3'600'000);
    auto tx = must(real_->begin());
    account_ = must(tx->create_account("alice", "$argon2id$x", kT0));
    must(tx->create_device({kDag, account_.id, "Freezer ring", kT0}));
    must(tx->create_device({kOther, account_.id, "Cabin", kT0}));
    must(tx->commit());
    service_ = std::make_unique<Service>(*faulty_, clock_, ServiceOptions{}, metrics_);
  }

  // Sends messages as one batch, received now.
  std::vector<Outbound> send(std::vector<std::pair<std::string, std::string>> messages,
                             bool retained = false) {
    std::vector<Inbound> batch;
    for (auto& [topic, payload] : messages) {
      batch.push_back({topic, payload, retained, clock_.unix_ms()});
    }
    return service_->process(batch);
  }
  std::vector<Outbound> send(std::string topic, std::string payload, bool retained = false) {
    return send({{std::move(topic), std::move(payload)}}, retained);
  }
  std::vector<Outbound> update(std::string_view id, std::string payload) {
    return send(protocol::shadow_topic(id, protocol::ShadowOp::update), std::move(payload));
  }
  std::vector<Outbound> status(std::string_view s, std::int64_t seq, std::string_view id = kDag) {
    return update(id, report(s, seq, clock_.unix_ms() - 10, "e" + std::to_string(seq)));
  }

  store::Device device(std::string_view id = kDag) {
    auto tx = must(real_->begin(store::TxMode::read_only));
    return must(tx->get_device(id));
  }
  std::vector<store::StoredEvent> events(std::string_view id = kDag) {
    auto tx = must(real_->begin(store::TxMode::read_only));
    store::EventQuery q;
    q.device_id = id;
    auto page = must(tx->list_events(q));
    std::reverse(page.events.begin(), page.events.end());  // oldest first
    return page.events;
  }
  std::vector<store::Intent> intents() {
    auto tx = must(real_->begin());
    auto claimed = must(tx->claim_intents(clock_.unix_ms() + 1, 1000, "test", 1));
    tx->rollback();
    std::vector<store::Intent> out;
    for (auto& c : claimed) out.push_back(c.intent);
    return out;
  }

  static const Outbound* find(const std::vector<Outbound>& out, const std::string& topic) {
    for (const auto& m : out) {
      if (m.topic == topic) return &m;
    }
    return nullptr;
  }
  static json body(const Outbound* m) { return m ? json::parse(m->payload) : json(); }

  FakeClock clock_;
  Metrics metrics_;
  std::unique_ptr<store::Store> real_;
  std::unique_ptr<test::FaultyStore> faulty_;
  std::unique_ptr<Service> service_;
  store::Account account_;
};

TEST_F(ServiceTest, AnAcceptedUpdateIsStoredAndAnswered) {
  auto out = status("on", 1);
  const auto accepted = body(find(out, "$aws/things/dag-1/shadow/update/accepted"));
  ASSERT_TRUE(accepted.is_object());
  EXPECT_EQ(accepted["clientToken"], "e1");
  EXPECT_EQ(accepted["version"], 1);
  EXPECT_TRUE(find(out, "$aws/things/dag-1/shadow/update/documents"));
  EXPECT_FALSE(find(out, "$aws/things/dag-1/shadow/update/delta"));

  {
    auto tx = must(real_->begin(store::TxMode::read_only));
    auto shadow = must(tx->get_shadow(kDag));
    ASSERT_TRUE(shadow);
    EXPECT_EQ(shadow->revision, 1);
    EXPECT_EQ(json::parse(shadow->document)["state"]["reported"]["status"], "on");
  }
  const auto d = device();
  EXPECT_EQ(d.state.power, Power::on);
  EXPECT_EQ(d.state.connection, Connection::connected);
  EXPECT_EQ(d.state.last_seq, 1);
  EXPECT_EQ(metrics_.updates_accepted.load(), 1U);
  EXPECT_EQ(metrics_.batches.load(), 1U);
}

TEST_F(ServiceTest, APowerCutMakesOneEventAndOneIntent) {
  status("on", 1);
  clock_.advance(std::chrono::seconds{5});
  status("off", 2);
  const auto ev = events();
  ASSERT_EQ(ev.size(), 2U);
  EXPECT_EQ(ev[1].event.kind, EventKind::power_off);
  EXPECT_EQ(ev[1].event.seq, 2);
  const auto in = intents();
  ASSERT_EQ(in.size(), 1U);
  EXPECT_EQ(in[0].transition, Transition::power_lost);
  EXPECT_EQ(in[0].user_state, UserState::off);
  EXPECT_EQ(in[0].device_name, "Freezer ring");
  EXPECT_EQ(in[0].account_id, account_.id);

  // The dag did not see /accepted and sends the same report again: nothing new.
  clock_.advance(std::chrono::seconds{5});
  auto again = update(kDag, report("off", 2, clock_.unix_ms() - 5'010, "e2"));
  EXPECT_TRUE(find(again, "$aws/things/dag-1/shadow/update/accepted"));
  EXPECT_EQ(events().size(), 2U);
  EXPECT_EQ(intents().size(), 1U);
  EXPECT_EQ(metrics_.intents.load(), 1U);
}

TEST_F(ServiceTest, ABatchIsProcessedInOrder) {
  const auto t = clock_.unix_ms();
  const auto topic = protocol::shadow_topic(kDag, protocol::ShadowOp::update);
  auto out = send({{topic, report("on", 1, t - 30, "e1")},
                   {topic, report("off", 2, t - 20, "e2")},
                   {topic, report("on", 3, t - 10, "e3")}});
  std::vector<std::string> tokens;
  for (const auto& m : out) {
    if (m.topic.ends_with("/update/accepted"))
      tokens.push_back(json::parse(m.payload)["clientToken"]);
  }
  EXPECT_EQ(tokens, (std::vector<std::string>{"e1", "e2", "e3"}));
  const auto in = intents();
  ASSERT_EQ(in.size(), 2U);
  EXPECT_EQ(in[0].transition, Transition::power_lost);
  EXPECT_EQ(in[1].transition, Transition::power_back);
  EXPECT_EQ(metrics_.batches.load(), 1U);
}

// Seen from outside (dagd_shadow_last_update_commit_timestamp_seconds): when an update was
// last committed. Answers that write nothing do not count.
TEST_F(ServiceTest, TheLastCommittedUpdateIsTimed) {
  EXPECT_EQ(metrics_.last_update_commit_ms.load(), 0);
  status("on", 1);
  const auto first = clock_.unix_ms();
  EXPECT_EQ(metrics_.last_update_commit_ms.load(), first);

  clock_.advance(std::chrono::seconds{5});
  update("dag-nobody", report("on", 1, kT0, "t1"));  // 404
  send(protocol::shadow_topic(kDag, protocol::ShadowOp::get), R"({"clientToken":"g"})");
  EXPECT_EQ(metrics_.last_update_commit_ms.load(), first);

  status("off", 2);
  EXPECT_EQ(metrics_.last_update_commit_ms.load(), clock_.unix_ms());
  EXPECT_GT(clock_.unix_ms(), first);
}

TEST_F(ServiceTest, UnknownAndRevokedDevicesGet404) {
  auto out = update("dag-nobody", report("on", 1, kT0, "t1"));
  auto rejected = body(find(out, "$aws/things/dag-nobody/shadow/update/rejected"));
  EXPECT_EQ(rejected["code"], 404);
  EXPECT_EQ(rejected["clientToken"], "t1");
  {
    auto tx = must(real_->begin());
    must(tx->set_device_revoked(kOther, true));
    must(tx->commit());
  }
  out = send(protocol::shadow_topic(kOther, protocol::ShadowOp::get), R"({"clientToken":"g"})");
  rejected = body(find(out, "$aws/things/dag-2/shadow/get/rejected"));
  EXPECT_EQ(rejected["code"], 404);
  EXPECT_EQ(rejected["clientToken"], "g");
  EXPECT_EQ(metrics_.rejects(404), 2U);
  EXPECT_FALSE(device(kOther).state.last_seen_ms);  // a revoked dag is not "seen"
}

TEST_F(ServiceTest, MalformedRequestsGetTheEnginesErrors) {
  auto out = update(kDag, "{\"state\":");
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/update/rejected"))["code"], 400);
  out = update(kDag, std::string("\xff\xfe", 2));
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/update/rejected"))["code"], 415);
  out = update(kDag, R"({"state":{"reported":{"a":1}},"version":9,"clientToken":"v"})");
  const auto conflict = body(find(out, "$aws/things/dag-1/shadow/update/rejected"));
  EXPECT_EQ(conflict["code"], 409);
  EXPECT_EQ(conflict["clientToken"], "v");
  EXPECT_EQ(metrics_.rejects(400), 1U);
  EXPECT_EQ(metrics_.rejects(415), 1U);
  EXPECT_EQ(metrics_.rejects(409), 1U);
  auto tx = must(real_->begin(store::TxMode::read_only));
  EXPECT_FALSE(must(tx->get_shadow(kDag)));  // nothing stored
}

TEST_F(ServiceTest, OverTheRateLimitIs429) {
  const auto topic = protocol::shadow_topic(kDag, protocol::ShadowOp::get);
  std::vector<std::pair<std::string, std::string>> burst(25, {topic, R"({"clientToken":"x"})"});
  auto out = send(burst);
  int limited = 0;
  for (const auto& m : out) {
    if (m.topic.ends_with("/get/rejected") && json::parse(m.payload)["code"] == 429) {
      EXPECT_EQ(json::parse(m.payload)["clientToken"], "x");
      ++limited;
    }
  }
  EXPECT_EQ(limited, 5);
  EXPECT_EQ(metrics_.rejects(429), 5U);
  // Replies keep the order of the requests: the burst's 20 first, the refused 5 last.
  ASSERT_EQ(out.size(), 25U);
  EXPECT_TRUE(out[19].topic.ends_with("/get/rejected") &&
              json::parse(out[19].payload)["code"] == 404);
  EXPECT_EQ(json::parse(out[20].payload)["code"], 429);
  // Another dag is not affected; and a second later the first may ask again.
  EXPECT_TRUE(find(send(protocol::shadow_topic(kOther, protocol::ShadowOp::get), ""),
                   "$aws/things/dag-2/shadow/get/rejected"));  // 404: no shadow, not 429
  EXPECT_EQ(metrics_.rejects(429), 5U);
  clock_.advance(std::chrono::seconds{1});
  out = send(topic, "");
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/get/rejected"))["code"], 404);
}

TEST_F(ServiceTest, GetAndDelete) {
  status("on", 1);
  auto out = send(protocol::shadow_topic(kDag, protocol::ShadowOp::get), R"({"clientToken":"g"})");
  const auto got = body(find(out, "$aws/things/dag-1/shadow/get/accepted"));
  EXPECT_EQ(got["state"]["reported"]["status"], "on");
  EXPECT_EQ(got["clientToken"], "g");
  out = send(protocol::shadow_topic(kDag, protocol::ShadowOp::remove), "");
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/delete/accepted"))["version"], 1);
  out = send(protocol::shadow_topic(kDag, protocol::ShadowOp::get), "");
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/get/rejected"))["code"], 404);
  out = status("on", 2);
  EXPECT_EQ(body(find(out, "$aws/things/dag-1/shadow/update/accepted"))["version"], 2);
  EXPECT_EQ(metrics_.deletes_accepted.load(), 1U);
}

TEST_F(ServiceTest, ADisconnectIsDebouncedDurably) {
  status("on", 1);
  auto out = send(protocol::presence_topic(kDag), "disconnected");
  EXPECT_TRUE(find(out, "dags/dag-1/status/request"));
  const auto due = service_->take_scheduled_hint();
  ASSERT_TRUE(due);
  EXPECT_EQ(*due, clock_.unix_ms() + 900'000);
  EXPECT_EQ(device().state.connection, Connection::connected);  // not yet

  clock_.advance(std::chrono::seconds{899});
  EXPECT_EQ(must(service_->fire_due_timers()).fired, 0);
  clock_.advance(std::chrono::seconds{1});
  EXPECT_EQ(must(service_->fire_due_timers()).fired, 1);
  auto d = device();
  EXPECT_EQ(d.state.connection, Connection::disconnected);
  EXPECT_EQ(d.state.user_state, UserState::was_on);
  auto in = intents();
  ASSERT_EQ(in.size(), 1U);
  EXPECT_EQ(in[0].transition, Transition::contact_lost);

  // The dag returns: "back", because "lost" was said.
  status("on", 1);
  in = intents();
  ASSERT_EQ(in.size(), 2U);
  EXPECT_EQ(in[1].transition, Transition::dag_back);
  EXPECT_EQ(events().back().event.kind, EventKind::back);
  EXPECT_EQ(metrics_.timers_fired.load(), 1U);
}

TEST_F(ServiceTest, AnyMessageEndsTheDebounce) {
  status("on", 1);
  send(protocol::presence_topic(kDag), "disconnected");
  clock_.advance(std::chrono::seconds{10});
  send(protocol::shadow_topic(kDag, protocol::ShadowOp::get), "");  // the status reply
  clock_.advance(std::chrono::seconds{900});
  EXPECT_EQ(must(service_->fire_due_timers()).fired, 0);  // cancelled
  EXPECT_EQ(device().state.connection, Connection::connected);
  EXPECT_TRUE(intents().empty());
}

TEST_F(ServiceTest, LifecycleEventsOutOfOrderAreDropped) {
  status("on", 1);
  const auto connected = protocol::lifecycle_topic(Connection::connected, kDag);
  const auto disconnected = protocol::lifecycle_topic(Connection::disconnected, kDag);
  send(connected, lifecycle("connected", 8));
  EXPECT_EQ(device().state.last_lifecycle_version, 16);
  // The disconnect of the previous connection, late.
  auto out = send(disconnected, lifecycle("disconnected", 7));
  EXPECT_FALSE(find(out, "dags/dag-1/status/request"));
  EXPECT_TRUE(device().state.presence_marker.empty());
  EXPECT_EQ(metrics_.presence_dropped.load(), 1U);
  // A duplicate of the applied event, too.
  send(connected, lifecycle("connected", 8));
  EXPECT_EQ(metrics_.presence_dropped.load(), 2U);
  // This connection's own disconnect counts.
  out = send(disconnected, lifecycle("disconnected", 8));
  EXPECT_TRUE(find(out, "dags/dag-1/status/request"));
  EXPECT_FALSE(device().state.presence_marker.empty());
  // A topic/payload mismatch is malformed.
  send(connected, lifecycle("connected", 99, kOther));
  EXPECT_EQ(metrics_.presence_dropped.load(), 3U);
}

TEST_F(ServiceTest, RetainedPresenceOnlyTellsWhatIsNew) {
  status("on", 1);
  const auto seen = device().state.last_seen_ms;
  clock_.advance(std::chrono::seconds{60});
  send(protocol::presence_topic(kDag), "connected", /*retained=*/true);
  EXPECT_EQ(device().state.last_seen_ms, seen);  // not a sign of life now
  EXPECT_EQ(metrics_.presence_dropped.load(), 1U);
  // A retained will that dagd missed while it was away starts the debounce.
  auto out = send(protocol::presence_topic(kDag), "disconnected", /*retained=*/true);
  EXPECT_TRUE(find(out, "dags/dag-1/status/request"));
}

TEST_F(ServiceTest, OtherTopicsAndUnknownDevicesAreCountedNotAnswered) {
  auto out = send({{"some/other/topic", "x"},
                   {"$aws/things/dag-1/shadow/update/accepted", "{}"},
                   {protocol::presence_topic("dag-nobody"), "connected"},
                   {protocol::presence_topic(kDag), "maybe"}});
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(metrics_.ignored.load(), 2U);
  EXPECT_EQ(metrics_.presence_dropped.load(), 2U);
  EXPECT_EQ(metrics_.messages.load(), 4U);
}

TEST_F(ServiceTest, AStoreFailureStaysWithItsMessage) {
  faulty_->poison(kOther);
  const auto t = clock_.unix_ms();
  // The failing message last: database_ok tells the state after the last transaction.
  auto out =
      send({{protocol::shadow_topic(kDag, protocol::ShadowOp::update), report("on", 1, t, "a")},
            {protocol::shadow_topic(kDag, protocol::ShadowOp::update), report("off", 2, t, "c")},
            {protocol::shadow_topic(kOther, protocol::ShadowOp::update), report("on", 1, t, "b")}});
  EXPECT_FALSE(metrics_.database_ok.load());
  EXPECT_EQ(metrics_.batch_fallbacks.load(), 1U);
  EXPECT_EQ(metrics_.store_errors.load(), 1U);
  const auto failed = body(find(out, "$aws/things/dag-2/shadow/update/rejected"));
  EXPECT_EQ(failed["code"], 500);
  EXPECT_EQ(failed["clientToken"], "b");
  EXPECT_EQ(metrics_.updates_accepted.load(), 2U);
  EXPECT_EQ(device().state.power, Power::off);
  EXPECT_FALSE(device(kOther).state.power);  // nothing half-written
  EXPECT_EQ(intents().size(), 1U);

  faulty_->poison("");
  status("on", 1, kOther);
  EXPECT_TRUE(metrics_.database_ok.load());
}

TEST_F(ServiceTest, PowerOffGraceDelaysTheAlert) {
  {
    auto tx = must(real_->begin());
    auto settings = account_.settings;
    settings.power_off_grace_s = 60;
    must(tx->update_account_settings(account_.id, settings));
    must(tx->commit());
  }
  status("on", 1);
  status("off", 2);
  EXPECT_TRUE(intents().empty());
  clock_.advance(std::chrono::seconds{60});
  EXPECT_EQ(must(service_->fire_due_timers()).fired, 1);
  const auto in = intents();
  ASSERT_EQ(in.size(), 1U);
  EXPECT_EQ(in[0].transition, Transition::power_lost);
}

TEST_F(ServiceTest, DesiredStateFromTheOperatorReachesTheDagAsADelta) {
  update(kDag, R"({"state":{"reported":{"config":{"debounceMs":200,"rereadS":60}}}})");
  {
    auto tx = must(real_->begin());
    must(write_desired(*tx, kDag, json{{"config", {{"debounceMs", 75}, {"rereadS", 60}}}},
                       clock_.unix_ms()));
    must(tx->commit());
  }
  auto round = must(service_->fire_due_timers());
  EXPECT_EQ(round.fired, 1);
  const auto delta = body(find(round.outbound, "$aws/things/dag-1/shadow/update/delta"));
  EXPECT_EQ(delta["state"], json::parse(R"({"config":{"debounceMs":75}})"));
  EXPECT_EQ(delta["version"], 2);

  // Nothing to say once the dag reports what is desired; an empty patch writes nothing.
  update(kDag, R"({"state":{"reported":{"config":{"debounceMs":75}}}})");
  {
    auto tx = must(real_->begin());
    must(write_desired(*tx, kDag, json::object(), clock_.unix_ms()));
    must(write_desired(*tx, kDag, json{{"config", {{"debounceMs", 75}}}}, clock_.unix_ms()));
    EXPECT_EQ(write_desired(*tx, "dag-nobody", json{{"a", 1}}, clock_.unix_ms()).error().code,
              store::StoreErrc::not_found);
    EXPECT_EQ(write_desired(*tx, kDag,
                            json{{"a", {{"b", {{"c", {{"d", {{"e", {{"f", {{"g", 1}}}}}}}}}}}}}},
                            clock_.unix_ms())
                  .error()
                  .code,
              store::StoreErrc::invalid_argument);
    must(tx->commit());
  }
  round = must(service_->fire_due_timers());
  EXPECT_EQ(round.fired, 1);
  EXPECT_TRUE(round.outbound.empty());
}

// The service keeps the shadows it wrote parsed; what another writer stored since must win.
class ShadowCacheTest : public ServiceTest, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    if (GetParam()) faulty_->use_base_reads();
  }
  static constexpr const char* kReport = R"({"state":{"reported":{"config":{"debounceMs":200}}}})";
  static constexpr const char* kDelta = "$aws/things/dag-1/shadow/update/delta";
  static constexpr const char* kAccepted = "$aws/things/dag-1/shadow/update/accepted";
  static constexpr const char* kDocuments = "$aws/things/dag-1/shadow/update/documents";
};

TEST_P(ShadowCacheTest, ADesiredStateWrittenBetweenUpdatesIsSeen) {
  EXPECT_FALSE(find(update(kDag, kReport), kDelta));
  {
    auto tx = must(real_->begin());
    must(write_desired(*tx, kDag, json{{"config", {{"debounceMs", 75}}}}, clock_.unix_ms()));
    must(tx->commit());
  }
  const auto out = update(kDag, kReport);
  EXPECT_EQ(body(find(out, kDocuments))["previous"]["state"]["desired"],
            json::parse(R"({"config":{"debounceMs":75}})"));
  EXPECT_EQ(body(find(out, kAccepted))["version"], 3);
  // And the next update starts from what this one wrote.
  const auto next = update(kDag, kReport);
  EXPECT_EQ(body(find(next, kAccepted))["version"], 4);
  EXPECT_EQ(body(find(next, kDocuments))["previous"]["state"]["desired"],
            json::parse(R"({"config":{"debounceMs":75}})"));
}

TEST_P(ShadowCacheTest, ADeviceCreatedAgainDoesNotGetItsOldShadowBack) {
  // Its new shadow has the revision the cached one had: only the text tells them apart.
  update(kDag, kReport);
  {
    auto tx = must(real_->begin());
    must(tx->delete_device(kDag));
    must(tx->create_device({kDag, account_.id, "Freezer ring", kT0}));
    must(write_desired(*tx, kDag, json{{"config", {{"debounceMs", 75}}}}, clock_.unix_ms()));
    must(tx->commit());
  }
  const auto out = update(kDag, kReport);
  EXPECT_EQ(body(find(out, kAccepted))["version"], 2);
  EXPECT_EQ(body(find(out, kDocuments))["previous"]["state"],
            json::parse(R"({"desired":{"config":{"debounceMs":75}}})"));
}

TEST_P(ShadowCacheTest, TwoUpdatesOfOneDeviceInABatchChain) {
  const auto out = send({{protocol::shadow_topic(kDag, protocol::ShadowOp::update), kReport},
                         {protocol::shadow_topic(kDag, protocol::ShadowOp::update),
                          R"({"state":{"reported":{"config":{"debounceMs":300}}}})"}});
  std::vector<json> versions;
  for (const auto& m : out) {
    if (m.topic == kAccepted) versions.push_back(json::parse(m.payload)["version"]);
  }
  EXPECT_EQ(versions, (std::vector<json>{1, 2}));
  EXPECT_EQ(body(find(update(kDag, kReport), kDocuments))["previous"]["state"]["reported"],
            json::parse(R"({"config":{"debounceMs":300}})"));
}

INSTANTIATE_TEST_SUITE_P(Reads, ShadowCacheTest, ::testing::Bool(),
                         [](const auto& reads) { return reads.param ? "BaseClass" : "Sqlite"; });

// ---- battery readings ---------------------------------------------------------------------

std::string battery_report(double percent, double volts, std::string_view token,
                           json minutes_left = nullptr) {
  return json{{"state",
               {{"reported",
                 {{"battery",
                   {{"percent", percent},
                    {"volts", volts},
                    {"minutesLeft", std::move(minutes_left)},
                    {"low", false}}}}}}},
              {"clientToken", token}}
      .dump();
}

std::string report_with_battery(std::string_view status, std::int64_t seq, std::int64_t observed,
                                double percent) {
  return json{{"state",
               {{"reported",
                 {{"status", status},
                  {"observedAt", observed},
                  {"seq", seq},
                  {"battery", {{"percent", percent}, {"volts", 4.1}, {"minutesLeft", nullptr}}}}}}},
              {"clientToken", "e" + std::to_string(seq)}}
      .dump();
}

class BatteryServiceTest : public ServiceTest {
 protected:
  std::vector<store::BatteryReading> readings(std::string_view id = kDag) {
    auto tx = must(real_->begin(store::TxMode::read_only));
    return must(tx->list_battery(id, 0, clock_.unix_ms() + 1, 10'000));
  }
  std::vector<std::int64_t> reading_times(std::string_view id = kDag) {
    std::vector<std::int64_t> out;
    for (const auto& r : readings(id)) out.push_back(r.at_ms);
    return out;
  }
};

TEST_F(BatteryServiceTest, AReportedBatteryBecomesAReadingWithThePowerState) {
  const auto t0 = clock_.unix_ms();
  update(kDag, report_with_battery("off", 1, t0 - 10, 99.5));
  clock_.advance(std::chrono::minutes{5});
  update(kDag, battery_report(87.5, 4.05, "b1", 312));
  const auto got = readings();
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(got[0], (store::BatteryReading{kDag, t0, 99.5, 4.1, std::nullopt, true}));
  EXPECT_EQ(got[1], (store::BatteryReading{kDag, t0 + 300'000, 87.5, 4.05, 312, true}));
  EXPECT_TRUE(readings(kOther).empty());
}

TEST_F(BatteryServiceTest, AtMostOneReadingPerIntervalAndNoStatementForTheOthers) {
  const auto t0 = clock_.unix_ms();
  update(kDag, battery_report(90, 4.0, "b1"));
  EXPECT_EQ(faulty_->battery_calls(), 1);
  for (int i = 0; i < 4; ++i) {
    clock_.advance(std::chrono::minutes{1});
    auto out = update(kDag, battery_report(89 - i, 4.0, "b"));
    EXPECT_TRUE(find(out, "$aws/things/dag-1/shadow/update/accepted"));
  }
  clock_.advance(std::chrono::seconds{59});  // 4:59 after the first
  update(kDag, battery_report(85, 4.0, "b"));
  EXPECT_EQ(faulty_->battery_calls(), 1);
  // Updates without a battery never record.
  update(kDag, R"({"state":{"reported":{"config":{"debounceMs":75}}}})");
  status("on", 1);
  EXPECT_EQ(faulty_->battery_calls(), 1);
  clock_.advance(std::chrono::seconds{1});
  update(kDag, battery_report(84, 4.0, "b"));
  EXPECT_EQ(faulty_->battery_calls(), 2);
  EXPECT_EQ(reading_times(), (std::vector<std::int64_t>{t0, t0 + 300'000}));
  // The latest battery is still the device's, whether it made a reading or not.
  EXPECT_EQ(json::parse(device().state.battery_json.value())["percent"], 84);
}

TEST_F(BatteryServiceTest, APowerChangeAlwaysRecords) {
  const auto t0 = clock_.unix_ms();
  update(kDag, report_with_battery("on", 1, t0 - 10, 100));
  clock_.advance(std::chrono::seconds{10});
  update(kDag, report_with_battery("off", 2, clock_.unix_ms() - 10, 100));
  clock_.advance(std::chrono::seconds{10});
  update(kDag, battery_report(99, 4.0, "b1"));  // within the interval: thinned
  clock_.advance(std::chrono::seconds{10});
  update(kDag, report_with_battery("on", 3, clock_.unix_ms() - 10, 98));
  // A resend of the same transition changes no power: thinned again.
  clock_.advance(std::chrono::seconds{10});
  update(kDag, report_with_battery("on", 3, clock_.unix_ms() - 20, 98));
  const auto got = readings();
  ASSERT_EQ(got.size(), 3U);
  EXPECT_EQ(got[0].on_battery, false);
  EXPECT_EQ(got[1].at_ms, t0 + 10'000);
  EXPECT_EQ(got[1].on_battery, true);
  EXPECT_EQ(got[2].at_ms, t0 + 30'000);
  EXPECT_EQ(got[2].on_battery, false);
  EXPECT_EQ(got[2].percent, 98);
}

TEST_F(BatteryServiceTest, OneBatchRecordsOncePerDeviceAndInterval) {
  const auto topic = protocol::shadow_topic(kDag, protocol::ShadowOp::update);
  const auto other = protocol::shadow_topic(kOther, protocol::ShadowOp::update);
  send({{topic, battery_report(90, 4.0, "a")},
        {other, battery_report(50, 3.7, "b")},
        {topic, battery_report(89, 4.0, "c")}});
  ASSERT_EQ(readings().size(), 1U);
  EXPECT_EQ(readings()[0].percent, 90);
  EXPECT_EQ(readings(kOther).size(), 1U);
}

TEST_F(BatteryServiceTest, ValuesTheStoreWouldRefuseAreLeftOut) {
  // The shadow engine accepts any JSON: a broken gauge must not fail the update.
  auto out = update(kDag, battery_report(250, -3, "b1", 10));
  EXPECT_TRUE(find(out, "$aws/things/dag-1/shadow/update/accepted"));
  auto got = readings();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].percent, std::nullopt);
  EXPECT_EQ(got[0].volts, std::nullopt);
  EXPECT_EQ(got[0].minutes_left, 10);
  EXPECT_EQ(got[0].on_battery, std::nullopt);  // no status reported yet
  // Nothing usable at all: no reading, still accepted.
  clock_.advance(std::chrono::minutes{10});
  out = update(kDag, R"({"state":{"reported":{"battery":{"percent":"full","low":false}}}})");
  EXPECT_TRUE(find(out, "$aws/things/dag-1/shadow/update/accepted"));
  EXPECT_EQ(readings().size(), 1U);
  EXPECT_EQ(metrics_.store_errors.load(), 0U);
}

TEST_F(BatteryServiceTest, OldReadingsAreDeletedAsNewOnesAreRecorded) {
  ServiceOptions options;
  options.battery_retention_ms = 3'600'000;
  options.battery_prune_every_ms = 0;  // at every reading
  service_ = std::make_unique<Service>(*faulty_, clock_, options, metrics_);
  const auto t0 = clock_.unix_ms();
  update(kDag, battery_report(90, 4.0, "b1"));
  clock_.advance(std::chrono::minutes{30});
  update(kDag, battery_report(80, 4.0, "b2"));
  clock_.advance(std::chrono::minutes{31});
  update(kDag, battery_report(70, 4.0, "b3"));
  EXPECT_EQ(reading_times(), (std::vector<std::int64_t>{t0 + 1'800'000, t0 + 3'660'000}));
}

TEST_F(BatteryServiceTest, OldReadingsArePrunedAtMostOncePerIntervalFromTheStart) {
  ServiceOptions options;
  options.battery_retention_ms = 3'600'000;        // 1 h
  options.battery_prune_every_ms = 3 * 3'600'000;  // 3 h
  service_ = std::make_unique<Service>(*faulty_, clock_, options, metrics_);
  const auto t0 = clock_.unix_ms();
  update(kDag, battery_report(90, 4.0, "p1"));
  clock_.advance(std::chrono::minutes{150});
  update(kDag, battery_report(80, 4.0, "p2"));  // t0 is past retention, but no pruning yet
  EXPECT_EQ(reading_times(), (std::vector<std::int64_t>{t0, t0 + 9'000'000}));
  clock_.advance(std::chrono::minutes{31});
  update(kDag, battery_report(70, 4.0, "p3"));  // 3 h 1 min after the start: pruned
  EXPECT_EQ(reading_times(), (std::vector<std::int64_t>{t0 + 9'000'000, t0 + 10'860'000}));
  clock_.advance(std::chrono::minutes{90});
  update(kDag, battery_report(60, 4.0, "p4"));  // the next pruning is 3 h after that one
  EXPECT_EQ(reading_times().size(), 3U);
}

TEST_F(BatteryServiceTest, AFailedTransactionLeavesNoMemoryOfAReading) {
  // The batch records dag-1's reading, then fails on dag-2: redone message by message,
  // dag-1's reading must be recorded again rather than thinned by the one rolled back.
  faulty_->poison(kOther);
  send(
      {{protocol::shadow_topic(kDag, protocol::ShadowOp::update), battery_report(90, 4.0, "a")},
       {protocol::shadow_topic(kOther, protocol::ShadowOp::update), battery_report(50, 3.7, "b")}});
  EXPECT_EQ(metrics_.batch_fallbacks.load(), 1U);
  EXPECT_EQ(faulty_->battery_calls(), 2);
  ASSERT_EQ(readings().size(), 1U);
  EXPECT_EQ(readings()[0].percent, 90);
  EXPECT_TRUE(readings(kOther).empty());
}

}  // namespace
}  // namespace dag::shadow
