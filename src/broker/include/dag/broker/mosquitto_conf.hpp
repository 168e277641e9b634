// Mosquitto 2.0 configuration for a detectordag deployment.
//
// One mutual-TLS listener for devices and services: the client certificate's CN becomes
// the MQTT username (use_identity_as_username) and the client id (use_username_as_clientid),
// so the ACL (see acl.hpp) binds every topic to the certificate and no client can take over
// another's session by reusing its client id. Used by `dagctl init` and by the integration
// tests' broker fixture, so what the tests prove is what production runs.
//
// Blocking: none (pure text rendering). Thread-safety: reentrant.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::broker {

/// A loopback-only listener without TLS, for local tools. Anonymous access stays off, so
/// its clients need a password_file entry (or a plugin that authenticates them).
struct PlainListener {
  std::string host{"127.0.0.1"};  ///< Must be a loopback address or "localhost".
  std::uint16_t port{1883};
};

/// A second mutual-TLS listener on loopback for the services on the broker's host (dagd,
/// dagctl), with the same certificate rules as the device listener.
struct ServiceListener {
  std::string host{"127.0.0.1"};  ///< Must be a loopback address or "localhost".
  std::uint16_t port{8884};
};

/// A mosquitto 2.0 plugin (`plugin` + `plugin_opt_<key> <value>` lines).
struct Plugin {
  std::filesystem::path library;
  std::vector<std::pair<std::string, std::string>> options;
};

struct BrokerConfig {
  /// Address of the TLS listener; empty listens on every interface (IPv4 and IPv6).
  std::string host;
  std::uint16_t port{8883};

  // TLS. Paths must be absolute (mosquitto resolves relative ones against its cwd).
  std::filesystem::path cafile;
  std::filesystem::path certfile;
  std::filesystem::path keyfile;
  /// Revocation list; re-read on SIGHUP. Rendered only when set.
  std::optional<std::filesystem::path> crlfile;
  /// Lowest TLS version accepted: "tlsv1.2" or "tlsv1.3".
  std::string tls_min_version{"tlsv1.2"};

  std::filesystem::path acl_file;
  std::optional<std::filesystem::path> password_file;  ///< Only useful with plain_listener.

  /// When mosquitto starts as root it drops to this user after binding its ports and
  /// BEFORE reading certificates and keys, so the keys must be readable by it. Empty leaves
  /// the line out (mosquitto's default, "mosquitto"). Has no effect when not started as
  /// root. "root" keeps root (mosquitto warns).
  std::string user{"mosquitto"};

  /// QoS 1 messages queued per client before the broker drops more (mosquitto's default,
  /// 1000, silently drops a storm's reports on their way to dagd: devices resend, but the
  /// storm lasts longer). Also bounds a persistent session's queue while its client is away.
  std::uint32_t max_queued_messages{1'000'000};

  bool persistence{true};
  std::filesystem::path persistence_location{"/var/lib/mosquitto/"};
  std::chrono::seconds autosave_interval{300};
  /// e.g. "90d": drop sessions of clients gone that long (mosquitto's syntax h d w m y).
  std::optional<std::string> persistent_client_expiration;

  /// Values of `log_type` (error warning notice information subscribe unsubscribe debug
  /// all none) and of `log_dest` (stderr, stdout, syslog, topic, "file /path").
  std::vector<std::string> log_types{"error", "warning", "notice", "information"};
  std::vector<std::string> log_dests{"stderr"};

  std::optional<std::filesystem::path> pid_file;
  std::optional<Plugin> plugin;
  std::optional<ServiceListener> service_listener;  ///< Disabled unless set.
  std::optional<PlainListener> plain_listener;      ///< Disabled unless set.
};

/// Renders mosquitto.conf, each setting preceded by a comment giving its reason.
/// Errors: Errc::config when a value would be unsafe or misparsed (control characters or
/// line breaks anywhere, relative paths, port 0, unknown log type or TLS version, a plain
/// listener on a non-loopback address, empty TLS file paths).
Result<std::string> render_mosquitto_conf(const BrokerConfig& config);

}  // namespace dag::broker
