#include "dag/test/mqtt_test_client.hpp"

#include <fmt/format.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <mutex>
#include <utility>

#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/test_pki.hpp"

#include "sys_text.hpp"

namespace dag::test {
namespace {

// libmosquitto's one piece of process-wide state; never cleaned up, since clients may live
// until exit.
void lib_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

bool topic_matches(std::string_view filter, const std::string& topic) {
  bool result = false;
  const std::string f{filter};
  if (mosquitto_topic_matches_sub(f.c_str(), topic.c_str(), &result) != MOSQ_ERR_SUCCESS) {
    return false;
  }
  return result;
}

// libmosquitto 2.0.11 swallows a refused asynchronous TLS connect: mosquitto_loop keeps
// returning success on a socket that is already closed (until the keepalive runs out). A
// TCP socket whose connect failed reports POLLHUP; one still connecting does not.
bool connect_attempt_failed(int sock) {
  if (sock < 0) return false;
  pollfd fd{sock, POLLOUT, 0};
  return ::poll(&fd, 1, 0) == 1 && (fd.revents & (POLLHUP | POLLERR)) != 0;
}

Unexpected<Error> mosq_fail(Errc code, std::string_view what, int rc) {
  return fail(code, fmt::format("{}: {}", what, mosquitto_strerror(rc)));
}

}  // namespace

// Static trampolines from libmosquitto's network thread into the client object.
struct MqttCallbacks {
  static MqttTestClient& self(void* obj) { return *static_cast<MqttTestClient*>(obj); }

  static void on_connect(mosquitto* /*m*/, void* obj, int rc, int /*flags*/,
                         const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    {
      std::lock_guard lock{c.mu_};
      if (rc == 0) {
        c.connected_ = true;
        ++c.connect_count_;
      } else {
        c.refused_rc_ = rc;
      }
    }
    c.cv_.notify_all();
  }

  static void on_disconnect(mosquitto* /*m*/, void* obj, int rc,
                            const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    {
      std::lock_guard lock{c.mu_};
      c.connected_ = false;
      ++c.disconnect_count_;
      c.last_disconnect_rc_ = rc;
    }
    c.cv_.notify_all();
  }

  static void on_publish(mosquitto* /*m*/, void* obj, int mid, int reason_code,
                         const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    {
      std::lock_guard lock{c.mu_};
      c.puback_[mid] = reason_code;
    }
    c.cv_.notify_all();
  }

  static void on_message(mosquitto* /*m*/, void* obj, const mosquitto_message* msg,
                         const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    Message m;
    m.topic = msg->topic;
    if (msg->payload != nullptr && msg->payloadlen > 0) {
      m.payload.assign(static_cast<const char*>(msg->payload),
                       static_cast<std::size_t>(msg->payloadlen));
    }
    m.qos = msg->qos;
    m.retain = msg->retain;
    {
      std::lock_guard lock{c.mu_};
      c.history_.push_back(std::move(m));
      c.pending_.push_back(c.history_.size() - 1);
    }
    c.cv_.notify_all();
  }

  static void on_subscribe(mosquitto* /*m*/, void* obj, int mid, int count, const int* granted,
                           const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    {
      std::lock_guard lock{c.mu_};
      c.suback_[mid] = std::vector<int>(granted, granted + count);
    }
    c.cv_.notify_all();
  }

  // libmosquitto explains TLS failures only through its log ("OpenSSL Error[0]: ... unknown
  // ca"); keep the last few errors for connect()'s message.
  static void on_log(mosquitto* /*m*/, void* obj, int level, const char* text) {
    if ((level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING)) == 0 || text == nullptr) return;
    auto& c = self(obj);
    std::lock_guard lock{c.mu_};
    c.log_errors_.emplace_back(text);
    if (c.log_errors_.size() > 8) c.log_errors_.erase(c.log_errors_.begin());
  }

  static void on_unsubscribe(mosquitto* /*m*/, void* obj, int mid,
                             const mosquitto_property* /*props*/) {
    auto& c = self(obj);
    {
      std::lock_guard lock{c.mu_};
      c.unsuback_[mid] = true;
    }
    c.cv_.notify_all();
  }
};

MqttClientOptions client_options(const MosquittoBroker& broker, const ClientCert& cert,
                                 std::string client_id) {
  MqttClientOptions o;
  o.host = MosquittoBroker::host();
  o.port = broker.port();
  o.ca_file = broker.ca_file();
  o.cert_file = cert.cert;
  o.key_file = cert.key;
  o.client_id = std::move(client_id);
  if (o.client_id.empty()) o.client_id = cert.identity;
  return o;
}

MqttTestClient::MqttTestClient(MqttClientOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<MqttTestClient>> MqttTestClient::connect(MqttClientOptions options) {
  lib_init_once();
  std::unique_ptr<MqttTestClient> c{new MqttTestClient(std::move(options))};
  const MqttClientOptions& o = c->options_;
  c->mosq_ =
      mosquitto_new(o.client_id.empty() ? nullptr : o.client_id.c_str(), o.clean_session, c.get());
  if (c->mosq_ == nullptr) return fail(Errc::invalid_argument, "mosquitto_new failed");
  mosquitto* m = c->mosq_;

  int rc =
      mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION,
                           o.version == MqttVersion::v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::invalid_argument, "protocol version", rc);

  const std::string ca = o.ca_file.string();
  const std::string cert = o.cert_file.string();
  const std::string key = o.key_file.string();
  rc = mosquitto_tls_set(m, ca.c_str(), nullptr, cert.empty() ? nullptr : cert.c_str(),
                         key.empty() ? nullptr : key.c_str(), nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::invalid_argument, "mosquitto_tls_set", rc);
  rc = mosquitto_tls_opts_set(m, 1 /* SSL_VERIFY_PEER */, "tlsv1.2", nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::invalid_argument, "tls_opts_set", rc);

  if (o.will) {
    rc = mosquitto_will_set_v5(m, o.will->topic.c_str(), static_cast<int>(o.will->payload.size()),
                               o.will->payload.data(), o.will->qos, o.will->retain, nullptr);
    if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::invalid_argument, "will_set", rc);
  }
  // Our own thread calls mosquitto_loop, so libmosquitto must lock its internals.
  mosquitto_threaded_set(m, true);

  mosquitto_connect_v5_callback_set(m, &MqttCallbacks::on_connect);
  mosquitto_disconnect_v5_callback_set(m, &MqttCallbacks::on_disconnect);
  mosquitto_publish_v5_callback_set(m, &MqttCallbacks::on_publish);
  mosquitto_message_v5_callback_set(m, &MqttCallbacks::on_message);
  mosquitto_subscribe_v5_callback_set(m, &MqttCallbacks::on_subscribe);
  mosquitto_unsubscribe_v5_callback_set(m, &MqttCallbacks::on_unsubscribe);
  mosquitto_log_callback_set(m, &MqttCallbacks::on_log);

  auto log_details = [&c] {
    std::lock_guard lock{c->mu_};
    std::string out;
    for (const auto& e : c->log_errors_) out += "; " + e;
    return out;
  };
  // The TLS handshake may already fail in here (the broker answers fast on loopback).
  rc = mosquitto_connect_async(m, o.host.c_str(), o.port, o.keepalive_s);
  if (rc != MOSQ_ERR_SUCCESS) {
    const std::string why =
        rc == MOSQ_ERR_ERRNO ? detail::errno_text(errno) : mosquitto_strerror(rc);
    return fail(Errc::unavailable,
                fmt::format("connect to {}:{}: {}{}", o.host, o.port, why, log_details()));
  }
  c->loop_thread_ = std::thread([raw = c.get()] { raw->network_loop(); });

  std::unique_lock lock{c->mu_};
  const bool done = c->cv_.wait_for(lock, o.timeout, [&c] {
    return c->connected_ || c->refused_rc_.has_value() || c->disconnect_count_ > 0 ||
           c->loop_error_.has_value();
  });
  if (c->connected_) {
    lock.unlock();
    return c;
  }
  if (!done) {
    return fail(Errc::timeout, fmt::format("no CONNACK from {}:{} within {} ms", o.host, o.port,
                                           o.timeout.count()));
  }
  if (c->refused_rc_) {
    const int refused = *c->refused_rc_;
    return fail(Errc::unavailable,
                fmt::format("connection refused: {} ({})",
                            o.version == MqttVersion::v5 ? mosquitto_reason_string(refused)
                                                         : mosquitto_connack_string(refused),
                            refused));
  }
  const std::string why =
      c->loop_error_ ? *c->loop_error_ : mosquitto_strerror(c->last_disconnect_rc_);
  lock.unlock();
  return fail(Errc::unavailable,
              fmt::format("connection closed before CONNACK: {}{}", why, log_details()));
}

MqttTestClient::~MqttTestClient() {
  if (mosq_ == nullptr) return;
  if (loop_thread_.joinable()) {
    if (connected()) (void)disconnect();
    {
      std::lock_guard lock{mu_};
      stop_ = true;
    }
    cv_.notify_all();
    loop_thread_.join();
  }
  mosquitto_destroy(mosq_);
}

// Instead of mosquitto_loop_start: libmosquitto's own loop retries a failed connect
// silently (no callback), so a refused TCP connection could only be reported by a timeout.
// Here every failure of mosquitto_loop is recorded and wakes the waiters at once.
void MqttTestClient::network_loop() {
  for (;;) {
    {
      std::lock_guard lock{mu_};
      if (stop_) return;
    }
    // select() inside also wakes when another thread queues a packet (libmosquitto writes
    // to its internal socket pair); the timeout only bounds how late stop_ is noticed.
    const int rc = mosquitto_loop(mosq_, 100, 1);
    std::string why;
    if (rc != MOSQ_ERR_SUCCESS) {
      why = rc == MOSQ_ERR_ERRNO ? detail::errno_text(errno) : mosquitto_strerror(rc);
    } else if (!connected() && connect_attempt_failed(mosquitto_socket(mosq_))) {
      why = "connection refused or closed before the TLS handshake completed";
    } else {
      continue;
    }
    std::unique_lock lock{mu_};
    if (connected_) {  // lost without on_disconnect having run
      connected_ = false;
      ++disconnect_count_;
      last_disconnect_rc_ = rc;
    }
    loop_error_ = why;
    cv_.notify_all();
    if (!options_.auto_reconnect || disconnect_requested_) {
      cv_.wait(lock, [this] { return stop_; });
      return;
    }
    // libmosquitto's smallest reconnect delay, as a wait that stop_ interrupts.
    if (cv_.wait_for(lock, std::chrono::seconds{1}, [this] { return stop_; })) return;
    lock.unlock();
    (void)mosquitto_reconnect_async(mosq_);  // failures show up in the next mosquitto_loop
  }
}

Result<int> MqttTestClient::publish(std::string_view topic, std::string_view payload, int qos,
                                    bool retain) {
  int generation = 0;
  {
    std::lock_guard lock{mu_};
    if (!connected_) return fail(Errc::unavailable, "publish: not connected");
    generation = disconnect_count_;
  }
  const std::string t{topic};
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq_, &mid, t.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), qos, retain, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::unavailable, "publish " + t, rc);
  if (qos == 0) return reason::kSuccess;
  std::unique_lock lock{mu_};
  const bool acked = cv_.wait_for(lock, options_.timeout, [&] {
    return puback_.contains(mid) || disconnect_count_ != generation;
  });
  if (auto it = puback_.find(mid); it != puback_.end()) {
    const int code = it->second;
    puback_.erase(it);
    return code;
  }
  if (!acked) return fail(Errc::timeout, "no PUBACK for " + t);
  return fail(Errc::unavailable, "connection lost before PUBACK for " + t);
}

Result<int> MqttTestClient::subscribe(std::string_view filter, int qos) {
  int generation = 0;
  {
    std::lock_guard lock{mu_};
    if (!connected_) return fail(Errc::unavailable, "subscribe: not connected");
    generation = disconnect_count_;
  }
  const std::string f{filter};
  int mid = 0;
  const int rc = mosquitto_subscribe_v5(mosq_, &mid, f.c_str(), qos, 0, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::unavailable, "subscribe " + f, rc);
  std::unique_lock lock{mu_};
  const bool acked = cv_.wait_for(lock, options_.timeout, [&] {
    return suback_.contains(mid) || disconnect_count_ != generation;
  });
  if (auto it = suback_.find(mid); it != suback_.end()) {
    const int granted = it->second.empty() ? -1 : it->second.front();
    suback_.erase(it);
    return granted;
  }
  if (!acked) return fail(Errc::timeout, "no SUBACK for " + f);
  return fail(Errc::unavailable, "connection lost before SUBACK for " + f);
}

Result<void> MqttTestClient::unsubscribe(std::string_view filter) {
  const std::string f{filter};
  int mid = 0;
  const int rc = mosquitto_unsubscribe_v5(mosq_, &mid, f.c_str(), nullptr);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_fail(Errc::unavailable, "unsubscribe " + f, rc);
  std::unique_lock lock{mu_};
  if (!cv_.wait_for(lock, options_.timeout, [&] { return unsuback_.contains(mid); })) {
    return fail(Errc::timeout, "no UNSUBACK for " + f);
  }
  unsuback_.erase(mid);
  return ok();
}

std::optional<Message> MqttTestClient::wait_for_message(std::string_view filter,
                                                        std::chrono::milliseconds timeout) {
  std::unique_lock lock{mu_};
  std::optional<Message> found;
  cv_.wait_for(lock, timeout, [&] {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (topic_matches(filter, history_[*it].topic)) {
        found = history_[*it];
        pending_.erase(it);
        return true;
      }
    }
    return false;
  });
  return found;
}

std::vector<Message> MqttTestClient::messages() const {
  std::lock_guard lock{mu_};
  return history_;
}

std::vector<Message> MqttTestClient::messages_matching(std::string_view filter) const {
  std::lock_guard lock{mu_};
  std::vector<Message> out;
  std::copy_if(history_.begin(), history_.end(), std::back_inserter(out),
               [filter](const Message& m) { return topic_matches(filter, m.topic); });
  return out;
}

bool MqttTestClient::connected() const {
  std::lock_guard lock{mu_};
  return connected_;
}

int MqttTestClient::connect_count() const {
  std::lock_guard lock{mu_};
  return connect_count_;
}

int MqttTestClient::disconnect_count() const {
  std::lock_guard lock{mu_};
  return disconnect_count_;
}

int MqttTestClient::last_disconnect_rc() const {
  std::lock_guard lock{mu_};
  return last_disconnect_rc_;
}

bool MqttTestClient::wait_for_disconnect(std::chrono::milliseconds timeout) {
  std::unique_lock lock{mu_};
  return cv_.wait_for(lock, timeout, [this] { return disconnect_count_ > 0; });
}

bool MqttTestClient::wait_for_connected(std::chrono::milliseconds timeout, int min_count) {
  std::unique_lock lock{mu_};
  return cv_.wait_for(lock, timeout, [&] { return connected_ && connect_count_ >= min_count; });
}

Result<void> MqttTestClient::disconnect() {
  int generation = 0;
  {
    std::lock_guard lock{mu_};
    if (!connected_) return ok();
    generation = disconnect_count_;
  }
  {
    std::lock_guard lock{mu_};
    disconnect_requested_ = true;  // no auto-reconnect after this
  }
  const int rc = mosquitto_disconnect_v5(mosq_, MQTT_RC_NORMAL_DISCONNECTION, nullptr);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
    return mosq_fail(Errc::unavailable, "disconnect", rc);
  }
  std::unique_lock lock{mu_};
  if (!cv_.wait_for(lock, options_.timeout, [&] { return disconnect_count_ != generation; })) {
    return fail(Errc::timeout, "disconnect did not complete");
  }
  return ok();
}

}  // namespace dag::test
