// dagd as a real process against a real Mosquitto (TLS client certificates) and its SQLite
// file: the acceptance points of issue 4.
//
// Devices are played by MQTT test clients: a device's own certificate where the ACL
// matters, otherwise one "tester" service identity that may publish for every device and
// read every reply. Tests provision accounts and devices, and read the results, through
// the same SQLite file dagd uses (dag::store::open_sqlite).
//
// Waiting: replies and status requests are awaited as MQTT messages, dagd's state changes
// as its log lines. Where dagd's only visible effect is a row in the store (a timer that
// fired), the store is polled in small steps up to a bounded deadline. Where a test must
// show that something did NOT happen, an in-order sentinel is used: a later message from
// the same publisher whose reply arrives only after dagd processed the earlier ones.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dag/protocol/topics.hpp"
#include "dag/protocol/vocabulary.hpp"
#include "dag/store/records.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"
#include "dag/test/dagd_process.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using protocol::Connection;
using protocol::ShadowOp;
using protocol::ShadowReply;
using std::chrono::steady_clock;

constexpr auto kWait = 10s;
constexpr const char* kTester = "tester";
using Env = std::vector<std::pair<std::string, std::string>>;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A dag-edge transition report.
std::string report(std::string_view status, std::int64_t seq, std::int64_t observed_at,
                   std::string_view token) {
  const json j = {
      {"state", {{"reported", {{"status", status}, {"observedAt", observed_at}, {"seq", seq}}}}},
      {"clientToken", token}};
  return j.dump();
}

std::string lifecycle(const std::string& id, Connection event, std::int64_t version) {
  protocol::LifecycleEvent e;
  e.client_id = id;
  e.timestamp_ms = now_ms();
  e.event_type = event;
  e.session_identifier = "00000000-0000-0000-0000-000000000001";
  e.principal_identifier = id;
  e.version_number = version;
  return protocol::to_json(e);
}

std::string update_topic(std::string_view id) {
  return protocol::shadow_topic(id, ShadowOp::update);
}
std::string reply_topic(std::string_view id, ShadowOp op, ShadowReply reply) {
  return protocol::shadow_topic(id, op, reply);
}
std::string accepted_topic(std::string_view id) {
  return reply_topic(id, ShadowOp::update, ShadowReply::accepted);
}
std::string rejected_topic(std::string_view id) {
  return reply_topic(id, ShadowOp::update, ShadowReply::rejected);
}

// "$aws/things/{id}/shadow/..." -> id
std::string thing_of(const std::string& topic) {
  constexpr std::string_view kPrefix = "$aws/things/";
  const auto end = topic.find('/', kPrefix.size());
  return topic.substr(kPrefix.size(), end - kPrefix.size());
}

json parse(const Message& m) {
  return json::parse(m.payload, nullptr, false);
}

std::string status_of_seq(std::int64_t seq) {
  return seq % 2 == 1 ? "on" : "off";
}

class DagdIntegration : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && dagd_) std::cerr << "--- dagd log (every run)\n" << dagd_->log();
  }

  void start_broker(BrokerOptions options = {}) {
    options.service_identities = {"dagd", kTester};
    auto b = MosquittoBroker::start(pki_, std::move(options));
    ASSERT_TRUE(b) << b.error().message;
    broker_ = std::move(*b);
  }

  void start_dagd(Env env = {}) {
    DagdOptions o;
    o.binary = DAG_DAGD_BIN;
    o.port = broker_->port();
    o.env = std::move(env);
    auto d = DagdProcess::start(pki_, std::move(o));
    ASSERT_TRUE(d) << d.error().message;
    dagd_ = std::move(*d);
    store::SqliteOptions so;
    so.durability = store::SqliteOptions::Durability::crash_safe;
    auto s = store::open_sqlite(dagd_->database(), so);
    ASSERT_TRUE(s) << s.error().message;
    db_ = std::move(*s);
  }

  void start(Env env = {}, BrokerOptions options = {}) {
    ASSERT_NO_FATAL_FAILURE(start_broker(std::move(options)));
    ASSERT_NO_FATAL_FAILURE(start_dagd(std::move(env)));
  }

  template <class F>
  auto in_tx(F&& fn, store::TxMode mode = store::TxMode::read_write) {
    return store::transact(*db_, mode, std::forward<F>(fn));
  }
  template <class F>
  auto read(F&& fn) {
    return in_tx(std::forward<F>(fn), store::TxMode::read_only);
  }

  // A new account; returns its id (empty after a failure).
  std::string account(const store::AccountSettings& settings = {}) {
    auto a = in_tx([&](store::Transaction& tx) -> store::StoreResult<std::string> {
      auto acc = tx.create_account("user-" + std::to_string(++accounts_), "hash", now_ms());
      if (!acc) return Unexpected<store::StoreError>{acc.error()};
      if (auto r = tx.update_account_settings(acc->id, settings); !r) {
        return Unexpected<store::StoreError>{r.error()};
      }
      return acc->id;
    });
    EXPECT_TRUE(a) << a.error().message;
    return a ? *a : std::string{};
  }

  void provision(const std::string& id, const std::string& account_id) {
    auto d = in_tx([&](store::Transaction& tx) {
      return tx.create_device({id, account_id, "dag " + id, now_ms() - 3'600'000});
    });
    ASSERT_TRUE(d) << d.error().message;
  }

  store::Device device(const std::string& id) {
    auto d = read([&](store::Transaction& tx) { return tx.get_device(id); });
    EXPECT_TRUE(d) << id << ": " << d.error().message;
    return d ? *d : store::Device{};
  }

  // The stored shadow document (storage form), or null when there is none.
  json shadow(const std::string& id) {
    auto s = read([&](store::Transaction& tx) { return tx.get_shadow(id); });
    EXPECT_TRUE(s) << s.error().message;
    if (!s || !*s) return nullptr;
    return json::parse((*s)->document);
  }

  // A device's history, oldest first.
  std::vector<store::Event> events(const std::string& id) {
    store::EventQuery q;
    q.device_id = id;
    q.limit = 1000;
    auto page = read([&](store::Transaction& tx) { return tx.list_events(q); });
    EXPECT_TRUE(page) << page.error().message;
    std::vector<store::Event> out;
    if (!page) return out;
    EXPECT_FALSE(page->next_cursor);
    for (const auto& e : page->events) out.push_back(e.event);
    std::reverse(out.begin(), out.end());
    return out;
  }

  std::vector<store::Event> events_of(const std::string& id, store::EventKind kind) {
    auto all = events(id);
    std::erase_if(all, [&](const store::Event& e) { return e.kind != kind; });
    return all;
  }

  // Every intent ever queued, pending or already handled by dagd's outbox worker (which
  // marks intents without a target done at once). Ids only grow and rows are never
  // deleted here, so reading ids upwards until a long gap finds them all.
  std::vector<store::Intent> claim_all_intents() {
    std::vector<store::Intent> out;
    int misses = 0;
    for (std::int64_t id = 1; misses < 50; ++id) {
      auto i = read([&](store::Transaction& tx) { return tx.get_intent(id); });
      if (!i) {
        EXPECT_EQ(i.error().code, store::StoreErrc::not_found) << i.error().message;
        ++misses;
        continue;
      }
      misses = 0;
      out.push_back(std::move(i->intent));
    }
    return out;
  }

  std::optional<store::StoredTimer> timer(const std::string& id) {
    auto t =
        read([&](store::Transaction& tx) { return tx.find_timer(id, store::kDisconnectTimer); });
    EXPECT_TRUE(t) << t.error().message;
    return t ? *t : std::nullopt;
  }

  // Polls the store (there is no message to await for a fired timer) in small steps.
  template <class P>
  bool eventually(P pred, std::chrono::milliseconds timeout) {
    const auto deadline = steady_clock::now() + timeout;
    for (;;) {
      if (pred()) return true;
      if (steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
  }

  std::unique_ptr<MqttTestClient> connect(const std::string& identity) {
    auto c = MqttTestClient::connect(client_options(*broker_, pki_.client(identity)));
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  // A device with its own certificate, subscribed to its shadow replies.
  std::unique_ptr<MqttTestClient> device_client(const std::string& id) {
    auto c = connect(id);
    if (c) {
      auto s = c->subscribe("$aws/things/" + id + "/shadow/+/+", 1);
      EXPECT_TRUE(s && *s == 1) << (s ? std::to_string(*s) : s.error().message);
    }
    return c;
  }

  // The service identity that plays any device, subscribed to `filters`.
  std::unique_ptr<MqttTestClient> tester(const std::vector<std::string>& filters) {
    auto c = connect(kTester);
    for (const auto& f : filters) {
      if (!c) break;
      auto s = c->subscribe(f, 1);
      EXPECT_TRUE(s && *s == 1) << f << ": " << (s ? std::to_string(*s) : s.error().message);
    }
    return c;
  }

  // Publishes at QoS 1 and expects the broker to have a subscriber (dagd's session).
  static void publish(MqttTestClient& c, const std::string& topic, std::string_view payload,
                      bool retain = false) {
    auto r = c.publish(topic, payload, 1, retain);
    ASSERT_TRUE(r) << topic << ": " << r.error().message;
    ASSERT_EQ(*r, reason::kSuccess) << topic;
  }

  // Publishes a report and returns its /update/accepted (parsed), failing on anything else.
  static json update(MqttTestClient& c, const std::string& id, const std::string& payload,
                     const std::string& token) {
    publish(c, update_topic(id), payload);
    if (::testing::Test::HasFatalFailure()) return nullptr;
    auto m = c.wait_for_message(accepted_topic(id), kWait);
    EXPECT_TRUE(m) << "no /update/accepted for " << id << " " << token;
    if (!m) return nullptr;
    json a = parse(*m);
    EXPECT_EQ(a.value("clientToken", ""), token);
    return a;
  }

  TestPki pki_;
  std::unique_ptr<MosquittoBroker> broker_;
  std::unique_ptr<DagdProcess> dagd_;
  std::unique_ptr<store::Store> db_;  // after dagd_: closed before its directory goes
  int accounts_{0};
};

// ---- 1. basics ---------------------------------------------------------------------------

TEST_F(DagdIntegration, UpdatesAreStoredBeforeAcceptedAndGetReturnsTheShadow) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  const std::int64_t t0 = now_ms() - 60'000;

  for (int seq = 1; seq <= 3; ++seq) {
    const std::string token = "e" + std::to_string(seq);
    const json a = update(*dev, "dag-1", report(status_of_seq(seq), seq, t0 + seq, token), token);
    ASSERT_FALSE(a.is_null());
    EXPECT_EQ(a["version"], seq);
    EXPECT_EQ(a["state"]["reported"]["status"], status_of_seq(seq));
    EXPECT_EQ(a["state"]["reported"]["seq"], seq);
    // The reply follows the commit: the store holds this version already.
    const json s = shadow("dag-1");
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["version"], seq);
    EXPECT_EQ(s["state"]["reported"]["seq"], seq);
    EXPECT_EQ(s["state"]["reported"]["observedAt"], t0 + seq);

    auto docs = dev->wait_for_message(
        reply_topic("dag-1", ShadowOp::update, ShadowReply::documents), kWait);
    ASSERT_TRUE(docs);
    const json d = parse(*docs);
    EXPECT_EQ(d["clientToken"], token);
    EXPECT_EQ(d["current"]["version"], seq);
    EXPECT_EQ(d["current"]["state"]["reported"]["status"], status_of_seq(seq));
    if (seq == 1) {
      EXPECT_TRUE(d["previous"].is_null()) << d.dump();
    } else {
      EXPECT_EQ(d["previous"]["version"], seq - 1);
    }
  }

  publish(*dev, protocol::shadow_topic("dag-1", ShadowOp::get), R"({"clientToken":"g1"})");
  auto got =
      dev->wait_for_message(reply_topic("dag-1", ShadowOp::get, ShadowReply::accepted), kWait);
  ASSERT_TRUE(got);
  const json g = parse(*got);
  EXPECT_EQ(g["clientToken"], "g1");
  EXPECT_EQ(g["version"], 3);
  EXPECT_EQ(g["state"]["reported"]["status"], "on");
  EXPECT_EQ(g["state"]["reported"]["seq"], 3);

  const auto d = device("dag-1");
  EXPECT_EQ(d.state.power, protocol::Power::on);
  EXPECT_EQ(d.state.connection, Connection::connected);
  EXPECT_EQ(d.state.user_state, protocol::UserState::on);
  EXPECT_EQ(d.state.last_seq, 3);
  EXPECT_TRUE(dev->messages_matching("$aws/things/dag-1/shadow/+/rejected").empty());
}

TEST_F(DagdIntegration, UnknownAndRevokedDevicesAreRejectedWith404) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto t = tester({"$aws/things/+/shadow/+/accepted", "$aws/things/+/shadow/+/rejected"});
  ASSERT_TRUE(t);

  publish(*t, update_topic("ghost-1"), report("on", 1, now_ms(), "u1"));
  auto rej = t->wait_for_message(rejected_topic("ghost-1"), kWait);
  ASSERT_TRUE(rej);
  json r = parse(*rej);
  EXPECT_EQ(r["code"], 404);
  EXPECT_EQ(r["clientToken"], "u1");
  EXPECT_EQ(r["message"], "No shadow exists with name: 'ghost-1'");
  publish(*t, protocol::shadow_topic("ghost-1", ShadowOp::get), R"({"clientToken":"u2"})");
  rej = t->wait_for_message(reply_topic("ghost-1", ShadowOp::get, ShadowReply::rejected), kWait);
  ASSERT_TRUE(rej);
  EXPECT_EQ(parse(*rej)["code"], 404);
  EXPECT_EQ(parse(*rej)["clientToken"], "u2");

  // Works while provisioned...
  ASSERT_FALSE(update(*t, "dag-1", report("on", 1, now_ms(), "a1"), "a1").is_null());
  // ... and not once revoked.
  auto revoked = in_tx([](store::Transaction& tx) { return tx.set_device_revoked("dag-1", true); });
  ASSERT_TRUE(revoked) << revoked.error().message;
  publish(*t, update_topic("dag-1"), report("off", 2, now_ms(), "a2"));
  rej = t->wait_for_message(rejected_topic("dag-1"), kWait);
  ASSERT_TRUE(rej);
  r = parse(*rej);
  EXPECT_EQ(r["code"], 404);
  EXPECT_EQ(r["clientToken"], "a2");
  EXPECT_TRUE(t->messages_matching(accepted_topic("ghost-1")).empty());
  EXPECT_EQ(t->messages_matching(accepted_topic("dag-1")).size(), 1U);
  const json s = shadow("dag-1");
  EXPECT_EQ(s["version"], 1);
  EXPECT_EQ(s["state"]["reported"]["status"], "on");
  EXPECT_TRUE(events_of("dag-1", store::EventKind::power_off).empty());
}

TEST_F(DagdIntegration, MalformedRequestsAreRejectedWith400) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);

  publish(*dev, update_topic("dag-1"), R"({"state":)");
  auto rej = dev->wait_for_message(rejected_topic("dag-1"), kWait);
  ASSERT_TRUE(rej);
  json r = parse(*rej);
  EXPECT_EQ(r["code"], 400);
  EXPECT_EQ(r["message"], "Invalid JSON");
  EXPECT_FALSE(r.contains("clientToken"));

  publish(*dev, update_topic("dag-1"), R"({"clientToken":"m1"})");
  rej = dev->wait_for_message(rejected_topic("dag-1"), kWait);
  ASSERT_TRUE(rej);
  r = parse(*rej);
  EXPECT_EQ(r["code"], 400);
  EXPECT_EQ(r["message"], "Missing required node: state");
  EXPECT_EQ(r["clientToken"], "m1");

  EXPECT_TRUE(shadow("dag-1").is_null());
  EXPECT_TRUE(dev->messages_matching(accepted_topic("dag-1")).empty());
}

TEST_F(DagdIntegration, ABurstOverTheRateLimitGets429) {
  ASSERT_NO_FATAL_FAILURE(start());  // 20 requests/s, burst 20 (the defaults)
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);

  constexpr int kSent = 60;
  const auto t0 = steady_clock::now();
  for (int i = 0; i < kSent; ++i) {
    const json u = {{"state", {{"reported", {{"n", i}}}}},
                    {"clientToken", "r" + std::to_string(i)}};
    ASSERT_NO_FATAL_FAILURE(publish(*dev, update_topic("dag-1"), u.dump()));
  }
  std::vector<std::string> accepted;
  std::vector<json> rejected;
  while (static_cast<int>(accepted.size() + rejected.size()) < kSent) {
    auto m = dev->wait_for_message("$aws/things/dag-1/shadow/update/+", kWait);
    ASSERT_TRUE(m) << accepted.size() << " accepted, " << rejected.size() << " rejected";
    if (m->topic == accepted_topic("dag-1")) accepted.push_back(parse(*m)["clientToken"]);
    if (m->topic == rejected_topic("dag-1")) rejected.push_back(parse(*m));
  }
  const double elapsed_s = std::chrono::duration<double>(steady_clock::now() - t0).count();

  // The first 20 fit the burst; after that about 20 per second get through.
  ASSERT_GE(accepted.size(), 20U);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(accepted[i], "r" + std::to_string(i));
  EXPECT_LE(static_cast<double>(accepted.size()), 20 + (20 * elapsed_s) + 1);
  EXPECT_FALSE(rejected.empty());
  for (const auto& r : rejected) {
    EXPECT_EQ(r["code"], 429) << r.dump();
    EXPECT_EQ(r["message"], "Too many requests");
    EXPECT_TRUE(r["clientToken"].is_string()) << r.dump();
  }
  // The shadow saw exactly the accepted ones.
  EXPECT_EQ(shadow("dag-1")["version"], static_cast<int>(accepted.size()));
}

TEST_F(DagdIntegration, ADeviceWithinTheRateLimitIsNeverRefused) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);

  auto body = [](int i) {
    return json{{"state", {{"reported", {{"n", i}}}}}, {"clientToken", "w" + std::to_string(i)}}
        .dump();
  };
  // The whole burst at once...
  for (int i = 0; i < 20; ++i)
    ASSERT_NO_FATAL_FAILURE(publish(*dev, update_topic("dag-1"), body(i)));
  // ... then 10/s, half the rate. The sleep paces the device; it synchronises nothing.
  auto next = steady_clock::now();
  for (int i = 20; i < 30; ++i) {
    next += 100ms;
    std::this_thread::sleep_until(next);
    ASSERT_NO_FATAL_FAILURE(publish(*dev, update_topic("dag-1"), body(i)));
  }
  for (int i = 0; i < 30; ++i) {
    auto m = dev->wait_for_message("$aws/things/dag-1/shadow/update/+", kWait);
    while (m && m->topic.ends_with("/documents")) {
      m = dev->wait_for_message("$aws/things/dag-1/shadow/update/+", kWait);
    }
    ASSERT_TRUE(m) << "reply " << i;
    ASSERT_EQ(m->topic, accepted_topic("dag-1")) << m->payload;
    EXPECT_EQ(parse(*m)["clientToken"], "w" + std::to_string(i));
  }
  EXPECT_TRUE(dev->messages_matching(rejected_topic("dag-1")).empty());
}

TEST_F(DagdIntegration, APowerCutMakesOneEventAndOneIntent) {
  ASSERT_NO_FATAL_FAILURE(start());
  const auto acc = account();
  provision("dag-1", acc);
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  const std::int64_t t_on = now_ms() - 20'000;
  const std::int64_t t_off = now_ms() - 10'000;

  ASSERT_FALSE(update(*dev, "dag-1", report("on", 1, t_on, "e1"), "e1").is_null());
  ASSERT_FALSE(update(*dev, "dag-1", report("off", 2, t_off, "e2"), "e2").is_null());
  // The dag missed the /accepted and sends the report again: nothing new may come of it.
  ASSERT_FALSE(update(*dev, "dag-1", report("off", 2, t_off, "e2"), "e2").is_null());

  const auto evs = events("dag-1");
  ASSERT_EQ(evs.size(), 2U);
  EXPECT_EQ(evs[0].kind, store::EventKind::power_on);  // the initial state
  EXPECT_EQ(evs[0].seq, 1);
  EXPECT_EQ(evs[1].kind, store::EventKind::power_off);
  EXPECT_EQ(evs[1].seq, 2);
  EXPECT_EQ(evs[1].observed_at_ms, t_off);
  EXPECT_FALSE(evs[1].clock_fallback);
  EXPECT_EQ(evs[1].user_state_after, protocol::UserState::off);

  const auto intents = claim_all_intents();
  ASSERT_EQ(intents.size(), 1U);
  EXPECT_EQ(intents[0].transition, store::Transition::power_lost);
  EXPECT_EQ(intents[0].device_id, "dag-1");
  EXPECT_EQ(intents[0].account_id, acc);
  EXPECT_EQ(intents[0].observed_at_ms, t_off);
  EXPECT_EQ(intents[0].user_state, protocol::UserState::off);

  const auto d = device("dag-1");
  EXPECT_EQ(d.state.power, protocol::Power::off);
  EXPECT_EQ(d.state.power_since_ms, t_off);
  EXPECT_EQ(d.state.user_state, protocol::UserState::off);
  EXPECT_TRUE(d.state.notified_power_lost);
}

// ---- 2. kill -9 in the middle of a storm ---------------------------------------------------

// 50 simulated dags, each sending 20 transition reports the way dag-edge's outbox does: in
// seq order, one at a time, each resent unchanged (same seq, same token) until its
// /accepted arrives. dagd is SIGKILLed after about 300 accepted, losing what it had
// acknowledged to the broker but not yet committed; the dags' resends must make up for it.
TEST_F(DagdIntegration, KillNineDuringAThousandUpdatesLosesAndDuplicatesNothing) {
  ASSERT_NO_FATAL_FAILURE(start({{"DAG_INGEST_RATE_PER_S", "0"}}));
  constexpr int kDevices = 50;
  constexpr int kReports = 20;
  constexpr int kKillAfter = 300;
  constexpr auto kResendAfter = 2s;
  const auto acc = account();
  std::vector<std::string> ids;
  std::map<std::string, int> index;
  for (int d = 0; d < kDevices; ++d) {
    ids.push_back("dag-k" + std::to_string(100 + d));
    index[ids.back()] = d;
    ASSERT_NO_FATAL_FAILURE(provision(ids.back(), acc));
  }
  auto t = tester({"$aws/things/+/shadow/update/accepted"});
  ASSERT_TRUE(t);

  const std::int64_t base = now_ms() - 600'000;
  auto observed = [&](int d, std::int64_t seq) { return base + (seq * 1000) + d; };
  struct Sim {
    int next{1};  // seq of the report being sent
    bool in_flight{false};
    steady_clock::time_point sent;
  };
  std::vector<Sim> sims(kDevices);
  int accepted = 0;
  int resends = 0;
  int done = 0;
  int killed_at = -1;

  auto send = [&](int d) {
    auto& s = sims[d];
    const auto r = t->publish(
        update_topic(ids[d]),
        report(status_of_seq(s.next), s.next, observed(d, s.next), "e" + std::to_string(s.next)),
        1);
    ASSERT_TRUE(r) << r.error().message;
    s.in_flight = true;
    s.sent = steady_clock::now();
  };

  const auto t0 = steady_clock::now();
  const auto deadline = t0 + 60s;
  while (done < kDevices) {
    ASSERT_LT(steady_clock::now(), deadline)
        << done << " dags finished, " << accepted << " accepted, " << resends << " resends";
    for (int d = 0; d < kDevices; ++d) {
      auto& s = sims[d];
      if (!s.in_flight && s.next <= kReports) {
        ASSERT_NO_FATAL_FAILURE(send(d));
      } else if (s.in_flight && steady_clock::now() - s.sent > kResendAfter) {
        ++resends;
        ASSERT_NO_FATAL_FAILURE(send(d));
      }
    }
    // Right after a round of sends, so that reports are in flight at every stage: at the
    // broker, acknowledged to it but only queued in dagd, committed but not yet answered.
    if (killed_at < 0 && accepted >= kKillAfter) {
      killed_at = accepted;
      dagd_->kill9();
      ASSERT_TRUE(dagd_->restart());
    }
    for (auto m = t->wait_for_message("$aws/things/+/shadow/update/accepted", 20ms); m;
         m = t->wait_for_message("$aws/things/+/shadow/update/accepted", 0ms)) {
      const auto it = index.find(thing_of(m->topic));
      ASSERT_NE(it, index.end()) << m->topic;
      auto& s = sims[it->second];
      const json a = parse(*m);
      // A late /accepted of a report already acknowledged (its resend's) changes nothing.
      if (!s.in_flight || a.value("clientToken", "") != "e" + std::to_string(s.next)) continue;
      s.in_flight = false;
      ++accepted;
      if (++s.next > kReports) ++done;
    }
  }
  const double seconds = std::chrono::duration<double>(steady_clock::now() - t0).count();
  std::cout << "storm: " << accepted << " reports in " << seconds << " s, killed after "
            << killed_at << ", " << resends << " resends\n";
  ASSERT_EQ(accepted, kDevices * kReports);
  ASSERT_GE(killed_at, kKillAfter);
  ASSERT_LT(killed_at, kDevices * kReports) << "the kill came too late to prove anything";

  for (int d = 0; d < kDevices; ++d) {
    SCOPED_TRACE(ids[d]);
    const json s = shadow(ids[d]);
    ASSERT_TRUE(s.is_object());
    EXPECT_EQ(s["state"]["reported"]["status"], status_of_seq(kReports));
    EXPECT_EQ(s["state"]["reported"]["seq"], kReports);
    EXPECT_EQ(s["state"]["reported"]["observedAt"], observed(d, kReports));

    // Every report is a power event exactly once; the first is the initial state.
    const auto evs = events(ids[d]);
    ASSERT_EQ(evs.size(), static_cast<std::size_t>(kReports));
    for (int seq = 1; seq <= kReports; ++seq) {
      const auto& e = evs[static_cast<std::size_t>(seq - 1)];
      EXPECT_EQ(e.seq, seq);
      EXPECT_EQ(e.kind, seq % 2 == 1 ? store::EventKind::power_on : store::EventKind::power_off);
      EXPECT_EQ(e.observed_at_ms, observed(d, seq));
    }
    const auto dev = device(ids[d]);
    EXPECT_EQ(dev.state.last_seq, kReports);
    EXPECT_EQ(dev.state.power, protocol::Power::off);
  }

  // Every change after the first report notifies once: off -> power_lost, on -> power_back.
  std::map<std::string, std::vector<store::Intent>> by_device;
  for (auto& i : claim_all_intents()) by_device[i.device_id].push_back(std::move(i));
  ASSERT_EQ(by_device.size(), static_cast<std::size_t>(kDevices));
  for (int d = 0; d < kDevices; ++d) {
    SCOPED_TRACE(ids[d]);
    auto& list = by_device[ids[d]];
    ASSERT_EQ(list.size(), static_cast<std::size_t>(kReports - 1));
    std::sort(list.begin(), list.end(),
              [](const auto& a, const auto& b) { return a.observed_at_ms < b.observed_at_ms; });
    for (int seq = 2; seq <= kReports; ++seq) {
      const auto& i = list[static_cast<std::size_t>(seq - 2)];
      EXPECT_EQ(i.observed_at_ms, observed(d, seq));
      EXPECT_EQ(i.transition,
                seq % 2 == 0 ? store::Transition::power_lost : store::Transition::power_back);
    }
  }
}

// ---- 3. broker restarts and dagd outages ----------------------------------------------------

TEST_F(DagdIntegration, DagdResubscribesAfterABrokerRestart) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto& p = dagd_->process();
  const auto from = p.line_count();
  ASSERT_TRUE(broker_->restart());
  ASSERT_TRUE(p.wait_for_line("mqtt.disconnected", kWait, from));
  ASSERT_TRUE(p.wait_for_line("mqtt.subscribed", 20s, from)) << p.output();

  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  const json a = update(*dev, "dag-1", report("on", 1, now_ms(), "e1"), "e1");
  ASSERT_FALSE(a.is_null());
  EXPECT_EQ(a["version"], 1);
}

TEST_F(DagdIntegration, UpdatesSentWhileDagdIsDownAreAppliedWhenItReturns) {
  BrokerOptions bo;
  bo.persistence = true;
  ASSERT_NO_FATAL_FAILURE(start({}, bo));
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  const std::int64_t t0 = now_ms() - 10'000;

  ASSERT_TRUE(dagd_->stop());
  // reason::kSuccess, not "no matching subscribers": dagd's session is kept for it.
  for (int seq = 1; seq <= 3; ++seq) {
    ASSERT_NO_FATAL_FAILURE(
        publish(*dev, update_topic("dag-1"),
                report(status_of_seq(seq), seq, t0 + seq, "e" + std::to_string(seq))));
  }
  ASSERT_TRUE(dagd_->restart());
  for (int seq = 1; seq <= 3; ++seq) {
    auto m = dev->wait_for_message(accepted_topic("dag-1"), kWait);
    ASSERT_TRUE(m) << "no /accepted for seq " << seq;
    EXPECT_EQ(parse(*m)["clientToken"], "e" + std::to_string(seq));
  }
  const json s = shadow("dag-1");
  EXPECT_EQ(s["version"], 3);
  EXPECT_EQ(s["state"]["reported"]["seq"], 3);
  EXPECT_EQ(s["state"]["reported"]["status"], "on");
  EXPECT_EQ(events("dag-1").size(), 3U);
}

TEST_F(DagdIntegration, UpdatesQueuedForDagdSurviveABrokerRestart) {
  BrokerOptions bo;
  bo.persistence = true;
  ASSERT_NO_FATAL_FAILURE(start({}, bo));
  provision("dag-1", account());
  const std::int64_t t0 = now_ms() - 10'000;
  {
    auto dev = device_client("dag-1");
    ASSERT_TRUE(dev);
    dagd_->kill9();
    for (int seq = 1; seq <= 2; ++seq) {
      ASSERT_NO_FATAL_FAILURE(
          publish(*dev, update_topic("dag-1"),
                  report(status_of_seq(seq), seq, t0 + seq, "e" + std::to_string(seq))));
    }
  }
  ASSERT_TRUE(broker_->restart());  // persistence: dagd's session and its queue are saved
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  ASSERT_TRUE(dagd_->restart());
  for (int seq = 1; seq <= 2; ++seq) {
    auto m = dev->wait_for_message(accepted_topic("dag-1"), kWait);
    ASSERT_TRUE(m) << "no /accepted for seq " << seq;
    EXPECT_EQ(parse(*m)["clientToken"], "e" + std::to_string(seq));
  }
  const json s = shadow("dag-1");
  EXPECT_EQ(s["version"], 2);
  EXPECT_EQ(s["state"]["reported"]["status"], "off");
}

// ---- 4. durable debounce -----------------------------------------------------------------

TEST_F(DagdIntegration, ADisconnectDebouncePendingAcrossARestartFiresOnTime) {
  ASSERT_NO_FATAL_FAILURE(start());
  store::AccountSettings settings;
  settings.disconnect_grace_s = 3;
  const auto acc = account(settings);
  provision("dag-1", acc);
  provision("dag-2", acc);
  auto t = tester({"dags/+/status/request", "$aws/things/+/shadow/update/accepted"});
  ASSERT_TRUE(t);
  {
    auto dev = device_client("dag-1");
    ASSERT_TRUE(dev);
    ASSERT_FALSE(update(*dev, "dag-1", report("on", 1, now_ms(), "e1"), "e1").is_null());
  }
  ASSERT_EQ(device("dag-1").state.connection, Connection::connected);

  // The dag's will, as the broker publishes it (retained).
  const std::int64_t t0 = now_ms();
  publish(*t, protocol::presence_topic("dag-1"), "disconnected", /*retain=*/true);
  ASSERT_TRUE(t->wait_for_message(protocol::status_request_topic("dag-1"), kWait));
  const std::int64_t t1 = now_ms();
  const auto pending = timer("dag-1");
  ASSERT_TRUE(pending);
  EXPECT_GE(pending->timer.due_at_ms, t0 + 3000);
  EXPECT_LE(pending->timer.due_at_ms, t1 + 3000);

  ASSERT_TRUE(dagd_->stop());
  ASSERT_TRUE(dagd_->restart());  // the retained will is delivered again: no new debounce
  const std::int64_t restarted = now_ms();
  ASSERT_LT(restarted, pending->timer.due_at_ms) << "dagd restarted too slowly for this test";
  // Sentinel: the broker sent the retained will when dagd subscribed, before this.
  ASSERT_FALSE(update(*t, "dag-2", report("on", 1, now_ms(), "s1"), "s1").is_null());
  EXPECT_EQ(timer("dag-1"), pending);  // the same timer: not pushed out, not replaced
  EXPECT_TRUE(events_of("dag-1", store::EventKind::lost_contact).empty());

  ASSERT_TRUE(
      eventually([&] { return !events_of("dag-1", store::EventKind::lost_contact).empty(); },
                 std::chrono::milliseconds(pending->timer.due_at_ms - now_ms()) + 5s));
  const auto lost = events_of("dag-1", store::EventKind::lost_contact);
  ASSERT_EQ(lost.size(), 1U);
  EXPECT_GE(lost[0].observed_at_ms, pending->timer.due_at_ms);
  EXPECT_LE(lost[0].observed_at_ms, pending->timer.due_at_ms + 1500);
  EXPECT_EQ(lost[0].user_state_after, protocol::UserState::was_on);

  const auto d = device("dag-1");
  EXPECT_EQ(d.state.connection, Connection::disconnected);
  EXPECT_EQ(d.state.user_state, protocol::UserState::was_on);
  EXPECT_TRUE(d.state.presence_marker.empty());
  EXPECT_FALSE(timer("dag-1"));
  const auto intents = claim_all_intents();
  ASSERT_EQ(intents.size(), 1U);
  EXPECT_EQ(intents[0].transition, store::Transition::contact_lost);
  EXPECT_EQ(intents[0].device_id, "dag-1");
  EXPECT_EQ(intents[0].user_state, protocol::UserState::was_on);
  EXPECT_EQ(t->messages_matching(protocol::status_request_topic("dag-1")).size(), 1U);
}

// ---- 5. presence and lifecycle -------------------------------------------------------------

TEST_F(DagdIntegration, AnOlderLifecycleDisconnectIsIgnored) {
  ASSERT_NO_FATAL_FAILURE(start());
  const auto acc = account();
  provision("dag-1", acc);
  provision("dag-2", acc);
  auto t = tester({"dags/+/status/request", "$aws/things/+/shadow/update/accepted"});
  ASSERT_TRUE(t);

  publish(*t, protocol::lifecycle_topic(Connection::connected, "dag-1"),
          lifecycle("dag-1", Connection::connected, 1000));
  // Out of order: the disconnect of an earlier connection arrives after this one's connect.
  publish(*t, protocol::lifecycle_topic(Connection::disconnected, "dag-1"),
          lifecycle("dag-1", Connection::disconnected, 999));
  // Sentinel: dagd handles one publisher's messages in order.
  ASSERT_FALSE(update(*t, "dag-2", report("on", 1, now_ms(), "s1"), "s1").is_null());

  auto d = device("dag-1");
  EXPECT_EQ(d.state.connection, Connection::connected);
  EXPECT_EQ(d.state.last_lifecycle_version, 2000);  // versionNumber * 2 (+1 for a disconnect)
  EXPECT_TRUE(d.state.presence_marker.empty());
  EXPECT_FALSE(timer("dag-1"));
  EXPECT_TRUE(t->messages_matching(protocol::status_request_topic("dag-1")).empty());

  // The disconnect of the current connection does count.
  publish(*t, protocol::lifecycle_topic(Connection::disconnected, "dag-1"),
          lifecycle("dag-1", Connection::disconnected, 1000));
  ASSERT_TRUE(t->wait_for_message(protocol::status_request_topic("dag-1"), kWait));
  d = device("dag-1");
  EXPECT_EQ(d.state.last_lifecycle_version, 2001);
  EXPECT_FALSE(d.state.presence_marker.empty());
  EXPECT_TRUE(timer("dag-1"));
  EXPECT_EQ(d.state.connection, Connection::connected);  // until the grace has passed
}

TEST_F(DagdIntegration, AnUpdateDuringTheDebounceCancelsIt) {
  ASSERT_NO_FATAL_FAILURE(start());
  store::AccountSettings settings;
  settings.disconnect_grace_s = 2;
  const auto acc = account(settings);
  provision("dag-a", acc);
  provision("dag-c", acc);
  auto t = tester({"dags/+/status/request", "$aws/things/+/shadow/update/accepted"});
  ASSERT_TRUE(t);
  ASSERT_FALSE(update(*t, "dag-a", report("on", 1, now_ms(), "a1"), "a1").is_null());
  ASSERT_FALSE(update(*t, "dag-c", report("on", 1, now_ms(), "c1"), "c1").is_null());

  publish(*t, protocol::presence_topic("dag-a"), "disconnected");
  ASSERT_TRUE(t->wait_for_message(protocol::status_request_topic("dag-a"), kWait));
  ASSERT_TRUE(timer("dag-a"));
  // The dag answers the status request: it is still there.
  const json answer = {{"state", {{"reported", {{"status", "on"}, {"seq", 1}}}}},
                       {"clientToken", "r1"}};
  ASSERT_FALSE(update(*t, "dag-a", answer.dump(), "r1").is_null());
  EXPECT_FALSE(timer("dag-a"));
  EXPECT_TRUE(device("dag-a").state.presence_marker.empty());

  // dag-c disconnects later and stays away: once its debounce has fired, dag-a's (due
  // earlier) would have fired too, had it not been cancelled.
  publish(*t, protocol::presence_topic("dag-c"), "disconnected");
  ASSERT_TRUE(t->wait_for_message(protocol::status_request_topic("dag-c"), kWait));
  ASSERT_TRUE(
      eventually([&] { return !events_of("dag-c", store::EventKind::lost_contact).empty(); }, 10s));

  EXPECT_TRUE(events_of("dag-a", store::EventKind::lost_contact).empty());
  const auto a = device("dag-a");
  EXPECT_EQ(a.state.connection, Connection::connected);
  EXPECT_EQ(a.state.user_state, protocol::UserState::on);
  EXPECT_EQ(device("dag-c").state.connection, Connection::disconnected);
  const auto intents = claim_all_intents();
  ASSERT_EQ(intents.size(), 1U);
  EXPECT_EQ(intents[0].device_id, "dag-c");
  EXPECT_EQ(intents[0].transition, store::Transition::contact_lost);
}

// ---- 6. graceful shutdown ------------------------------------------------------------------

TEST_F(DagdIntegration, SigtermStopsDagdCleanly) {
  ASSERT_NO_FATAL_FAILURE(start());
  provision("dag-1", account());
  auto dev = device_client("dag-1");
  ASSERT_TRUE(dev);
  ASSERT_FALSE(update(*dev, "dag-1", report("on", 1, now_ms(), "e1"), "e1").is_null());

  const auto stopped = dagd_->stop();  // SIGTERM; an error unless the exit code is 0
  ASSERT_TRUE(stopped) << stopped.error().message;
  const auto out = dagd_->process().output();
  EXPECT_NE(out.find("dagd.stopping"), std::string::npos);
  EXPECT_NE(out.find("dagd.stopped"), std::string::npos);
  EXPECT_NE(out.find("updates=1"), std::string::npos) << out;  // the final counters
}

// Unlike kill -9, a SIGTERM loses nothing dagd has acknowledged to the broker: what it had
// queued is processed before it exits, the rest waits in its session at the broker. So
// every report sent once (no resends here) ends up in the store.
TEST_F(DagdIntegration, SigtermDuringABurstProcessesEverythingAcknowledged) {
  ASSERT_NO_FATAL_FAILURE(start({{"DAG_INGEST_RATE_PER_S", "0"}}));
  constexpr int kDevices = 10;
  constexpr int kReports = 20;
  const auto acc = account();
  for (int d = 0; d < kDevices; ++d) provision("dag-s" + std::to_string(d), acc);
  provision("dag-sentinel", acc);
  auto t = tester({"$aws/things/+/shadow/update/accepted"});
  ASSERT_TRUE(t);
  const std::int64_t base = now_ms() - 600'000;

  // SIGTERM half-way through: the second half arrives while dagd shuts down.
  for (int seq = 1; seq <= kReports; ++seq) {
    if (seq == (kReports / 2) + 1) {
      ASSERT_TRUE(dagd_->process().signal(SIGTERM));
    }
    for (int d = 0; d < kDevices; ++d) {
      ASSERT_NO_FATAL_FAILURE(
          publish(*t, update_topic("dag-s" + std::to_string(d)),
                  report(status_of_seq(seq), seq, base + (std::int64_t{seq} * 1000),
                         "e" + std::to_string(seq))));
    }
  }
  const auto exited = dagd_->process().wait_for_exit(20s);
  ASSERT_TRUE(exited);
  ASSERT_TRUE(exited->success()) << exited->to_string();
  ASSERT_TRUE(dagd_->restart());
  // The broker delivers what it queued for dagd's session before this.
  ASSERT_FALSE(
      update(*t, "dag-sentinel", report("on", 1, now_ms(), "sentinel"), "sentinel").is_null());

  for (int d = 0; d < kDevices; ++d) {
    const std::string id = "dag-s" + std::to_string(d);
    SCOPED_TRACE(id);
    EXPECT_EQ(events(id).size(), static_cast<std::size_t>(kReports));
    EXPECT_EQ(shadow(id)["state"]["reported"]["seq"], kReports);
    EXPECT_EQ(device(id).state.last_seq, kReports);
  }
}

}  // namespace
}  // namespace dag::test
