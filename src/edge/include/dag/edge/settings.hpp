// dag-edge's configuration: the schema (file + environment, with the original Python
// app's fleet variables AWS_THING_NAME, AWS_ENDPOINT, AWS_PORT, AWS_ROOT_CERT,
// AWS_THING_CERT, AWS_THING_KEY as aliases) and the typed settings built from it.
//
// Tunables are the subset the cloud may change at run time through the shadow's
// desired.config (see docs/protocol.md); apply_delta() validates such a change.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "dag/common/config.hpp"
#include "dag/common/log.hpp"
#include "dag/common/result.hpp"

namespace dag::edge {

/// Settings the cloud may change through desired.config. Names are the JSON keys.
struct Tunables {
  std::int64_t debounce_ms{200};            ///< "debounceMs", 10..10000
  std::int64_t reread_s{60};                ///< "rereadS", 5..3600: safety-net re-read of the line
  std::int64_t battery_poll_mains_s{60};    ///< "batteryPollMainsS", 5..3600
  std::int64_t battery_poll_battery_s{10};  ///< "batteryPollBatteryS", 5..600
  std::int64_t low_battery_percent{20};     ///< "lowBatteryPercent", 0..100
  std::string log_level{"info"};            ///< "logLevel": trace|debug|info|warn|error

  [[nodiscard]] nlohmann::json to_json() const;
  bool operator==(const Tunables&) const = default;
};

/// The outcome of applying a desired.config delta: what was applied, and one message per
/// rejected key (unknown key, wrong type, out of range). Rejected keys leave the current
/// value unchanged; the rest of the delta still applies.
struct DeltaOutcome {
  Tunables applied;
  std::map<std::string, std::string> rejected;
  bool changed{false};
};
DeltaOutcome apply_delta(const Tunables& current, const nlohmann::json& config_delta);

struct EdgeSettings {
  std::string device_id;
  std::string broker_host;
  int broker_port{8883};
  int keepalive_s{60};
  int protocol_version{5};
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  std::filesystem::path state_dir;
  std::string power_source{"sim"};  ///< "gpiod" | "sim"
  std::string gpio_chip{"gpiochip0"};
  unsigned gpio_line{4};
  bool gpio_active_low{false};
  bool sim_initial_on{true};
  std::string battery_gauge{"none"};  ///< "max17040" | "sim" | "none"
  std::string i2c_device{"/dev/i2c-1"};
  int i2c_address{0x36};
  std::int64_t shutdown_percent{0};  ///< 0 = never
  std::string shutdown_command;
  std::size_t outbox_capacity{10'000};
  Tunables tunables;
};

/// The schema shared by `dag-edge run`, `--print-config` and the tests.
const config::Schema& edge_schema();

/// Builds typed settings from a validated Config. Errors: Errc::config (a device id that is
/// not valid on our topics, a gpio line out of range).
Result<EdgeSettings> settings_from(const config::Config& cfg);

/// Loads the file (optional) and the environment into settings.
Result<EdgeSettings> load_settings(const std::optional<std::filesystem::path>& file,
                                   const config::Env& env);

}  // namespace dag::edge
