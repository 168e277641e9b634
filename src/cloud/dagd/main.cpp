// dagd: the detectordag cloud service. Thin: parse the command line, load settings, hand over.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "dag/common/log.hpp"
#include "dag/dagd/daemon.hpp"
#include "dag/dagd/settings.hpp"

#ifndef DAG_VERSION
#define DAG_VERSION "0.0.0"
#endif

namespace {

constexpr int kUsage = 2;  // bad input: config, arguments

int usage_error(const std::string& message) {
  std::fprintf(stderr, "dagd: %s\n", message.c_str());
  return kUsage;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dagd: detectordag's cloud service (device shadows, presence, events, outbox)"};
  app.set_version_flag("--version", std::string("dagd ") + DAG_VERSION);
  std::string config_file;
  app.add_option("-c,--config", config_file, "TOML config file (the environment overrides it)");
  bool print_config = false;
  app.add_flag("--print-config", print_config, "Print the commented default configuration");
  bool check_config = false;
  app.add_flag("--check-config", check_config, "Load and check the configuration, then exit");
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
    std::cout << dag::dagd::dagd_schema().commented_defaults();
    return 0;
  }
  auto settings = dag::dagd::load_settings(
      config_file.empty() ? std::nullopt : std::optional<std::filesystem::path>(config_file),
      dag::config::process_env());
  if (!settings) return usage_error(settings.error().message);
  if (check_config) {
    std::cout << "dagd: configuration ok\n";
    return 0;
  }
  dag::log::Level level{};
  if (dag::log::parse_level(settings->log_level, level)) dag::log::set_level(level);
  return dag::dagd::run_dagd(*settings);
}
