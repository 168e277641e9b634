// dag-edge: the device agent. Thin: parse the command line, load settings, hand over.
#include <CLI/CLI.hpp>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "dag/common/encoding.hpp"
#include "dag/common/log.hpp"
#include "dag/common/pki.hpp"
#include "dag/edge/outbox.hpp"
#include "dag/edge/run.hpp"
#include "dag/edge/settings.hpp"

#ifndef DAG_VERSION
#define DAG_VERSION "0.0.0"
#endif

namespace {

constexpr int kUsage = 2;  // bad input: config, certificates, arguments

int usage_error(const std::string& message) {
  std::fprintf(stderr, "dag-edge: %s\n", message.c_str());
  return kUsage;
}

std::string boot_id() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// Certificates are checked before any connection so that a bad bundle is a clear message
// at start-up, not an endless reconnect loop.
dag::Result<void> check_identity(const dag::edge::EdgeSettings& s) {
  using dag::Errc;
  using dag::fail;
  auto ca = dag::pki::inspect_certificate(s.ca_pem);
  if (!ca) return fail(Errc::config, "tls.ca is not a usable certificate: " + ca.error().message);
  auto cert = dag::pki::inspect_certificate(s.cert_pem);
  if (!cert)
    return fail(Errc::config, "tls.cert is not a usable certificate: " + cert.error().message);
  const auto now = std::chrono::system_clock::now();
  if (cert->not_after < now) return fail(Errc::config, "tls.cert has expired");
  auto matches = dag::pki::key_matches_certificate(s.key_pem, s.cert_pem);
  if (!matches)
    return fail(Errc::config, "tls.key is not a usable private key: " + matches.error().message);
  if (!*matches) return fail(Errc::config, "tls.key does not belong to tls.cert");
  if (cert->subject_cn != s.device_id) {
    // AWS IoT certificates do not carry the thing name; ours do, and the broker binds
    // topics to it, so say so but let AWS-style setups run.
    dag::log::warn("tls.cn_mismatch", {{"cn", cert->subject_cn}, {"device", s.device_id}});
  }
  return dag::ok();
}

dag::Result<std::filesystem::path> state_dir_from(const std::string& config_file,
                                                  const std::string& state_dir) {
  if (!state_dir.empty()) return std::filesystem::path(state_dir);
  auto cfg = dag::config::load(
      dag::edge::edge_schema(),
      config_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(config_file),
      dag::config::process_env());
  if (cfg && cfg->has("device.state_dir"))
    return std::filesystem::path(cfg->str("device.state_dir"));
  // Without a complete config, the state dir may still be known from the file or env.
  auto env = dag::config::process_env()("DAG_DEVICE_STATE_DIR");
  if (env) return std::filesystem::path(*env);
  if (!cfg) return dag::Unexpected{cfg.error()};
  return std::filesystem::path("/var/lib/dag-edge");
}

int cmd_status(const std::filesystem::path& dir) {
  auto answer = dag::edge::control_request(dir, "status");
  if (answer) {
    std::cout << nlohmann::json::parse(*answer, nullptr, false).dump(2) << "\n";
    return 0;
  }
  // Not running: what the disk says is still worth showing.
  auto box = dag::edge::Outbox::open(dir);
  nlohmann::json s = {{"running", false}, {"reason", answer.error().message}};
  if (box) {
    s["outboxDepth"] = box->pending().size();
    s["lastSeq"] = box->last_seq();
    s["outboxCoalesced"] = box->coalesced_total();
  } else {
    s["outboxError"] = box.error().message;
  }
  std::cout << s.dump(2) << "\n";
  return 1;
}

int cmd_keygen(const std::string& out_dir, std::string id) {
  if (id.empty()) {
    auto uuid = dag::new_uuid();
    if (!uuid) return usage_error(uuid.error().message);
    id = *uuid;
  }
  if (!dag::pki::is_valid_identity(id)) return usage_error("'" + id + "' is not a valid device id");
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return usage_error("cannot create " + out_dir + ": " + ec.message());
  const std::filesystem::path key_path = std::filesystem::path(out_dir) / "key.pem";
  if (std::filesystem::exists(key_path)) {
    return usage_error(key_path.string() + " exists; refusing to replace a device key");
  }
  auto key = dag::pki::generate_key();
  if (!key) return usage_error(key.error().message);
  auto csr = dag::pki::create_csr(*key, id);
  if (!csr) return usage_error(csr.error().message);
  {
    const mode_t old = ::umask(077);
    std::ofstream(key_path) << *key;
    ::umask(old);
  }
  std::ofstream(std::filesystem::path(out_dir) / "csr.pem") << *csr;
  std::cout << "device id: " << id << "\n"
            << "private key: " << key_path.string() << " (stays on this device)\n"
            << "CSR: " << (std::filesystem::path(out_dir) / "csr.pem").string()
            << " (give it to `dagctl device add --csr`)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dag-edge: watches mains power and reports it to detectordag over MQTT"};
  app.set_version_flag("--version", std::string("dag-edge ") + DAG_VERSION);
  std::string config_file;
  app.add_option("-c,--config", config_file, "TOML config file (the environment overrides it)");
  bool print_config = false;
  app.add_flag("--print-config", print_config, "Print the commented default configuration");
  app.require_subcommand(0, 1);

  auto* run = app.add_subcommand("run", "Run the agent (until SIGTERM)");
  auto* status =
      app.add_subcommand("status", "Show the local state: line, battery, outbox, last ack");
  std::string state_dir;
  status->add_option("--state-dir", state_dir, "State directory (default: from the config)");
  auto* sim = app.add_subcommand("sim", "Drive the simulated line of a running agent");
  std::vector<std::string> sim_args;
  sim->add_option("--state-dir", state_dir, "State directory (default: from the config)");
  sim->add_option("command", sim_args, "on | off | toggle | battery <percent> <volts>")->required();
  auto* keygen =
      app.add_subcommand("keygen", "Make an EC P-256 key and a CSR; the key never leaves");
  std::string out_dir;
  std::string key_id;
  keygen->add_option("--out", out_dir, "Directory for key.pem and csr.pem")->required();
  keygen->add_option("--id", key_id, "Device id for the CSR (default: a new UUID)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }

  if (print_config) {
    std::cout << dag::edge::edge_schema().commented_defaults();
    return 0;
  }
  if (*keygen) return cmd_keygen(out_dir, key_id);
  if (*status || *sim) {
    auto dir = state_dir_from(config_file, state_dir);
    if (!dir) return usage_error(dir.error().message);
    if (*status) return cmd_status(*dir);
    std::string command;
    for (const auto& a : sim_args) command += (command.empty() ? "" : " ") + a;
    auto answer = dag::edge::control_request(*dir, command);
    if (!answer) return usage_error(answer.error().message);
    std::cout << *answer << "\n";
    return answer->starts_with("error") ? kUsage : 0;
  }
  if (!*run) {
    std::cout << app.help();
    return kUsage;
  }

  auto settings = dag::edge::load_settings(
      config_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(config_file),
      dag::config::process_env());
  if (!settings) return usage_error(settings.error().message);
  dag::log::Level level{};
  if (dag::log::parse_level(settings->tunables.log_level, level)) dag::log::set_level(level);
  if (auto r = check_identity(*settings); !r) return usage_error(r.error().message);
  return dag::edge::run_agent(*settings, {DAG_VERSION, boot_id()});
}
