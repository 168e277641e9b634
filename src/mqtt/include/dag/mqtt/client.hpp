// MQTT client over libmosquitto, shared by dag-edge and dagd.
//
// One network thread per client owns the connection: it connects (TLS with a client
// certificate), re-subscribes every registered filter after each connect, runs the MQTT
// loop, and after a loss waits an exponential backoff with jitter before trying again, for
// ever, until stop(). Everything else (publish, subscribe) may be called from any thread.
//
// Handler callbacks run on the network thread; keep them short (queue work elsewhere).
// A callback must not call stop().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dag/common/event_fd.hpp"
#include "dag/common/result.hpp"

struct mosquitto;
struct mosquitto_message;

namespace dag::mqtt {

struct Will {
  std::string topic;
  std::string payload;
  int qos{1};
  bool retain{true};
};

struct Options {
  std::string client_id;
  std::string host{"localhost"};
  int port{8883};
  int keepalive_s{60};
  /// TLS files. An empty ca_file means plain TCP (development brokers only).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::optional<std::string> username;
  std::optional<Will> will;
  /// false = persistent session (queued QoS 1 messages survive a disconnect).
  bool clean_session{false};
  /// 5 = MQTT 5, 4 = MQTT 3.1.1.
  int protocol_version{5};
  /// MQTT 5 session expiry for persistent sessions.
  std::uint32_t session_expiry_s{7 * 24 * 3600};
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{5 * 60 * 1000};
  /// QoS 1/2 messages in flight at once towards the broker.
  int max_inflight{20};
};

struct Message {
  std::string topic;
  std::string payload;
  int qos{0};
  bool retain{false};
};

/// Callbacks from the network thread.
class Handler {
 public:
  virtual ~Handler() = default;
  /// After CONNACK and after every registered filter was re-subscribed.
  virtual void on_connected(bool session_present) = 0;
  /// The connection ended (or a connect attempt failed); a retry follows unless stopping.
  virtual void on_disconnected(const std::string& reason) = 0;
  virtual void on_message(Message message) = 0;
  /// The broker acknowledged every subscription made at the last connect (SUBACK); from
  /// now on nothing published to those filters is missed. A refused filter is logged.
  virtual void on_subscribed() {}
  /// The broker acknowledged message `mid` (PUBACK for QoS 1).
  virtual void on_published(int /*mid*/) {}
  /// The same, with the MQTT 5 reason code (0 success, 0x10 no subscribers, >= 0x80 a
  /// refusal such as 0x87 not authorized; always 0 under 3.1.1). Calls on_published.
  virtual void on_publish_result(int mid, int /*reason_code*/) { on_published(mid); }
};

/// Backoff before reconnect attempt `attempt` (0-based): a uniformly random delay in
/// [base/2, base] with base = min(max, initial * 2^attempt) ("equal jitter"), so that a
/// fleet that lost its broker at the same moment does not return at the same moment.
std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max, std::mt19937_64& rng);

class Client {
 public:
  /// Validates options and creates the libmosquitto handle; does not connect.
  /// Errors: Errc::invalid_argument (options), Errc::config (TLS files unusable).
  static Result<std::unique_ptr<Client>> create(Options options, Handler& handler);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Starts the network thread. Returns at once.
  void start();
  /// Disconnects (cleanly: the broker does not send the will) and joins the thread.
  /// Blocks until the thread is gone (at most ~1 s beyond a connect in progress).
  void stop();

  /// Registers `filter` for every future connection and subscribes now if connected.
  void subscribe(const std::string& filter, int qos);

  /// Queues a publish. Returns the message id. Errors: Errc::unavailable when not
  /// connected (the caller keeps the data; dag-edge's outbox does), Errc::invalid_argument.
  Result<int> publish(const std::string& topic, std::string_view payload, int qos, bool retain);

  [[nodiscard]] bool connected() const { return connected_.load(); }
  [[nodiscard]] const Options& options() const { return options_; }

 private:
  Client(Options options, Handler& handler);
  void run();
  /// Network thread: reads the packets that TLS read-ahead left buffered. Returns
  /// libmosquitto's code (MOSQ_ERR_SUCCESS unless the connection failed).
  int drain_buffered();
  /// Network thread: puts a write buffer in front of the TLS socket (see client.cpp).
  void buffer_tls_writes();
  /// Network thread: sends what the write buffer holds. False when the socket is full.
  bool flush_tls_writes();
  /// Network thread: one turn of the loop; blocks up to wait_ms. libmosquitto's code.
  int loop_once(int wait_ms);
  /// Any thread, after queueing a packet: wakes the network thread to write it, with one
  /// write(2) for all the packets queued until it woke.
  void wake();
  void wait_backoff(unsigned attempt);
  friend struct ClientCallbacks;  // libmosquitto's C callbacks, in client.cpp

  static constexpr long kTlsWriteBuffer = 64L * 1024;

  Options options_;
  Handler& handler_;
  mosquitto* mosq_{nullptr};
  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> disconnect_queued_{false};
  std::atomic<bool> connack_seen_{false};  // in the current connection attempt
  std::mutex mutex_;                       // guards filters_ and the backoff wait
  std::condition_variable cv_;
  std::vector<std::pair<std::string, int>> filters_;
  std::vector<int> pending_subacks_;  // network thread only
  EventFd wake_;
  std::atomic<bool> wake_pending_{false};  // wake_ signalled and not yet seen
  std::mt19937_64 rng_;
};

}  // namespace dag::mqtt
