// dagctl's commands against a real deployment directory and SQLite file (no broker).
#include "dag/ctl/ctl.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "dag/common/encoding.hpp"
#include "dag/common/password.hpp"
#include "dag/common/pki.hpp"
#include "dag/dagd/settings.hpp"
#include "dag/edge/settings.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/shadow/desired.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::ctl {
namespace {

using nlohmann::json;
constexpr std::int64_t kNow = 1'800'000'000'000;

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

config::Env no_env() {
  return [](const std::string&) { return std::optional<std::string>{}; };
}

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions o;
    o.dir = dir_.path() / "state";
    o.hosts = {"dag.example.com", "192.0.2.7"};
    o.broker_user = "";
    auto steps = init(o);
    ASSERT_TRUE(steps) << steps.error().message;
    auto s = open_store(paths_);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(s).value();
  }

  store::Account account(const std::string& name = "alice") {
    auto a = add_account(*store_, name, "a long enough password", {name + "@example.com"}, kNow);
    EXPECT_TRUE(a) << a.error().message;
    return a ? *a : store::Account{};
  }
  ProvisionedDevice device(const std::string& owner = "alice", const std::string& name = "Home") {
    auto d = add_device(paths_, *store_, {owner, name, std::nullopt, 3650}, kNow);
    EXPECT_TRUE(d) << d.error().message;
    return d ? *d : ProvisionedDevice{};
  }
  json desired_config(const std::string& id) {
    auto tx = store_->begin(store::TxMode::read_only);
    auto shadow = (*tx)->get_shadow(id);
    if (!shadow || !*shadow) return nullptr;
    auto doc = protocol::shadow_from_json((*shadow)->document);
    if (!doc || !doc->desired().is_object() || !doc->desired().contains("config")) return nullptr;
    return doc->desired()["config"];
  }

  test::TempDir dir_{"dag-ctl"};
  Paths paths_{dir_.path() / "state"};
  std::unique_ptr<store::Store> store_;
};

TEST_F(CtlTest, InitWritesAWorkingDeploymentAndRefusesToOverwrite) {
  const auto conf = read(paths_.mosquitto_conf);
  for (const char* line : {"listener 8883\n", "listener 8884 127.0.0.1\n",
                           "require_certificate true", "use_identity_as_username true", "crlfile ",
                           "acl_file ", "persistence true", "pid_file "}) {
    EXPECT_NE(conf.find(line), std::string::npos) << line;
  }
  EXPECT_NE(read(paths_.acl).find("user dagctl"), std::string::npos);
  // The server certificate names every host plus localhost, and chains to the CA.
  const auto ca = read(paths_.ca_cert);
  auto server = pki::inspect_certificate(read(paths_.server_cert));
  ASSERT_TRUE(server);
  EXPECT_NE(std::find(server->dns_names.begin(), server->dns_names.end(), "dag.example.com"),
            server->dns_names.end());
  EXPECT_NE(std::find(server->ip_addresses.begin(), server->ip_addresses.end(), "192.0.2.7"),
            server->ip_addresses.end());
  EXPECT_TRUE(pki::verify_certificate(ca, read(paths_.server_cert), read(paths_.crl)));
  // Keys are private.
  EXPECT_EQ(
      std::filesystem::status(paths_.ca_key).permissions() & std::filesystem::perms::others_read,
      std::filesystem::perms::none);
  // dagd accepts its generated configuration as it is.
  auto settings = dagd::load_settings(paths_.dagd_toml, no_env());
  ASSERT_TRUE(settings) << settings.error().message;
  EXPECT_EQ(settings->mqtt_port, 8884);
  EXPECT_EQ(settings->database_path, paths_.database);
  EXPECT_EQ(settings->jwt_secret.size(), 44U);  // base64 of 32 random bytes
  // A second init refuses; bad hosts and ports are refused.
  InitOptions again;
  again.dir = paths_.root;
  EXPECT_EQ(init(again).error().code, Errc::invalid_argument);
  InitOptions bad_host;
  bad_host.dir = dir_.path() / "other";
  bad_host.hosts = {"not a host"};
  EXPECT_EQ(init(bad_host).error().code, Errc::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(bad_host.dir / "ca"));  // nothing half-written
}

TEST_F(CtlTest, Accounts) {
  const auto a = account();
  EXPECT_TRUE(password::verify(a.password_hash, "a long enough password"));
  EXPECT_EQ(add_account(*store_, "alice", "another password", {}, kNow).error().code,
            Errc::invalid_argument);  // taken
  EXPECT_EQ(
      add_account(*store_, "bob", "a long enough password", {"not-an-address"}, kNow).error().code,
      Errc::invalid_argument);
  EXPECT_EQ(add_account(*store_, "bob", "short", {}, kNow).error().code, Errc::invalid_argument);
  EXPECT_EQ(add_account(*store_, "b o b", "a long enough password", {}, kNow).error().code,
            Errc::invalid_argument);
  ASSERT_TRUE(set_password(*store_, "alice", "a new long password"));
  EXPECT_EQ(set_password(*store_, "nobody", "a new long password").error().code, Errc::not_found);
  auto all = list_accounts(*store_);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1U);
  EXPECT_TRUE(password::verify((*all)[0].password_hash, "a new long password"));
  {
    auto tx = store_->begin(store::TxMode::read_only);
    auto targets = (*tx)->list_targets(a.id);
    ASSERT_TRUE(targets);
    ASSERT_EQ(targets->size(), 1U);
    EXPECT_FALSE((*targets)[0].verified);  // alerts only after verification
  }
  device();
  std::vector<std::string> notes;
  auto removed = remove_account(paths_, *store_, "alice", kNow, notes);
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_EQ(*removed, 1);
  EXPECT_TRUE(list_accounts(*store_)->empty());
  EXPECT_FALSE(notes.empty());  // no broker running: said so
}

TEST_F(CtlTest, DeviceWithAKeyMadeHere) {
  account();
  const auto d = device();
  EXPECT_TRUE(is_uuid(d.device.id));
  const auto ca = read(paths_.ca_cert);
  EXPECT_TRUE(pki::verify_certificate(ca, d.cert_pem));
  EXPECT_EQ(pki::inspect_certificate(d.cert_pem)->subject_cn, d.device.id);
  EXPECT_TRUE(*pki::key_matches_certificate(d.key_pem, d.cert_pem));

  // The env bundle is what dag-edge reads, unchanged.
  auto deployment = load_deployment(paths_);
  ASSERT_TRUE(deployment);
  const auto env_text = env_bundle(*deployment, d);
  std::map<std::string, std::string> env;
  std::istringstream lines(env_text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    env[line.substr(0, line.find('='))] = line.substr(line.find('=') + 1);
  }
  env["DAG_DEVICE_STATE_DIR"] = (dir_.path() / "edge").string();
  auto edge =
      edge::load_settings(std::nullopt, [&](const std::string& k) -> std::optional<std::string> {
        auto it = env.find(k);
        return it == env.end() ? std::nullopt : std::optional(it->second);
      });
  ASSERT_TRUE(edge) << edge.error().message;
  EXPECT_EQ(edge->device_id, d.device.id);
  EXPECT_EQ(edge->broker_host, "dag.example.com");
  EXPECT_EQ(edge->cert_pem, d.cert_pem);
  EXPECT_EQ(edge->key_pem, d.key_pem);

  // The dir bundle too.
  const auto out = dir_.path() / "bundle";
  ASSERT_TRUE(write_dir_bundle(out, out, *deployment, d));
  auto from_dir = edge::load_settings(out / "dag-edge.toml", no_env());
  ASSERT_TRUE(from_dir) << from_dir.error().message;
  EXPECT_EQ(from_dir->key_pem, d.key_pem);
  EXPECT_EQ(
      std::filesystem::status(out / "key.pem").permissions() & std::filesystem::perms::group_read,
      std::filesystem::perms::none);
  EXPECT_EQ(write_dir_bundle(out, out, *deployment, d).error().code, Errc::invalid_argument);

  EXPECT_EQ(add_device(paths_, *store_, {"nobody", "X", std::nullopt, 10}, kNow).error().code,
            Errc::not_found);
  EXPECT_EQ(add_device(paths_, *store_, {"alice", std::string(65, 'x'), std::nullopt, 10}, kNow)
                .error()
                .code,
            Errc::invalid_argument);
}

TEST_F(CtlTest, DeviceFromACsrKeepsItsKey) {
  account();
  auto key = pki::generate_key();
  auto csr = pki::create_csr(*key, "dag-csr-1");
  auto d = add_device(paths_, *store_, {"alice", "Cabin", *csr, 3650}, kNow);
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(d->device.id, "dag-csr-1");
  EXPECT_TRUE(d->key_pem.empty());
  EXPECT_TRUE(*pki::key_matches_certificate(*key, d->cert_pem));
  EXPECT_EQ(env_bundle(*load_deployment(paths_), *d).find("AWS_THING_KEY="), std::string::npos);
  // The same CSR again: the id is taken. A CSR for a service identity is refused.
  EXPECT_EQ(add_device(paths_, *store_, {"alice", "Again", *csr, 3650}, kNow).error().code,
            Errc::invalid_argument);
  auto dagd_csr = pki::create_csr(*key, "dagd");
  EXPECT_EQ(add_device(paths_, *store_, {"alice", "Sneaky", *dagd_csr, 3650}, kNow).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(add_device(paths_, *store_, {"alice", "Garbage", std::string("not a csr"), 3650}, kNow)
                .error()
                .code,
            Errc::invalid_argument);
}

TEST_F(CtlTest, RevocationPutsTheCertificateInTheCrl) {
  account();
  const auto a = device("alice", "A");
  const auto b = device("alice", "B");
  const auto ca = read(paths_.ca_cert);
  std::vector<std::string> notes;
  ASSERT_TRUE(revoke_device(paths_, *store_, a.device.id, false, kNow, notes));
  const auto crl = read(paths_.crl);
  EXPECT_FALSE(pki::verify_certificate(ca, a.cert_pem, crl));
  EXPECT_TRUE(pki::verify_certificate(ca, b.cert_pem, crl));
  auto listed = list_devices(*store_, std::nullopt);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2U);
  for (const auto& d : *listed) EXPECT_EQ(d.revoked, d.id == a.device.id);
  // Removal keeps the certificate revoked after the device is gone.
  ASSERT_TRUE(revoke_device(paths_, *store_, b.device.id, true, kNow + 1, notes));
  EXPECT_FALSE(pki::verify_certificate(ca, b.cert_pem, read(paths_.crl)));
  EXPECT_EQ(list_devices(*store_, "alice")->size(), 1U);
  EXPECT_EQ(revoke_device(paths_, *store_, "nope", false, kNow, notes).error().code,
            Errc::not_found);
}

TEST_F(CtlTest, ConfigPrecedenceFleetAccountDevice) {
  account("alice");
  account("bob");
  const auto a = device("alice", "A");
  const auto b = device("bob", "B");
  ASSERT_TRUE(set_config(*store_, store::ConfigScope::fleet, "",
                         {{"debounceMs", 100}, {"logLevel", "debug"}}, kNow));
  auto n = set_config(*store_, store::ConfigScope::account, "alice", {{"debounceMs", 150}}, kNow);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1);
  ASSERT_TRUE(
      set_config(*store_, store::ConfigScope::device, a.device.id, {{"rereadS", 30}}, kNow));
  EXPECT_EQ(desired_config(a.device.id),
            json::parse(R"({"debounceMs":150,"logLevel":"debug","rereadS":30})"));
  EXPECT_EQ(desired_config(b.device.id), json::parse(R"({"debounceMs":100,"logLevel":"debug"})"));
  auto got = get_config(*store_, store::ConfigScope::device, a.device.id);
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)["origin"],
            json::parse(R"({"debounceMs":"account","logLevel":"fleet","rereadS":"device"})"));

  // A device added later starts with the fleet's and its account's configuration.
  const auto c = device("alice", "C");
  EXPECT_EQ(desired_config(c.device.id), json::parse(R"({"debounceMs":150,"logLevel":"debug"})"));

  // Unset at the account: the fleet's value shows through; unset everywhere: gone.
  ASSERT_TRUE(
      set_config(*store_, store::ConfigScope::account, "alice", {{"debounceMs", nullptr}}, kNow));
  EXPECT_EQ(desired_config(c.device.id)["debounceMs"], 100);
  ASSERT_TRUE(set_config(*store_, store::ConfigScope::fleet, "", {{"logLevel", nullptr}}, kNow));
  EXPECT_FALSE(desired_config(c.device.id).contains("logLevel"));

  // dagd is told to publish the deltas.
  {
    auto tx = store_->begin(store::TxMode::read_only);
    auto timer = (*tx)->find_timer(c.device.id, shadow::kShadowDeltaTimer);
    ASSERT_TRUE(timer && *timer);
  }
  // Bad input.
  EXPECT_EQ(
      set_config(*store_, store::ConfigScope::fleet, "", {{"debounceMs", 5}}, kNow).error().code,
      Errc::invalid_argument);
  EXPECT_EQ(
      set_config(*store_, store::ConfigScope::fleet, "", {{"colour", "red"}}, kNow).error().code,
      Errc::invalid_argument);
  EXPECT_EQ(set_config(*store_, store::ConfigScope::account, "nobody", {{"rereadS", 30}}, kNow)
                .error()
                .code,
            Errc::not_found);
  EXPECT_EQ(parse_assignment("logLevel=warn")->second, "warn");
  EXPECT_EQ(parse_assignment("debounceMs=75")->second, 75);
  EXPECT_FALSE(parse_assignment("=5"));
  EXPECT_FALSE(parse_assignment("novalue"));
}

}  // namespace
}  // namespace dag::ctl
