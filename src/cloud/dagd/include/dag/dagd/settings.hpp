// dagd's configuration: the schema (TOML file + DAG_* environment, see dag/common/config.hpp)
// and the typed settings built from it. `dagd --print-config` prints the commented defaults.
//
// Thread-safety: values. Blocking: load_settings reads the file and any PEM paths.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dag/common/config.hpp"
#include "dag/common/result.hpp"
#include "dag/store/sqlite.hpp"

namespace dag::dagd {

struct DagdSettings {
  std::filesystem::path state_dir;
  std::filesystem::path database_path;
  store::SqliteOptions::Durability durability{store::SqliteOptions::Durability::power_safe};
  int cache_mib{32};  ///< the write connection's page cache

  std::string mqtt_host;
  int mqtt_port{8883};
  std::string client_id;
  int keepalive_s{30};
  int protocol_version{5};
  std::string share_group;  ///< empty: plain subscriptions
  int max_inflight{1000};
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;

  int batch_max{500};
  int queue_max{20'000};
  int rate_per_s{20};
  int rate_burst{20};
  int timer_lease_s{60};
  int timer_poll_ms{5000};

  std::string jwt_secret;  ///< for the REST API's tokens; empty: random per start
  std::string public_url;  ///< no trailing slash
  bool api_enabled{true};
  std::string api_host{"127.0.0.1"};
  int api_port{8080};            ///< 0: any free port
  std::string api_tls_cert_pem;  ///< both set: HTTPS
  std::string api_tls_key_pem;
  std::int64_t token_ttl_s{7200};
  std::filesystem::path web_root;  ///< empty: no dashboard
  std::vector<std::string> cors_origins;
  bool trust_forwarded_for{false};
  std::string metrics_token;  ///< empty: /metrics is open
  int login_per_user_per_minute{5};
  int login_per_address_per_minute{30};
  int api_threads{8};
  int max_streams{2000};

  std::string smtp_url;  ///< empty: no e-mail channel
  std::string smtp_from;
  std::string smtp_username;
  std::string smtp_password;
  std::string smtp_starttls{"opportunistic"};
  std::int64_t coalesce_window_ms{5000};
  int notify_concurrency{8};
  std::int64_t storm_hold_ms{8000};
  std::int64_t storm_backlog{200};
  std::int64_t storm_rate{40};
  std::int64_t retry_initial_s{30};
  std::int64_t retry_max_s{3600};
  std::int64_t give_up_s{86'400};
  bool allow_private_addresses{false};

  std::string log_level{"info"};
};

/// The schema (also what --print-config prints).
const config::Schema& dagd_schema();

/// Typed settings from a loaded config. Errors: Errc::config (a value the schema cannot
/// check, e.g. the client id syntax).
Result<DagdSettings> settings_from(const config::Config& cfg);

/// load + settings_from. Errors: Errc::config / Errc::parse / Errc::io from the loader.
Result<DagdSettings> load_settings(const std::optional<std::filesystem::path>& file,
                                   const config::Env& env);

}  // namespace dag::dagd
