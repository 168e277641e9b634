// What the benchmarks that drive a real broker and dagd share: a raw libmosquitto
// connection that publishes at QoS 1 with a window of unacknowledged messages, /proc
// readings (CPU, memory), and percentiles. Header-only; benchmarks only.
//
// Errors: die() throws std::runtime_error (each main catches it and exits non-zero).
// Thread-safety: an MqttConnection may be used from several threads (its state is locked);
// libmosquitto runs its own network thread.
#pragma once

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::bench {

using namespace std::chrono_literals;

[[noreturn]] inline void die(const std::string& what) {
  throw std::runtime_error(what);
}

/// `--name value` command-line flags: each name's setter takes the value.
using Flags = std::map<std::string, std::function<void(const std::string&)>>;

/// A setter for an int flag (std::stoi: bad numbers throw, which main reports).
inline std::function<void(const std::string&)> int_flag(int& into) {
  return [&into](const std::string& v) { into = std::stoi(v); };
}
inline std::function<void(const std::string&)> int_flag(std::optional<int>& into) {
  return [&into](const std::string& v) { into = std::stoi(v); };
}

/// Applies argv's `--name value` pairs. Errors: die() on an unknown name or a missing value.
inline void parse_flags(int argc, char** argv, const Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
    const auto flag = flags.find(k);
    if (flag == flags.end()) die("unknown option " + k + " (see the comment at the top)");
    if (i + 1 >= argc) die("missing value for " + k);
    flag->second(argv[++i]);  // NOLINT(cppcoreguidelines-pro-bounds-pointer-arithmetic)
  }
}

/// The value at fraction p (0..1) of v, nearest rank below; 0 for an empty v.
inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

/// The numeric "Key: value" fields of a /proc file such as status or smaps_rollup.
inline std::map<std::string, long> proc_status_file(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, long> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    try {
      out[line.substr(0, colon)] = std::stol(line.substr(colon + 1));
    } catch (...) {  // NOLINT(bugprone-empty-catch): non-numeric fields are not needed
    }
  }
  return out;
}

/// The numeric fields of /proc/<pid>/status (VmRSS, VmHWM, Threads, ...; kB for sizes).
inline std::map<std::string, long> proc_status(pid_t pid) {
  return proc_status_file("/proc/" + std::to_string(pid) + "/status");
}

/// utime + stime of a /proc/.../stat file, in seconds.
inline double stat_cpu_seconds(const std::string& stat_path) {
  std::ifstream in(stat_path);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  if (close == std::string::npos || close + 2 > all.size()) return 0;  // gone, or cut short
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  long ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stol(field);
  }
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// utime + stime of a process, in seconds (0 for pid <= 0).
inline double cpu_seconds(pid_t pid) {
  if (pid <= 0) return 0;
  return stat_cpu_seconds("/proc/" + std::to_string(pid) + "/stat");
}

/// utime + stime of a process and of its live child processes (a server that forks
/// workers), in seconds. A child that already ended is not counted.
inline double cpu_seconds_with_children(pid_t pid) {
  if (pid <= 0) return 0;
  double total = cpu_seconds(pid);
  const std::string p = std::to_string(pid);
  std::ifstream children("/proc/" + p + "/task/" + p + "/children");
  for (pid_t child = 0; children >> child;) total += cpu_seconds(child);
  return total;
}

/// CPU time spent by the whole machine (every CPU, not idle or waiting for I/O).
inline double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  std::array<long, 7> t{};  // user nice system idle iowait irq softirq
  in >> cpu;
  for (auto& v : t) in >> v;
  const long busy = t[0] + t[1] + t[2] + t[5] + t[6];
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// A raw libmosquitto connection (MQTT 5, TLS with a client certificate, its own network
/// thread) that publishes at QoS 1 with a window of unacknowledged messages.
class MqttConnection {
 public:
  using OnMessage = std::function<void(std::string_view topic, std::string_view payload)>;

  MqttConnection(const dag::test::MosquittoBroker& broker, const dag::test::ClientCert& cert,
                 int window, std::optional<int> receive_max, OnMessage on_message = {})
      : window_(window), on_message_(std::move(on_message)) {
    m_ = mosquitto_new(cert.identity.c_str(), true, this);
    if (m_ == nullptr) die("mosquitto_new failed");
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    if (receive_max) mosquitto_int_option(m_, MOSQ_OPT_RECEIVE_MAXIMUM, *receive_max);
    // Our own window below; libmosquitto's queue stays empty.
    mosquitto_max_inflight_messages_set(m_, static_cast<unsigned>(window));  // 0: no limit
    if (mosquitto_tls_set(m_, broker.ca_file().c_str(), nullptr, cert.cert.c_str(),
                          cert.key.c_str(), nullptr) != MOSQ_ERR_SUCCESS) {
      die("mosquitto_tls_set failed");
    }
    mosquitto_connect_callback_set(m_, [](mosquitto*, void* self, int rc) {
      auto* c = static_cast<MqttConnection*>(self);
      std::lock_guard l(c->mu_);
      c->connack_ = rc;
      c->cv_.notify_all();
    });
    mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) {
      auto* c = static_cast<MqttConnection*>(self);
      std::lock_guard l(c->mu_);
      c->subscribed_ = true;
      c->cv_.notify_all();
    });
    mosquitto_publish_callback_set(m_, [](mosquitto*, void* self, int) {
      auto* c = static_cast<MqttConnection*>(self);
      std::lock_guard l(c->mu_);
      --c->inflight_;
      c->cv_.notify_all();
    });
    mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
      auto* c = static_cast<MqttConnection*>(self);
      if (c->on_message_) {
        c->on_message_(msg->topic, std::string_view(static_cast<const char*>(msg->payload),
                                                    static_cast<std::size_t>(msg->payloadlen)));
      }
    });
    if (int rc =
            mosquitto_connect(m_, dag::test::MosquittoBroker::host().c_str(), broker.port(), 60);
        rc != MOSQ_ERR_SUCCESS) {
      die(std::string("mosquitto_connect: ") + mosquitto_strerror(rc));
    }
    mosquitto_loop_start(m_);
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, 10s, [&] { return connack_.has_value(); }) || *connack_ != 0) {
      die("no CONNACK for " + cert.identity);
    }
  }
  ~MqttConnection() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, false);
    mosquitto_destroy(m_);
  }
  MqttConnection(const MqttConnection&) = delete;
  MqttConnection& operator=(const MqttConnection&) = delete;

  void subscribe(const std::string& filter) {
    {
      std::lock_guard l(mu_);
      subscribed_ = false;
    }
    if (mosquitto_subscribe(m_, nullptr, filter.c_str(), 1) != MOSQ_ERR_SUCCESS) {
      die("mosquitto_subscribe failed");
    }
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, 10s, [&] { return subscribed_; })) die("no SUBACK for " + filter);
  }

  /// Publishes at QoS 1 once fewer than `window` messages await their PUBACK (window 0:
  /// at once).
  void publish(const std::string& topic, const std::string& payload) {
    {
      std::unique_lock l(mu_);
      cv_.wait(l, [&] { return window_ <= 0 || inflight_ < window_; });
      ++inflight_;
    }
    if (int rc = mosquitto_publish(m_, nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                   payload.data(), 1, false);
        rc != MOSQ_ERR_SUCCESS) {
      die(std::string("mosquitto_publish: ") + mosquitto_strerror(rc));
    }
  }

  /// Waits until every publish was acknowledged.
  bool drain(std::chrono::seconds timeout) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, timeout, [&] { return inflight_ == 0; });
  }

 private:
  mosquitto* m_{nullptr};
  int window_;
  OnMessage on_message_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int> connack_;
  bool subscribed_{false};
  int inflight_{0};
};

}  // namespace dag::bench
