// The broker fixture and the MQTT test client against a real mosquitto.
#include "dag/test/mqtt_test_client.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/ports.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using namespace std::chrono_literals;

class BrokerFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto broker = MosquittoBroker::start(pki_);
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
  }

  std::unique_ptr<MqttTestClient> connect(const std::string& identity,
                                          MqttVersion version = MqttVersion::v5,
                                          bool auto_reconnect = false) {
    auto options = client_options(*broker_, pki_.client(identity));
    options.version = version;
    options.auto_reconnect = auto_reconnect;
    auto c = MqttTestClient::connect(options);
    EXPECT_TRUE(c) << identity << ": " << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  TestPki pki_;
  std::unique_ptr<MosquittoBroker> broker_;
};

TEST_F(BrokerFixtureTest, MessagesArriveInOrderAndWaitConsumesThem) {
  for (const auto version : {MqttVersion::v5, MqttVersion::v311}) {
    auto dagd = connect("dagd", version);
    auto a = connect("dev-a", version);
    ASSERT_TRUE(dagd && a);
    auto granted = dagd->subscribe("dags/+/presence", 1);
    ASSERT_TRUE(granted);
    EXPECT_EQ(*granted, 1);
    ASSERT_TRUE(a->publish("dags/dev-a/presence", "one", 0));
    ASSERT_TRUE(a->publish("dags/dev-a/presence", "two", 1));
    ASSERT_TRUE(a->publish("dags/dev-a/presence", "three", 1, true));
    // Clear the retained message, or the next round's SUBSCRIBE would deliver it first.
    ASSERT_TRUE(a->publish("dags/dev-a/presence", "", 1, true));
    for (const char* expected : {"one", "two", "three"}) {
      auto m = dagd->wait_for_message("dags/+/presence", 5s);
      ASSERT_TRUE(m);
      EXPECT_EQ(m->payload, expected);
    }
    auto cleared = dagd->wait_for_message("dags/+/presence", 5s);
    ASSERT_TRUE(cleared);
    EXPECT_TRUE(cleared->payload.empty());
    EXPECT_FALSE(dagd->wait_for_message("dags/+/presence", 0ms));  // all consumed
    EXPECT_EQ(dagd->messages().size(), 4U);                        // history stays
    EXPECT_EQ(dagd->messages_matching("dags/dev-a/presence").size(), 4U);
    EXPECT_TRUE(dagd->messages_matching("dags/dev-b/#").empty());
    ASSERT_TRUE(dagd->unsubscribe("dags/+/presence"));
    ASSERT_TRUE(a->disconnect());
    EXPECT_EQ(a->disconnect_count(), 1);
    EXPECT_EQ(a->last_disconnect_rc(), 0);
  }
}

TEST_F(BrokerFixtureTest, RestartKeepsThePortAndClientsNoticeAndReconnect) {
  auto steady = connect("dev-a", MqttVersion::v5, /*auto_reconnect=*/true);
  auto once = connect("dev-b");
  ASSERT_TRUE(steady && once);
  const auto port = broker_->port();
  ASSERT_TRUE(broker_->restart());
  EXPECT_EQ(broker_->port(), port);
  EXPECT_TRUE(once->wait_for_disconnect(5s));
  EXPECT_TRUE(steady->wait_for_disconnect(5s));
  EXPECT_TRUE(steady->wait_for_connected(5s, 2)) << "no reconnect after the restart";
  EXPECT_FALSE(once->connected());
  auto lost = once->publish("dags/dev-b/presence", "x", 1);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().code, Errc::unavailable);
  EXPECT_NE(broker_->log().find("mosquitto version"), std::string::npos);
}

TEST_F(BrokerFixtureTest, SighupWaitsForTheReload) {
  const auto before = broker_->line_count();
  ASSERT_TRUE(broker_->sighup());
  EXPECT_GT(broker_->line_count(), before);
  EXPECT_TRUE(broker_->running());
  EXPECT_TRUE(connect("dev-a"));
}

TEST_F(BrokerFixtureTest, StopEndsTheBroker) {
  ASSERT_TRUE(broker_->stop());
  EXPECT_FALSE(broker_->running());
  auto options = client_options(*broker_, pki_.client("dev-a"));
  auto c = MqttTestClient::connect(options);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::unavailable) << c.error().message;
}

TEST(MosquittoBrokerTest, StartFailureReportsTheLogWithoutWaitingForTheTimeout) {
  TestPki pki;
  BrokerOptions options;
  options.plugin = broker::Plugin{"/nonexistent/dag-plugin.so", {}};
  const auto start = std::chrono::steady_clock::now();
  auto broker = MosquittoBroker::start(pki, options);
  ASSERT_FALSE(broker);
  EXPECT_EQ(broker.error().code, Errc::unavailable);
  EXPECT_NE(broker.error().message.find("plugin"), std::string::npos) << broker.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST(MqttTestClientTest, NothingListeningFailsFast) {
  TestPki pki;
  auto port = free_loopback_port();
  ASSERT_TRUE(port);
  MqttClientOptions options;
  options.port = *port;
  options.ca_file = pki.ca_file();
  options.cert_file = pki.client("dev-a").cert;
  options.key_file = pki.client("dev-a").key;
  const auto start = std::chrono::steady_clock::now();
  auto c = MqttTestClient::connect(options);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, Errc::unavailable) << c.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

}  // namespace
}  // namespace dag::test
