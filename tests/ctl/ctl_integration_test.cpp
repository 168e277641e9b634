// dagctl end to end, with real processes: `dagctl init` writes the deployment, Mosquitto
// runs on the generated configuration with our presence plugin, dagd on the generated
// dagd.toml, and dag-edge on the bundles `dagctl device add` writes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <thread>

#include "dag/protocol/shadow.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/test/ports.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Env = std::vector<std::pair<std::string, std::string>>;

constexpr auto kWait = 20s;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// KEY=VALUE lines of an env bundle.
Env read_env(const std::filesystem::path& file) {
  Env env;
  std::istringstream lines(read(file));
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    env.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return env;
}

std::string value_of(const Env& env, const std::string& key) {
  for (const auto& [k, v] : env) {
    if (k == key) return v;
  }
  return {};
}

class CtlIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto device_port = free_loopback_port();
    auto service_port = free_loopback_port();
    ASSERT_TRUE(device_port && service_port);
    device_port_ = *device_port;
    auto init = ctl({"init", "--host", "127.0.0.1", "--device-port", std::to_string(*device_port),
                     "--service-port", std::to_string(*service_port), "--broker-user",
                     current_user_name()});
    ASSERT_TRUE(init.first.success()) << init.second;

    auto broker =
        Process::spawn({.argv = {"mosquitto", "-c", (state() / "broker/mosquitto.conf").string()},
                        .log_file = dir_.path() / "mosquitto.log"});
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    ASSERT_TRUE(broker_->wait_for_line(std::regex{R"(mosquitto version \S+ running)"}, kWait))
        << broker_->output();

    auto dagd = Process::spawn(
        {.argv = {DAG_DAGD_BIN, "-c", (state() / "dagd/dagd.toml").string()},
         // Any free API port: tests run side by side.
         .env = {{"DAG_TIMERS_POLL_MS", "100"}, {"DAG_LOG_LEVEL", "debug"}, {"DAG_API_PORT", "0"}},
         .log_file = dir_.path() / "dagd.log"});
    ASSERT_TRUE(dagd) << dagd.error().message;
    dagd_ = std::move(*dagd);
    ASSERT_TRUE(dagd_->wait_for_line("mqtt.subscribed", kWait)) << dagd_->output();

    auto account = sh("echo 'a long enough password' | " + ctl_command() +
                      " account add --username alice --email alice@example.com --password-stdin");
    ASSERT_TRUE(account.first.success()) << account.second;
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [name, p] : edges_)
        std::cerr << "--- dag-edge " << name << "\n" << p->output();
      if (dagd_) std::cerr << "--- dagd\n" << dagd_->output();
      if (broker_) std::cerr << "--- mosquitto\n" << broker_->output();
    }
    edges_.clear();
    if (dagd_) dagd_->stop();
    if (broker_) broker_->stop();
  }

  std::filesystem::path state() const { return dir_.path() / "state"; }
  std::string ctl_command() const {
    return std::string(DAG_DAGCTL_BIN) + " --dir " + state().string();
  }

  // Runs a program to its end; returns how it ended and its output.
  static std::pair<ExitStatus, std::string> run(std::vector<std::string> argv) {
    auto done = run_to_end(std::move(argv), kWait);
    return {done.status, std::move(done.output)};
  }
  std::pair<ExitStatus, std::string> ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{DAG_DAGCTL_BIN, "--dir", state().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(std::move(argv));
  }
  static std::pair<ExitStatus, std::string> sh(const std::string& command) {
    return run({"/bin/sh", "-c", command});
  }

  // `dagctl device add` with an env bundle; returns the bundle.
  Env add_device(const std::string& name, const std::vector<std::string>& extra = {}) {
    const auto file = dir_.path() / (name + ".env");
    std::vector<std::string> args{"device", "add", "--account", "alice",
                                  "--name", name,  "--out",     file.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = ctl(args);
    EXPECT_TRUE(r.first.success()) << r.second;
    return read_env(file);
  }

  // Runs dag-edge on a bundle with a simulated line (on).
  Process& start_edge(const std::string& name, Env env) {
    const auto dir = dir_.path() / ("edge-" + name);
    env.emplace_back("DAG_DEVICE_STATE_DIR", dir.string());
    env.emplace_back("DAG_POWER_SOURCE", "sim");
    env.emplace_back("DAG_POWER_DEBOUNCE_MS", "20");
    env.emplace_back("DAG_LOG_LEVEL", "debug");
    auto p = Process::spawn(
        {.argv = {DAG_EDGE_BIN, "run"}, .env = env, .log_file = dir_.path() / (name + ".log")});
    EXPECT_TRUE(p) << p.error().message;
    edges_[name] = std::move(*p);
    return *edges_[name];
  }
  std::filesystem::path edge_dir(const std::string& name) { return dir_.path() / ("edge-" + name); }

  // The device's shadow as dagd stored it.
  json reported(const std::string& id) {
    auto store = store::open_sqlite(state() / "dagd/dagd.db");
    if (!store) return nullptr;
    auto tx = (*store)->begin(store::TxMode::read_only);
    if (!tx) return nullptr;
    auto shadow = (*tx)->get_shadow(id);
    if (!shadow || !*shadow) return nullptr;
    auto doc = protocol::shadow_from_json((*shadow)->document);
    return doc ? doc->reported() : json(nullptr);
  }

  TempDir dir_{"dag-ctl-it"};
  std::uint16_t device_port_{0};
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> dagd_;
  std::map<std::string, std::unique_ptr<Process>> edges_;
};

TEST_F(CtlIntegrationTest, ADagWithTheEnvBundleIsAccepted) {
  const auto env = add_device("Home");
  const auto id = value_of(env, "AWS_THING_NAME");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(value_of(env, "AWS_PORT"), std::to_string(device_port_));
  auto& edge = start_edge("home", env);
  ASSERT_TRUE(edge.wait_for_line("shadow.accepted", kWait));
  EXPECT_EQ(reported(id)["status"], "on");
  auto list = ctl({"device", "list", "--json"});
  ASSERT_TRUE(list.first.success());
  const auto devices = json::parse(list.second);
  ASSERT_EQ(devices.size(), 1U);
  EXPECT_EQ(devices[0]["state"], "on");
}

TEST_F(CtlIntegrationTest, ARevokedDagIsCutOffAndTheOthersCarryOn) {
  const auto a = add_device("A");
  const auto b = add_device("B");
  auto& edge_a = start_edge("a", a);
  auto& edge_b = start_edge("b", b);
  ASSERT_TRUE(edge_a.wait_for_line("shadow.accepted", kWait));
  ASSERT_TRUE(edge_b.wait_for_line("shadow.accepted", kWait));
  const auto a_id = value_of(a, "AWS_THING_NAME");

  const auto mark = edge_a.line_count();
  const auto broker_mark = broker_->line_count();
  auto revoke = ctl({"device", "revoke", a_id});
  ASSERT_TRUE(revoke.first.success()) << revoke.second;
  EXPECT_EQ(revoke.second.find("note:"), std::string::npos) << revoke.second;  // broker told
  // Its live connection is dropped, and it cannot come back.
  ASSERT_TRUE(edge_a.wait_for_line("mqtt.disconnected", kWait, mark)) << revoke.second;
  ASSERT_TRUE(broker_->wait_for_line(a_id + " been disconnected by administrative action", kWait,
                                     broker_mark));
  // Its next attempt fails the handshake (the CRL), and it stays out.
  ASSERT_TRUE(broker_->wait_for_line("certificate verify failed", kWait, broker_mark));

  // B goes on: a cut is accepted.
  const auto b_mark = edge_b.line_count();
  auto off = run({DAG_EDGE_BIN, "sim", "off", "--state-dir", edge_dir("b").string()});
  ASSERT_TRUE(off.first.success()) << off.second;
  ASSERT_TRUE(edge_b.wait_for_line("shadow.accepted", kWait, b_mark));
  EXPECT_EQ(reported(value_of(b, "AWS_THING_NAME"))["status"], "off");
  EXPECT_EQ(reported(a_id)["status"], "on");
}

TEST_F(CtlIntegrationTest, ADagProvisionedFromItsCsrConnectsWithItsOwnKey) {
  const auto keys = dir_.path() / "keys";
  auto keygen = run({DAG_EDGE_BIN, "keygen", "--out", keys.string()});
  ASSERT_TRUE(keygen.first.success()) << keygen.second;
  auto env = add_device("Cabin", {"--csr", (keys / "csr.pem").string()});
  EXPECT_TRUE(value_of(env, "AWS_THING_KEY").empty());  // the key never left
  env.emplace_back("AWS_THING_KEY", (keys / "key.pem").string());
  auto& edge = start_edge("cabin", env);
  ASSERT_TRUE(edge.wait_for_line("shadow.accepted", kWait));
  EXPECT_EQ(reported(value_of(env, "AWS_THING_NAME"))["status"], "on");
}

TEST_F(CtlIntegrationTest, FleetAccountAndDeviceConfigurationReachTheDag) {
  ASSERT_TRUE(
      ctl({"config", "set", "--fleet", "debounceMs=100", "logLevel=debug"}).first.success());
  ASSERT_TRUE(ctl({"config", "set", "--account", "alice", "debounceMs=150"}).first.success());
  const auto env = add_device("Barn");
  const auto id = value_of(env, "AWS_THING_NAME");
  auto& edge = start_edge("barn", env);
  // Applied from the get after connecting.
  ASSERT_TRUE(edge.wait_for_line("config.applied", kWait));

  // A device-level change while it runs arrives as a delta.
  const auto mark = edge.line_count();
  auto set = ctl({"config", "set", "--device", id, "rereadS=30"});
  ASSERT_TRUE(set.first.success()) << set.second;
  ASSERT_TRUE(edge.wait_for_line("config.applied", kWait, mark));

  // The dag reports what it runs with (no event tells when dagd stored it: poll, bounded).
  json config;
  for (int i = 0; i < 200; ++i) {
    config = reported(id)["config"];
    if (config.is_object() && config.value("rereadS", 0) == 30) break;
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(config.is_object()) << reported(id).dump();
  EXPECT_EQ(config["debounceMs"], 150);
  EXPECT_EQ(config["logLevel"], "debug");
  EXPECT_EQ(config["rereadS"], 30);
  EXPECT_TRUE(config["rejected"].is_null());

  // Bad input: exit code 2 and a message.
  auto bad = ctl({"config", "set", "--fleet", "debounceMs=1"});
  EXPECT_EQ(bad.first.code, 2);
  EXPECT_NE(bad.second.find("debounceMs"), std::string::npos);
}

TEST_F(CtlIntegrationTest, BadInputIsExitCodeTwo) {
  EXPECT_EQ(ctl({"device", "add", "--account", "nobody", "--name", "X"}).first.code, 2);
  EXPECT_EQ(ctl({"device", "revoke", "no-such-dag"}).first.code, 2);
  EXPECT_EQ(ctl({"account", "rm", "--username", "alice"}).first.code, 2);  // not confirmed
  EXPECT_EQ(ctl({"init"}).first.code, 2);                                  // exists
  EXPECT_EQ(ctl({"frobnicate"}).first.code, 2);
  auto bad_url = ctl({"target", "add", "--account", "alice", "--webhook", "hooks.example.com"});
  EXPECT_EQ(bad_url.first.code, 2);
  EXPECT_NE(bad_url.second.find("http"), std::string::npos) << bad_url.second;
  EXPECT_EQ(ctl({"target", "add", "--account", "alice", "--email", "not-an-address"}).first.code,
            2);
  EXPECT_EQ(ctl({"target", "add", "--account", "alice", "--email", "alice@example.com"}).first.code,
            2);  // a duplicate
  EXPECT_EQ(ctl({"account", "set", "--username", "alice", "lowBatteryPercent=101"}).first.code, 2);
  auto hook = ctl({"target", "add", "--account", "alice", "--webhook", "https://h.example.com/x",
                   "--secret", "s3cr3t"});
  EXPECT_TRUE(hook.first.success()) << hook.second;
  auto list = ctl({"target", "list", "--account", "alice"});
  EXPECT_TRUE(list.first.success());
  EXPECT_NE(list.second.find("verification pending"), std::string::npos) << list.second;
  EXPECT_EQ(list.second.find("s3cr3t"), std::string::npos) << list.second;
  EXPECT_EQ(ctl({"--help"}).first.code, 0);
  auto version = ctl({"--version"});
  EXPECT_TRUE(version.first.success());
  EXPECT_NE(version.second.find("dagctl"), std::string::npos);
}

}  // namespace
}  // namespace dag::test
