#include "dag/sim/fleet.hpp"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/event_fd.hpp"
#include "dag/common/log.hpp"
#include "dag/common/pki.hpp"
#include "dag/edge/agent.hpp"
#include "dag/edge/battery.hpp"
#include "dag/edge/outbox.hpp"
#include "dag/edge/power_source.hpp"
#include "dag/mqtt/client.hpp"
#include "dag/mqtt/tls.hpp"
#include "dag/protocol/topics.hpp"

namespace dag::sim {
namespace {

using json = nlohmann::json;
using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kSweep = milliseconds{500};  // keep-alives, stuck handshakes
constexpr auto kHandshakeTimeout = std::chrono::seconds{20};
constexpr auto kDieDelay = std::chrono::seconds{1};  // a dying dag's last words go out
constexpr auto kBackoffInitial = milliseconds{1000};
constexpr auto kBackoffMax = milliseconds{60'000};

double ms_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---- TLS: one SSL_CTX per dag (its own certificate), one trust store for all ----------

struct X509StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};
using StorePtr = std::unique_ptr<X509_STORE, X509StoreFree>;
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr mem_bio(std::string_view pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Result<StorePtr> make_trust_store(std::string_view ca_pem) {
  StorePtr store(X509_STORE_new());
  if (!store) return fail(Errc::crypto, "X509_STORE_new: " + pki::drain_openssl_errors());
  auto bio = mem_bio(ca_pem);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    const int ok = X509_STORE_add_cert(store.get(), cert);
    X509_free(cert);
    if (ok != 1) return fail(Errc::crypto, "broker CA: " + pki::drain_openssl_errors());
    ++count;
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (count == 0) return fail(Errc::invalid_argument, "broker CA: no certificate in the PEM");
  return store;
}

Result<CtxPtr> make_ssl_ctx(X509_STORE* trust, const std::string& host, const Identity& id) {
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fail(Errc::crypto, "SSL_CTX_new: " + pki::drain_openssl_errors());
  SSL_CTX_set1_cert_store(ctx.get(), trust);
  if (auto r = mqtt::verify_broker(ctx.get(), host); !r) return Unexpected{r.error()};
  auto cbio = mem_bio(id.cert_pem);
  X509* cert = PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr);
  if (cert == nullptr) return fail(Errc::invalid_argument, id.id + ": certificate does not parse");
  const int cert_ok = SSL_CTX_use_certificate(ctx.get(), cert);
  X509_free(cert);
  auto kbio = mem_bio(id.key_pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return fail(Errc::invalid_argument, id.id + ": key does not parse");
  const int key_ok = SSL_CTX_use_PrivateKey(ctx.get(), key);
  EVP_PKEY_free(key);
  if (cert_ok != 1 || key_ok != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    return fail(Errc::invalid_argument,
                id.id + ": certificate and key: " + pki::drain_openssl_errors());
  }
  return ctx;
}

// ---- simulated hardware --------------------------------------------------------------

/// A power line set by the scenario; the worker hands edges to the agent itself, so it
/// needs no descriptor (a real SimLine has an eventfd, 10,000 of which we can spare).
class ScenarioLine final : public edge::PowerSource {
 public:
  [[nodiscard]] int fd() const override { return -1; }
  Result<std::vector<edge::LineEvent>> drain() override { return std::vector<edge::LineEvent>{}; }
  Result<bool> read() override { return level_; }
  [[nodiscard]] std::string describe() const override { return "dag-sim"; }
  void set(bool level) { level_ = level; }

 private:
  bool level_{true};
};

/// Full until drain_start, then empty linearly over `full_ms`.
class DrainingGauge final : public edge::BatteryGauge {
 public:
  explicit DrainingGauge(const Clock& clock) : clock_(clock) {}
  Result<edge::BatteryReading> read() override {
    double p = 100;
    if (since_) {
      p = std::max(0.0, 100.0 - 100.0 * ms_between(*since_, clock_.steady()) /
                                    static_cast<double>(full_ms_));
    }
    return edge::BatteryReading{p, 3.3 + 0.9 * p / 100.0};
  }
  void start(Steady::time_point at, std::int64_t full_ms) {
    since_ = at;
    full_ms_ = std::max<std::int64_t>(1, full_ms);
  }

 private:
  const Clock& clock_;
  std::optional<Steady::time_point> since_;
  std::int64_t full_ms_{1};
};

// ---- shared state ----------------------------------------------------------------------

enum class Phase : int { connect = 0, scenario = 1, drain = 2, stop = 3 };

struct Counters {
  std::atomic<std::int64_t> attempts{0};
  std::atomic<std::int64_t> connects{0};
  std::atomic<std::int64_t> connected{0};
  std::atomic<std::int64_t> connect_failures{0};
  std::atomic<std::int64_t> disconnects{0};  // unexpected losses of a connection
  std::atomic<std::int64_t> ready{0};
  std::atomic<std::int64_t> published{0};
  std::atomic<std::int64_t> republished{0};
  std::atomic<std::int64_t> accepted{0};
  std::atomic<std::int64_t> rejected{0};
  std::atomic<std::int64_t> throttled{0};
  std::atomic<std::int64_t> publish_errors{0};
  std::atomic<std::int64_t> shutdowns{0};
  std::atomic<std::int64_t> battery_reports{0};
};

struct Shared {
  explicit Shared(const FleetOptions& o) : options(o) {}
  const FleetOptions& options;
  SystemClock clock;
  Counters counters;
  X509_STORE* trust{nullptr};
  std::atomic<int> phase{static_cast<int>(Phase::connect)};
  std::atomic<std::int64_t> t0_ns{0};  // steady time of the scenario's start; 0 = not yet
  std::int64_t t0_unix_ms{0};          // written before t0_ns is published
  std::uint64_t seq_base{0};
  std::string boot_id;
  [[nodiscard]] Phase current() const { return static_cast<Phase>(phase.load()); }
};

class Worker;

struct Sent {
  Steady::time_point at;
  std::int64_t observed_at{0};
  bool off{false};
};

// One simulated dag. Lives and dies on its worker's thread.
struct Device final : edge::Transport {
  Device(Shared& s, Worker& w, std::uint32_t global_index, Identity identity)
      : shared(s),
        worker(w),
        index(global_index),
        id(std::move(identity.id)),
        gauge(s.clock),
        update_topic(protocol::shadow_topic(id, protocol::ShadowOp::update)),
        accepted_topic(protocol::shadow_topic(id, protocol::ShadowOp::update,
                                              protocol::ShadowReply::accepted)),
        rejected_topic(protocol::shadow_topic(id, protocol::ShadowOp::update,
                                              protocol::ShadowReply::rejected)) {}
  ~Device() override {
    agent.reset();
    if (mosq != nullptr) mosquitto_destroy(mosq);
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                      bool retain) override;
  [[nodiscard]] bool connected() const override { return state == State::connected; }

  Shared& shared;
  Worker& worker;
  std::uint32_t index;
  std::string id;
  mosquitto* mosq{nullptr};
  ScenarioLine line;
  DrainingGauge gauge;
  std::optional<edge::Outbox> outbox;
  std::optional<edge::Agent> agent;

  enum class State { idle, connecting, connected } state{State::idle};
  int fd{-1};
  std::uint32_t events{0};
  bool started{false};  // mosquitto_connect_async done once
  Steady::time_point connect_started{};
  unsigned attempt{0};
  bool net_down{false};
  bool dying{false};
  bool dead{false};
  bool ready{false};
  Steady::time_point agent_due{Steady::time_point::max()};
  Steady::time_point connect_due{Steady::time_point::max()};
  Steady::time_point die_due{Steady::time_point::max()};

  std::string update_topic;
  std::string accepted_topic;
  std::string rejected_topic;
  std::unordered_map<std::string, Sent> sent;  // by clientToken, until answered

  // The scenario's cut (storm, drain, network): when it happened and when its report
  // was accepted.
  std::int64_t cut_unix_ms{0};
  std::int64_t cut_observed_at{0};
  std::int64_t cut_accepted_unix_ms{0};
  double cut_publish_ms{-1};
};

struct TimerEntry {
  Steady::time_point at;
  std::uint32_t local;
  enum class Kind : std::uint8_t { agent, connect, die } kind;
  bool operator>(const TimerEntry& o) const { return at > o.at; }
};

class Worker {
 public:
  Worker(Shared& shared, unsigned index, int handshake_limit)
      : shared_(shared),
        handshake_limit_(std::max(1, handshake_limit)),
        rng_(shared.options.scenario.seed * 7919 + index) {}
  ~Worker() {
    for (mosquitto* m : handles_) {
      if (m != nullptr) mosquitto_destroy(m);
    }
    if (epfd_ >= 0) ::close(epfd_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void assign(std::uint32_t global_index, Identity identity, mosquitto* handle) {
    local_of_[global_index] = static_cast<std::uint32_t>(identities_.size());
    globals_.push_back(global_index);
    identities_.push_back(std::move(identity));
    handles_.push_back(handle);
  }
  void add_action(const Action& a) { actions_.push_back(a); }

  // Builds the dags (SSL contexts, clients, agents). Runs on the calling thread.
  Result<void> build();
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  void wake() { wake_.signal(); }

  [[nodiscard]] std::int64_t pending() const { return pending_.load(); }
  std::vector<std::unique_ptr<Device>>& devices() { return devices_; }
  std::vector<double> handshake_ms;
  std::vector<double> publish_to_accepted_ms;  // scenario reports
  std::vector<double> observed_to_accepted_ms;
  std::map<std::string, std::int64_t> reasons;  // why connections failed or were dropped

  // Called from libmosquitto's callbacks (this thread).
  void on_connect(Device& d, int rc);
  void on_message(Device& d, const mosquitto_message* msg);
  void agent_shutdown(Device& d);

 private:
  void run();
  void apply(Device& d, const Action& a);
  void start_connect(Device& d);
  void after(Device& d, int rc = MOSQ_ERR_SUCCESS);
  void abandon(Device& d, const std::string& reason);
  void drop(Device& d);
  void lost(Device& d);
  void reschedule_agent(Device& d, Steady::time_point now);
  void schedule_connect(Device& d, Steady::time_point at);
  void sweep(Steady::time_point now);
  void cut(Device& d, bool level);
  void shutdown_all();

  Shared& shared_;
  int handshake_limit_;
  int handshakes_{0};
  std::mt19937_64 rng_;
  int epfd_{-1};
  EventFd wake_;
  std::thread thread_;
  std::unordered_map<std::uint32_t, std::uint32_t> local_of_;
  std::vector<std::uint32_t> globals_;
  std::vector<Identity> identities_;
  std::vector<mosquitto*> handles_;  // owned until build() hands each to its Device
  std::vector<std::unique_ptr<Device>> devices_;
  std::vector<Action> actions_;
  std::size_t next_action_{0};
  std::priority_queue<TimerEntry, std::vector<TimerEntry>, std::greater<>> timers_;
  std::deque<std::uint32_t> connect_queue_;
  std::atomic<std::int64_t> pending_{0};
};

// ---- libmosquitto callbacks ----------------------------------------------------------

void cb_connect(mosquitto* /*m*/, void* self, int rc, int /*flags*/,
                const mosquitto_property* /*props*/) {
  auto* d = static_cast<Device*>(self);
  d->worker.on_connect(*d, rc);
}

void cb_message(mosquitto* /*m*/, void* self, const mosquitto_message* msg,
                const mosquitto_property* /*props*/) {
  auto* d = static_cast<Device*>(self);
  d->worker.on_message(*d, msg);
}

// ---- Device --------------------------------------------------------------------------

Result<int> Device::publish(const std::string& topic, std::string_view payload, int qos,
                            bool retain) {
  if (state != State::connected) return fail(Errc::unavailable, "not connected");
  int mid = 0;
  const int rc = mosquitto_publish_v5(mosq, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                      payload.data(), qos, retain, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    shared.counters.publish_errors.fetch_add(1, std::memory_order_relaxed);
    return fail(Errc::unavailable, mosquitto_strerror(rc));
  }
  if (topic == update_topic) {
    shared.counters.published.fetch_add(1, std::memory_order_relaxed);
    const json doc = json::parse(payload, nullptr, false);
    if (doc.is_object() && doc.contains("clientToken") && doc["clientToken"].is_string()) {
      const auto token = doc["clientToken"].get<std::string>();
      Sent s{Steady::now(), 0, false};
      const json* reported = nullptr;
      if (doc.contains("state") && doc["state"].is_object() && doc["state"].contains("reported")) {
        reported = &doc["state"]["reported"];
      }
      if (reported != nullptr && reported->is_object()) {
        s.observed_at = reported->value("observedAt", std::int64_t{0});
        s.off = reported->value("status", "") == "off";
        if (reported->contains("battery") && !reported->contains("status")) {
          shared.counters.battery_reports.fetch_add(1, std::memory_order_relaxed);
        }
      }
      if (!sent.insert_or_assign(token, s).second) {
        shared.counters.republished.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  return mid;
}

// ---- Worker --------------------------------------------------------------------------

Result<void> Worker::build() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return fail(Errc::io, "epoll_create1 failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_.fd(), &ev) != 0) {
    return fail(Errc::io, "epoll_ctl(eventfd) failed");
  }
  const FleetOptions& o = shared_.options;
  devices_.reserve(identities_.size());
  for (std::size_t i = 0; i < identities_.size(); ++i) {
    auto ctx = make_ssl_ctx(shared_.trust, o.host, identities_[i]);
    if (!ctx) return Unexpected{ctx.error()};
    auto d = std::make_unique<Device>(shared_, *this, globals_[i], std::move(identities_[i]));
    d->mosq = std::exchange(handles_[i], nullptr);
    mosquitto_user_data_set(d->mosq, d.get());
    mosquitto_int_option(d->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(d->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(d->mosq, 20);
    // Our context as it is (libmosquitto takes a reference): its defaults would want
    // certificate files.
    mosquitto_int_option(d->mosq, MOSQ_OPT_SSL_CTX_WITH_DEFAULTS, 0);
    mosquitto_void_option(d->mosq, MOSQ_OPT_SSL_CTX, ctx->get());
    const std::string presence = protocol::presence_topic(d->id);
    mosquitto_will_set(d->mosq, presence.c_str(), 12, "disconnected", 1, true);
    mosquitto_connect_v5_callback_set(d->mosq, &cb_connect);
    mosquitto_message_v5_callback_set(d->mosq, &cb_message);

    if (o.outbox_dir.empty()) {
      auto box = edge::Outbox::in_memory(edge::Outbox::kDefaultCapacity, shared_.seq_base);
      if (!box) return Unexpected{box.error()};
      d->outbox.emplace(std::move(*box));
    } else {
      auto box = edge::Outbox::open(o.outbox_dir / d->id);
      if (!box) return Unexpected{box.error()};
      d->outbox.emplace(std::move(*box));
    }
    edge::EdgeSettings settings;
    settings.device_id = d->id;
    settings.broker_host = o.host;
    settings.broker_port = o.port;
    settings.keepalive_s = o.keepalive_s;
    settings.power_source = "sim";
    settings.battery_gauge = "sim";
    settings.tunables.debounce_ms = o.debounce_ms;
    settings.tunables.battery_poll_battery_s = 5;
    if (o.scenario.kind == ScenarioKind::drain) settings.shutdown_percent = o.shutdown_percent;
    d->agent.emplace(std::move(settings), edge::AgentInfo{"dag-sim", shared_.boot_id},
                     shared_.clock, d->line, d->gauge, *d->outbox, *d);
    Device* raw = d.get();
    d->agent->set_shutdown_hook([this, raw] { agent_shutdown(*raw); });
    devices_.push_back(std::move(d));
  }
  identities_.clear();
  identities_.shrink_to_fit();
  for (Action& a : actions_) a.device = local_of_.at(a.device);
  return ok();
}

void Worker::schedule_connect(Device& d, Steady::time_point at) {
  d.connect_due = at;
  timers_.push({at, local_of_.at(d.index), TimerEntry::Kind::connect});
}

void Worker::reschedule_agent(Device& d, Steady::time_point now) {
  auto due = std::max(d.agent->next_deadline(), now + milliseconds{1});
  if (due < d.agent_due) {
    d.agent_due = due;
    timers_.push({due, local_of_.at(d.index), TimerEntry::Kind::agent});
  }
}

void Worker::start_connect(Device& d) {
  if (d.dead || d.dying || d.net_down || d.state != Device::State::idle) return;
  if (shared_.current() == Phase::stop) return;
  const FleetOptions& o = shared_.options;
  const int rc = d.started ? mosquitto_reconnect_async(d.mosq)
                           : mosquitto_connect_async(d.mosq, o.host.c_str(), o.port, o.keepalive_s);
  shared_.counters.attempts.fetch_add(1, std::memory_order_relaxed);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_CONN_PENDING) {
    shared_.counters.connect_failures.fetch_add(1, std::memory_order_relaxed);
    log::debug("sim.connect_failed", {{"device", d.id}, {"error", mosquitto_strerror(rc)}});
    ++reasons[std::string("connect: ") + mosquitto_strerror(rc)];
    // A socket may have been made and closed: nothing is registered yet.
    d.fd = -1;
    schedule_connect(
        d, Steady::now() + mqtt::backoff_delay(d.attempt++, kBackoffInitial, kBackoffMax, rng_));
    return;
  }
  d.started = true;
  d.state = Device::State::connecting;
  d.connect_started = Steady::now();
  ++handshakes_;
  after(d);
}

// Registers the socket as it is now and notices a closed one. Called after every call
// into libmosquitto for this dag, before any other socket can be made on this thread,
// so a closed descriptor's number cannot have been reused yet.
void Worker::after(Device& d, int rc) {
  const int s = mosquitto_socket(d.mosq);
  if (s >= 0 && rc != MOSQ_ERR_SUCCESS && d.state != Device::State::idle) {
    abandon(d, rc == MOSQ_ERR_ERRNO ? std::string("socket error") : mosquitto_strerror(rc));
    return;
  }
  if (s != d.fd) {
    if (d.fd >= 0) (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, d.fd, nullptr);
    d.fd = -1;
    d.events = 0;
  }
  if (s < 0) {
    if (d.state != Device::State::idle) lost(d);
    return;
  }
  std::uint32_t want = EPOLLIN;
  if (SSL* ssl = mqtt::handshake_of(d.mosq); ssl != nullptr) {
    if (SSL_want_write(ssl) != 0) want |= EPOLLOUT;
  } else if (mosquitto_want_write(d.mosq)) {
    want |= EPOLLOUT;
  }
  if (d.fd < 0) {
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = &d;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, s, &ev) == 0) {
      d.fd = s;
      d.events = want;
    }
  } else if (want != d.events) {
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = &d;
    (void)::epoll_ctl(epfd_, EPOLL_CTL_MOD, s, &ev);
    d.events = want;
  }
}

// libmosquitto leaves the socket of a failed TLS handshake open, and its error state
// would wake epoll for ever: stop watching it and start over (the next connect, or
// mosquitto_destroy, closes it).
void Worker::abandon(Device& d, const std::string& reason) {
  log::debug("sim.connection_abandoned", {{"device", d.id}, {"reason", reason}});
  ++reasons[reason];
  if (d.fd >= 0) (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, d.fd, nullptr);
  d.fd = -1;
  d.events = 0;
  lost(d);
}

// The connection ends without DISCONNECT, as when a router or a battery dies: the
// broker sees the socket close and publishes the will. Whether the dag comes back is up
// to its flags (net_down, dead) and the phase.
void Worker::drop(Device& d) {
  if (d.fd >= 0) {
    ::shutdown(d.fd, SHUT_RDWR);
    (void)::epoll_ctl(epfd_, EPOLL_CTL_DEL, d.fd, nullptr);
  }
  d.fd = -1;
  d.events = 0;
  if (d.state != Device::State::idle) lost(d);
}

void Worker::lost(Device& d) {
  const bool stopping = shared_.current() == Phase::stop;
  if (d.state == Device::State::connecting) {
    --handshakes_;
    if (!stopping && !d.net_down && !d.dead) {
      shared_.counters.connect_failures.fetch_add(1, std::memory_order_relaxed);
    }
  } else if (d.state == Device::State::connected) {
    shared_.counters.connected.fetch_sub(1, std::memory_order_relaxed);
    if (!stopping && !d.net_down && !d.dead) {
      shared_.counters.disconnects.fetch_add(1, std::memory_order_relaxed);
    }
  }
  const bool was_connected = d.state == Device::State::connected;
  d.state = Device::State::idle;
  if (was_connected) {
    d.agent->on_transport({edge::TransportEvent::Kind::disconnected, {}, {}, 0});
  }
  if (!stopping && !d.net_down && !d.dead && !d.dying) {
    schedule_connect(
        d, Steady::now() + mqtt::backoff_delay(d.attempt++, kBackoffInitial, kBackoffMax, rng_));
  }
}

void Worker::on_connect(Device& d, int rc) {
  if (rc != 0) {
    log::warn("sim.connect_refused", {{"device", d.id}, {"reason", mosquitto_reason_string(rc)}});
    ++reasons[std::string("refused: ") + mosquitto_reason_string(rc)];
    return;  // libmosquitto closes the socket; after() sees it
  }
  if (d.state == Device::State::connecting) {
    --handshakes_;
    handshake_ms.push_back(ms_between(d.connect_started, Steady::now()));
  }
  d.state = Device::State::connected;
  d.attempt = 0;
  shared_.counters.connects.fetch_add(1, std::memory_order_relaxed);
  shared_.counters.connected.fetch_add(1, std::memory_order_relaxed);
  const auto filters = protocol::device_subscriptions(d.id);
  std::vector<char*> subs;
  subs.reserve(filters.size());
  for (const auto& f : filters) subs.push_back(const_cast<char*>(f.c_str()));  // NOLINT
  mosquitto_subscribe_multiple(d.mosq, nullptr, static_cast<int>(subs.size()), subs.data(), 1, 0,
                               nullptr);
  d.agent->on_transport({edge::TransportEvent::Kind::connected, {}, {}, 0});
}

void Worker::on_message(Device& d, const mosquitto_message* msg) {
  edge::TransportEvent ev;
  ev.kind = edge::TransportEvent::Kind::message;
  ev.topic = msg->topic;
  ev.payload.assign(static_cast<const char*>(msg->payload),
                    static_cast<std::size_t>(std::max(0, msg->payloadlen)));
  const bool accepted = ev.topic == d.accepted_topic;
  if (accepted || ev.topic == d.rejected_topic) {
    const json doc = json::parse(ev.payload, nullptr, false);
    std::string token;
    if (doc.is_object() && doc.contains("clientToken") && doc["clientToken"].is_string()) {
      token = doc["clientToken"].get<std::string>();
    }
    if (accepted) {
      shared_.counters.accepted.fetch_add(1, std::memory_order_relaxed);
    } else {
      shared_.counters.rejected.fetch_add(1, std::memory_order_relaxed);
      if (doc.is_object() && doc.value("code", 0) == 429) {
        shared_.counters.throttled.fetch_add(1, std::memory_order_relaxed);
      }
    }
    const auto it = d.sent.find(token);
    if (accepted && it != d.sent.end() && !token.empty() && token[0] == 'e') {
      const auto now = Steady::now();
      const std::int64_t now_ms = shared_.clock.unix_ms();
      const double publish_ms = ms_between(it->second.at, now);
      if (!d.ready) {
        d.ready = true;
        shared_.counters.ready.fetch_add(1, std::memory_order_relaxed);
      }
      if (shared_.t0_ns.load() != 0 && it->second.observed_at >= shared_.t0_unix_ms) {
        publish_to_accepted_ms.push_back(publish_ms);
        observed_to_accepted_ms.push_back(static_cast<double>(now_ms - it->second.observed_at));
        if (it->second.off && d.cut_unix_ms != 0 && d.cut_accepted_unix_ms == 0 &&
            it->second.observed_at >= d.cut_unix_ms) {
          d.cut_observed_at = it->second.observed_at;
          d.cut_accepted_unix_ms = now_ms;
          d.cut_publish_ms = publish_ms;
        }
      }
    }
    if (it != d.sent.end()) d.sent.erase(it);
  }
  d.agent->on_transport(ev);
}

void Worker::agent_shutdown(Device& d) {
  // The agent has published shuttingDown; give it a moment on the wire, then go dark
  // as a dag whose battery ran out does (no DISCONNECT: the broker sends the will).
  d.dying = true;
  shared_.counters.shutdowns.fetch_add(1, std::memory_order_relaxed);
  d.die_due = Steady::now() + kDieDelay;
  timers_.push({d.die_due, local_of_.at(d.index), TimerEntry::Kind::die});
}

void Worker::cut(Device& d, bool level) {
  d.line.set(level);
  if (!level && d.cut_unix_ms == 0) d.cut_unix_ms = shared_.clock.unix_ms();
  d.agent->on_line_events({edge::LineEvent{level}});
}

void Worker::apply(Device& d, const Action& a) {
  switch (a.kind) {
    case ActionKind::power_off: cut(d, false); break;
    case ActionKind::power_on: cut(d, true); break;
    case ActionKind::drain_start:
      // Empty at 80 % of the scenario, so that the agents' 5 s gauge polls see the
      // shutdown level while it still runs.
      d.gauge.start(Steady::now(), shared_.options.scenario.duration_ms * 8 / 10);
      cut(d, false);
      break;
    case ActionKind::network_down:
      d.net_down = true;
      d.connect_due = Steady::time_point::max();
      // The socket goes away under libmosquitto's feet, as with a dead router: no
      // DISCONNECT, so the broker publishes the will.
      drop(d);
      break;
    case ActionKind::network_up:
      d.net_down = false;
      d.attempt = 0;
      if (d.state == Device::State::idle) connect_queue_.push_back(local_of_.at(d.index));
      break;
  }
}

void Worker::sweep(Steady::time_point now) {
  std::int64_t pending = 0;
  for (auto& dp : devices_) {
    Device& d = *dp;
    if (!d.dead) pending += static_cast<std::int64_t>(d.outbox->pending().size());
    if (d.state == Device::State::connected) {
      mosquitto_loop_misc(d.mosq);
      after(d);
    } else if (d.state == Device::State::connecting &&
               now - d.connect_started > kHandshakeTimeout) {
      abandon(d, "handshake timeout");
    }
  }
  pending_.store(pending);
}

void Worker::shutdown_all() {
  for (auto& dp : devices_) {
    Device& d = *dp;
    if (d.state == Device::State::connected) {
      mosquitto_disconnect(d.mosq);  // clean: the broker discards the will
      after(d);
    } else if (d.state == Device::State::connecting) {
      drop(d);
    }
  }
  // Let the DISCONNECTs (and the closing of handshakes) go out, bounded.
  const auto deadline = Steady::now() + std::chrono::seconds{3};
  std::vector<epoll_event> evs(256);
  for (;;) {
    bool open = false;
    for (auto& dp : devices_) open = open || dp->fd >= 0;
    if (!open || Steady::now() >= deadline) break;
    const int n = ::epoll_wait(epfd_, evs.data(), static_cast<int>(evs.size()), 50);
    for (int i = 0; i < n; ++i) {
      auto* d = static_cast<Device*>(evs[static_cast<std::size_t>(i)].data.ptr);
      if (d == nullptr) {
        wake_.drain();
        continue;
      }
      if ((evs[static_cast<std::size_t>(i)].events & EPOLLOUT) != 0U)
        after(*d, mosquitto_loop_write(d->mosq, 1));
      if (d->fd >= 0) after(*d, mosquitto_loop_read(d->mosq, 1));
    }
  }
}

void Worker::run() {
  const auto started = Steady::now();
  for (std::uint32_t i = 0; i < devices_.size(); ++i) {
    devices_[i]->agent->start();
    reschedule_agent(*devices_[i], started);
    connect_queue_.push_back(i);
  }
  std::vector<epoll_event> evs(512);
  auto next_sweep = started + kSweep;
  while (shared_.current() != Phase::stop) {
    auto now = Steady::now();
    // The scenario's actions, once it started.
    if (const std::int64_t t0 = shared_.t0_ns.load(); t0 != 0) {
      const Steady::time_point start{std::chrono::nanoseconds{t0}};
      while (next_action_ < actions_.size() &&
             start + milliseconds{actions_[next_action_].at_ms} <= now) {
        Device& d = *devices_[actions_[next_action_].device];
        apply(d, actions_[next_action_]);
        after(d);
        reschedule_agent(d, now);
        ++next_action_;
      }
    }
    while (!timers_.empty() && timers_.top().at <= now) {
      const TimerEntry t = timers_.top();
      timers_.pop();
      Device& d = *devices_[t.local];
      switch (t.kind) {
        case TimerEntry::Kind::agent:
          if (t.at != d.agent_due) break;  // superseded
          d.agent_due = Steady::time_point::max();
          d.agent->on_timer();
          after(d);
          reschedule_agent(d, now);
          break;
        case TimerEntry::Kind::connect:
          if (t.at != d.connect_due) break;
          d.connect_due = Steady::time_point::max();
          connect_queue_.push_back(t.local);
          break;
        case TimerEntry::Kind::die:
          d.dead = true;
          d.dying = false;
          drop(d);
          break;
      }
    }
    while (handshakes_ < handshake_limit_ && !connect_queue_.empty()) {
      Device& d = *devices_[connect_queue_.front()];
      connect_queue_.pop_front();
      start_connect(d);
    }
    if (now >= next_sweep) {
      sweep(now);
      next_sweep = now + kSweep;
    }

    // Sleep until the next thing to do, or a socket, or a wake-up.
    auto next = next_sweep;
    if (!timers_.empty()) next = std::min(next, timers_.top().at);
    if (const std::int64_t t0 = shared_.t0_ns.load(); t0 != 0 && next_action_ < actions_.size()) {
      next = std::min(next, Steady::time_point{std::chrono::nanoseconds{t0}} +
                                milliseconds{actions_[next_action_].at_ms});
    }
    int timeout = 0;
    if (connect_queue_.empty() || handshakes_ >= handshake_limit_) {
      now = Steady::now();
      timeout =
          next <= now ? 0 : static_cast<int>(std::chrono::ceil<milliseconds>(next - now).count());
    }
    const int n = ::epoll_wait(epfd_, evs.data(), static_cast<int>(evs.size()), timeout);
    now = Steady::now();
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = evs[static_cast<std::size_t>(i)];
      auto* d = static_cast<Device*>(ev.data.ptr);
      if (d == nullptr) {
        wake_.drain();
        continue;
      }
      if ((ev.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0U) {
        after(*d, mosquitto_loop_read(d->mosq, 1));
      }
      if ((ev.events & EPOLLOUT) != 0U && d->fd >= 0) {
        after(*d, mqtt::handshake_of(d->mosq) != nullptr ? mosquitto_loop_read(d->mosq, 1)
                                                         : mosquitto_loop_write(d->mosq, 1));
      }
      reschedule_agent(*d, now);
    }
  }
  shutdown_all();
}

// ---- the run ---------------------------------------------------------------------------

// libmosquitto gives every client a socket pair for waking its own loop thread, which
// an external loop never uses: 2 of the 3 descriptors a dag would cost, so 10,000 dags
// would not fit a 20,000 limit. mosquitto_new only warns when it cannot make the pair,
// so the handles are made while the process may open no descriptor at all; the pair is
// then absent and libmosquitto skips it. Runs before any other thread of ours exists.
Result<std::vector<mosquitto*>> make_handles(const std::vector<Identity>& devices) {
  std::vector<mosquitto*> out;
  out.reserve(devices.size());
  rlimit saved{};
  const bool limited = ::getrlimit(RLIMIT_NOFILE, &saved) == 0;
  if (limited) {
    rlimit none = saved;
    none.rlim_cur = 0;
    (void)::setrlimit(RLIMIT_NOFILE, &none);
  }
  for (const Identity& id : devices) {
    mosquitto* m = mosquitto_new(id.id.c_str(), true, nullptr);
    if (m == nullptr) break;
    out.push_back(m);
  }
  if (limited) (void)::setrlimit(RLIMIT_NOFILE, &saved);
  if (out.size() != devices.size()) {
    for (mosquitto* m : out) mosquitto_destroy(m);
    return fail(Errc::internal, "mosquitto_new failed");
  }
  return out;
}

struct Cpu {
  double user_s{0};
  double sys_s{0};
};
Cpu cpu_now() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {s(ru.ru_utime), s(ru.ru_stime)};
}

double round1(double v) {
  return std::round(v * 10) / 10;
}

std::string random_boot_id() {
  std::random_device rd;
  return fmt::format("{:08x}-{:04x}-4{:03x}-8{:03x}-{:08x}{:04x}", rd(), rd() & 0xFFFFU,
                     rd() & 0xFFFU, rd() & 0xFFFU, rd(), rd() & 0xFFFFU);
}

void report_progress(const FleetOptions& options, const Counters& c, std::uint32_t n,
                     Steady::time_point run_start, const char* phase) {
  if (!options.progress) return;
  Progress p;
  p.elapsed_s = ms_between(run_start, Steady::now()) / 1000.0;
  p.phase = phase;
  p.devices = n;
  p.connected = c.connected.load();
  p.ready = c.ready.load();
  p.published = c.published.load();
  p.accepted = c.accepted.load();
  p.rejected = c.rejected.load();
  p.errors = c.connect_failures.load() + c.disconnects.load() + c.publish_errors.load();
  options.progress(p);
}

struct Timings {
  std::optional<double> all_connected_s;
  double ready_s{0};
  double drain_s{0};
  double wall_s{0};
  double linger_s{0};
  Cpu cpu_start{};
  Cpu cpu_connected{};
  Cpu cpu_end{};
  std::int64_t published_before{0};
  std::int64_t accepted_before{0};
  std::int64_t pending{0};
  bool connect_timed_out{false};
  bool drained{false};
  bool interrupted{false};
};

Result<std::vector<std::unique_ptr<Worker>>> make_workers(Shared& shared,
                                                          const Credentials& credentials,
                                                          const Plan& plan, unsigned threads) {
  const FleetOptions& options = shared.options;
  const auto n = static_cast<std::uint32_t>(credentials.devices.size());
  std::vector<std::unique_ptr<Worker>> workers;
  for (unsigned t = 0; t < threads; ++t) {
    const int share =
        (options.connect_concurrency + static_cast<int>(threads) - 1) / static_cast<int>(threads);
    workers.push_back(std::make_unique<Worker>(shared, t, share));
  }
  {
    auto devices = credentials.devices;  // the workers take their share
    auto handles = make_handles(devices);
    if (!handles) return Unexpected{handles.error()};
    for (std::uint32_t i = 0; i < n; ++i) {
      workers[i % threads]->assign(i, std::move(devices[i]), (*handles)[i]);
    }
  }
  for (const Action& a : plan.actions) workers[a.device % threads]->add_action(a);
  {
    std::vector<std::thread> builders;
    std::vector<Result<void>> built(threads);
    for (unsigned t = 0; t < threads; ++t) {
      builders.emplace_back([&, t] { built[t] = workers[t]->build(); });
    }
    for (auto& b : builders) b.join();
    for (auto& r : built) {
      if (!r) return Unexpected{r.error()};
    }
  }

  return workers;
}

struct Collected {
  std::vector<double> handshake;
  std::vector<double> publish_lat;
  std::vector<double> observed_lat;
  std::vector<double> cut_lat;
  std::vector<double> cut_publish;
  std::int64_t cut{0};
  std::int64_t cut_accepted{0};
  std::int64_t dead{0};
  std::map<std::string, std::int64_t> reasons;
};

// Gathers the workers' samples (after they stopped) and writes the per-device file.
Collected collect(const FleetOptions& options, std::vector<std::unique_ptr<Worker>>& workers) {
  Collected k;
  std::ofstream per_device;
  if (!options.per_device.empty()) {
    per_device.open(options.per_device, std::ios::trunc);
    if (!per_device)
      log::error("sim.per_device_unwritable", {{"path", options.per_device.string()}});
  }
  for (auto& w : workers) {
    for (const auto& [why, count] : w->reasons) k.reasons[why] += count;
    k.handshake.insert(k.handshake.end(), w->handshake_ms.begin(), w->handshake_ms.end());
    k.publish_lat.insert(k.publish_lat.end(), w->publish_to_accepted_ms.begin(),
                         w->publish_to_accepted_ms.end());
    k.observed_lat.insert(k.observed_lat.end(), w->observed_to_accepted_ms.begin(),
                          w->observed_to_accepted_ms.end());
    for (auto& dp : w->devices()) {
      const Device& d = *dp;
      k.dead += d.dead ? 1 : 0;
      if (d.cut_unix_ms == 0) continue;
      ++k.cut;
      json line = {{"id", d.id}, {"cutAt", d.cut_unix_ms}};
      if (d.cut_accepted_unix_ms != 0) {
        ++k.cut_accepted;
        const auto lat = static_cast<double>(d.cut_accepted_unix_ms - d.cut_observed_at);
        k.cut_lat.push_back(lat);
        k.cut_publish.push_back(d.cut_publish_ms);
        line["observedAt"] = d.cut_observed_at;
        line["acceptedAt"] = d.cut_accepted_unix_ms;
        line["observedToAcceptedMs"] = lat;
        line["publishToAcceptedMs"] = round1(d.cut_publish_ms);
      } else {
        line["acceptedAt"] = nullptr;
      }
      if (per_device) per_device << line.dump() << '\n';
    }
  }
  return k;
}

json summarize(const FleetOptions& options, const Plan& plan, const Counters& c,
               std::vector<std::unique_ptr<Worker>>& workers, std::uint32_t n, const Timings& t) {
  const auto threads = static_cast<unsigned>(workers.size());
  // The summary.
  Collected k = collect(options, workers);
  const double connect_cpu =
      (t.cpu_connected.user_s + t.cpu_connected.sys_s) - (t.cpu_start.user_s + t.cpu_start.sys_s);
  const double ramp_s = t.all_connected_s.value_or(t.ready_s);
  const double total_cpu =
      (t.cpu_end.user_s + t.cpu_end.sys_s) - (t.cpu_start.user_s + t.cpu_start.sys_s);
  json summary = {
      {"scenario", to_string(options.scenario.kind)},
      {"devices", n},
      {"selected", plan.selected.size()},
      {"percent", options.scenario.percent},
      {"seed", options.scenario.seed},
      {"durationS", static_cast<double>(options.scenario.duration_ms) / 1000.0},
      {"threads", threads},
      {"connect",
       {{"attempts", c.attempts.load()},
        {"connected", c.connects.load()},
        {"failures", c.connect_failures.load()},
        {"allConnectedS", t.all_connected_s ? json(round1(*t.all_connected_s)) : json(nullptr)},
        {"perSecond",
         ramp_s > 0
             ? round1(static_cast<double>(std::min<std::int64_t>(c.connects.load(), n)) / ramp_s)
             : 0.0},
        {"cpuS", round1(connect_cpu)},
        {"cpuPercent", ramp_s > 0 ? round1(100.0 * connect_cpu / ramp_s) : 0.0},
        {"handshakeMs", distribution(k.handshake)},
        {"readyS", round1(t.ready_s)},
        {"timedOut", t.connect_timed_out}}},
      {"reports",
       {{"published", c.published.load()},
        {"publishedInScenario", c.published.load() - t.published_before},
        {"republished", c.republished.load()},
        {"accepted", c.accepted.load()},
        {"acceptedInScenario", c.accepted.load() - t.accepted_before},
        {"rejected", c.rejected.load()},
        {"throttled", c.throttled.load()},
        {"battery", c.battery_reports.load()}}},
      {"latencyMs",
       {{"publishToAccepted", distribution(k.publish_lat)},
        {"observedToAccepted", distribution(k.observed_lat)}}},
      {"cut",
       {{"devices", k.cut},
        {"accepted", k.cut_accepted},
        {"missing", k.cut - k.cut_accepted},
        {"observedToAcceptedMs", distribution(k.cut_lat)},
        {"publishToAcceptedMs", distribution(k.cut_publish)}}},
      {"drain",
       {{"t.drained", t.drained}, {"pendingAtEnd", t.pending}, {"seconds", round1(t.drain_s)}}},
      {"lingerS", round1(t.linger_s)},
      {"shutdowns", c.shutdowns.load()},
      {"dead", k.dead},
      {"errors",
       {{"connectFailures", c.connect_failures.load()},
        {"disconnects", c.disconnects.load()},
        {"publishErrors", c.publish_errors.load()},
        {"rejected", c.rejected.load()},
        {"reasons", k.reasons}}},
      {"cpu",
       {{"userS", round1((t.cpu_end.user_s - t.cpu_start.user_s))},
        {"sysS", round1((t.cpu_end.sys_s - t.cpu_start.sys_s))},
        {"wallS", round1(t.wall_s)},
        {"percent", t.wall_s > 0 ? round1(100.0 * total_cpu / t.wall_s) : 0.0}}},
      {"interrupted", t.interrupted},
  };
  const bool expect_cuts = options.scenario.kind == ScenarioKind::storm ||
                           options.scenario.kind == ScenarioKind::drain ||
                           options.scenario.kind == ScenarioKind::network ||
                           options.scenario.kind == ScenarioKind::rolling;
  summary["ok"] = !t.interrupted && !t.connect_timed_out && t.drained &&
                  c.rejected.load() == c.throttled.load() &&
                  (!expect_cuts || k.cut_accepted == k.cut);
  return summary;
}

}  // namespace

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(values.size()));
  const auto idx =
      static_cast<std::size_t>(std::clamp(rank, 1.0, static_cast<double>(values.size())));
  return values[idx - 1];
}

json distribution(std::vector<double>& values) {
  return {{"count", values.size()},
          {"p50", round1(percentile(values, 50))},
          {"p90", round1(percentile(values, 90))},
          {"p99", round1(percentile(values, 99))},
          {"max", round1(values.empty() ? 0.0 : *std::max_element(values.begin(), values.end()))}};
}

std::string format_progress(const Progress& p) {
  return fmt::format(
      "dag-sim t={:.1f}s {} connected={}/{} ready={} published={} accepted={} rejected={} "
      "errors={}",
      p.elapsed_s, p.phase, p.connected, p.devices, p.ready, p.published, p.accepted, p.rejected,
      p.errors);
}

namespace {

// After the drain, every dag still connected and nothing planned: waits for
// options.linger or the interrupt. The run's wall and CPU figures end where it begins.
// Returns whether it lingered.
bool linger(const FleetOptions& options, Steady::time_point run_start, Timings& t,
            const std::function<void()>& progress) {
  if (options.linger.count() <= 0 || t.interrupted) return false;
  t.wall_s = ms_between(run_start, Steady::now()) / 1000.0;
  t.cpu_end = cpu_now();
  const auto start = Steady::now();
  progress();
  if (options.on_lingering) options.on_lingering();
  const auto end = start + options.linger;
  while ((options.interrupt == nullptr || !options.interrupt->load()) && Steady::now() < end) {
    std::this_thread::sleep_for(milliseconds{50});
  }
  t.linger_s = ms_between(start, Steady::now()) / 1000.0;
  return true;
}

}  // namespace

Result<json> run_fleet(const FleetOptions& options, const Credentials& credentials) {
  const auto n = static_cast<std::uint32_t>(credentials.devices.size());
  if (n == 0) return fail(Errc::invalid_argument, "no devices");
  if (options.threads < 1 || options.threads > 64)
    return fail(Errc::invalid_argument, "threads must be 1..64");
  if (options.connect_concurrency < 1)
    return fail(Errc::invalid_argument, "connect concurrency must be at least 1");
  auto plan = make_plan(options.scenario, n);
  if (!plan) return Unexpected{plan.error()};
  auto trust = make_trust_store(credentials.broker_ca_pem);
  if (!trust) return Unexpected{trust.error()};
  mosquitto_lib_init();

  Shared shared(options);
  shared.trust = trust->get();
  shared.boot_id = random_boot_id();
  // In-memory outboxes start their seq at the run's start (epoch ms): above every seq an
  // earlier run sent, as a real dag's durable counter would be.
  shared.seq_base = static_cast<std::uint64_t>(shared.clock.unix_ms());

  const unsigned threads = std::min<unsigned>(options.threads, n);
  auto made = make_workers(shared, credentials, *plan, threads);
  if (!made) return Unexpected{made.error()};
  auto& workers = *made;

  const auto run_start = Steady::now();
  Timings t;
  t.cpu_start = cpu_now();
  for (auto& w : workers) w->start();

  auto progress = [&](const char* phase) {
    report_progress(options, shared.counters, n, run_start, phase);
  };

  auto interrupted = [&] { return options.interrupt != nullptr && options.interrupt->load(); };
  auto wake_all = [&] {
    for (auto& w : workers) w->wake();
  };
  constexpr auto kTick = milliseconds{50};

  // Phase 1: everybody connected, and every dag's first report accepted.
  auto next_progress = run_start + std::chrono::seconds{1};
  const auto connect_deadline = run_start + options.connect_timeout;
  while (!interrupted()) {
    const auto now = Steady::now();
    if (!t.all_connected_s && shared.counters.connects.load() >= n &&
        shared.counters.connected.load() >= n) {
      t.all_connected_s = ms_between(run_start, now) / 1000.0;
      t.cpu_connected = cpu_now();
    }
    if (shared.counters.ready.load() >= n) break;
    if (now >= connect_deadline) {
      t.connect_timed_out = true;
      break;
    }
    if (now >= next_progress) {
      progress("connect");
      next_progress += std::chrono::seconds{1};
    }
    std::this_thread::sleep_for(kTick);
  }
  t.ready_s = ms_between(run_start, Steady::now()) / 1000.0;
  if (!t.all_connected_s) t.cpu_connected = cpu_now();
  t.published_before = shared.counters.published.load();
  t.accepted_before = shared.counters.accepted.load();

  // Phase 2: the scenario.
  const auto t0 = Steady::now() + milliseconds{100};
  shared.t0_unix_ms = shared.clock.unix_ms() + 100;
  shared.phase = static_cast<int>(Phase::scenario);
  shared.t0_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
  wake_all();
  const auto scenario_end = t0 + milliseconds{options.scenario.duration_ms};
  while (!interrupted() && Steady::now() < scenario_end) {
    if (Steady::now() >= next_progress) {
      progress("scenario");
      next_progress += std::chrono::seconds{1};
    }
    std::this_thread::sleep_for(kTick);
  }

  // Phase 3: every outbox empty (after the last debounce window could have closed).
  shared.phase = static_cast<int>(Phase::drain);
  const auto drain_start = Steady::now();
  const auto settle = drain_start + milliseconds{options.debounce_ms} + 2 * kSweep;
  const auto drain_deadline = drain_start + options.drain_timeout;
  while (!interrupted()) {
    const auto now = Steady::now();
    t.pending = 0;
    for (auto& w : workers) t.pending += w->pending();
    if (now >= settle && t.pending == 0) {
      t.drained = true;
      break;
    }
    if (now >= drain_deadline) break;
    if (now >= next_progress) {
      progress("drain");
      next_progress += std::chrono::seconds{1};
    }
    std::this_thread::sleep_for(kTick);
  }
  t.drain_s = ms_between(drain_start, Steady::now()) / 1000.0;
  t.interrupted = interrupted();

  const bool lingered = linger(options, run_start, t, [&] { progress("linger"); });
  progress("stop");

  // Phase 4: clean disconnects.
  shared.phase = static_cast<int>(Phase::stop);
  wake_all();
  for (auto& w : workers) w->join();
  if (!lingered) {
    t.wall_s = ms_between(run_start, Steady::now()) / 1000.0;
    t.cpu_end = cpu_now();
  }
  return summarize(options, *plan, shared.counters, workers, n, t);
}

}  // namespace dag::sim
