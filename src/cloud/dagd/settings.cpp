#include "dag/dagd/settings.hpp"

#include "dag/notify/mime.hpp"
#include "dag/protocol/topics.hpp"

namespace dag::dagd {
namespace {

using config::Field;
using config::Type;

// The notification channels' settings (docs/notifications.md).
void add_notify_fields(config::Schema& s) {
  s.add(Field{.key = "smtp.url",
              .default_value = "",
              .help = "SMTP server for e-mail: smtp://host:587 (STARTTLS when offered), "
                      "smtps://host:465; empty: no e-mail"});
  s.add(Field{.key = "smtp.from",
              .default_value = "detectordag <dag@localhost.localdomain>",
              .help = "Sender of every mail"});
  s.add(Field{.key = "smtp.username", .default_value = "", .help = "SMTP AUTH user (empty: none)"});
  s.add(Field{
      .key = "smtp.password", .default_value = "", .help = "SMTP AUTH password", .secret = true});
  s.add(Field{.key = "smtp.starttls",
              .default_value = "opportunistic",
              .help = "STARTTLS on smtp:// URLs: required, opportunistic (when offered), none",
              .choices = {"required", "opportunistic", "none"}});
  s.add(Field{.key = "notify.coalesce_window_ms",
              .type = Type::integer,
              .default_value = "5000",
              .help = "After an alert, further ones to the same target within this window go "
                      "out together as one follow-up",
              .min = 0,
              .max = 3'600'000});
  s.add(Field{.key = "notify.storm_hold_ms",
              .type = Type::integer,
              .default_value = "8000",
              .help = "While the ingest is behind (a storm), hold alerts up to this long so "
                      "that each account hears of it in one message (0: never hold)",
              .min = 0,
              .max = 60'000});
  s.add(Field{.key = "notify.storm_backlog",
              .type = Type::integer,
              .default_value = "200",
              .help = "Reports waiting in the ingest above which it counts as behind",
              .min = 1,
              .max = 1'000'000});
  s.add(Field{.key = "notify.storm_rate",
              .type = Type::integer,
              .default_value = "40",
              .help = "Intents per second (over the last 250 ms) above which a storm is "
                      "arriving, though the ingest may not be behind yet",
              .min = 1,
              .max = 1'000'000});
  s.add(Field{.key = "notify.concurrency",
              .type = Type::integer,
              .default_value = "8",
              .help = "Messages delivered at once (SMTP sessions, HTTP requests): a storm's "
                      "alerts go out in parallel, and one slow webhook does not hold up the rest",
              .min = 1,
              .max = 64});
  s.add(Field{.key = "notify.retry_initial_s",
              .type = Type::integer,
              .default_value = "30",
              .help = "First retry of a failed delivery; doubles each time",
              .min = 1,
              .max = 86'400});
  s.add(Field{.key = "notify.retry_max_s",
              .type = Type::integer,
              .default_value = "3600",
              .help = "Longest wait between retries",
              .min = 1,
              .max = 86'400});
  s.add(Field{.key = "notify.give_up_s",
              .type = Type::integer,
              .default_value = "86400",
              .help = "A notification still failing this long after it was made is given up",
              .min = 1,
              .max = std::int64_t{30} * 86'400});
  s.add(Field{.key = "notify.allow_private_addresses",
              .type = Type::boolean,
              .default_value = "false",
              .help = "Let webhooks and ntfy post to loopback and private addresses (Home "
                      "Assistant or ntfy on your LAN); off, account owners cannot reach your "
                      "internal network through dagd"});
}

// The REST API's settings (docs/api.md).
void add_api_fields(config::Schema& s) {
  s.add(Field{.key = "api.enabled",
              .type = Type::boolean,
              .default_value = "true",
              .help = "Serve the REST API and the dashboard"});
  s.add(Field{.key = "api.host",
              .default_value = "127.0.0.1",
              .help = "Address the API listens on (0.0.0.0: every interface)"});
  s.add(Field{.key = "api.port",
              .type = Type::integer,
              .default_value = "8080",
              .help = "Port of the API (0: any free port, logged as api.listening)",
              .min = 0,
              .max = 65535});
  s.add(Field{.key = "api.tls_cert",
              .type = Type::pem,
              .help = "HTTPS certificate chain (PEM, base64 PEM or path); with api.tls_key "
                      "dagd serves HTTPS itself, without them plain HTTP for a reverse proxy"});
  s.add(
      Field{.key = "api.tls_key", .type = Type::pem, .help = "HTTPS private key", .secret = true});
  s.add(Field{.key = "api.token_ttl_s",
              .type = Type::integer,
              .default_value = "7200",
              .help = "Lifetime of a login token",
              .min = 60,
              .max = std::int64_t{30} * 86'400});
  s.add(Field{.key = "api.web_root",
              .default_value = "",
              .help = "Directory of the built dashboard (web/dist); empty: no dashboard"});
  s.add(Field{.key = "api.cors_origins",
              .default_value = "",
              .help = "Comma-separated origins allowed to call the API from a browser, or *; "
                      "empty: only the dashboard's own origin"});
  s.add(Field{.key = "api.trust_forwarded_for",
              .type = Type::boolean,
              .default_value = "false",
              .help = "Take the client address from X-Forwarded-For (only behind a reverse "
                      "proxy that sets it: login throttling is per address)"});
  s.add(Field{.key = "api.login_per_user_per_minute",
              .type = Type::integer,
              .default_value = "5",
              .help = "Login attempts per username and minute (also the burst); beyond: 429",
              .min = 1,
              .max = 100'000});
  s.add(Field{.key = "api.login_per_address_per_minute",
              .type = Type::integer,
              .default_value = "30",
              .help = "Login attempts per client address and minute (also the burst)",
              .min = 1,
              .max = 100'000});
  s.add(Field{.key = "api.metrics_token",
              .default_value = "",
              .help = "If set, /metrics wants `Authorization: Bearer <token>` (Prometheus: "
                      "authorization.credentials); empty: /metrics is open",
              .secret = true});
  s.add(Field{.key = "api.threads",
              .type = Type::integer,
              .default_value = "8",
              .help = "Threads for API requests",
              .min = 1,
              .max = 1024});
  s.add(Field{.key = "api.max_streams",
              .type = Type::integer,
              .default_value = "2000",
              .help = "Live event streams (dashboards) open at once; each holds a thread",
              .min = 0,
              .max = 100'000});
}

config::Schema make_schema() {
  config::Schema s("dagd");
  s.add(Field{.key = "dagd.state_dir",
              .default_value = "/var/lib/dagd",
              .help = "Private files (the TLS files libmosquitto reads) live here"});
  s.add(Field{.key = "database.path",
              .default_value = "/var/lib/dagd/dagd.db",
              .help = "SQLite database file (created and migrated at start)"});
  s.add(Field{.key = "database.durability",
              .default_value = "power_safe",
              .help = "power_safe: every commit survives a power cut (fsync); crash_safe: "
                      "survives a dagd crash only",
              .choices = {"power_safe", "crash_safe"}});
  s.add(Field{.key = "database.cache_mib",
              .type = Type::integer,
              .default_value = "32",
              .help = "Page cache of the connection that writes, in MiB; grows only as pages "
                      "are read. A cache smaller than the database costs the ingest reads",
              .min = 1,
              .max = 65536});
  s.add(Field{.key = "mqtt.host", .default_value = "localhost", .help = "MQTT broker host"});
  s.add(Field{.key = "mqtt.port",
              .type = Type::integer,
              .default_value = "8883",
              .help = "MQTT over TLS port (the broker's dagd listener)",
              .min = 1,
              .max = 65535});
  s.add(Field{.key = "mqtt.client_id",
              .default_value = "dagd",
              .help = "Client id: unique per replica; also the owner name of claimed timers"});
  s.add(Field{.key = "mqtt.keepalive_s",
              .type = Type::integer,
              .default_value = "30",
              .help = "MQTT keep-alive",
              .min = 5,
              .max = 1200});
  s.add(Field{.key = "mqtt.protocol",
              .default_value = "5",
              .help = "MQTT version",
              .choices = {"5", "3.1.1"}});
  s.add(Field{.key = "mqtt.share_group",
              .default_value = "",
              .help = "Shared-subscription group for replicas ($share/<group>/...); empty: "
                      "plain subscriptions (Mosquitto 2.0 cannot share $aws topics)"});
  s.add(Field{.key = "mqtt.max_inflight",
              .type = Type::integer,
              .default_value = "1000",
              .help = "Replies in flight towards the broker at once",
              .min = 1,
              .max = 65535});
  s.add(Field{.key = "mqtt.ca",
              .type = Type::pem,
              .help = "CA that signed the broker's certificate (PEM, base64 PEM or path)",
              .required = true});
  s.add(Field{.key = "mqtt.cert",
              .type = Type::pem,
              .help = "dagd's client certificate (its CN is a service identity in the ACL)",
              .required = true});
  s.add(Field{.key = "mqtt.key",
              .type = Type::pem,
              .help = "dagd's private key",
              .required = true,
              .secret = true});
  s.add(Field{.key = "ingest.batch_max",
              .type = Type::integer,
              .default_value = "500",
              .help = "Messages processed per store transaction at most",
              .min = 1,
              .max = 10'000});
  s.add(Field{.key = "ingest.queue_max",
              .type = Type::integer,
              .default_value = "20000",
              .help = "Received messages waiting at most; beyond, the broker holds them",
              .min = 1,
              .max = 1'000'000});
  s.add(Field{.key = "ingest.rate_per_s",
              .type = Type::integer,
              .default_value = "20",
              .help = "Shadow requests per second per device (AWS: 20); 0 = no limit",
              .min = 0,
              .max = 1'000'000});
  s.add(Field{.key = "ingest.rate_burst",
              .type = Type::integer,
              .default_value = "20",
              .help = "Requests a device may send at once before the rate applies",
              .min = 1,
              .max = 1'000'000});
  s.add(Field{.key = "timers.lease_s",
              .type = Type::integer,
              .default_value = "60",
              .help = "A claimed timer of a crashed replica fires after this",
              .min = 1,
              .max = 3600});
  s.add(Field{.key = "timers.poll_ms",
              .type = Type::integer,
              .default_value = "5000",
              .help = "Look for timers scheduled by others this often",
              .min = 10,
              .max = 600'000});
  s.add(Field{.key = "api.public_url",
              .default_value = "http://localhost:8080",
              .help = "Public base URL of the dashboard: links in notifications and "
                      "verification mails"});
  add_notify_fields(s);
  s.add(Field{.key = "api.jwt_secret",
              .default_value = "",
              .help = "Signs login tokens (REST API); `dagctl init` writes a random one. Empty: "
                      "a new one at every start, which logs everyone out",
              .secret = true});
  add_api_fields(s);
  s.add(Field{.key = "log.level",
              .default_value = "info",
              .help = "Log level",
              .choices = {"trace", "debug", "info", "warn", "error"}});
  return s;
}

}  // namespace

const config::Schema& dagd_schema() {
  static const config::Schema schema = make_schema();
  return schema;
}

Result<DagdSettings> settings_from(const config::Config& cfg) {
  DagdSettings s;
  s.state_dir = cfg.str("dagd.state_dir");
  s.database_path = cfg.str("database.path");
  s.durability = cfg.str("database.durability") == "crash_safe"
                     ? store::SqliteOptions::Durability::crash_safe
                     : store::SqliteOptions::Durability::power_safe;
  s.cache_mib = static_cast<int>(cfg.integer("database.cache_mib"));
  s.mqtt_host = cfg.str("mqtt.host");
  s.mqtt_port = static_cast<int>(cfg.integer("mqtt.port"));
  s.client_id = cfg.str("mqtt.client_id");
  if (!protocol::is_valid_device_id(s.client_id)) {
    // The same alphabet as device ids keeps it a single MQTT topic level and a safe
    // lease owner name.
    return fail(Errc::config, "mqtt.client_id '" + s.client_id +
                                  "' must be 1..128 characters of [A-Za-z0-9_.:-]");
  }
  s.keepalive_s = static_cast<int>(cfg.integer("mqtt.keepalive_s"));
  s.protocol_version = cfg.str("mqtt.protocol") == "5" ? 5 : 4;
  s.share_group = cfg.has("mqtt.share_group") ? cfg.str("mqtt.share_group") : "";
  if (s.share_group.find_first_of("/+#") != std::string::npos) {
    return fail(Errc::config, "mqtt.share_group must not contain '/', '+' or '#'");
  }
  s.max_inflight = static_cast<int>(cfg.integer("mqtt.max_inflight"));
  s.ca_pem = cfg.pem("mqtt.ca");
  s.cert_pem = cfg.pem("mqtt.cert");
  s.key_pem = cfg.pem("mqtt.key");
  s.batch_max = static_cast<int>(cfg.integer("ingest.batch_max"));
  s.queue_max = static_cast<int>(cfg.integer("ingest.queue_max"));
  s.rate_per_s = static_cast<int>(cfg.integer("ingest.rate_per_s"));
  s.rate_burst = static_cast<int>(cfg.integer("ingest.rate_burst"));
  s.timer_lease_s = static_cast<int>(cfg.integer("timers.lease_s"));
  s.timer_poll_ms = static_cast<int>(cfg.integer("timers.poll_ms"));
  s.jwt_secret = cfg.has("api.jwt_secret") ? cfg.str("api.jwt_secret") : "";
  s.public_url = cfg.str("api.public_url");
  while (!s.public_url.empty() && s.public_url.back() == '/') s.public_url.pop_back();
  if (!s.public_url.starts_with("http://") && !s.public_url.starts_with("https://")) {
    return fail(Errc::config, "api.public_url must start with http:// or https://");
  }
  auto text = [&](const char* key) { return cfg.has(key) ? cfg.str(key) : std::string(); };
  s.api_enabled = cfg.boolean("api.enabled");
  s.api_host = cfg.str("api.host");
  s.api_port = static_cast<int>(cfg.integer("api.port"));
  if (cfg.has("api.tls_cert") != cfg.has("api.tls_key")) {
    return fail(Errc::config, "api.tls_cert and api.tls_key go together");
  }
  if (cfg.has("api.tls_cert")) {
    s.api_tls_cert_pem = cfg.pem("api.tls_cert");
    s.api_tls_key_pem = cfg.pem("api.tls_key");
  }
  s.token_ttl_s = cfg.integer("api.token_ttl_s");
  s.web_root = text("api.web_root");
  const std::string origins = text("api.cors_origins");
  for (std::string_view rest = origins; !rest.empty();) {
    const auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) s.cors_origins.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  s.trust_forwarded_for = cfg.boolean("api.trust_forwarded_for");
  s.metrics_token = text("api.metrics_token");
  s.login_per_user_per_minute = static_cast<int>(cfg.integer("api.login_per_user_per_minute"));
  s.login_per_address_per_minute =
      static_cast<int>(cfg.integer("api.login_per_address_per_minute"));
  s.api_threads = static_cast<int>(cfg.integer("api.threads"));
  s.max_streams = static_cast<int>(cfg.integer("api.max_streams"));
  s.smtp_url = text("smtp.url");
  if (!s.smtp_url.empty() && !s.smtp_url.starts_with("smtp://") &&
      !s.smtp_url.starts_with("smtps://")) {
    return fail(Errc::config, "smtp.url must start with smtp:// or smtps://");
  }
  s.smtp_from = text("smtp.from");
  // Checked here rather than when the channel starts, so that --check-config says so.
  if (!s.smtp_url.empty()) {
    if (auto from = notify::mime::parse_mailbox(s.smtp_from); !from) {
      return fail(Errc::config, "smtp.from: " + from.error().message);
    }
  }
  s.smtp_username = text("smtp.username");
  s.smtp_password = text("smtp.password");
  s.smtp_starttls = cfg.str("smtp.starttls");
  s.coalesce_window_ms = cfg.integer("notify.coalesce_window_ms");
  s.notify_concurrency = static_cast<int>(cfg.integer("notify.concurrency"));
  s.storm_hold_ms = cfg.integer("notify.storm_hold_ms");
  s.storm_backlog = cfg.integer("notify.storm_backlog");
  s.storm_rate = cfg.integer("notify.storm_rate");
  s.retry_initial_s = cfg.integer("notify.retry_initial_s");
  s.retry_max_s = cfg.integer("notify.retry_max_s");
  s.give_up_s = cfg.integer("notify.give_up_s");
  s.allow_private_addresses = cfg.boolean("notify.allow_private_addresses");
  s.log_level = cfg.str("log.level");
  return s;
}

Result<DagdSettings> load_settings(const std::optional<std::filesystem::path>& file,
                                   const config::Env& env) {
  auto cfg = config::load(dagd_schema(), file, env);
  if (!cfg) return Unexpected<Error>{cfg.error()};
  return settings_from(*cfg);
}

}  // namespace dag::dagd
