// dag-sim: the fleet simulator. Thin: parse the command line, get identities, hand over.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "dag/common/log.hpp"
#include "dag/common/pki.hpp"
#include "dag/sim/fleet.hpp"
#include "dag/sim/identity.hpp"
#include "dag/sim/scenario.hpp"

#ifndef DAG_VERSION
#define DAG_VERSION "0.0.0"
#endif

namespace {

constexpr int kUsage = 2;  // bad input: arguments, certificates, bundles

std::atomic<bool> g_interrupt{false};

extern "C" void on_signal(int /*sig*/) {
  g_interrupt.store(true);
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "dag-sim: %s\n", message.c_str());
  return kUsage;
}

int exit_code(const dag::Error& e) {
  switch (e.code) {
    case dag::Errc::invalid_argument:
    case dag::Errc::not_found:
    case dag::Errc::parse:
    case dag::Errc::config: return kUsage;
    default: return 1;
  }
}

int failure(const dag::Error& e) {
  std::fprintf(stderr, "dag-sim: %s\n", e.message.c_str());
  return exit_code(e);
}

// Every dag holds a socket, plus a file with --outbox-dir: ask for enough descriptors,
// raising the hard limit too when allowed (root).
dag::Result<void> raise_fd_limit(std::size_t devices, bool outbox_files) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return dag::ok();
  const auto need = static_cast<rlim_t>(devices * (outbox_files ? 2 : 1) + 256);
  if (lim.rlim_cur >= need) return dag::ok();
  rlimit want = lim;
  want.rlim_cur = need;
  if (want.rlim_max != RLIM_INFINITY && want.rlim_max < need) want.rlim_max = need;
  if (::setrlimit(RLIMIT_NOFILE, &want) != 0) {
    return dag::fail(dag::Errc::invalid_argument,
                     std::to_string(devices) + " dags need " + std::to_string(need) +
                         " file descriptors, the hard limit is " + std::to_string(lim.rlim_max) +
                         " (raise `ulimit -Hn`, or fewer dags)");
  }
  return dag::ok();
}

struct Cli {
  int devices{0};
  std::string scenario{"storm"};
  double percent{100};
  double duration_s{10};
  std::uint64_t seed{1};
  dag::sim::FleetOptions fo{};
  std::string broker_ca{};
  std::string bundles{};
  std::string ca_cert{};
  std::string ca_key{};
  std::string prefix{"sim-"};
  std::string provision_db{};
  std::string account_size{"1"};
  std::pair<int, int> account_bounds{1, 1};
  std::string owner_email_domain{};
  double connect_timeout_s{120};
  double drain_timeout_s{30};
  double linger_s{0};
  double outage_s{5};
  std::string outbox_dir{};
  std::string per_device{};
  std::string log_level{"error"};
  bool no_progress{false};
};

void define(CLI::App& app, Cli& c) {
  app.add_option("--devices,-n", c.devices,
                 "Number of dags (default: every bundle with --bundles)");
  app.add_option("--scenario", c.scenario, "storm | random | flap | network | drain | rolling")
      ->capture_default_str();
  app.add_option("--percent", c.percent, "Share of the dags the scenario hits, 0..100")
      ->capture_default_str();
  app.add_option("--duration", c.duration_s, "Scenario length in seconds")->capture_default_str();
  app.add_option("--seed", c.seed, "Seed of the scenario's choices and times")
      ->capture_default_str();

  app.add_option("--host", c.fo.host, "Broker host (an IP literal or a name in its certificate)")
      ->capture_default_str();
  app.add_option("--port", c.fo.port, "Broker device port (TLS)")->capture_default_str();
  app.add_option("--broker-ca", c.broker_ca,
                 "CA file the broker's certificate chains to (default: --ca-cert, or the "
                 "bundles' ca.pem)");
  app.add_option("--keepalive", c.fo.keepalive_s, "MQTT keep-alive, seconds")
      ->capture_default_str();

  app.add_option("--bundles", c.bundles,
                 "Directory of `dagctl device add --format dir` bundles (one subdirectory "
                 "per dag with cert.pem, key.pem, ca.pem)");
  app.add_option("--ca-cert", c.ca_cert, "Deployment CA certificate: mint device certificates");
  app.add_option("--ca-key", c.ca_key, "Deployment CA key (with --ca-cert)");
  app.add_option("--id-prefix", c.prefix, "Device ids of minted dags: <prefix>NNNNNN")
      ->capture_default_str();
  app.add_option("--provision-db", c.provision_db,
                 "dagd's SQLite database: register the minted dags there first");
  app.add_option("--account-size", c.account_size,
                 "Dags per simulated account: N, or MIN-MAX (sizes drawn with --seed), 1..10")
      ->capture_default_str();
  app.add_option("--owner-email-domain", c.owner_email_domain,
                 "With --provision-db: give each simulated account a verified e-mail target "
                 "<account>@DOMAIN, so that dagd mails its owner");

  app.add_option("--threads", c.fo.threads, "Worker threads (each drives many connections)")
      ->capture_default_str();
  app.add_option("--connect-concurrency", c.fo.connect_concurrency,
                 "TLS handshakes in progress at once")
      ->capture_default_str();
  app.add_option("--connect-timeout", c.connect_timeout_s,
                 "Seconds for every dag to connect and have its first report accepted")
      ->capture_default_str();
  app.add_option("--drain-timeout", c.drain_timeout_s,
                 "Seconds after the scenario for every outbox to empty")
      ->capture_default_str();
  app.add_option("--linger", c.linger_s,
                 "Seconds every dag stays connected after the drain (SIGTERM/SIGINT end it "
                 "early, with the summary as usual): a harness measuring what the cloud does "
                 "after the scenario keeps the fleet's teardown out of it")
      ->capture_default_str();
  app.add_option("--debounce-ms", c.fo.debounce_ms, "The agents' debounce window")
      ->capture_default_str();
  app.add_option("--storm-window-ms", c.fo.scenario.storm_window_ms,
                 "storm/drain: the window the cuts are spread over")
      ->capture_default_str();
  app.add_option("--outage", c.outage_s, "network: outage length; random: mean outage, seconds")
      ->capture_default_str();
  app.add_option("--flap-period-ms", c.fo.scenario.flap_period_ms, "flap: one off+on cycle")
      ->capture_default_str();
  app.add_option("--interval-ms", c.fo.scenario.interval_ms,
                 "rolling: between one dag's cut and the next")
      ->capture_default_str();
  app.add_option("--shutdown-percent", c.fo.shutdown_percent,
                 "drain: charge at which a dag reports shuttingDown and goes dark")
      ->capture_default_str();
  app.add_option("--outbox-dir", c.outbox_dir,
                 "Durable outboxes in DIR/<id>/ (default: in memory)");
  app.add_option("--per-device", c.per_device,
                 "Write one JSON line per hit dag (cut, observedAt, acceptedAt, latency)");
  app.add_option("--log-level", c.log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_flag("--no-progress", c.no_progress, "No progress line on stderr");
}

// Checks the arguments and completes c.fo; the message for a bad one.
std::optional<std::string> check(Cli& c) {
  auto kind = dag::sim::parse_scenario(c.scenario);
  if (!kind) return std::string(kind.error().message);
  c.fo.scenario.kind = *kind;
  c.fo.scenario.percent = c.percent;
  c.fo.scenario.seed = c.seed;
  c.fo.scenario.duration_ms = static_cast<std::int64_t>(c.duration_s * 1000);
  c.fo.scenario.outage_ms = static_cast<std::int64_t>(c.outage_s * 1000);
  if (!(c.percent >= 0 && c.percent <= 100)) return std::string("--percent must be 0..100");
  if (!(c.duration_s > 0 && c.duration_s <= 86400))
    return std::string("--duration must be 0..86400 s");
  if (!(c.outage_s > 0)) return std::string("--outage must be positive");
  if (c.fo.threads < 1 || c.fo.threads > 64) return std::string("--threads must be 1..64");
  if (c.fo.connect_concurrency < 1) return std::string("--connect-concurrency must be at least 1");
  if (c.fo.port < 1 || c.fo.port > 65535) return std::string("--port must be 1..65535");
  if (c.fo.keepalive_s < 5 || c.fo.keepalive_s > 65535)
    return std::string("--keepalive must be 5..65535");
  if (c.fo.debounce_ms < 10 || c.fo.debounce_ms > 10000)
    return std::string("--debounce-ms must be 10..10000 (dag-edge's range)");
  if (c.fo.shutdown_percent < 0 || c.fo.shutdown_percent > 100)
    return std::string("--shutdown-percent must be 0..100");
  if (!(c.connect_timeout_s > 0) || !(c.drain_timeout_s >= 0))
    return std::string("timeouts must be positive");
  if (!(c.linger_s >= 0) || c.linger_s > 86'400) return std::string("--linger must be 0..86400");
  auto bounds = dag::sim::parse_account_size(c.account_size);
  if (!bounds) return "--account-size: " + bounds.error().message;
  c.account_bounds = *bounds;
  if (!c.owner_email_domain.empty() && c.provision_db.empty())
    return std::string("--owner-email-domain goes with --provision-db");
  if (c.devices < 0 || c.devices > 100'000) return std::string("--devices must be 1..100000");
  c.fo.connect_timeout =
      std::chrono::milliseconds{static_cast<std::int64_t>(c.connect_timeout_s * 1000)};
  c.fo.drain_timeout =
      std::chrono::milliseconds{static_cast<std::int64_t>(c.drain_timeout_s * 1000)};
  c.fo.linger = std::chrono::milliseconds{static_cast<std::int64_t>(c.linger_s * 1000)};
  c.fo.outbox_dir = c.outbox_dir;
  c.fo.per_device = c.per_device;

  const bool minting = !c.ca_cert.empty() || !c.ca_key.empty();
  if (minting == !c.bundles.empty())
    return std::string("give either --bundles DIR or --ca-cert FILE --ca-key FILE");
  if (minting && (c.ca_cert.empty() || c.ca_key.empty()))
    return std::string("--ca-cert and --ca-key go together");
  if (!c.bundles.empty() && !c.provision_db.empty())
    return std::string("--provision-db is for minted dags; bundles were provisioned by dagctl");
  if (minting && c.devices == 0) return std::string("--devices is required with --ca-cert");

  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dag-sim: a fleet of simulated dags (real dag-edge agents, each with its own "
      "certificate and MQTT/TLS connection) playing a scenario against a detectordag "
      "cloud.\nPrints progress on stderr and one JSON summary line on stdout."};
  app.set_version_flag("--version", std::string("dag-sim ") + DAG_VERSION);

  Cli c;
  define(app, c);

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

  dag::log::Level level{};
  if (!dag::log::parse_level(c.log_level, level))
    return usage_error("bad --log-level " + c.log_level);
  dag::log::set_level(level);

  if (auto bad = check(c)) return usage_error(*bad);
  const bool minting = !c.ca_cert.empty();

  const auto started = std::chrono::steady_clock::now();
  dag::sim::Credentials creds;
  if (minting) {
    auto cert = dag::pki::read_pem_file(c.ca_cert);
    if (!cert) return failure(cert.error());
    auto key = dag::pki::read_pem_file(c.ca_key);
    if (!key) return failure(key.error());
    auto matches = dag::pki::key_matches_certificate(*key, *cert);
    if (!matches || !*matches) return usage_error("--ca-key is not the key of --ca-cert");
    auto minted =
        dag::sim::mint({*cert, *key}, c.prefix, static_cast<std::size_t>(c.devices), c.fo.threads);
    if (!minted) return failure(minted.error());
    creds.devices = std::move(*minted);
    creds.broker_ca_pem = *cert;
  } else {
    auto loaded = dag::sim::load_bundles(
        c.bundles, c.devices > 0 ? static_cast<std::size_t>(c.devices) : SIZE_MAX);
    if (!loaded) return failure(loaded.error());
    if (c.devices > 0 && loaded->devices.size() < static_cast<std::size_t>(c.devices)) {
      return usage_error("asked for " + std::to_string(c.devices) + " dags, " + c.bundles +
                         " has " + std::to_string(loaded->devices.size()) + " bundles");
    }
    creds = std::move(*loaded);
  }
  if (!c.broker_ca.empty()) {
    auto ca = dag::pki::read_pem_file(c.broker_ca);
    if (!ca) return failure(ca.error());
    creds.broker_ca_pem = *ca;
  }
  if (creds.broker_ca_pem.empty()) return usage_error("no broker CA: give --broker-ca");
  const double identities_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  if (!c.provision_db.empty()) {
    std::vector<std::string> ids;
    ids.reserve(creds.devices.size());
    for (const auto& d : creds.devices) ids.push_back(d.id);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    dag::sim::ProvisionOptions po;
    po.prefix = c.prefix;
    po.min_account_size = c.account_bounds.first;
    po.max_account_size = c.account_bounds.second;
    po.seed = c.seed;
    po.owner_email_domain = c.owner_email_domain;
    po.now_ms = now_ms;
    auto p = dag::sim::provision(c.provision_db, ids, po);
    if (!p) {
      if (p.error().code == dag::Errc::invalid_argument) return usage_error(p.error().message);
      return failure(p.error());
    }
    dag::log::info("sim.provisioned", {{"devices_created", p->devices_created},
                                       {"devices_existing", p->devices_existing},
                                       {"accounts_created", p->accounts_created},
                                       {"targets_created", p->targets_created}});
  }
  if (auto r = raise_fd_limit(creds.devices.size(), !c.outbox_dir.empty()); !r)
    return failure(r.error());

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  c.fo.interrupt = &g_interrupt;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (!c.no_progress) {
    c.fo.progress = [tty](const dag::sim::Progress& p) {
      const std::string line = dag::sim::format_progress(p);
      std::fprintf(stderr, tty ? "\r%s\033[K" : "%s\n", line.c_str());
      std::fflush(stderr);
    };
  }
  // A harness waits for this line to know the scenario is over and the fleet still up.
  c.fo.on_lingering = [] {
    std::fprintf(stderr, "dag-sim: drained; lingering (SIGTERM ends it)\n");
    std::fflush(stderr);
  };
  auto summary = dag::sim::run_fleet(c.fo, creds);
  if (!c.no_progress && tty) std::fprintf(stderr, "\n");
  if (!summary) return failure(summary.error());
  (*summary)["identitiesS"] = std::round(identities_s * 10) / 10;
  std::cout << summary->dump() << std::endl;
  return (*summary)["ok"].get<bool>() ? 0 : 1;
}
