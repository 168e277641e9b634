#include "dag/mqtt/client.hpp"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "dag/common/errno_text.hpp"
#include "dag/common/log.hpp"
#include "dag/common/pki.hpp"
#include "dag/common/thread_name.hpp"
#include "dag/mqtt/tls.hpp"

namespace dag::mqtt {
namespace {

std::once_flag g_lib_init;

std::string mosq_error(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return errno_text();
  return mosquitto_strerror(rc);
}

struct CtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;

// Our own context rather than libmosquitto's, for read-ahead: OpenSSL then takes whatever
// the socket holds in one read(2), where it otherwise reads each record's 5-byte header
// and then its body. A busy dagd receives three small records per report (the report and
// the PUBACKs of its two replies), so read-ahead saves it ~6 system calls per report.
// Client::drain_buffered() reads what read-ahead leaves buffered.
Result<CtxPtr> tls_context(const Options& o) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail(Errc::internal, "mqtt: SSL_CTX_new: " + pki::drain_openssl_errors());
  if (auto r = verify_broker(ctx.get(), o.host); !r) return Unexpected<Error>{r.error()};
  SSL_CTX_set_read_ahead(ctx.get(), 1);
  const auto refused = [](const std::string& what, const std::string& file) {
    return fail(Errc::config,
                "mqtt: TLS " + what + " " + file + ": " + pki::drain_openssl_errors());
  };
  if (SSL_CTX_load_verify_locations(ctx.get(), o.ca_file.c_str(), nullptr) != 1) {
    return refused("CA file", o.ca_file);
  }
  if (!o.cert_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx.get(), o.cert_file.c_str()) != 1) {
    return refused("certificate", o.cert_file);
  }
  if (!o.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), o.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      return refused("key", o.key_file);
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      return refused("key (not the certificate's)", o.key_file);
  }
  return ctx;
}

}  // namespace

struct ClientCallbacks {
  static void on_connect(mosquitto* /*m*/, void* self, int rc, int flags,
                         const mosquitto_property* /*props*/) {
    auto* c = static_cast<Client*>(self);
    c->connack_seen_ = true;
    if (rc != 0) {
      c->handler_.on_disconnected(std::string("connect refused: ") + mosquitto_reason_string(rc));
      return;
    }
    std::vector<std::pair<std::string, int>> filters;
    {
      std::lock_guard lock(c->mutex_);
      filters = c->filters_;
    }
    // The network thread alone touches pending_subacks_ (here and in on_subscribe).
    c->pending_subacks_.clear();
    for (const auto& [filter, qos] : filters) {
      int mid = 0;
      if (mosquitto_subscribe_v5(c->mosq_, &mid, filter.c_str(), qos, 0, nullptr) ==
          MOSQ_ERR_SUCCESS) {
        c->pending_subacks_.push_back(mid);
      }
    }
    c->connected_ = true;
    c->handler_.on_connected((flags & 1) != 0);
    if (c->pending_subacks_.empty()) c->handler_.on_subscribed();
  }

  static void on_subscribe(mosquitto* /*m*/, void* self, int mid, int count, const int* granted,
                           const mosquitto_property* /*props*/) {
    auto* c = static_cast<Client*>(self);
    for (int i = 0; i < count; ++i) {
      if (granted[i] >= 0x80)
        log::warn("mqtt.subscribe_refused", {{"mid", mid}, {"reason", granted[i]}});
    }
    auto& pending = c->pending_subacks_;
    const auto it = std::find(pending.begin(), pending.end(), mid);
    if (it == pending.end()) return;
    pending.erase(it);
    if (pending.empty()) c->handler_.on_subscribed();
  }

  static void on_disconnect(mosquitto* /*m*/, void* self, int rc,
                            const mosquitto_property* /*props*/) {
    auto* c = static_cast<Client*>(self);
    const bool was = c->connected_.exchange(false);
    if (was) c->handler_.on_disconnected(rc == 0 ? "disconnected" : mosq_error(rc));
  }

  static void on_message(mosquitto* /*m*/, void* self, const mosquitto_message* msg,
                         const mosquitto_property* /*props*/) {
    auto* c = static_cast<Client*>(self);
    Message out;
    out.topic = msg->topic;
    out.payload.assign(static_cast<const char*>(msg->payload),
                       static_cast<std::size_t>(std::max(0, msg->payloadlen)));
    out.qos = msg->qos;
    out.retain = msg->retain;
    c->handler_.on_message(std::move(out));
  }

  static void on_publish(mosquitto* /*m*/, void* self, int mid, int rc,
                         const mosquitto_property* /*props*/) {
    static_cast<Client*>(self)->handler_.on_publish_result(mid, rc);
  }
};

std::chrono::milliseconds backoff_delay(unsigned attempt, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max, std::mt19937_64& rng) {
  const unsigned shift = std::min(attempt, 30U);
  const auto base = std::min<std::int64_t>(max.count(), initial.count() << shift);
  std::uniform_int_distribution<std::int64_t> dist(base / 2, std::max<std::int64_t>(base, 1));
  return std::chrono::milliseconds{dist(rng)};
}

Client::Client(Options options, Handler& handler)
    : options_(std::move(options)), handler_(handler), rng_(std::random_device{}()) {}

Client::~Client() {
  stop();
  if (mosq_ != nullptr) mosquitto_destroy(mosq_);
}

Result<std::unique_ptr<Client>> Client::create(Options options, Handler& handler) {
  if (options.client_id.empty() || options.client_id.size() > 128) {
    return fail(Errc::invalid_argument, "mqtt: client id must be 1..128 characters");
  }
  if (options.port < 1 || options.port > 65535)
    return fail(Errc::invalid_argument, "mqtt: bad port");
  if (options.keepalive_s < 5 || options.keepalive_s > 65535) {
    return fail(Errc::invalid_argument, "mqtt: keep-alive must be 5..65535 s");
  }
  if (options.protocol_version != 4 && options.protocol_version != 5) {
    return fail(Errc::invalid_argument, "mqtt: protocol version must be 4 (3.1.1) or 5");
  }
  std::call_once(g_lib_init, [] { mosquitto_lib_init(); });

  std::unique_ptr<Client> c(new Client(std::move(options), handler));
  const Options& o = c->options_;
  c->mosq_ = mosquitto_new(o.client_id.c_str(), o.clean_session, c.get());
  if (c->mosq_ == nullptr) return fail(Errc::internal, "mqtt: mosquitto_new failed");
  mosquitto_threaded_set(c->mosq_, true);
  mosquitto_int_option(c->mosq_, MOSQ_OPT_PROTOCOL_VERSION,
                       o.protocol_version == 5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311);
  mosquitto_int_option(c->mosq_, MOSQ_OPT_TCP_NODELAY, 1);
  mosquitto_max_inflight_messages_set(c->mosq_, static_cast<unsigned>(o.max_inflight));
  if (!o.ca_file.empty()) {
    auto ctx = tls_context(o);
    if (!ctx) return Unexpected<Error>{ctx.error()};
    // As it is: libmosquitto's defaults would load the files again. It takes a reference.
    mosquitto_int_option(c->mosq_, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    mosquitto_void_option(c->mosq_, MOSQ_OPT_SSL_CTX, ctx->get());
  }
  if (o.username) mosquitto_username_pw_set(c->mosq_, o.username->c_str(), nullptr);
  if (o.will) {
    const int rc = mosquitto_will_set(c->mosq_, o.will->topic.c_str(),
                                      static_cast<int>(o.will->payload.size()),
                                      o.will->payload.data(), o.will->qos, o.will->retain);
    if (rc != MOSQ_ERR_SUCCESS)
      return fail(Errc::invalid_argument, "mqtt: will: " + mosq_error(rc));
  }
  mosquitto_connect_v5_callback_set(c->mosq_, &ClientCallbacks::on_connect);
  mosquitto_disconnect_v5_callback_set(c->mosq_, &ClientCallbacks::on_disconnect);
  mosquitto_message_v5_callback_set(c->mosq_, &ClientCallbacks::on_message);
  mosquitto_publish_v5_callback_set(c->mosq_, &ClientCallbacks::on_publish);
  mosquitto_subscribe_v5_callback_set(c->mosq_, &ClientCallbacks::on_subscribe);
  return c;
}

void Client::start() {
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    set_thread_name("mqtt");
    run();
  });
}

void Client::stop() {
  if (!thread_.joinable()) return;
  {
    // stopping_ and the DISCONNECT are set together under the lock, so that the network
    // thread, once it sees stopping_, knows whether a DISCONNECT is already queued.
    std::lock_guard lock(mutex_);
    stopping_ = true;
    // A DISCONNECT makes the broker discard the will: a clean shutdown is not an outage.
    disconnect_queued_ = mosquitto_disconnect(mosq_) == MOSQ_ERR_SUCCESS;
  }
  cv_.notify_all();
  wake();
  thread_.join();
}

void Client::subscribe(const std::string& filter, int qos) {
  {
    std::lock_guard lock(mutex_);
    const auto it = std::find_if(filters_.begin(), filters_.end(),
                                 [&](const auto& f) { return f.first == filter; });
    if (it == filters_.end()) {
      filters_.emplace_back(filter, qos);
    } else {
      it->second = qos;
    }
  }
  if (connected_ &&
      mosquitto_subscribe_v5(mosq_, nullptr, filter.c_str(), qos, 0, nullptr) == MOSQ_ERR_SUCCESS) {
    wake();
  }
}

Result<int> Client::publish(const std::string& topic, std::string_view payload, int qos,
                            bool retain) {
  if (!connected_) return fail(Errc::unavailable, "mqtt: not connected");
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), qos, retain, nullptr);
  if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
    return fail(Errc::unavailable, "mqtt: " + mosq_error(rc));
  }
  if (rc != MOSQ_ERR_SUCCESS)
    return fail(Errc::invalid_argument, "mqtt: publish: " + mosq_error(rc));
  wake();
  return mid;
}

void Client::wake() {
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) wake_.signal();
}

void Client::wait_backoff(unsigned attempt) {
  const auto delay = backoff_delay(attempt, options_.backoff_initial, options_.backoff_max, rng_);
  log::debug("mqtt.backoff", {{"client", options_.client_id}, {"delay_ms", delay.count()}});
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, delay, [this] { return stopping_.load(); });
}

int Client::drain_buffered() {
  // mosquitto_loop_read() reads a bounded number of packets per call, and the loop then
  // waits in poll() for the socket; with read-ahead the rest may already sit in OpenSSL's
  // buffer, where poll() cannot see it. Read it first. A partial record (more bytes needed from
  // the socket) ends the drain: reading then fails with EAGAIN and poll() is right.
  auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq_));
  while (ssl != nullptr && SSL_is_init_finished(ssl) != 0 && SSL_has_pending(ssl) != 0) {
    errno = 0;
    const int rc = mosquitto_loop_read(mosq_, 1);
    if (rc != MOSQ_ERR_SUCCESS) return rc;
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
  }
  return MOSQ_ERR_SUCCESS;
}

void Client::buffer_tls_writes() {
  // libmosquitto writes every packet with its own SSL_write, and OpenSSL hands each record
  // to the socket at once: a busy dagd made one write(2) per PUBACK and per reply, three
  // per report. A buffer in front of the socket (only for writing) collects a loop turn's
  // records; flush_tls_writes() sends them in one write before the loop waits. The TLS
  // stream is unchanged. Installed once the handshake is done (OpenSSL buffers the
  // handshake itself) and again for every connection: libmosquitto gives each a new SSL,
  // whose write and read BIO are then the same socket BIO. A DISCONNECT leaves too:
  // libmosquitto closes the connection with SSL_shutdown, which flushes the buffer.
  auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq_));
  if (ssl == nullptr || SSL_is_init_finished(ssl) == 0) return;
  if (SSL_get_wbio(ssl) != SSL_get_rbio(ssl)) return;  // ours already
  BIO* sock = BIO_new_socket(mosquitto_socket(mosq_), BIO_NOCLOSE);
  BIO* buffer = BIO_new(BIO_f_buffer());
  if (sock == nullptr || buffer == nullptr ||
      BIO_set_write_buffer_size(buffer, kTlsWriteBuffer) != 1) {
    BIO_free(sock);
    BIO_free(buffer);
    return;  // unbuffered, as libmosquitto made it: slower, still correct
  }
  SSL_set0_wbio(ssl, BIO_push(buffer, sock));  // the SSL owns the chain from here
}

bool Client::flush_tls_writes() {
  auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq_));
  if (ssl == nullptr) return true;
  BIO* wbio = SSL_get_wbio(ssl);
  if (wbio == nullptr || BIO_wpending(wbio) == 0) return true;
  // A full socket leaves the rest in the buffer (BIO_flush fails with a retry); the
  // caller waits until the socket takes more. Any other failure shows in the next read.
  return BIO_flush(wbio) == 1 && BIO_wpending(wbio) == 0;
}

// Our loop rather than mosquitto_loop(): libmosquitto wakes its own loop through a socket
// pair, one byte per queued packet, and mosquitto_loop() reads one byte per turn, so a
// busy dagd turned its loop (a select, a read and the rest) once per PUBACK and once per
// reply. Here the packets queued meanwhile go out together after one wake-up of wake_;
// libmosquitto's pair is never read (its writes fail once it is full, which it ignores).
int Client::loop_once(int wait_ms) {
  SSL* handshake = handshake_of(mosq_);
  if (handshake == nullptr) {
    buffer_tls_writes();
    if (const int rc = drain_buffered(); rc != MOSQ_ERR_SUCCESS) return rc;
    // What was queued: publishes of other threads, PUBACKs and replies of our callbacks.
    if (mosquitto_want_write(mosq_)) {
      if (const int rc = mosquitto_loop_write(mosq_, 1); rc != MOSQ_ERR_SUCCESS) return rc;
    }
  }
  const bool flushed = flush_tls_writes();
  const int sock = mosquitto_socket(mosq_);
  if (sock < 0) return MOSQ_ERR_NO_CONN;
  handshake = handshake_of(mosq_);
  short events = POLLIN;
  // A full socket leaves bytes in our buffer, or in libmosquitto's queue: wait until it
  // takes more.
  if (handshake != nullptr ? SSL_want_write(handshake) != 0
                           : !flushed || mosquitto_want_write(mosq_)) {
    events |= POLLOUT;
  }
  std::array<pollfd, 2> fds{pollfd{.fd = sock, .events = events, .revents = 0},
                            pollfd{.fd = wake_.fd(), .events = POLLIN, .revents = 0}};
  if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) return MOSQ_ERR_ERRNO;
  if ((fds[1].revents & POLLIN) != 0) {
    wake_.drain();
    // Before the next turn's write: a packet queued after this is either written by it
    // or signals again.
    wake_pending_.store(false, std::memory_order_release);
  }
  const auto got = fds[0].revents;
  if ((got & (POLLIN | POLLERR | POLLHUP)) != 0 || (handshake != nullptr && (got & POLLOUT) != 0)) {
    if (const int rc = mosquitto_loop_read(mosq_, 1); rc != MOSQ_ERR_SUCCESS) return rc;
  }
  return mosquitto_loop_misc(mosq_);  // keep-alive: PINGREQ when due, a missed PINGRESP
}

void Client::run() {
  unsigned attempt = 0;
  while (!stopping_) {
    connack_seen_ = false;
    mosquitto_property* props = nullptr;
    if (options_.protocol_version == 5 && !options_.clean_session) {
      mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                   options_.session_expiry_s);
    }
    // Blocking connect (TCP + TLS handshake) on this thread only; the caller's threads
    // keep running and their publishes fail fast with Errc::unavailable meanwhile.
    const int rc = mosquitto_connect_bind_v5(mosq_, options_.host.c_str(), options_.port,
                                             options_.keepalive_s, nullptr, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
      log::warn("mqtt.connect_failed",
                {{"client", options_.client_id},
                 {"broker", options_.host + ":" + std::to_string(options_.port)},
                 {"error", mosq_error(rc)}});
      handler_.on_disconnected("connect failed: " + mosq_error(rc));
      wait_backoff(attempt++);
      continue;
    }
    bool accepted = false;
    int lrc = MOSQ_ERR_SUCCESS;
    while (!stopping_) {
      // A quarter of the keep-alive: libmosquitto's PINGREQ is then at most that late,
      // well before the broker gives up at one and a half.
      lrc = loop_once(options_.keepalive_s * 250);
      if (connected_) accepted = true;
      if (lrc != MOSQ_ERR_SUCCESS) break;
    }
    if (connected_.exchange(false)) {
      handler_.on_disconnected("connection lost");
    } else if (!connack_seen_ && !stopping_) {
      // The TLS handshake finishes inside the loop, after mosquitto_connect returned: a
      // broker that refuses our certificate (or that we refuse) ends here, before CONNACK.
      handler_.on_disconnected("connect failed: " + mosq_error(lrc));
    }
    if (stopping_) break;
    // A connection that was accepted resets the backoff; a refused one (bad certificate,
    // ACL) keeps growing it so a misconfigured device does not hammer the broker.
    attempt = accepted ? 0 : attempt + 1;
    wait_backoff(accepted ? 0 : attempt);
  }
  {
    // stop() may have raced a connect in progress (nothing to disconnect then): say
    // goodbye now. Never twice: a second DISCONNECT, or two threads writing one, corrupts
    // the stream, and the broker then drops the session and sends the will.
    std::lock_guard lock(mutex_);
    if (!disconnect_queued_) disconnect_queued_ = mosquitto_disconnect(mosq_) == MOSQ_ERR_SUCCESS;
  }
  // Run the loop until libmosquitto has written the DISCONNECT (it then closes the
  // socket), bounded: a dead broker must not hold up a shutdown.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
  // (A DISCONNECT queued during a TLS handshake waits for its end.)
  while (mosquitto_socket(mosq_) >= 0 && std::chrono::steady_clock::now() < deadline) {
    if (loop_once(100) != MOSQ_ERR_SUCCESS) break;
  }
}

}  // namespace dag::mqtt
