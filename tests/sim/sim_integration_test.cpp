// dag-sim against a real Mosquitto (TLS client certificates, the production ACL) and a
// real dagd: the simulated dags' reports must end up in dagd's database.
//
// Waiting: dag-sim itself waits for the /update/accepted replies (each dag's outbox
// empties only on its reply) and the test waits for dag-sim's exit, bounded. dagd commits
// before it replies, so once dag-sim has seen every reply the database holds every report.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <string>
#include <vector>

#include "dag/sim/fleet.hpp"
#include "dag/sim/identity.hpp"
#include "dag/store/records.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"
#include "dag/test/dagd_process.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class SimIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = MosquittoBroker::start(pki_);
    ASSERT_TRUE(b) << b.error().message;
    broker_ = std::move(*b);
    DagdOptions o;
    o.binary = DAG_DAGD_BIN;
    o.port = broker_->port();
    auto d = DagdProcess::start(pki_, std::move(o));
    ASSERT_TRUE(d) << d.error().message;
    dagd_ = std::move(*d);
  }
  void TearDown() override {
    if (HasFailure() && dagd_) std::cerr << "--- dagd log\n" << dagd_->log();
    if (HasFailure() && sim_) std::cerr << "--- dag-sim output\n" << sim_->output();
  }

  // dag-sim's command line minting its dags from the test CA into dagd's database, on the
  // test broker, with `more` after it.
  std::vector<std::string> minting_sim(const std::vector<std::string>& more) {
    const auto ca_key = work_ / "ca.key";
    EXPECT_TRUE(pki::write_pem_file(ca_key, pki_.ca().key_pem, pki::kOwnerOnly));
    std::vector<std::string> argv{
        DAG_SIM_BIN,     "--ca-cert",      pki_.ca_file().string(),        "--ca-key",
        ca_key.string(), "--provision-db", dagd_->database().string(),     "--host",
        "127.0.0.1",     "--port",         std::to_string(broker_->port())};
    argv.insert(argv.end(), more.begin(), more.end());
    return argv;
  }

  // dag-sim's JSON summary: its last line that is a JSON object (discarded when none).
  [[nodiscard]] json sim_summary() const {
    json summary = json::value_t::discarded;
    for (const auto& line : sim_->lines()) {
      if (line.starts_with("{")) summary = json::parse(line, nullptr, false);
    }
    return summary;
  }

  void open_db() {
    auto s = store::open_sqlite(dagd_->database());
    ASSERT_TRUE(s) << s.error().message;
    db_ = std::move(*s);
  }

  json shadow(const std::string& id) {
    auto s = store::transact(*db_, store::TxMode::read_only,
                             [&](store::Transaction& tx) { return tx.get_shadow(id); });
    EXPECT_TRUE(s) << s.error().message;
    if (!s || !*s) return nullptr;
    return json::parse((*s)->document);
  }

  std::vector<store::Event> power_offs(const std::string& id) {
    store::EventQuery q;
    q.device_id = id;
    q.limit = 100;
    auto page = store::transact(*db_, store::TxMode::read_only,
                                [&](store::Transaction& tx) { return tx.list_events(q); });
    EXPECT_TRUE(page) << page.error().message;
    std::vector<store::Event> out;
    if (!page) return out;
    for (const auto& e : page->events) {
      if (e.event.kind == store::EventKind::power_off) out.push_back(e.event);
    }
    return out;
  }

  TestPki pki_;
  TempDir work_{"dag-sim-test"};
  std::unique_ptr<MosquittoBroker> broker_;
  std::unique_ptr<DagdProcess> dagd_;
  std::unique_ptr<Process> sim_;
  std::unique_ptr<store::Store> db_;
};

// Bad input is exit code 2 with a message, before anything connects.
TEST(SimCommandLine, BadInputExitsWith2) {
  TempDir dir{"dag-sim-cli"};
  const std::vector<std::vector<std::string>> cases = {
      {"--scenario", "hail", "--ca-cert", "x", "--ca-key", "y", "-n", "1"},
      {"--ca-cert", "x", "-n", "1"},
      {"--bundles", dir.path().string()},
      {"--bundles", dir.path().string(), "--ca-cert", "x", "--ca-key", "y"},
      {"--percent", "120", "--bundles", dir.path().string()},
      {"--no-such-flag"},
  };
  for (const auto& args : cases) {
    std::vector<std::string> argv = {DAG_SIM_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Process::spawn({.argv = argv});
    ASSERT_TRUE(p) << p.error().message;
    auto status = (*p)->wait_for_exit(10s);
    ASSERT_TRUE(status);
    EXPECT_EQ(status->code, 2) << args.front() << ": " << (*p)->output();
    EXPECT_FALSE((*p)->output().empty()) << args.front();  // the reason, on stderr
  }
}

// The command line end to end: mint 50 certificates from the CA, register the dags in
// dagd's database, connect, storm, and one JSON summary line.
TEST_F(SimIntegration, StormOfFiftyDagsIsPersistedByDagd) {
  constexpr int kDevices = 50;
  const auto per_device = work_ / "per-device.jsonl";
  const std::int64_t started_ms = now_ms();
  auto p = Process::spawn(
      {.argv = minting_sim({"--account-size", "5", "--devices", std::to_string(kDevices),
                            "--scenario", "storm", "--percent", "100", "--duration", "1.5",
                            "--seed", "7", "--connect-timeout", "15", "--drain-timeout", "10",
                            "--per-device", per_device.string()})});
  ASSERT_TRUE(p) << p.error().message;
  sim_ = std::move(*p);
  auto status = sim_->wait_for_exit(28s);
  ASSERT_TRUE(status) << "dag-sim did not finish";
  EXPECT_TRUE(status->success()) << status->to_string();

  const json summary = sim_summary();
  ASSERT_TRUE(summary.is_object()) << sim_->output();
  EXPECT_EQ(summary["ok"], true) << summary.dump(2);
  EXPECT_EQ(summary["devices"], kDevices);
  EXPECT_EQ(summary["connect"]["connected"], kDevices);
  EXPECT_EQ(summary["cut"]["devices"], kDevices);
  EXPECT_EQ(summary["cut"]["accepted"], kDevices);
  EXPECT_EQ(summary["cut"]["observedToAcceptedMs"]["count"], kDevices);
  EXPECT_GT(summary["cut"]["observedToAcceptedMs"]["p50"].get<double>(), 0);
  EXPECT_EQ(summary["errors"]["rejected"], 0);

  // Every cut is in the per-device file with its acceptance, inside the 1 s window.
  std::ifstream in(per_device);
  std::string line;
  std::int64_t first_cut = INT64_MAX;
  std::int64_t last_cut = 0;
  int lines = 0;
  while (std::getline(in, line)) {
    const json d = json::parse(line);
    ++lines;
    EXPECT_TRUE(d["acceptedAt"].is_number_integer()) << line;
    EXPECT_GE(d["acceptedAt"].get<std::int64_t>(), d["observedAt"].get<std::int64_t>());
    first_cut = std::min(first_cut, d["cutAt"].get<std::int64_t>());
    last_cut = std::max(last_cut, d["cutAt"].get<std::int64_t>());
  }
  EXPECT_EQ(lines, kDevices);
  EXPECT_LE(last_cut - first_cut, 1100);

  // dagd stored each dag's off report: its shadow and a power_off event with seq.
  ASSERT_NO_FATAL_FAILURE(open_db());
  for (int i = 0; i < kDevices; ++i) {
    const std::string id = sim::device_id("sim-", static_cast<std::size_t>(i));
    const json doc = shadow(id);
    ASSERT_TRUE(doc.is_object()) << id;
    EXPECT_EQ(doc["state"]["reported"]["status"], "off") << id << " " << doc.dump();
    const auto offs = power_offs(id);
    ASSERT_EQ(offs.size(), 1U) << id;
    EXPECT_TRUE(offs[0].seq.has_value());
    EXPECT_GE(offs[0].observed_at_ms, started_ms);
    EXPECT_FALSE(offs[0].clock_fallback);
  }
}

// --linger: after the drain the fleet stays up (a harness measures what follows without
// the teardown) until SIGTERM, which ends the linger, not the run: the summary is ok.
TEST_F(SimIntegration, LingeringKeepsTheFleetUpUntilSigterm) {
  auto p =
      Process::spawn({.argv = minting_sim({"--devices", "5", "--scenario", "storm", "--duration",
                                           "0.5", "--connect-timeout", "15", "--drain-timeout",
                                           "10", "--linger", "60", "--no-progress"})});
  ASSERT_TRUE(p) << p.error().message;
  sim_ = std::move(*p);
  ASSERT_TRUE(sim_->wait_for_line("dag-sim: drained; lingering", 25s));
  EXPECT_FALSE(sim_->wait_for_exit(300ms)) << "ended before SIGTERM";
  ASSERT_TRUE(sim_->signal(SIGTERM));
  auto status = sim_->wait_for_exit(20s);
  ASSERT_TRUE(status) << "dag-sim did not stop";
  EXPECT_TRUE(status->success()) << status->to_string();
  const json summary = sim_summary();
  ASSERT_TRUE(summary.is_object()) << sim_->output();
  EXPECT_EQ(summary["ok"], true) << summary.dump(2);
  EXPECT_EQ(summary["interrupted"], false);
  EXPECT_GE(summary["lingerS"].get<double>(), 0.3);
  EXPECT_LT(summary["lingerS"].get<double>(), 30);
  EXPECT_EQ(summary["cut"]["accepted"], 5);
  EXPECT_EQ(summary["errors"]["disconnects"], 0);
}

// The library in-process: dags lose their network, the power goes off meanwhile, and the
// outbox delivers the report after the reconnect.
TEST_F(SimIntegration, NetworkLossReportsArriveAfterReconnect) {
  constexpr std::size_t kDevices = 12;
  auto ids = sim::mint(pki_.ca(), "net-", kDevices, 2);
  ASSERT_TRUE(ids) << ids.error().message;
  std::vector<std::string> names;
  for (const auto& i : *ids) names.push_back(i.id);
  auto prov = sim::provision(
      dagd_->database(), names,
      {.prefix = "net-", .min_account_size = 2, .max_account_size = 2, .now_ms = now_ms()});
  ASSERT_TRUE(prov) << prov.error().message;

  sim::FleetOptions o;
  o.port = broker_->port();
  o.scenario.kind = sim::ScenarioKind::network;
  o.scenario.duration_ms = 2500;
  o.scenario.outage_ms = 1200;
  o.scenario.seed = 3;
  o.debounce_ms = 50;
  o.connect_timeout = 15s;
  o.drain_timeout = 10s;
  sim::Credentials creds{pki_.ca().cert_pem, std::move(*ids)};
  auto summary = sim::run_fleet(o, creds);
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ((*summary)["ok"], true) << summary->dump(2);
  EXPECT_EQ((*summary)["cut"]["accepted"], kDevices) << summary->dump(2);
  // Each dag connected at least twice: at the start and after its outage.
  EXPECT_GE((*summary)["connect"]["connected"].get<int>(), 2 * static_cast<int>(kDevices));

  ASSERT_NO_FATAL_FAILURE(open_db());
  for (const auto& id : names) {
    EXPECT_EQ(shadow(id)["state"]["reported"]["status"], "off") << id;
    EXPECT_EQ(power_offs(id).size(), 1U) << id;
  }
}

// Battery drain: the dags lose power, their charge falls, and at the shutdown level each
// reports shuttingDown and goes dark (no DISCONNECT), as a dag whose battery ran out.
TEST_F(SimIntegration, DrainedDagsReportShuttingDownAndGoDark) {
  constexpr std::size_t kDevices = 6;
  auto ids = sim::mint(pki_.ca(), "drain-", kDevices, 2);
  ASSERT_TRUE(ids) << ids.error().message;
  std::vector<std::string> names;
  for (const auto& i : *ids) names.push_back(i.id);
  ASSERT_TRUE(sim::provision(dagd_->database(), names, {.prefix = "drain-", .now_ms = now_ms()}));

  sim::FleetOptions o;
  o.port = broker_->port();
  o.scenario.kind = sim::ScenarioKind::drain;
  // Empty at 6.4 s (80 % of 8 s); the agents read the gauge every 5 s on battery: about
  // 22 % then, below the shutdown level.
  o.scenario.duration_ms = 8000;
  o.shutdown_percent = 50;
  o.debounce_ms = 50;
  o.connect_timeout = 15s;
  o.drain_timeout = 10s;
  auto summary = sim::run_fleet(o, sim::Credentials{pki_.ca().cert_pem, std::move(*ids)});
  ASSERT_TRUE(summary) << summary.error().message;
  EXPECT_EQ((*summary)["ok"], true) << summary->dump(2);
  EXPECT_EQ((*summary)["shutdowns"], kDevices) << summary->dump(2);
  EXPECT_EQ((*summary)["dead"], kDevices);

  ASSERT_NO_FATAL_FAILURE(open_db());
  for (const auto& id : names) {
    const json reported = shadow(id)["state"]["reported"];
    EXPECT_EQ(reported["status"], "off") << id;
    EXPECT_EQ(reported["shuttingDown"], true) << id << " " << reported.dump();
    EXPECT_LT(reported["battery"]["percent"].get<double>(), 50) << id;
  }
}

}  // namespace
}  // namespace dag::test
