#include "dag/dagd/daemon.hpp"

#include <dlfcn.h>
#include <sys/types.h>  // ssize_t

#include <csignal>
#include <cstddef>
#include <functional>
#include <thread>

#include "dag/api/api.hpp"
#include "dag/api/metrics.hpp"
#include "dag/api/server.hpp"
#include "dag/common/clock.hpp"
#include "dag/common/encoding.hpp"
#include "dag/common/files.hpp"
#include "dag/common/log.hpp"
#include "dag/common/thread_name.hpp"
#include "dag/ingest/ingest.hpp"
#include "dag/mqtt/client.hpp"
#include "dag/notify/email.hpp"
#include "dag/notify/ntfy.hpp"
#include "dag/notify/webhook.hpp"
#include "dag/notify/worker.hpp"
#include "dag/shadow/service.hpp"
#include "dag/store/sqlite.hpp"

namespace dag::dagd {
namespace {

// Which malloc serves this process, for the start-up log: a release dagd is linked with
// jemalloc (DAG_JEMALLOC), a sanitizer build is not. Asked at run time, so a preloaded
// allocator shows too.
std::string allocator() {
  using Mallctl = int (*)(const char*, void*, std::size_t*, void*, std::size_t);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): dlsym's documented use
  auto* mallctl = reinterpret_cast<Mallctl>(dlsym(RTLD_DEFAULT, "mallctl"));
  if (mallctl == nullptr) return "libc";
  const char* version = nullptr;
  std::size_t size = sizeof(version);
  if (mallctl("version", static_cast<void*>(&version), &size, nullptr, 0) != 0 ||
      version == nullptr) {
    return "jemalloc";
  }
  std::string out = std::string("jemalloc ") + version;
  ssize_t decay = 0;
  size = sizeof(decay);
  if (mallctl("opt.dirty_decay_ms", static_cast<void*>(&decay), &size, nullptr, 0) == 0) {
    out += " dirty_decay_ms:" + std::to_string(decay);
  }
  return out;
}

void log_counters(const shadow::Metrics& m, const ingest::Ingest& in,
                  const notify::WorkerMetrics& n) {
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  log::info("dagd.counters", {{"messages", get(m.messages)},
                              {"updates", get(m.updates_accepted)},
                              {"gets", get(m.gets_accepted)},
                              {"deletes", get(m.deletes_accepted)},
                              {"rejected_400", m.rejects(400)},
                              {"rejected_404", m.rejects(404)},
                              {"rejected_409", m.rejects(409)},
                              {"rejected_413", m.rejects(413)},
                              {"rejected_415", m.rejects(415)},
                              {"rejected_429", m.rejects(429)},
                              {"rejected_500", m.rejects(500)},
                              {"presence", get(m.presence_applied)},
                              {"presence_dropped", get(m.presence_dropped)},
                              {"ignored", get(m.ignored)},
                              {"events", get(m.events)},
                              {"duplicate_events", get(m.duplicate_events)},
                              {"intents", get(m.intents)},
                              {"timers_fired", get(m.timers_fired)},
                              {"batches", get(m.batches)},
                              {"store_errors", get(m.store_errors)},
                              {"publish_failures", in.publish_failures()},
                              {"notifications_sent", get(n.sent)},
                              {"notifications_retried", get(n.retries)},
                              {"notifications_failed", get(n.failed)},
                              {"notifications_deferred", get(n.deferred)},
                              {"verifications_sent", get(n.verifications)}});
}

notify::SmtpOptions smtp_options(const DagdSettings& s) {
  notify::SmtpOptions so;
  so.url = s.smtp_url;
  so.from = s.smtp_from;
  if (!s.smtp_username.empty()) so.username = s.smtp_username;
  if (!s.smtp_password.empty()) so.password = s.smtp_password;
  so.tls = notify::parse_smtp_tls(s.smtp_starttls).value_or(notify::SmtpTls::opportunistic);
  return so;
}

// The notification channels by kind (e-mail only with an SMTP server configured).
struct ChannelSet {
  // The e-mail channel also sends the verification mails.
  struct EmailVerifier final : notify::Verifier {
    notify::EmailChannel* channel{nullptr};
    notify::Delivery send_verification(const std::string& address, const std::string& link,
                                       std::int64_t expires_at_ms) override {
      return channel->send_verification(address, link, expires_at_ms);
    }
  };
  std::unique_ptr<notify::EmailChannel> email;
  EmailVerifier verifier;
  std::unique_ptr<notify::WebhookChannel> webhook;
  std::unique_ptr<notify::NtfyChannel> ntfy;

  [[nodiscard]] notify::Channels view() {
    return {email.get(), email ? &verifier : nullptr, webhook.get(), ntfy.get()};
  }

  // Errors: the e-mail channel's (a malformed SMTP setting).
  static Result<std::unique_ptr<ChannelSet>> make(const DagdSettings& s, const Clock& clock,
                                                  bool log_missing_smtp) {
    auto set = std::make_unique<ChannelSet>();
    if (!s.smtp_url.empty()) {
      auto made = notify::EmailChannel::create(smtp_options(s), clock);
      if (!made) return Unexpected<Error>{made.error()};
      set->email = std::move(made).value();
    } else if (log_missing_smtp) {
      log::warn("smtp.not_configured", {{"effect", "e-mail targets are not notified"}});
    }
    set->verifier.channel = set->email.get();
    notify::HttpOptions http;
    http.allow_private_addresses = s.allow_private_addresses;
    set->webhook = std::make_unique<notify::WebhookChannel>(http, clock);
    set->ntfy = std::make_unique<notify::NtfyChannel>(http);
    return set;
  }
};

notify::WorkerOptions worker_options(const DagdSettings& s) {
  notify::WorkerOptions wo;
  wo.owner = s.client_id;
  wo.coalesce_window = std::chrono::milliseconds{s.coalesce_window_ms};
  wo.concurrency = s.notify_concurrency;
  wo.storm_hold = std::chrono::milliseconds{s.storm_hold_ms};
  wo.storm_backlog = static_cast<std::size_t>(s.storm_backlog);
  wo.storm_rate = static_cast<std::size_t>(s.storm_rate);
  wo.retry_initial = std::chrono::seconds{s.retry_initial_s};
  wo.retry_max = std::chrono::seconds{s.retry_max_s};
  wo.give_up_after = std::chrono::seconds{s.give_up_s};
  wo.public_url = s.public_url;
  return wo;
}

shadow::ServiceOptions shadow_options(const DagdSettings& s) {
  shadow::ServiceOptions o;
  o.rate_per_s = s.rate_per_s;
  o.rate_burst = s.rate_burst;
  o.owner = s.client_id;
  o.timer_lease_ms = std::int64_t{s.timer_lease_s} * 1000;
  return o;
}

mqtt::Options mqtt_options(const DagdSettings& s, const TlsFiles& tls) {
  mqtt::Options mo;
  mo.client_id = s.client_id;
  mo.host = s.mqtt_host;
  mo.port = s.mqtt_port;
  mo.keepalive_s = s.keepalive_s;
  mo.protocol_version = s.protocol_version;
  mo.ca_file = tls.ca.string();
  mo.cert_file = tls.cert.string();
  mo.key_file = tls.key.string();
  mo.clean_session = false;  // QoS 1 messages wait at the broker while dagd is away
  mo.max_inflight = s.max_inflight;
  mo.backoff_max = std::chrono::seconds{30};  // one service, not a fleet: come back soon
  return mo;
}

ingest::IngestOptions ingest_options(const DagdSettings& s) {
  ingest::IngestOptions io;
  io.share_group = s.share_group;
  io.max_batch = static_cast<std::size_t>(s.batch_max);
  io.max_queue = static_cast<std::size_t>(s.queue_max);
  io.timer_poll = std::chrono::milliseconds{s.timer_poll_ms};
  return io;
}

Result<api::ApiOptions> api_options(const DagdSettings& s) {
  api::ApiOptions ao;
  ao.jwt_secret = s.jwt_secret;
  if (ao.jwt_secret.empty()) {
    log::warn("api.jwt_secret_random", {{"effect", "logins end when dagd restarts"}});
    auto key = random_bytes(32);
    if (!key) return Unexpected<Error>{key.error()};
    ao.jwt_secret = base64url_encode(*key);
  }
  ao.token_ttl = std::chrono::seconds{s.token_ttl_s};
  ao.public_url = s.public_url;
  ao.cors_origins = s.cors_origins;
  ao.trust_forwarded_for = s.trust_forwarded_for;
  ao.metrics_token = s.metrics_token;
  ao.login = {.per_user_per_minute = static_cast<double>(s.login_per_user_per_minute),
              .per_user_burst = static_cast<double>(s.login_per_user_per_minute),
              .per_address_per_minute = static_cast<double>(s.login_per_address_per_minute),
              .per_address_burst = static_cast<double>(s.login_per_address_per_minute)};
  ao.openapi_yaml = std::string(api::openapi_document());
  return ao;
}

// Writes the HTTPS certificate and key (given as PEM text) where httplib reads them.
Result<api::ServerOptions> server_options(const DagdSettings& s) {
  api::ServerOptions web;
  web.host = s.api_host;
  web.port = s.api_port;
  web.web_root = s.web_root;
  web.threads = s.api_threads;
  web.max_streams = s.max_streams;
  if (!s.api_tls_cert_pem.empty()) {
    const auto cert = s.state_dir / "tls" / "api-cert.pem";
    const auto key = s.state_dir / "tls" / "api-key.pem";
    if (auto r = write_private_file(cert, s.api_tls_cert_pem); !r)
      return Unexpected<Error>{r.error()};
    if (auto r = write_private_file(key, s.api_tls_key_pem); !r)
      return Unexpected<Error>{r.error()};
    web.tls_cert_file = cert.string();
    web.tls_key_file = key.string();
  }
  return web;
}

// The gauges of /metrics: one read transaction per scrape.
api::Gauges gauges(store::Store& store, const shadow::Metrics& metrics,
                   const ingest::Ingest& ingest, std::size_t streams) {
  api::Gauges g;
  auto counts =
      store::transact(store, store::TxMode::read_only,
                      [](store::Transaction& tx)
                          -> store::StoreResult<std::pair<store::DeviceCounts, std::int64_t>> {
                        auto d = tx.count_devices();
                        if (!d) return Unexpected<store::StoreError>{d.error()};
                        auto o = tx.count_pending_intents();
                        if (!o) return Unexpected<store::StoreError>{o.error()};
                        return std::pair{*d, *o};
                      });
  if (counts) {
    g.devices_total = counts->first.total;
    g.devices_connected = counts->first.connected;
    g.outbox_depth = counts->second;
  }
  g.database_ok = counts && metrics.database_ok.load(std::memory_order_relaxed);
  g.broker_ok = ingest.broker_connected();
  g.ingest_queue = ingest.queued();
  g.sse_streams = streams;
  return g;
}

// Signals are taken by sigwait (wait_for_stop); they are blocked before any thread exists
// so that every thread inherits the mask and none is interrupted.
sigset_t block_signals() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);  // NOLINT(cert-err33-c)
  return mask;
}

// Until SIGTERM or SIGINT; SIGHUP calls on_hup.
void wait_for_stop(const sigset_t& mask, const std::function<void()>& on_hup) {
  for (;;) {
    int sig = 0;
    if (sigwait(&mask, &sig) != 0) continue;
    if (sig == SIGHUP) {
      on_hup();
      continue;
    }
    log::info("dagd.stopping", {{"signal", sig}});
    return;
  }
}

}  // namespace

int run_dagd(const DagdSettings& s) {
  const sigset_t mask = block_signals();

  store::SqliteOptions store_options;
  store_options.durability = s.durability;
  store_options.writer_cache_mib = s.cache_mib;
  auto store = store::open_sqlite(s.database_path, store_options);
  if (!store) {
    log::error("store.open_failed", {{"path", s.database_path.string()},
                                     {"code", store::to_string(store.error().code)},
                                     {"error", store.error().message}});
    return 1;
  }
  auto tls = write_tls_files(s.state_dir / "tls", s.ca_pem, s.cert_pem, s.key_pem);
  if (!tls) {
    log::error("tls.write_failed", {{"error", tls.error().message}});
    return 1;
  }

  SystemClock clock;
  shadow::Metrics metrics;

  // Notification channels and the outbox worker. The API's test notifications use a set of
  // their own: a channel serves one thread at a time.
  auto channels = ChannelSet::make(s, clock, true);
  auto test_channels = ChannelSet::make(s, clock, false);
  if (!channels || !test_channels) {
    log::error("smtp.config_invalid",
               {{"error", (!channels ? channels : test_channels).error().message}});
    return 1;
  }
  // The client is created before the Ingest that handles its callbacks exists; the
  // forwarding handler bridges the two without a cycle in construction.
  struct Forward final : mqtt::Handler {
    ingest::Ingest* target{nullptr};
    void on_connected(bool present) override { target->on_connected(present); }
    void on_disconnected(const std::string& reason) override { target->on_disconnected(reason); }
    void on_message(mqtt::Message m) override { target->on_message(std::move(m)); }
    void on_subscribed() override { target->on_subscribed(); }
  } forward;

  notify::WorkerMetrics notify_metrics;
  auto wo = worker_options(s);
  // The ingest is made after the worker (it wakes the worker); forward.target is set before
  // either runs.
  wo.ingest_backlog = [&forward] {
    return forward.target != nullptr ? forward.target->backlog() : 0;
  };
  notify::Worker notifier(**store, clock, std::move(wo), (*channels)->view(), notify_metrics);
  // Live event streams of the API, fed by the ingest worker after each commit. Ids start
  // at the clock (µs-ish), so a browser's Last-Event-ID from an earlier run reads as a gap.
  api::EventHub hub(clock, static_cast<std::uint64_t>(clock.unix_ms()) * 1000);
  auto service_options = shadow_options(s);
  service_options.on_device_changed = [&hub](const store::Device& d) {
    api::publish_device(hub, d);
  };
  shadow::Service service(**store, clock, service_options, metrics);

  auto client = mqtt::Client::create(mqtt_options(s, *tls), forward);
  if (!client) {
    log::error("mqtt.create_failed", {{"error", client.error().message}});
    return 1;
  }
  ingest::ClientPublisher publisher(**client);
  auto io = ingest_options(s);
  io.on_intents = [&notifier](std::size_t made) { notifier.wake(made); };
  ingest::Ingest ingest(service, clock, io, metrics, publisher);
  forward.target = &ingest;
  for (const auto& filter : ingest::subscriptions(s.share_group)) {
    (*client)->subscribe(filter, 1);
  }

  // The REST API.
  api::ApiMetrics api_metrics;
  auto ao = api_options(s);
  if (!ao) {
    log::error("api.config_failed", {{"error", ao.error().message}});
    return 1;
  }
  api::ApiHooks hooks;
  hooks.broker_ok = [&ingest] { return ingest.broker_connected(); };
  hooks.wake_notifier = [&notifier] { notifier.wake(); };
  hooks.test_channels = (*test_channels)->view();
  hooks.metrics = [&] {
    return api_metrics.render(metrics, notify_metrics,
                              gauges(**store, metrics, ingest, hub.streams()));
  };
  api::Api rest(**store, clock, *std::move(ao), hub, std::move(hooks));
  auto web = server_options(s);
  if (!web) {
    log::error("api.config_failed", {{"error", web.error().message}});
    return 1;
  }
  api::Server server(rest, hub, &api_metrics, *web);
  if (s.api_enabled) {
    auto port = server.start();
    if (!port) {
      log::error("api.start_failed", {{"error", port.error().message}});
      return 1;
    }
  }

  log::info("dagd.starting", {{"database", s.database_path.string()},
                              {"allocator", allocator()},
                              {"broker", s.mqtt_host + ":" + std::to_string(s.mqtt_port)},
                              {"client_id", s.client_id},
                              {"share_group", s.share_group}});
  (*client)->start();
  std::thread worker([&] {
    set_thread_name("dagd-ingest");
    ingest.run();
  });
  std::thread notifier_thread([&] {
    set_thread_name("dagd-notify");
    notifier.run();
  });

  wait_for_stop(mask, [&] { log_counters(metrics, ingest, notify_metrics); });
  server.stop();  // no new requests; the streams end
  ingest.stop();
  worker.join();
  (*client)->stop();
  ingest.drain();
  // Deliveries in progress finish (bounded by the channels' timeouts); the rest waits in
  // the outbox for the next start.
  notifier.stop();
  notifier_thread.join();
  log_counters(metrics, ingest, notify_metrics);
  log::info("dagd.stopped", {});
  return 0;
}

}  // namespace dag::dagd
