// The presence plugin (dag_presence.so) inside a real mosquitto with mutual TLS: AWS IoT
// lifecycle events for devices that set no last will, and the acl_file still in charge.
//
// The service (dagd, ignored by the plugin) subscribes to $aws/events/presence/+/+.
// Absence is never proven by sleeping: the plugin publishes its events in order, so once a
// later event (or a permitted sentinel on the same connection, as in acl_test.cpp) has
// arrived, an earlier one that was never received was never published.
//
// The kick command ($CONTROL/dag-presence/v1/kick) is handled synchronously while the broker
// processes the command's PUBLISH, before it sends the PUBACK: whatever the command did (a
// dropped connection, a will) has happened once the sender has its PUBACK.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <regex>
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
constexpr std::string_view kKick = "$CONTROL/dag-presence/v1/kick";

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

broker::Plugin presence_plugin(std::string ignore_usernames = "dagd,dagctl") {
  return broker::Plugin{DAG_PRESENCE_PLUGIN_PATH, {{"ignore_usernames", ignore_usernames}}};
}

Will presence_will(const std::string& identity) {
  return Will{"dags/" + identity + "/presence", "disconnected", 1, false};
}

class PresencePluginTest : public ::testing::Test {
 protected:
  // As `dagctl init` deploys it: two service identities, both ignored by the plugin.
  void SetUp() override {
    start({.service_identities = {"dagd", "dagctl"}, .plugin = presence_plugin()});
  }

  void start(BrokerOptions options) {
    broker_.reset();
    auto broker = MosquittoBroker::start(pki_, std::move(options));
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    ASSERT_TRUE(broker_->wait_for_log("dag_presence: event=loaded", kWait)) << broker_->log();
  }

  Result<std::unique_ptr<MqttTestClient>> try_connect(const std::string& identity,
                                                      MqttVersion version = MqttVersion::v5,
                                                      bool clean_session = true,
                                                      std::optional<Will> will = std::nullopt) {
    auto options = client_options(*broker_, pki_.client(identity));
    options.version = version;
    options.clean_session = clean_session;
    options.will = std::move(will);
    return MqttTestClient::connect(options);
  }

  std::unique_ptr<MqttTestClient> connect(const std::string& identity,
                                          MqttVersion version = MqttVersion::v5,
                                          bool clean_session = true,
                                          std::optional<Will> will = std::nullopt) {
    auto c = try_connect(identity, version, clean_session, std::move(will));
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
                                                 MqttVersion version = MqttVersion::v311,
                                                 std::optional<Will> will = std::nullopt) {
    auto d = connect(identity, version, /*clean_session=*/true, std::move(will));
    if (!d) return nullptr;
    const std::string doc = R"({"state":{"reported":{"status":"on"}}})";
    auto ack = d->publish(shadow(identity, "update"), doc, 1);
    EXPECT_TRUE(ack) << identity;
    auto m = svc.wait_for_message(shadow(identity, "update"), kWait);
    EXPECT_TRUE(m) << identity << "'s update did not reach the service";
    return d;
  }

  // Publishes the kick command and expects the broker's PUBACK (MQTT 5 reason code).
  static void kick(MqttTestClient& sender, std::string_view payload,
                   int expected_reason = reason::kSuccess) {
    auto ack = sender.publish(kKick, payload, 1);
    ASSERT_TRUE(ack) << ack.error().message;
    EXPECT_EQ(*ack, expected_reason);
  }

  // `device` still has its original connection: a message published now reaches it
  // (MqttTestClient never reconnects by itself).
  static void expect_still_connected(MqttTestClient& dagd, MqttTestClient& device,
                                     const std::string& identity, const std::string& payload) {
    const std::string topic = "dags/" + identity + "/status/request";
    ASSERT_TRUE(device.subscribe(topic, 1)) << identity;
    ASSERT_TRUE(dagd.publish(topic, payload, 1));
    auto m = device.wait_for_message(topic, kWait);
    ASSERT_TRUE(m) << identity << " lost its connection";
    EXPECT_EQ(m->payload, payload);
    EXPECT_EQ(device.disconnect_count(), 0) << identity;
    EXPECT_TRUE(device.connected()) << identity;
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

// ---- The kick command ($CONTROL/dag-presence/v1/kick), as `dagctl device revoke` sends it ----

TEST_F(PresencePluginTest, ServiceKickDropsTheDeviceWithoutItsWill) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  ASSERT_TRUE(dagd->subscribe("dags/+/presence", 1));
  auto dagctl = connect("dagctl");
  auto b = device_reports("dev-b", *dagd);
  ASSERT_TRUE(dagctl && b);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-b")));

  for (const auto version : {MqttVersion::v5, MqttVersion::v311}) {
    const std::string id = version == MqttVersion::v5 ? "dev-a" : "dev-c";
    SCOPED_TRACE(id);
    // A device like dag-edge: with a last will on its presence topic.
    auto d = device_reports(id, *dagd, version, presence_will(id));
    ASSERT_TRUE(d);
    auto connected = next_event(*dagd, connected_topic(id));
    ASSERT_TRUE(connected);

    const std::size_t mark = broker_->line_count();
    kick(*dagctl, id);
    EXPECT_TRUE(d->wait_for_disconnect(kWait)) << id << " is still connected";
    EXPECT_FALSE(d->connected());
    RecordProperty(id + "_disconnect_rc", d->last_disconnect_rc());
    EXPECT_TRUE(broker_->wait_for_log(
        "dag_presence: event=kicked client_id=" + id + " sender=dagctl", kWait, mark));

    // Its lifecycle event tells a server-initiated disconnect, not the client's.
    auto gone = next_event(*dagd, disconnected_topic(id));
    ASSERT_TRUE(gone);
    RecordProperty(id + "_kicked_payload", gone->message.payload);
    EXPECT_EQ(gone->event.session_identifier, connected->event.session_identifier);
    EXPECT_GT(gone->event.version_number, connected->event.version_number);
    EXPECT_EQ(gone->event.client_initiated_disconnect, std::optional<bool>{false});
    EXPECT_EQ(gone->event.disconnect_reason,
              std::optional<std::string>{"SERVER_INITIATED_DISCONNECT"});

    // No will. It would have been queued for dagd during the kick, before dagctl's PUBACK;
    // dev-b's presence, published after that PUBACK, arrives after it.
    const std::string sentinel = "sentinel-after-" + id;
    ASSERT_TRUE(b->publish("dags/dev-b/presence", sentinel, 1));
    auto m = dagd->wait_for_message("dags/+/presence", kWait);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->topic, "dags/dev-b/presence");
    EXPECT_EQ(m->payload, sentinel);
    EXPECT_TRUE(dagd->messages_matching("dags/" + id + "/presence").empty())
        << "the kicked device's will was published";
  }
  // The sender and the bystander keep their connections.
  EXPECT_TRUE(dagctl->connected());
  expect_still_connected(*dagd, *b, "dev-b", "after-kicks");
}

// The whole of `dagctl device revoke` on the broker: CRL, SIGHUP, kick.
TEST_F(PresencePluginTest, RevokedDeviceIsDroppedAndCannotComeBack) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto a = device_reports("dev-a", *dagd, MqttVersion::v5, presence_will("dev-a"));
  ASSERT_TRUE(a);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-a")));

  ASSERT_TRUE(pki_.revoke({"dev-a"}));
  ASSERT_TRUE(broker_->sighup());
  // The reload keeps open connections (the reason for the command) ...
  expect_still_connected(*dagd, *a, "dev-a", "after-sighup");
  // ... and the plugin's command still works after it.
  auto dagctl = connect("dagctl");
  ASSERT_TRUE(dagctl);
  kick(*dagctl, "dev-a");
  EXPECT_TRUE(a->wait_for_disconnect(kWait));
  auto gone = next_event(*dagd, disconnected_topic("dev-a"));
  ASSERT_TRUE(gone);
  EXPECT_EQ(gone->event.disconnect_reason,
            std::optional<std::string>{"SERVER_INITIATED_DISCONNECT"});

  auto again = try_connect("dev-a");
  ASSERT_FALSE(again) << "a revoked certificate connected";
  EXPECT_EQ(again.error().code, Errc::unavailable) << again.error().message;
}

TEST_F(PresencePluginTest, DeviceCannotKickAnotherDevice) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto b = device_reports("dev-b", *dagd, MqttVersion::v5);
  ASSERT_TRUE(b);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-b")));
  for (const auto version : {MqttVersion::v5, MqttVersion::v311}) {
    SCOPED_TRACE(version == MqttVersion::v5 ? "MQTT 5" : "MQTT 3.1.1");
    auto a = connect("dev-a", version);
    ASSERT_TRUE(a);
    const std::size_t mark = broker_->line_count();
    // The acl_file denies it before the plugin sees it (MQTT 5: "not authorized").
    kick(*a, "dev-b", version == MqttVersion::v5 ? reason::kNotAuthorized : reason::kSuccess);
    EXPECT_TRUE(broker_->wait_for_log(
        std::regex{R"(Denied PUBLISH from dev-a \(.*'\$CONTROL/dag-presence/v1/kick')"}, kWait,
        mark));
    // Its own id too: a device cannot drop itself this way either (harmless, but denied).
    kick(*a, "dev-a", version == MqttVersion::v5 ? reason::kNotAuthorized : reason::kSuccess);
    // Published after A's PUBACKs: B still has its connection.
    expect_still_connected(*dagd, *b, "dev-b",
                           version == MqttVersion::v5 ? "still-b-5" : "still-b-311");
    EXPECT_TRUE(a->connected());
  }
  EXPECT_TRUE(dagd->messages_matching(disconnected_topic("dev-b")).empty());
}

// The plugin's own check, behind the acl_file: a service identity of the ACL that is not in
// ignore_usernames may publish the command, and the plugin refuses it.
TEST_F(PresencePluginTest, OnlyIgnoredUsernamesMayKick) {
  start({.service_identities = {"dagd", "ops"}, .plugin = presence_plugin("dagd")});
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto b = device_reports("dev-b", *dagd, MqttVersion::v5);
  ASSERT_TRUE(b);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-b")));
  auto ops = connect("ops");
  ASSERT_TRUE(ops);

  const std::size_t mark = broker_->line_count();
  kick(*ops, "dev-b");  // granted by the acl_file: PUBACK success, whatever the plugin does
  EXPECT_TRUE(broker_->wait_for_log(
      "dag_presence: event=command_ignored command=kick sender=ops reason=not_a_service "
      "payload_bytes=5",
      kWait, mark));
  expect_still_connected(*dagd, *b, "dev-b", "still-b");
  EXPECT_TRUE(ops->connected());
}

TEST_F(PresencePluginTest, MalformedKickIsIgnored) {
  auto dagd = service();
  ASSERT_TRUE(dagd);
  auto dagctl = connect("dagctl");
  auto a = device_reports("dev-a", *dagd, MqttVersion::v5);
  auto b = device_reports("dev-b", *dagd, MqttVersion::v311);
  ASSERT_TRUE(dagctl && a && b);
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-a")));
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-b")));

  // Not device ids. The empty payload matters most: mosquitto_kick_client_by_clientid(NULL)
  // would drop every client.
  const std::vector<std::string> malformed = {"",
                                              "dev-b\n",
                                              " dev-b",
                                              "dev-b ",
                                              "dev-b/x",
                                              "dev-+",
                                              "#",
                                              "$SYS",
                                              "dev b",
                                              std::string{"dev-b\0x", 7},
                                              "d\xc3\xa9v",
                                              std::string(129, 'a'),
                                              R"({"clientId":"dev-b"})"};
  for (const auto& payload : malformed) {
    SCOPED_TRACE(::testing::PrintToString(payload));
    const std::size_t mark = broker_->line_count();
    kick(*dagctl, payload);
    EXPECT_TRUE(
        broker_->wait_for_log("dag_presence: event=command_ignored command=kick "
                              "sender=dagctl reason=invalid_device_id payload_bytes=" +
                                  std::to_string(payload.size()),
                              kWait, mark));
  }
  // Service identities are never dropped this way, the sender itself included.
  for (const char* service_id : {"dagd", "dagctl"}) {
    const std::size_t mark = broker_->line_count();
    kick(*dagctl, service_id);
    EXPECT_TRUE(broker_->wait_for_log(
        std::string{"reason=target_is_service client_id="} + service_id, kWait, mark));
  }
  // A valid id that is not connected: nothing to do.
  const std::size_t mark = broker_->line_count();
  kick(*dagctl, "dev-zzz");
  EXPECT_TRUE(
      broker_->wait_for_log("event=kick_skipped client_id=dev-zzz sender=dagctl "
                            "reason=not_connected",
                            kWait, mark));

  // Everyone keeps their connection and the broker still works.
  EXPECT_TRUE(broker_->running());
  EXPECT_TRUE(dagctl->connected());
  expect_still_connected(*dagd, *a, "dev-a", "still-a");
  expect_still_connected(*dagd, *b, "dev-b", "still-b");
  EXPECT_EQ(dagd->disconnect_count(), 0);
  EXPECT_TRUE(dagd->messages_matching("$aws/events/presence/disconnected/+").empty());
  // And a well-formed command after all that still works.
  kick(*dagctl, "dev-a");
  EXPECT_TRUE(a->wait_for_disconnect(kWait));
}

// Mosquitto 2.0.11 would put a kicked OFFLINE persistent session on its session-expiry list a
// second time (a use-after-free when it expires), so the plugin drops live connections only.
TEST_F(PresencePluginTest, KickLeavesAnOfflineSessionAlone) {
  auto dagd = service();
  auto dagctl = connect("dagctl");
  ASSERT_TRUE(dagd && dagctl);
  auto p = connect("dev-p", MqttVersion::v311, /*clean_session=*/false);
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->subscribe("dags/dev-p/status/request", 1));
  ASSERT_TRUE(next_event(*dagd, connected_topic("dev-p")));
  ASSERT_TRUE(p->disconnect());
  ASSERT_TRUE(next_event(*dagd, disconnected_topic("dev-p")));

  const std::size_t mark = broker_->line_count();
  kick(*dagctl, "dev-p");
  EXPECT_TRUE(
      broker_->wait_for_log("event=kick_skipped client_id=dev-p sender=dagctl "
                            "reason=not_connected",
                            kWait, mark));
  // The session is intact: a request queued now is delivered when dev-p comes back.
  ASSERT_TRUE(dagd->publish("dags/dev-p/status/request", "queued", 1));
  auto back = connect("dev-p", MqttVersion::v311, /*clean_session=*/false);
  ASSERT_TRUE(back);
  auto m = back->wait_for_message("dags/dev-p/status/request", kWait);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->payload, "queued");
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
