// dag::mqtt::Client against a real Mosquitto with TLS client certificates.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <string>

#include "dag/mqtt/client.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kWait = 10s;

// Counts what the client hands over; tests wait on it with a bound.
class Recorder final : public mqtt::Handler {
 public:
  void on_connected(bool /*session_present*/) override {}
  void on_disconnected(const std::string& reason) override {
    std::lock_guard lock(mu_);
    last_disconnect_ = reason;
    ++disconnects_;
    cv_.notify_all();
  }
  void on_subscribed() override {
    std::lock_guard lock(mu_);
    subscribed_ = true;
    cv_.notify_all();
  }
  void on_message(mqtt::Message message) override {
    std::lock_guard lock(mu_);
    last_payload_ = std::move(message.payload);
    ++messages_;
    cv_.notify_all();
  }
  void on_publish_result(int /*mid*/, int reason_code) override {
    std::lock_guard lock(mu_);
    ++(reason_code < 0x80 ? acked_ : refused_);  // 0x10: accepted, nobody subscribed
    cv_.notify_all();
  }

  bool wait_subscribed() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return subscribed_; });
  }
  bool wait_messages(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return messages_ >= n; });
  }
  bool wait_disconnect() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return disconnects_ > 0; });
  }
  int messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  bool wait_acked(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return acked_ + refused_ >= n; });
  }
  int acked() {
    std::lock_guard lock(mu_);
    return acked_;
  }
  int refused() {
    std::lock_guard lock(mu_);
    return refused_;
  }
  int disconnects() {
    std::lock_guard lock(mu_);
    return disconnects_;
  }
  std::string last_payload() {
    std::lock_guard lock(mu_);
    return last_payload_;
  }
  std::string last_disconnect() {
    std::lock_guard lock(mu_);
    return last_disconnect_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool subscribed_{false};
  int messages_{0};
  int acked_{0};
  int refused_{0};
  int disconnects_{0};
  std::string last_payload_;
  std::string last_disconnect_;
};

class ClientIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = MosquittoBroker::start(pki_, BrokerOptions{.service_identities = {"svc", "pub"}});
    ASSERT_TRUE(b) << b.error().message;
    broker_ = std::move(*b);
  }

  mqtt::Options options(const std::string& identity) {
    const auto& cert = pki_.client(identity);
    mqtt::Options o;
    o.client_id = identity;
    o.host = MosquittoBroker::host();
    o.port = broker_->port();
    o.ca_file = pki_.ca_file().string();
    o.cert_file = cert.cert.string();
    o.key_file = cert.key.string();
    o.clean_session = true;
    o.keepalive_s = 60;  // a stalled read would wait for the keep-alive
    return o;
  }

  TestPki pki_;
  std::unique_ptr<MosquittoBroker> broker_;
};

// TLS read-ahead pulls many records from the socket at once; the client must read what it
// buffered instead of waiting in select() for bytes that already arrived.
TEST_F(ClientIntegration, ABurstArrivesWholeWithoutWaitingForMoreTraffic) {
  Recorder rec;
  auto client = mqtt::Client::create(options("svc"), rec);
  ASSERT_TRUE(client) << client.error().message;
  (*client)->subscribe("burst/#", 1);
  (*client)->start();
  ASSERT_TRUE(rec.wait_subscribed());

  auto pub = MqttTestClient::connect(client_options(*broker_, pki_.client("pub")));
  ASSERT_TRUE(pub) << pub.error().message;
  constexpr int kBurst = 3000;
  const std::string filler(120, 'x');
  for (int i = 1; i <= kBurst; ++i) {
    // QoS 0: queued without waiting, so the broker forwards them back to back.
    ASSERT_TRUE((*pub)->publish("burst/" + std::to_string(i % 7), std::to_string(i) + filler, 0));
  }
  // Far less than the 60 s keep-alive, after which a stalled read would resume.
  EXPECT_TRUE(rec.wait_messages(kBurst, 5s)) << rec.messages() << " of " << kBurst;
  EXPECT_EQ(rec.last_payload(), std::to_string(kBurst) + filler);
  (*client)->stop();
}

// The client collects a loop turn's TLS records in a buffer and sends them in one write.
// 16 MB queued at once fills the socket many times over: every partial flush must resume
// where it stopped (or the broker sees a corrupt stream and drops us), and bytes left in
// the buffer by a full socket must go out without waiting for traffic from the broker
// (QoS 0: no PUBACKs come back to wake the client). The publishes come from this thread:
// each must wake the network thread, which otherwise sleeps a quarter of the keep-alive.
TEST_F(ClientIntegration, AFloodOfPublishesLeavesWholeThroughTheWriteBuffer) {
  Recorder rec;
  auto client = mqtt::Client::create(options("svc"), rec);
  ASSERT_TRUE(client) << client.error().message;
  (*client)->subscribe("flood/last", 1);
  (*client)->start();
  ASSERT_TRUE(rec.wait_subscribed());

  // A frozen broker reads nothing: the socket fills and the rest waits in the client.
  ASSERT_TRUE(broker_->signal(SIGSTOP));
  constexpr int kFlood = 4000;
  std::string payload(4096, 'x');
  for (int i = 0; i < kFlood; ++i) {
    const auto tag = std::to_string(i);
    payload.replace(0, tag.size(), tag);
    ASSERT_TRUE((*client)->publish("flood/" + std::to_string(i % 5), payload, 0, false));
  }
  ASSERT_TRUE((*client)->publish("flood/last", "done", 1, false));
  ASSERT_TRUE(broker_->signal(SIGCONT));
  // Far less than the 60 s keep-alive, which would wake a stalled client.
  EXPECT_TRUE(rec.wait_messages(1, kWait));
  EXPECT_EQ(rec.last_payload(), "done");
  EXPECT_TRUE(rec.wait_acked(1, kWait));
  EXPECT_EQ(rec.refused(), 0);
  EXPECT_EQ(rec.disconnects(), 0) << rec.last_disconnect();
  (*client)->stop();
}

TEST_F(ClientIntegration, RefusesABrokerItsCaDidNotSign) {
  pki::CaOptions other;
  other.common_name = "another CA";
  auto ca = pki::create_ca(other);
  ASSERT_TRUE(ca) << ca.error().message;
  const auto ca_file = pki_.dir() / "another-ca.pem";
  ASSERT_TRUE(pki::write_pem_file(ca_file, ca->cert_pem, pki::kSharedReadable));

  Recorder rec;
  auto o = options("svc");
  o.ca_file = ca_file.string();
  auto client = mqtt::Client::create(o, rec);
  ASSERT_TRUE(client) << client.error().message;
  (*client)->subscribe("burst/#", 1);
  (*client)->start();
  ASSERT_TRUE(rec.wait_disconnect());
  EXPECT_NE(rec.last_disconnect().find("connect failed"), std::string::npos)
      << rec.last_disconnect();
  (*client)->stop();
}

// A broker that accepts the connection and never answers the ClientHello: stop() must not
// wait for the handshake beyond its bound (the loop's longer keep-alive waits included).
TEST_F(ClientIntegration, StopDuringAHandshakeThatNeverEndsReturnsWithinItsBound) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);

  Recorder rec;
  auto o = options("svc");
  o.host = "127.0.0.1";
  o.port = ntohs(addr.sin_port);
  o.keepalive_s = 60;  // the loop would wait 15 s per turn
  auto client = mqtt::Client::create(o, rec);
  ASSERT_TRUE(client) << client.error().message;
  (*client)->start();
  pollfd pfd{.fd = listener, .events = POLLIN, .revents = 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1);  // the client connected: its handshake is under way
  const int peer = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(peer, 0);
  const auto t0 = std::chrono::steady_clock::now();
  (*client)->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);  // 2 s for the goodbye, then gone
  ::close(peer);
  ::close(listener);
}

TEST_F(ClientIntegration, UnusableTlsFilesAreAConfigurationError) {
  Recorder rec;
  auto missing = options("svc");
  missing.ca_file = (pki_.dir() / "no-such-ca.pem").string();
  auto a = mqtt::Client::create(missing, rec);
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, Errc::config);
  EXPECT_NE(a.error().message.find("no-such-ca.pem"), std::string::npos) << a.error().message;

  auto mismatched = options("svc");
  mismatched.key_file = pki_.client("pub").key.string();  // another identity's key
  auto b = mqtt::Client::create(mismatched, rec);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, Errc::config);
}

}  // namespace
}  // namespace dag::test
