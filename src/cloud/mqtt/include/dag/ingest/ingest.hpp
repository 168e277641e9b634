// dagd's MQTT ingest: from the broker's callbacks to the shadow service and back.
//
// The network thread (dag::mqtt::Client) hands every message to on_message(), which
// stamps the receipt time and queues it. One worker thread (run()) takes up to max_batch
// queued messages at a time, lets dag::shadow::Service process them in one transaction,
// and publishes the replies after the commit. Between batches it fires the durable timers
// that came due. So the store sees a single writer, and a burst costs few commits.
//
// Backpressure: when max_queue messages are waiting, on_message() blocks the network
// thread; the broker then queues for dagd's persistent session (QoS 1) instead of dagd
// buffering without bound.
//
// Delivery: libmosquitto acknowledges a QoS 1 message (PUBACK) before handing it over, so
// messages queued here are lost if dagd is killed. Nothing is lost for good: a dag keeps a
// report in its outbox until it sees /accepted (docs/protocol.md), and a reply is only
// published after the commit. A graceful stop (stop(), then drain()) processes everything
// it has acknowledged.
//
// Thread-safety: on_* are called by the network thread, run() by one worker thread,
// stop() and the accessors from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/result.hpp"
#include "dag/mqtt/client.hpp"
#include "dag/shadow/service.hpp"

namespace dag::ingest {

/// Where replies go (dag::mqtt::Client in dagd; a recorder in tests).
class Publisher {
 public:
  virtual ~Publisher() = default;
  /// Queues a publish. Errors: the client's (Errc::unavailable when not connected).
  virtual Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                              bool retain) = 0;
};

/// Publisher over a dag::mqtt::Client.
class ClientPublisher final : public Publisher {
 public:
  explicit ClientPublisher(mqtt::Client& client) : client_(client) {}
  Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                      bool retain) override {
    return client_.publish(topic, payload, qos, retain);
  }

 private:
  mqtt::Client& client_;
};

struct IngestOptions {
  /// Non-empty: subscribe as `$share/<group>/<filter>` so that replicas split the load
  /// (MQTT 5 shared subscriptions). Mosquitto 2.0 never delivers a shared subscription
  /// whose filter starts with `$` (docs/architecture.md), so leave it empty there.
  std::string share_group;
  std::size_t max_batch{500};
  std::size_t max_queue{20'000};
  /// Also look for due timers this often (others may have scheduled some).
  std::chrono::milliseconds timer_poll{5000};
  int qos{1};
  /// Called on the worker thread after a commit that queued notification intents, with
  /// how many (dagd wakes its outbox worker with it, so an alert does not wait for the
  /// worker's poll, and the worker sees a storm begin).
  std::function<void(std::size_t)> on_intents;
};

/// The filters dagd subscribes to (protocol::kCloudSubscriptions), shared or not.
std::vector<std::string> subscriptions(std::string_view share_group);

class Ingest final : public mqtt::Handler {
 public:
  /// Every reference must outlive the Ingest.
  Ingest(shadow::Service& service, const Clock& clock, IngestOptions options,
         shadow::Metrics& metrics, Publisher& publisher);

  // mqtt::Handler, on the network thread.
  void on_connected(bool session_present) override;
  void on_disconnected(const std::string& reason) override;
  /// Logs `mqtt.subscribed`: from here on dagd misses nothing (tests wait for it).
  void on_subscribed() override;
  /// Queues the message; blocks while the queue is full (until run() takes some, or it
  /// has returned).
  void on_message(mqtt::Message message) override;

  /// The worker loop. Blocks until stop() was called and the queue is empty.
  void run();
  /// Asks run() to return once it has processed what is queued. Does not block.
  void stop();
  /// After run() returned and the client stopped: processes what arrived meanwhile (its
  /// replies cannot be sent any more; the dags will ask again). Blocks for the store.
  void drain();

  /// Connected and every subscription acknowledged: the health check's "broker ok".
  [[nodiscard]] bool broker_connected() const noexcept { return subscribed_.load(); }
  [[nodiscard]] std::size_t queued() const;
  /// Messages received and not yet committed: queued() plus the batch being processed
  /// (the notification worker's storm hold asks this).
  [[nodiscard]] std::size_t backlog() const;
  /// Replies that could not be published (not connected).
  [[nodiscard]] std::uint64_t publish_failures() const noexcept { return publish_failed_.load(); }

 private:
  void publish(const std::vector<shadow::Outbound>& out);
  std::int64_t run_timers();

  shadow::Service& service_;
  const Clock& clock_;
  IngestOptions options_;
  shadow::Metrics& metrics_;
  Publisher& publisher_;

  mutable std::mutex mutex_;
  std::condition_variable has_work_;
  std::condition_variable has_room_;
  std::deque<shadow::Inbound> queue_;
  bool stopping_{false};
  bool closed_{false};  // run() returned: on_message never blocks again
  std::atomic<bool> subscribed_{false};
  std::atomic<std::size_t> processing_{0};  // the batch run() is processing
  std::atomic<std::uint64_t> publish_failed_{0};
};

}  // namespace dag::ingest
