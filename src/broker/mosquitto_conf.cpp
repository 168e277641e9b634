#include "dag/broker/mosquitto_conf.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace dag::broker {
namespace {

// Mosquitto's parser reads one setting per line and takes the rest of the line as the
// value, so a line break in any value would inject settings (e.g. "allow_anonymous true").
Result<void> check_text(std::string_view what, std::string_view value) {
  const bool bad = std::any_of(value.begin(), value.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (bad) return fail(Errc::config, fmt::format("{} contains a control character", what));
  return ok();
}

Result<void> check_word(std::string_view what, std::string_view value) {
  if (value.empty()) return fail(Errc::config, fmt::format("{} is empty", what));
  if (value.find(' ') != std::string_view::npos) {
    return fail(Errc::config, fmt::format("{} '{}' contains a space", what, value));
  }
  return check_text(what, value);
}

Result<void> check_path(std::string_view what, const std::filesystem::path& path) {
  if (path.empty()) return fail(Errc::config, fmt::format("{} is not set", what));
  if (!path.is_absolute()) {
    return fail(Errc::config, fmt::format("{} '{}' must be an absolute path", what, path.string()));
  }
  return check_text(what, path.string());
}

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  std::array<unsigned char, 16> addr{};
  if (inet_pton(AF_INET, host.c_str(), addr.data()) == 1) return addr[0] == 127;
  if (inet_pton(AF_INET6, host.c_str(), addr.data()) == 1) return host == "::1";
  return false;
}

constexpr std::array<std::string_view, 10> kLogTypes = {
    "debug",     "error",       "warning",    "notice", "information",
    "subscribe", "unsubscribe", "websockets", "none",   "all"};
constexpr std::array<std::string_view, 6> kLogDests = {"stderr", "stdout", "syslog",
                                                       "topic",  "dlt",    "file"};

Result<void> validate(const BrokerConfig& c) {
  std::vector<Result<void>> checks;
  checks.emplace_back(c.host.empty() ? ok() : check_word("host", c.host));
  if (c.port == 0) checks.emplace_back(fail(Errc::config, "port must not be 0"));
  checks.emplace_back(check_path("cafile", c.cafile));
  checks.emplace_back(check_path("certfile", c.certfile));
  checks.emplace_back(check_path("keyfile", c.keyfile));
  if (c.crlfile) checks.emplace_back(check_path("crlfile", *c.crlfile));
  if (c.tls_min_version != "tlsv1.2" && c.tls_min_version != "tlsv1.3") {
    checks.emplace_back(fail(Errc::config, fmt::format("tls_min_version '{}' is not tlsv1.2 or "
                                                       "tlsv1.3",
                                                       c.tls_min_version)));
  }
  checks.emplace_back(check_path("acl_file", c.acl_file));
  if (c.password_file) checks.emplace_back(check_path("password_file", *c.password_file));
  if (!c.user.empty()) checks.emplace_back(check_word("user", c.user));
  if (c.persistence) {
    checks.emplace_back(check_path("persistence_location", c.persistence_location));
    if (c.autosave_interval.count() < 0) {
      checks.emplace_back(fail(Errc::config, "autosave_interval must be >= 0"));
    }
  }
  if (c.persistent_client_expiration) {
    checks.emplace_back(
        check_word("persistent_client_expiration", *c.persistent_client_expiration));
  }
  for (const auto& t : c.log_types) {
    if (std::find(kLogTypes.begin(), kLogTypes.end(), t) == kLogTypes.end()) {
      checks.emplace_back(fail(Errc::config, fmt::format("unknown log_type '{}'", t)));
    }
  }
  for (const auto& d : c.log_dests) {
    const std::string_view kind = std::string_view{d}.substr(0, d.find(' '));
    if (std::find(kLogDests.begin(), kLogDests.end(), kind) == kLogDests.end()) {
      checks.emplace_back(fail(Errc::config, fmt::format("unknown log_dest '{}'", d)));
    }
    if (kind == "file" && d.size() <= 5) {
      checks.emplace_back(fail(Errc::config, "log_dest file needs a path"));
    }
    checks.emplace_back(check_text("log_dest", d));
  }
  if (c.pid_file) checks.emplace_back(check_path("pid_file", *c.pid_file));
  if (c.plugin) {
    checks.emplace_back(check_path("plugin", c.plugin->library));
    for (const auto& [key, value] : c.plugin->options) {
      checks.emplace_back(check_word("plugin option name", key));
      checks.emplace_back(check_text("plugin option value", value));
    }
  }
  if (c.service_listener) {
    if (c.service_listener->port == 0 || c.service_listener->port == c.port) {
      checks.emplace_back(fail(Errc::config, "service listener port is 0 or the device port"));
    }
    if (!is_loopback(c.service_listener->host)) {
      checks.emplace_back(fail(
          Errc::config,
          fmt::format("service listener host '{}' is not loopback", c.service_listener->host)));
    }
  }
  if (c.plain_listener) {
    if (c.plain_listener->port == 0) checks.emplace_back(fail(Errc::config, "plain port is 0"));
    if (c.plain_listener->port == c.port) {
      checks.emplace_back(fail(Errc::config, "plain listener uses the TLS listener's port"));
    }
    if (!is_loopback(c.plain_listener->host)) {
      checks.emplace_back(
          fail(Errc::config, fmt::format("plain listener host '{}' is not loopback: without TLS, "
                                         "credentials would cross the network in clear",
                                         c.plain_listener->host)));
    }
  }
  for (auto& r : checks) {
    if (!r) return r;
  }
  return ok();
}

// "# " comment lines of at most 90 characters, so the file reads well in a terminal.
void append_comment(std::string& out, std::string_view text) {
  constexpr std::size_t kWidth = 88;
  std::string current;
  while (!text.empty()) {
    const auto space = text.find(' ');
    const std::string_view word = text.substr(0, space);
    text = space == std::string_view::npos ? std::string_view{} : text.substr(space + 1);
    if (!current.empty() && current.size() + 1 + word.size() > kWidth) {
      out += "# " + current + "\n";
      current.clear();
    }
    if (!current.empty()) current += ' ';
    current += word;
  }
  if (!current.empty()) out += "# " + current + "\n";
}

std::string dir_with_slash(const std::filesystem::path& p) {
  std::string s = p.string();
  // mosquitto appends the file name to persistence_location as a string.
  if (s.empty() || s.back() != '/') s += '/';
  return s;
}

}  // namespace

Result<std::string> render_mosquitto_conf(const BrokerConfig& c) {
  if (auto v = validate(c); !v) return Unexpected<Error>{v.error()};

  std::string out;
  auto line = [&out](std::string_view comment, std::string_view setting) {
    append_comment(out, comment);
    out += setting;
    out += '\n';
  };

  out +=
      "# Mosquitto 2.0 configuration for detectordag, generated by "
      "dag::broker::render_mosquitto_conf.\n"
      "# Change the generator (src/broker/mosquitto_conf.cpp), not this file.\n\n";

  out += "# ---- Authentication and access control (global: one policy for every listener) ----\n";
  line("Authentication and ACL settings below apply to all listeners alike.",
       "per_listener_settings false");
  line(
      "Nobody gets in without an identity (a client certificate, or a password on the "
      "loopback plain listener).",
      "allow_anonymous false");
  line("Topic permissions: each device only its own thing, services everything (see that file).",
       fmt::format("acl_file {}", c.acl_file.string()));
  if (c.password_file) {
    line("Users of the loopback plain listener.",
         fmt::format("password_file {}", c.password_file->string()));
  }
  if (c.plugin) {
    line("Broker plugin (loaded once, for all listeners).",
         fmt::format("plugin {}", c.plugin->library.string()));
    for (const auto& [key, value] : c.plugin->options) {
      line("", fmt::format("plugin_opt_{} {}", key, value));
    }
  }
  out += '\n';

  out += "# ---- Process ----\n";
  if (!c.user.empty()) {
    line(
        "Started as root, mosquitto switches to this user after binding its ports and before "
        "reading the TLS keys, so the keys must be readable by it.",
        fmt::format("user {}", c.user));
  }
  if (c.pid_file)
    line("For the service manager.", fmt::format("pid_file {}", c.pid_file->string()));
  out += '\n';

  out += "# ---- Queues ----\n";
  line(
      "QoS 1 messages held per client (in flight or waiting). Mosquitto's default of 1000 "
      "drops a power-cut storm's reports on their way to dagd; devices would resend, but "
      "later.",
      fmt::format("max_queued_messages {}", c.max_queued_messages));
  out += '\n';

  out += "# ---- Persistence ----\n";
  if (c.persistence) {
    line(
        "Keep sessions, subscriptions and queued QoS 1 messages across broker restarts, so "
        "a restart loses no device report.",
        "persistence true");
    line("", fmt::format("persistence_location {}", dir_with_slash(c.persistence_location)));
    line("Seconds between saves; a crash loses at most this much queued state.",
         fmt::format("autosave_interval {}", c.autosave_interval.count()));
  } else {
    line("Sessions and queued messages live in memory only.", "persistence false");
  }
  if (c.persistent_client_expiration) {
    line("Forget sessions of clients gone this long (decommissioned devices).",
         fmt::format("persistent_client_expiration {}", *c.persistent_client_expiration));
  }
  out += '\n';

  out += "# ---- Logging ----\n";
  for (const auto& d : c.log_dests) line("", fmt::format("log_dest {}", d));
  for (const auto& t : c.log_types) line("", fmt::format("log_type {}", t));
  line(
      "Connects and disconnects are logged: the first thing to look at when a device is "
      "reported offline.",
      "connection_messages true");
  line("", "log_timestamp true");
  line("", "log_timestamp_format %Y-%m-%dT%H:%M:%S");
  out += '\n';

  // Both TLS listeners get the same identity rules; only the address differs.
  auto tls_listener = [&](std::uint16_t port, const std::string& host, std::string_view why) {
    line(why, host.empty() ? fmt::format("listener {}", port)
                           : fmt::format("listener {} {}", port, host));
    line("Minimum TLS version.", fmt::format("tls_version {}", c.tls_min_version));
    line("The CA that signs device, service and broker certificates.",
         fmt::format("cafile {}", c.cafile.string()));
    line("", fmt::format("certfile {}", c.certfile.string()));
    line("", fmt::format("keyfile {}", c.keyfile.string()));
    if (c.crlfile) {
      line("Revoked certificates; re-read on SIGHUP (affects new connections only).",
           fmt::format("crlfile {}", c.crlfile->string()));
    }
    line("Every client must present a certificate signed by cafile.", "require_certificate true");
    line("The certificate's CN becomes the username, which the ACL's %u patterns bind to.",
         "use_identity_as_username true");
    line(
        "The client id is replaced by the username: a client cannot take over (disconnect) "
        "another device's session by claiming its client id.",
        "use_username_as_clientid true");
  };
  out += "# ---- Device and service listener: MQTT over mutual TLS ----\n";
  tls_listener(c.port, c.host, c.host.empty() ? "All interfaces, IPv4 and IPv6." : "");
  if (c.service_listener) {
    out += "\n# ---- Service listener: the same, on loopback, for dagd and dagctl ----\n";
    tls_listener(c.service_listener->port, c.service_listener->host,
                 "Services on this host connect here, so the device listener may face the "
                 "internet alone (and be firewalled from the inside).");
  }

  if (c.plain_listener) {
    out += "\n# ---- Plain MQTT, loopback only, for local tools ----\n";
    line(
        "No TLS here, hence loopback only; clients still need a password (allow_anonymous is "
        "false).",
        fmt::format("listener {} {}", c.plain_listener->port, c.plain_listener->host));
    line("Same reason as on the TLS listener: no session takeover by client id.",
         "use_username_as_clientid true");
  }
  return out;
}

}  // namespace dag::broker
