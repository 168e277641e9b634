// MqttTestClient: an MQTT client over libmosquitto for integration tests.
//
// TLS with a CA and (optionally) a client certificate, MQTT 5 or 3.1.1. One network thread
// per client runs mosquitto_loop (not mosquitto_loop_start, whose loop retries a failed
// connect without any callback); every callback and every network error lands in this
// object under a mutex and wakes waiters through a condition variable, so tests wait for
// events with a bound and never sleep.
//
// By default the client does not reconnect: a disconnect is something a test observes
// (disconnect_count, wait_for_disconnect). With auto_reconnect it reconnects after 1 s
// (libmosquitto's usual smallest delay), for tests that restart the broker.
//
// Every received message is kept in order (messages()); wait_for_message additionally
// consumes them one by one, so a test can wait for a sentinel and then inspect everything
// that arrived before it.
//
// Thread-safety: all methods may be called from any thread. Blocking: connect, publish
// (QoS > 0), subscribe, unsubscribe and the wait_* calls block, each bounded by a timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "dag/common/result.hpp"

struct mosquitto;

namespace dag::test {

class MosquittoBroker;
struct ClientCert;

enum class MqttVersion { v311, v5 };

struct Will {
  std::string topic;
  std::string payload;
  int qos{1};
  bool retain{false};
};

struct MqttClientOptions {
  std::string host{"127.0.0.1"};
  std::uint16_t port{0};
  std::filesystem::path ca_file;
  std::filesystem::path cert_file;  ///< Empty: connect without a client certificate.
  std::filesystem::path key_file;
  /// Empty: a random id from libmosquitto. (Our broker replaces it with the CN anyway.)
  std::string client_id;
  MqttVersion version{MqttVersion::v5};
  bool clean_session{true};
  int keepalive_s{30};
  std::optional<Will> will;
  bool auto_reconnect{false};
  /// Bound for connect and for each publish/subscribe/unsubscribe acknowledgement.
  std::chrono::milliseconds timeout{std::chrono::seconds{5}};
};

/// Options to connect to `broker` as `cert`'s identity; client_id defaults to the identity.
MqttClientOptions client_options(const MosquittoBroker& broker, const ClientCert& cert,
                                 std::string client_id = {});

struct Message {
  std::string topic;
  std::string payload;
  int qos{0};
  bool retain{false};
};

/// MQTT reason codes the tests look at (MQTT 5 §2.4; 3.1.1 brokers send 0 or 0x80).
namespace reason {
inline constexpr int kSuccess = 0x00;
inline constexpr int kNoMatchingSubscribers = 0x10;
inline constexpr int kSubscribeFailure311 = 0x80;
inline constexpr int kNotAuthorized = 0x87;
}  // namespace reason

class MqttTestClient {
 public:
  /// Connects and waits for the CONNACK. Errors: Errc::unavailable when the broker refuses
  /// (TLS handshake rejected, CONNACK with an error code, connection closed: the message
  /// says which), Errc::timeout when nothing happens within options.timeout,
  /// Errc::invalid_argument for options libmosquitto rejects.
  static Result<std::unique_ptr<MqttTestClient>> connect(MqttClientOptions options);

  /// Disconnects cleanly (if connected) and stops the network thread.
  ~MqttTestClient();
  MqttTestClient(const MqttTestClient&) = delete;
  MqttTestClient& operator=(const MqttTestClient&) = delete;

  /// Publishes; at QoS 1/2 waits for the acknowledgement and returns its reason code
  /// (MQTT 5: 0, 0x10 no subscribers, 0x87 not authorized...; 3.1.1: always 0). QoS 0
  /// returns 0 once queued. Errors: unavailable (not connected, or lost while waiting),
  /// timeout.
  Result<int> publish(std::string_view topic, std::string_view payload, int qos = 1,
                      bool retain = false);

  /// Subscribes and returns the granted QoS or failure code from the SUBACK.
  Result<int> subscribe(std::string_view filter, int qos = 1);
  Result<void> unsubscribe(std::string_view filter);

  /// The first not yet consumed message whose topic matches `filter` (an MQTT filter or an
  /// exact topic), waiting up to `timeout`. Consumes it; messages() still lists it.
  std::optional<Message> wait_for_message(std::string_view filter,
                                          std::chrono::milliseconds timeout);
  /// Every message received, in arrival order.
  [[nodiscard]] std::vector<Message> messages() const;
  /// Received messages whose topic matches `filter`.
  [[nodiscard]] std::vector<Message> messages_matching(std::string_view filter) const;

  [[nodiscard]] bool connected() const;
  [[nodiscard]] int connect_count() const;
  [[nodiscard]] int disconnect_count() const;
  /// libmosquitto's code for the last disconnect (0 = we asked for it).
  [[nodiscard]] int last_disconnect_rc() const;
  /// True once at least one disconnect happened, false if none within `timeout`.
  bool wait_for_disconnect(std::chrono::milliseconds timeout);
  /// True once connected (again, with auto_reconnect) and connect_count() >= min_count.
  bool wait_for_connected(std::chrono::milliseconds timeout, int min_count = 1);

  /// Sends DISCONNECT and waits until the connection is closed. No reconnect follows.
  Result<void> disconnect();

  [[nodiscard]] const MqttClientOptions& options() const { return options_; }

 private:
  explicit MqttTestClient(MqttClientOptions options);
  friend struct MqttCallbacks;

  MqttClientOptions options_;
  void network_loop();

  mosquitto* mosq_{nullptr};
  std::thread loop_thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool connected_{false};
  bool stop_{false};
  bool disconnect_requested_{false};
  std::optional<int> refused_rc_;          // CONNACK reason code != 0
  std::optional<std::string> loop_error_;  // last network error seen by network_loop
  int connect_count_{0};
  int disconnect_count_{0};
  int last_disconnect_rc_{0};
  std::map<int, int> puback_;               // mid -> reason code
  std::map<int, std::vector<int>> suback_;  // mid -> granted QoS / failure codes
  std::map<int, bool> unsuback_;
  std::vector<Message> history_;
  std::vector<std::size_t> pending_;     // indexes into history_ not yet consumed
  std::vector<std::string> log_errors_;  // libmosquitto's last error/warning log lines
};

}  // namespace dag::test
