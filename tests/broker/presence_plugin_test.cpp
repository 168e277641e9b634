// The presence plugin (dag_presence.so) inside a real mosquitto with mutual TLS: AWS IoT
// lifecycle events for devices that set no last will, and the acl_file still in charge.
//
// The service (dagd, ignored by the plugin) subscribes to $aws/events/presence/+/+.
// Absence is never proven by sleeping: the plugin publishes its events in order, so once a
// later event (or a permitted sentinel on the same connection, as in acl_test.cpp) has
// arrived, an earlier one that was never received was never published.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "dag/common/encoding.hpp"
#include "dag/protocol/vocabulary.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/process.hpp"
#include "dag/test/test_pki.hpp"

#ifndef DAG_PRESENCE_PLUGIN_PATH
#error "DAG_PRESENCE_PLUGIN_PATH must name dag_presence.so (set by tests/broker/CMakeLists.txt)"
#endif

namespace dag::test {
namespace {

using namespace std::chrono_literals;
using protocol::Connection;
using protocol::LifecycleEvent;

constexpr auto kWait = 5s;
constexpr std::string_view kEvents = "$aws/events/presence/+/+";

std::string shadow(const std::string& thing, const std::string& suffix) {
  return "$aws/things/" + thing + "/shadow/" + suffix;
}

std::string connected_topic(const std::string& id) {
  return "$aws/events/presence/connected/" + id;
}
std::string disconnected_topic(const std::string& id) {
  return "$aws/events/presence/disconnected/" + id;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> topics_of(const std::vector<Message>& messages) {
  std::vector<std::string> out;
  out.reserve(messages.size());
  for (const auto& m : messages) out.push_back(m.topic);
  return out;
}

struct Observed {
  Message message;
  LifecycleEvent event;
};

broker::Plugin presence_plugin(std::string ignore_usernames = "dagd") {
  return broker::Plugin{DAG_PRESENCE_PLUGIN_PATH, {{"ignore_usernames", ignore_usernames}}};
}

class PresencePluginTest : public ::testing::Test {
 protected:
  void SetUp() override { start({.service_identities = {"dagd"}, .plugin = presence_plugin()}); }

  void start(BrokerOptions options) {
    broker_.reset();
    auto broker = MosquittoBroker::start(pki_, std::move(options));
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    ASSERT_TRUE(broker_->wait_for_log("dag_presence: event=loaded", kWait)) << broker_->log();
  }

  Result<std::unique_ptr<MqttTestClient>> try_connect(const std::string& identity,
                                                      MqttVersion version = MqttVersion::v5,
                                                      bool clean_session = true) {
    auto options = client_options(*broker_, pki_.client(identity));
    options.version = version;
    options.clean_session = clean_session;
    return MqttTestClient::connect(options);
  }

  std::unique_ptr<MqttTestClient> connect(const std::string& identity,
                                          MqttVersion version = MqttVersion::v5,
                                          bool clean_session = true) {
    auto c = try_connect(identity, version, clean_session);
    EXPECT_TRUE(c) << identity << ": " << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  // The service, subscribed to lifecycle events and to device shadow updates (sentinels).
  std::unique_ptr<MqttTestClient> service(const std::string& identity = "dagd") {
    auto s = connect(identity);
    if (!s) return nullptr;
    for (const std::string_view filter :
         {kEvents, std::string_view{"$aws/things/+/shadow/update"}}) {
      auto granted = s->subscribe(filter, 1);
      EXPECT_TRUE(granted) << filter;
      EXPECT_EQ(granted.value_or(-1), 1) << filter;
    }
    return s;
  }

  // The next lifecycle event the service receives, which must be on `topic`.
  static std::optional<Observed> next_event(MqttTestClient& service, const std::string& topic) {
    auto m = service.wait_for_message(kEvents, kWait);
    if (!m) {
      ADD_FAILURE() << "no lifecycle event within " << kWait.count() << " s; expected " << topic;
      return std::nullopt;
    }
    if (m->topic != topic) {
      ADD_FAILURE() << "expected an event on " << topic << ", got " << m->topic << ": "
                    << m->payload;
      return std::nullopt;
    }
    EXPECT_EQ(m->qos, 1);
    EXPECT_FALSE(m->retain);
    auto event = protocol::parse_lifecycle_event(m->payload);
    if (!event) {
      ADD_FAILURE() << "unparseable lifecycle event " << m->payload << ": "
                    << event.error().message;
      return std::nullopt;
    }
    return Observed{*m, *event};
  }

  // A device like the original Python app: no will; it publishes a shadow update, which
  // the service receives (so the device has certainly been seen by the broker).
  std::unique_ptr<MqttTestClient> device_reports(const std::string& identity, MqttTestClient& svc,
                                                 MqttVersion version = MqttVersion::v311) {
    auto d = connect(identity, version);
    if (!d) return nullptr;
    const std::string doc = R"({"state":{"reported":{"status":"on"}}})";
    auto ack = d->publish(shadow(identity, "update"), doc, 1);
    EXPECT_TRUE(ack) << identity;
    auto m = svc.wait_for_message(shadow(identity, "update"), kWait);
    EXPECT_TRUE(m) << identity << "'s update did not reach the service";
    return d;
  }

  TestPki pki_;
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST_F(PresencePluginTest, DeviceWithoutWillGetsAConnectedEventWithEveryField) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  const std::int64_t before = now_ms();
  auto a = device_reports("dev-a", *dagd);
  ASSERT_TRUE(a);

  // The service's own connection (ignored username) made no event: this is the first one.
  auto connected = next_event(*dagd, connected_topic("dev-a"));
  ASSERT_TRUE(connected);
  const std::int64_t after = now_ms();
  RecordProperty("connected_payload", connected->message.payload);
  const LifecycleEvent& e = connected->event;
  EXPECT_EQ(e.client_id, "dev-a");
  EXPECT_EQ(e.event_type, Connection::connected);
  EXPECT_EQ(e.principal_identifier, "dev-a");  // the certificate's CN
  EXPECT_TRUE(is_uuid(e.session_identifier)) << e.session_identifier;
  EXPECT_GE(e.timestamp_ms, before);
  EXPECT_LE(e.timestamp_ms, after);
  EXPECT_GT(e.version_number, 0);
  EXPECT_EQ(e.ip_address, std::optional<std::string>{"127.0.0.1"});
  EXPECT_FALSE(e.client_initiated_disconnect);
  EXPECT_FALSE(e.disconnect_reason);
  // Every field on the wire, as docs/protocol.md lists them.
  for (const char* key :
       {"\"clientId\":", "\"timestamp\":", "\"eventType\":", "\"sessionIdentifier\":",
        "\"principalIdentifier\":", "\"versionNumber\":", "\"ipAddress\":"}) {
    EXPECT_NE(connected->message.payload.find(key), std::string::npos) << key;
  }
  EXPECT_TRUE(dagd->messages_matching("$aws/events/presence/+/dagd").empty());
}

TEST_F(PresencePluginTest, CleanDisconnectIsClientInitiated) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto a = device_reports("dev-a", *dagd);
  ASSERT_TRUE(a);
  auto connected = next_event(*dagd, connected_topic("dev-a"));
  ASSERT_TRUE(connected);

  const std::int64_t before = now_ms();
  ASSERT_TRUE(a->disconnect());
  auto gone = next_event(*dagd, disconnected_topic("dev-a"));
  ASSERT_TRUE(gone);
  RecordProperty("disconnected_payload", gone->message.payload);
  const LifecycleEvent& e = gone->event;
  EXPECT_EQ(e.client_id, "dev-a");
  EXPECT_EQ(e.event_type, Connection::disconnected);
  EXPECT_EQ(e.principal_identifier, "dev-a");
  EXPECT_EQ(e.session_identifier, connected->event.session_identifier);
  EXPECT_GE(e.timestamp_ms, before);
  EXPECT_GT(e.version_number, connected->event.version_number);
  EXPECT_EQ(e.client_initiated_disconnect, std::optional<bool>{true});
  EXPECT_EQ(e.disconnect_reason, std::optional<std::string>{"CLIENT_INITIATED_DISCONNECT"});
  EXPECT_FALSE(e.ip_address);
}

TEST_F(PresencePluginTest, DroppedConnectionIsNotClientInitiated) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  // mosquitto_sub over TLS, no will: it subscribes (its first ACL check) and never
  // disconnects by itself. SIGKILL makes the kernel close its socket.
  const ClientCert& cert = pki_.client("dev-c");
  auto sub = Process::spawn(
      {{"mosquitto_sub", "-h", MosquittoBroker::host(), "-p", std::to_string(broker_->port()),
        "--cafile", broker_->ca_file().string(), "--cert", cert.cert.string(), "--key",
        cert.key.string(), "-q", "1", "-t", "dags/dev-c/status/request"},
       {},
       broker_->dir() / "mosquitto_sub.log",
       {}});
  ASSERT_TRUE(sub) << sub.error().message;
  auto connected = next_event(*dagd, connected_topic("dev-c"));
  ASSERT_TRUE(connected);

  (*sub)->kill9();
  auto gone = next_event(*dagd, disconnected_topic("dev-c"));
  ASSERT_TRUE(gone);
  RecordProperty("dropped_payload", gone->message.payload);
  EXPECT_EQ(gone->event.session_identifier, connected->event.session_identifier);
  EXPECT_GT(gone->event.version_number, connected->event.version_number);
  EXPECT_EQ(gone->event.client_initiated_disconnect, std::optional<bool>{false});
  EXPECT_EQ(gone->event.disconnect_reason, std::optional<std::string>{"CONNECTION_LOST"});
}

// dag-edge sets a will. Mosquitto checks the will's topic (an ACL check of the closed
// connection) only after telling the plugin of the disconnect: that is no new connection.
TEST_F(PresencePluginTest, WillSentAfterADropIsNotANewConnection) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  ASSERT_TRUE(dagd->subscribe("dags/+/presence", 1));
  const ClientCert& cert = pki_.client("dev-c");
  auto sub = Process::spawn({{"mosquitto_sub",
                              "-h",
                              MosquittoBroker::host(),
                              "-p",
                              std::to_string(broker_->port()),
                              "--cafile",
                              broker_->ca_file().string(),
                              "--cert",
                              cert.cert.string(),
                              "--key",
                              cert.key.string(),
                              "-q",
                              "1",
                              "-t",
                              "dags/dev-c/status/request",
                              "--will-topic",
                              "dags/dev-c/presence",
                              "--will-payload",
                              "disconnected",
                              "--will-qos",
                              "1"},
                             {},
                             broker_->dir() / "mosquitto_sub.log",
                             {}});
  ASSERT_TRUE(sub) << sub.error().message;
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-c")));
  (*sub)->kill9();
  ASSERT_TRUE(next_event(*dagd, disconnected_topic("dev-c")));
  auto will = dagd->wait_for_message("dags/dev-c/presence", kWait);
  ASSERT_TRUE(will);
  EXPECT_EQ(will->payload, "disconnected");
  // The next event is the next device's, not a second "connected" of dev-c.
  auto a = device_reports("dev-a", *dagd);
  ASSERT_TRUE(a);
  EXPECT_TRUE(next_event(*dagd, connected_topic("dev-a")));
}

TEST_F(PresencePluginTest, VersionIncreasesAndSessionChangesAcrossReconnects) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  std::vector<LifecycleEvent> events;
  for (int round = 0; round < 2; ++round) {
    auto a = device_reports("dev-a", *dagd, round == 0 ? MqttVersion::v311 : MqttVersion::v5);
    ASSERT_TRUE(a);
    auto c = next_event(*dagd, connected_topic("dev-a"));
    ASSERT_TRUE(c);
    ASSERT_TRUE(a->disconnect());
    auto d = next_event(*dagd, disconnected_topic("dev-a"));
    ASSERT_TRUE(d);
    events.push_back(c->event);
    events.push_back(d->event);
  }
  for (std::size_t i = 1; i < events.size(); ++i) {
    EXPECT_GT(events[i].version_number, events[i - 1].version_number) << i;
  }
  EXPECT_EQ(events[0].session_identifier, events[1].session_identifier);
  EXPECT_EQ(events[2].session_identifier, events[3].session_identifier);
  EXPECT_NE(events[0].session_identifier, events[2].session_identifier);
}

TEST_F(PresencePluginTest, SessionTakeoverReportsDuplicateClientId) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto first = device_reports("dev-a", *dagd);
  ASSERT_TRUE(first);
  auto c1 = next_event(*dagd, connected_topic("dev-a"));
  ASSERT_TRUE(c1);

  // The same certificate again: the broker closes the first connection.
  auto second = device_reports("dev-a", *dagd);
  ASSERT_TRUE(second);
  auto d1 = next_event(*dagd, disconnected_topic("dev-a"));
  ASSERT_TRUE(d1);
  RecordProperty("takeover_payload", d1->message.payload);
  EXPECT_EQ(d1->event.session_identifier, c1->event.session_identifier);
  EXPECT_EQ(d1->event.client_initiated_disconnect, std::optional<bool>{false});
  EXPECT_EQ(d1->event.disconnect_reason, std::optional<std::string>{"DUPLICATE_CLIENTID"});
  auto c2 = next_event(*dagd, connected_topic("dev-a"));
  ASSERT_TRUE(c2);
  EXPECT_NE(c2->event.session_identifier, c1->event.session_identifier);
  EXPECT_GT(c2->event.version_number, d1->event.version_number);
  EXPECT_TRUE(first->wait_for_disconnect(kWait));
}

TEST_F(PresencePluginTest, OnlyListedUsernamesAreIgnored) {
  // Two service identities; the plugin ignores dagd only, so "ops" can watch dagd.
  start({.service_identities = {"dagd", "ops"}, .plugin = presence_plugin("dagd")});
  auto ops = service("ops");
  ASSERT_TRUE(ops);
  auto own = next_event(*ops, connected_topic("ops"));  // "ops" is not ignored
  ASSERT_TRUE(own);

  auto dagd = connect("dagd");
  ASSERT_TRUE(dagd);
  ASSERT_TRUE(dagd->subscribe(kEvents, 1));
  ASSERT_TRUE(dagd->publish("dags/dev-a/status/request", "", 1));
  ASSERT_TRUE(dagd->disconnect());

  auto a = device_reports("dev-a", *ops);
  ASSERT_TRUE(a);
  // dagd's connection came and went before dev-a's: had it made events, they came first.
  EXPECT_TRUE(next_event(*ops, connected_topic("dev-a")));
  EXPECT_TRUE(ops->messages_matching("$aws/events/presence/+/dagd").empty())
      << ::testing::PrintToString(topics_of(ops->messages()));
}

TEST_F(PresencePluginTest, OfflinePersistentSessionIsNotAConnection) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  // A persistent session (MQTT 3.1.1, clean session off) subscribed to its status requests.
  auto p = connect("dev-p", MqttVersion::v311, /*clean_session=*/false);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->subscribe("dags/dev-p/status/request", 1));
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-p")));
  ASSERT_TRUE(p->disconnect());
  ASSERT_TRUE(next_event(*dagd, disconnected_topic("dev-p")));

  // Queued for the offline session: the broker checks dev-p's read access now.
  ASSERT_TRUE(dagd->publish("dags/dev-p/status/request", "", 1));
  auto a = device_reports("dev-a", *dagd);
  ASSERT_TRUE(a);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-a")))
      << "an offline session was reported connected";

  // Back online, the session resumed: it gets the queued request, and receiving a new one
  // (checked at delivery) is activity, so it is seen connected again.
  auto back = connect("dev-p", MqttVersion::v311, /*clean_session=*/false);
  ASSERT_TRUE(back);
  EXPECT_TRUE(back->wait_for_message("dags/dev-p/status/request", kWait));
  ASSERT_TRUE(dagd->publish("dags/dev-p/status/request", "", 1));
  EXPECT_TRUE(back->wait_for_message("dags/dev-p/status/request", kWait));
  EXPECT_TRUE(next_event(*dagd, connected_topic("dev-p")));
}

TEST_F(PresencePluginTest, DeviceCannotForgeLifecycleEvents) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  for (const auto version : {MqttVersion::v5, MqttVersion::v311}) {
    SCOPED_TRACE(version == MqttVersion::v5 ? "MQTT 5" : "MQTT 3.1.1");
    auto a = connect("dev-a", version);
    ASSERT_TRUE(a);
    for (const auto& topic : {connected_topic("x"), disconnected_topic("dev-b"),
                              connected_topic("dev-a"), std::string{"$aws/events/presence/x"}}) {
      auto ack = a->publish(topic, "forged", 1);
      ASSERT_TRUE(ack) << topic;
      EXPECT_EQ(*ack, version == MqttVersion::v5 ? reason::kNotAuthorized : 0) << topic;
    }
    // Sentinel on the same connection: a forgery delivered would have arrived before it.
    ASSERT_TRUE(a->publish(shadow("dev-a", "update"), "sentinel", 1));
    auto m = dagd->wait_for_message(shadow("dev-a", "update"), kWait);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->payload, "sentinel");
  }
  for (const auto& m : dagd->messages()) {
    EXPECT_NE(m.payload, "forged") << m.topic;
  }
}

TEST_F(PresencePluginTest, DevicesDoNotReceiveLifecycleEvents) {
  auto dagd = service();
  auto a = connect("dev-a");
  ASSERT_TRUE(dagd && a);
  for (const char* filter : {"$aws/events/presence/+/+", "$aws/#", "#"}) {
    ASSERT_TRUE(a->subscribe(filter, 1)) << filter;  // granted; delivery is what is checked
  }
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-a")));
  auto b = device_reports("dev-b", *dagd);
  ASSERT_TRUE(b);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-b")));
  // Published to dev-a after the event was delivered to every permitted subscriber.
  ASSERT_TRUE(dagd->publish(shadow("dev-a", "update/accepted"), "sentinel", 1));
  auto m = a->wait_for_message(shadow("dev-a", "update/accepted"), kWait);
  ASSERT_TRUE(m);
  EXPECT_EQ(a->messages().size(), 1U) << ::testing::PrintToString(topics_of(a->messages()));
}

// A few of acl_test.cpp's checks with the plugin loaded: its ACL_CHECK callback defers, so
// the acl_file still grants and denies exactly as without it.
TEST_F(PresencePluginTest, AclFileStillDecidesWithThePluginLoaded) {
  auto dagd = service();
  auto a = connect("dev-a");
  auto b = connect("dev-b");
  ASSERT_TRUE(dagd && a && b);

  // Denied: another device's shadow and presence, and service replies (even its own).
  for (const auto& topic :
       {shadow("dev-b", "update"), shadow("dev-b", "get"), std::string{"dags/dev-b/presence"},
        shadow("dev-a", "update/accepted"), std::string{"dags/dev-b/status/request"}}) {
    auto ack = a->publish(topic, "forged", 1);
    ASSERT_TRUE(ack) << topic;
    EXPECT_EQ(*ack, reason::kNotAuthorized) << topic;
  }
  // Granted: its own update and presence reach the service intact.
  ASSERT_TRUE(dagd->subscribe("dags/+/presence", 1));
  for (const auto& topic : {shadow("dev-a", "update"), std::string{"dags/dev-a/presence"}}) {
    auto ack = a->publish(topic, "mine", 1);
    ASSERT_TRUE(ack) << topic;
    EXPECT_EQ(*ack, reason::kSuccess) << topic;
    auto m = dagd->wait_for_message(topic, kWait);
    ASSERT_TRUE(m) << topic;
    EXPECT_EQ(m->payload, "mine");
  }
  EXPECT_TRUE(dagd->messages_matching("$aws/things/dev-b/#").empty());
  EXPECT_TRUE(dagd->messages_matching("dags/dev-b/#").empty());

  // Reading: B subscribed to everything receives only what is its own.
  for (const char* filter : {"#", "$aws/#"}) ASSERT_TRUE(b->subscribe(filter, 1)) << filter;
  ASSERT_TRUE(dagd->publish(shadow("dev-a", "update/accepted"), "for-a", 1));
  ASSERT_TRUE(dagd->publish("dags/dev-a/status/request", "for-a", 1));
  ASSERT_TRUE(dagd->publish(shadow("dev-b", "update/accepted"), "for-b", 1));
  auto mine = b->wait_for_message(shadow("dev-b", "update/accepted"), kWait);
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->payload, "for-b");
  EXPECT_EQ(b->messages().size(), 1U) << ::testing::PrintToString(topics_of(b->messages()));
}

TEST_F(PresencePluginTest, UnknownOptionStopsTheBroker) {
  broker_.reset();
  auto broker = MosquittoBroker::start(
      pki_, {.plugin = broker::Plugin{DAG_PRESENCE_PLUGIN_PATH, {{"ignore_username", "dagd"}}},
             .timeout = 5s});
  ASSERT_FALSE(broker) << "a misspelt option was accepted";
  EXPECT_NE(broker.error().message.find("unknown option 'ignore_username'"), std::string::npos)
      << broker.error().message;
}

}  // namespace
}  // namespace dag::test
