#include "dag/edge/settings.hpp"

#include "dag/protocol/topics.hpp"

namespace dag::edge {
namespace {

using config::Field;
using config::Type;

struct IntTunable {
  const char* key;
  std::int64_t Tunables::*member;
  std::int64_t min;
  std::int64_t max;
};

constexpr IntTunable kIntTunables[] = {
    {"debounceMs", &Tunables::debounce_ms, 10, 10'000},
    {"rereadS", &Tunables::reread_s, 5, 3600},
    {"batteryPollMainsS", &Tunables::battery_poll_mains_s, 5, 3600},
    {"batteryPollBatteryS", &Tunables::battery_poll_battery_s, 5, 600},
    {"lowBatteryPercent", &Tunables::low_battery_percent, 0, 100},
};

config::Schema make_schema() {
  config::Schema s("dag-edge");
  s.add(Field{.key = "device.id",
              .help = "Device id: the certificate's CN and the shadow's thing name",
              .required = true,
              .env_aliases = {"AWS_THING_NAME"}});
  s.add(Field{.key = "device.state_dir",
              .default_value = "/var/lib/dag-edge",
              .help = "Outbox, applied config, control socket and certificate files live here"});
  s.add(Field{.key = "broker.host",
              .default_value = "localhost",
              .help = "MQTT broker host name",
              .env_aliases = {"AWS_ENDPOINT"}});
  s.add(Field{.key = "broker.port",
              .type = Type::integer,
              .default_value = "8883",
              .help = "MQTT over TLS port",
              .min = 1,
              .max = 65535,
              .env_aliases = {"AWS_PORT"}});
  s.add(Field{.key = "broker.keepalive_s",
              .type = Type::integer,
              .default_value = "60",
              .help = "MQTT keep-alive; AWS IoT accepts 30..1200",
              .min = 30,
              .max = 1200});
  s.add(Field{.key = "broker.protocol",
              .default_value = "5",
              .help = "MQTT version",
              .choices = {"5", "3.1.1"}});
  s.add(Field{.key = "tls.ca",
              .type = Type::pem,
              .help = "Root CA that signed the broker's certificate",
              .required = true,
              .env_aliases = {"AWS_ROOT_CERT"}});
  s.add(Field{.key = "tls.cert",
              .type = Type::pem,
              .help = "This device's certificate",
              .required = true,
              .env_aliases = {"AWS_THING_CERT"}});
  s.add(Field{.key = "tls.key",
              .type = Type::pem,
              .help = "This device's private key",
              .required = true,
              .secret = true,
              .env_aliases = {"AWS_THING_KEY"}});
  s.add(Field{.key = "power.source",
              .default_value = "gpiod",
              .help = "Where mains status comes from",
              .choices = {"gpiod", "sim"}});
  s.add(Field{.key = "power.gpio_chip",
              .default_value = "gpiochip0",
              .help = "gpiod chip (name, path or number)"});
  s.add(Field{.key = "power.gpio_line",
              .type = Type::integer,
              .default_value = "4",
              .help = "Line offset; UPS-Lite routes mains status to BCM 4",
              .min = 0,
              .max = 1023});
  s.add(Field{.key = "power.active_low",
              .type = Type::boolean,
              .default_value = "false",
              .help = "true when the line is low while mains is present"});
  s.add(Field{.key = "power.sim_initial",
              .default_value = "on",
              .help = "Initial level of the simulated line",
              .choices = {"on", "off"}});
  s.add(Field{.key = "power.debounce_ms",
              .type = Type::integer,
              .default_value = "200",
              .help = "A level counts once it held this long",
              .min = 10,
              .max = 10'000});
  s.add(Field{.key = "power.reread_s",
              .type = Type::integer,
              .default_value = "60",
              .help = "Safety-net re-read of the line, in case an edge was missed",
              .min = 5,
              .max = 3600});
  s.add(Field{.key = "battery.gauge",
              .default_value = "none",
              .help = "Fuel gauge",
              .choices = {"max17040", "sim", "none"}});
  s.add(Field{.key = "battery.i2c_device", .default_value = "/dev/i2c-1", .help = "I2C bus"});
  s.add(Field{.key = "battery.i2c_address",
              .type = Type::integer,
              .default_value = "54",
              .help = "Gauge address (UPS-Lite: 0x36 = 54)",
              .min = 3,
              .max = 119});
  s.add(Field{.key = "battery.poll_mains_s",
              .type = Type::integer,
              .default_value = "60",
              .help = "Gauge poll period on mains",
              .min = 5,
              .max = 3600});
  s.add(Field{.key = "battery.poll_battery_s",
              .type = Type::integer,
              .default_value = "10",
              .help = "Gauge poll period on battery",
              .min = 5,
              .max = 600});
  s.add(Field{.key = "battery.low_percent",
              .type = Type::integer,
              .default_value = "20",
              .help = "Reported as battery.low at or below this charge",
              .min = 0,
              .max = 100});
  s.add(Field{
      .key = "battery.shutdown_percent",
      .type = Type::integer,
      .default_value = "0",
      .help = "On battery at or below this charge: report, then run shutdown_command (0 = never)",
      .min = 0,
      .max = 100});
  s.add(Field{.key = "battery.shutdown_command",
              .default_value = "",
              .help = "Run through /bin/sh at the critical level, like NUT's SHUTDOWNCMD"});
  s.add(Field{.key = "outbox.capacity",
              .type = Type::integer,
              .default_value = "10000",
              .help = "Pending reports kept; when full the oldest are coalesced",
              .min = 10,
              .max = 1'000'000});
  s.add(Field{.key = "log.level",
              .default_value = "info",
              .help = "Log level",
              .choices = {"trace", "debug", "info", "warn", "error"}});
  return s;
}

}  // namespace

nlohmann::json Tunables::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& t : kIntTunables) j[t.key] = this->*t.member;
  j["logLevel"] = log_level;
  return j;
}

DeltaOutcome apply_delta(const Tunables& current, const nlohmann::json& config_delta) {
  DeltaOutcome out{current, {}, false};
  if (!config_delta.is_object()) {
    out.rejected["config"] = "must be an object";
    return out;
  }
  for (const auto& item : config_delta.items()) {
    const std::string& key = item.key();
    const auto& value = item.value();
    if (key == "logLevel") {
      log::Level l{};
      if (!value.is_string() || !log::parse_level(value.get<std::string>(), l) ||
          value.get<std::string>() == "off") {
        out.rejected[key] = "must be one of trace, debug, info, warn, error";
        continue;
      }
      out.applied.log_level = value.get<std::string>();
      continue;
    }
    const auto* it = std::find_if(std::begin(kIntTunables), std::end(kIntTunables),
                                  [&](const IntTunable& t) { return key == t.key; });
    if (it == std::end(kIntTunables)) {
      out.rejected[key] = "unknown key";
      continue;
    }
    if (!value.is_number_integer()) {
      out.rejected[key] = "must be an integer";
      continue;
    }
    const auto v = value.get<std::int64_t>();
    if (v < it->min || v > it->max) {
      out.rejected[key] =
          "must be within " + std::to_string(it->min) + ".." + std::to_string(it->max);
      continue;
    }
    out.applied.*(it->member) = v;
  }
  out.changed = !(out.applied == current);
  return out;
}

const config::Schema& edge_schema() {
  static const config::Schema schema = make_schema();
  return schema;
}

Result<EdgeSettings> settings_from(const config::Config& cfg) {
  EdgeSettings s;
  s.device_id = cfg.str("device.id");
  if (!protocol::is_valid_device_id(s.device_id)) {
    return fail(Errc::config, "device.id '" + s.device_id +
                                  "' is not a valid thing name ([A-Za-z0-9_.:-], 1..128)");
  }
  s.state_dir = cfg.str("device.state_dir");
  s.broker_host = cfg.str("broker.host");
  s.broker_port = static_cast<int>(cfg.integer("broker.port"));
  s.keepalive_s = static_cast<int>(cfg.integer("broker.keepalive_s"));
  s.protocol_version = cfg.str("broker.protocol") == "5" ? 5 : 4;
  s.ca_pem = cfg.pem("tls.ca");
  s.cert_pem = cfg.pem("tls.cert");
  s.key_pem = cfg.pem("tls.key");
  s.power_source = cfg.str("power.source");
  s.gpio_chip = cfg.str("power.gpio_chip");
  s.gpio_line = static_cast<unsigned>(cfg.integer("power.gpio_line"));
  s.gpio_active_low = cfg.boolean("power.active_low");
  s.sim_initial_on = cfg.str("power.sim_initial") == "on";
  s.battery_gauge = cfg.str("battery.gauge");
  s.i2c_device = cfg.str("battery.i2c_device");
  s.i2c_address = static_cast<int>(cfg.integer("battery.i2c_address"));
  s.shutdown_percent = cfg.integer("battery.shutdown_percent");
  s.shutdown_command =
      cfg.has("battery.shutdown_command") ? cfg.str("battery.shutdown_command") : "";
  if (s.shutdown_percent > 0 && s.shutdown_command.empty()) {
    return fail(Errc::config,
                "battery.shutdown_percent is set but battery.shutdown_command is empty");
  }
  s.outbox_capacity = static_cast<std::size_t>(cfg.integer("outbox.capacity"));
  s.tunables.debounce_ms = cfg.integer("power.debounce_ms");
  s.tunables.reread_s = cfg.integer("power.reread_s");
  s.tunables.battery_poll_mains_s = cfg.integer("battery.poll_mains_s");
  s.tunables.battery_poll_battery_s = cfg.integer("battery.poll_battery_s");
  s.tunables.low_battery_percent = cfg.integer("battery.low_percent");
  s.tunables.log_level = cfg.str("log.level");
  return s;
}

Result<EdgeSettings> load_settings(const std::optional<std::filesystem::path>& file,
                                   const config::Env& env) {
  auto cfg = config::load(edge_schema(), file, env);
  if (!cfg) return Unexpected{cfg.error()};
  return settings_from(*cfg);
}

}  // namespace dag::edge
