#include "dag/dagd/daemon.hpp"

#include <csignal>
#include <thread>

#include "dag/common/clock.hpp"
#include "dag/common/files.hpp"
#include "dag/common/log.hpp"
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

}  // namespace

int run_dagd(const DagdSettings& s) {
  // Signals are taken by sigwait below; block them before any thread exists so that
  // every thread inherits the mask and none is interrupted.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);  // NOLINT(cert-err33-c)

  store::SqliteOptions store_options;
  store_options.durability = s.durability;
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

  // Notification channels and the outbox worker.
  std::unique_ptr<notify::EmailChannel> email;
  if (!s.smtp_url.empty()) {
    notify::SmtpOptions so;
    so.url = s.smtp_url;
    so.from = s.smtp_from;
    if (!s.smtp_username.empty()) so.username = s.smtp_username;
    if (!s.smtp_password.empty()) so.password = s.smtp_password;
    so.tls = notify::parse_smtp_tls(s.smtp_starttls).value_or(notify::SmtpTls::opportunistic);
    auto made = notify::EmailChannel::create(so, clock);
    if (!made) {
      log::error("smtp.config_invalid", {{"error", made.error().message}});
      return 1;
    }
    email = std::move(made).value();
  } else {
    log::warn("smtp.not_configured", {{"effect", "e-mail targets are not notified"}});
  }
  // The e-mail channel also sends the verification mails.
  struct EmailVerifier final : notify::Verifier {
    notify::EmailChannel* channel{nullptr};
    notify::Delivery send_verification(const std::string& address, const std::string& link,
                                       std::int64_t expires_at_ms) override {
      return channel->send_verification(address, link, expires_at_ms);
    }
  } verifier;
  verifier.channel = email.get();
  notify::HttpOptions http;
  http.allow_private_addresses = s.allow_private_addresses;
  notify::WebhookChannel webhook(http, clock);
  notify::NtfyChannel ntfy(http);
  notify::WorkerMetrics notify_metrics;
  notify::WorkerOptions wo;
  wo.owner = s.client_id;
  wo.coalesce_window = std::chrono::milliseconds{s.coalesce_window_ms};
  wo.retry_initial = std::chrono::seconds{s.retry_initial_s};
  wo.retry_max = std::chrono::seconds{s.retry_max_s};
  wo.give_up_after = std::chrono::seconds{s.give_up_s};
  wo.public_url = s.public_url;
  notify::Worker notifier(**store, clock, wo,
                          {email.get(), email ? &verifier : nullptr, &webhook, &ntfy},
                          notify_metrics);
  shadow::ServiceOptions service_options;
  service_options.rate_per_s = s.rate_per_s;
  service_options.rate_burst = s.rate_burst;
  service_options.owner = s.client_id;
  service_options.timer_lease_ms = std::int64_t{s.timer_lease_s} * 1000;
  shadow::Service service(**store, clock, service_options, metrics);

  // The client is created before the Ingest that handles its callbacks exists; the
  // forwarding handler bridges the two without a cycle in construction.
  struct Forward final : mqtt::Handler {
    ingest::Ingest* target{nullptr};
    void on_connected(bool present) override { target->on_connected(present); }
    void on_disconnected(const std::string& reason) override { target->on_disconnected(reason); }
    void on_message(mqtt::Message m) override { target->on_message(std::move(m)); }
    void on_subscribed() override { target->on_subscribed(); }
  } forward;

  mqtt::Options mo;
  mo.client_id = s.client_id;
  mo.host = s.mqtt_host;
  mo.port = s.mqtt_port;
  mo.keepalive_s = s.keepalive_s;
  mo.protocol_version = s.protocol_version;
  mo.ca_file = tls->ca.string();
  mo.cert_file = tls->cert.string();
  mo.key_file = tls->key.string();
  mo.clean_session = false;  // QoS 1 messages wait at the broker while dagd is away
  mo.max_inflight = s.max_inflight;
  mo.backoff_max = std::chrono::seconds{30};  // one service, not a fleet: come back soon
  auto client = mqtt::Client::create(mo, forward);
  if (!client) {
    log::error("mqtt.create_failed", {{"error", client.error().message}});
    return 1;
  }
  ingest::ClientPublisher publisher(**client);
  ingest::IngestOptions io;
  io.share_group = s.share_group;
  io.max_batch = static_cast<std::size_t>(s.batch_max);
  io.max_queue = static_cast<std::size_t>(s.queue_max);
  io.timer_poll = std::chrono::milliseconds{s.timer_poll_ms};
  io.on_intents = [&notifier] { notifier.wake(); };
  ingest::Ingest ingest(service, clock, io, metrics, publisher);
  forward.target = &ingest;
  for (const auto& filter : ingest::subscriptions(s.share_group)) {
    (*client)->subscribe(filter, 1);
  }

  log::info("dagd.starting", {{"database", s.database_path.string()},
                              {"broker", s.mqtt_host + ":" + std::to_string(s.mqtt_port)},
                              {"client_id", s.client_id},
                              {"share_group", s.share_group}});
  (*client)->start();
  std::thread worker([&] { ingest.run(); });
  std::thread notifier_thread([&] { notifier.run(); });

  for (;;) {
    int sig = 0;
    if (sigwait(&mask, &sig) != 0) continue;
    if (sig == SIGHUP) {
      log_counters(metrics, ingest, notify_metrics);
      continue;
    }
    log::info("dagd.stopping", {{"signal", sig}});
    break;
  }
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
