// dagctl's commands against a real deployment directory and SQLite file (no broker).
#include "dag/ctl/ctl.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
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
  // With e-mail on, the default sender is valid and a bad one is refused at load time (so
  // that `dagd --check-config` tells, rather than dagd exiting at start).
  auto env_of = [](std::map<std::string, std::string> vars) -> config::Env {
    return [vars = std::move(vars)](const std::string& k) -> std::optional<std::string> {
      auto it = vars.find(k);
      return it == vars.end() ? std::nullopt : std::optional<std::string>{it->second};
    };
  };
  EXPECT_TRUE(
      dagd::load_settings(paths_.dagd_toml, env_of({{"DAG_SMTP_URL", "smtp://127.0.0.1:25"}})));
  auto bad_from = dagd::load_settings(
      paths_.dagd_toml,
      env_of({{"DAG_SMTP_URL", "smtp://127.0.0.1:25"}, {"DAG_SMTP_FROM", "dag <dag@nodot>"}}));
  ASSERT_FALSE(bad_from);
  EXPECT_NE(bad_from.error().message.find("smtp.from"), std::string::npos);
  EXPECT_TRUE(
      dagd::load_settings(paths_.dagd_toml, env_of({{"DAG_SMTP_FROM", "dag <dag@nodot>"}})));
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

TEST_F(CtlTest, TargetsAreCheckedWhereTheyAreEntered) {
  account("alice");
  auto add = [&](store::TargetKind kind, const std::string& address,
                 std::optional<std::string> secret = std::nullopt,
                 std::optional<std::string> tmpl = std::nullopt,
                 std::optional<std::string> type = std::nullopt) {
    return add_target(*store_, {"alice", kind, address, secret, tmpl, type}, kNow);
  };
  using store::TargetKind;
  // E-mail: unverified (dagd mails the link); webhook and ntfy: verified at once.
  auto mail = add(TargetKind::email, "second@example.com");
  ASSERT_TRUE(mail) << mail.error().message;
  EXPECT_FALSE(mail->verified);
  EXPECT_TRUE(mail->verification_requested);
  auto hook = add(TargetKind::webhook, "https://hooks.example.com/dag", "hmac key",
                  R"({"text": "{{message}}"})", "application/json");
  ASSERT_TRUE(hook) << hook.error().message;
  EXPECT_TRUE(hook->verified);
  EXPECT_EQ(hook->content_type, "application/json");
  auto topic = add(TargetKind::ntfy, "https://ntfy.sh/my-dags", "tk_token");
  ASSERT_TRUE(topic) << topic.error().message;
  EXPECT_TRUE(topic->verified);
  EXPECT_EQ(topic->secret, "tk_token");

  // Every rule, with a message that names what is wrong.
  auto refused = [](const Result<store::NotificationTarget>& r, const std::string& says) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_EQ(exit_code(r.error()), 2);
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  };
  refused(add(TargetKind::email, "not-an-address"), "not-an-address");
  refused(add(TargetKind::email, "x@example.com", "secret"), "no secret");
  refused(add(TargetKind::webhook, "ftp://example.com/x"), "ftp://example.com/x");
  refused(add(TargetKind::webhook, "https://user:pw@example.com/x"), "user:pw");
  refused(add(TargetKind::ntfy, "ntfy.sh/topic"), "ntfy.sh/topic");
  refused(add(TargetKind::webhook, "https://a.example.com/", std::string(513, 's')), "secret");
  refused(add(TargetKind::webhook, "https://a.example.com/", std::nullopt, "{{nope}}"),
          "body template");
  refused(add(TargetKind::webhook, "https://a.example.com/", std::nullopt, "{{title", "text/plain"),
          "body template");
  refused(add(TargetKind::webhook, "https://a.example.com/", std::nullopt, "{{title}}", "json"),
          "content type");
  refused(
      add(TargetKind::webhook, "https://a.example.com/", std::nullopt, std::nullopt, "text/plain"),
      "needs a body template");
  refused(add(TargetKind::ntfy, "https://ntfy.sh/t", std::nullopt, "{{title}}"), "only webhooks");
  refused(add(TargetKind::email, "a@example.com", std::nullopt, std::nullopt, "text/plain"),
          "only webhooks");
  refused(add(TargetKind::webhook, "https://a.example.com/", std::nullopt, std::string(4097, 'x')),
          "4096");
  // A duplicate (account add made alice@example.com) and an unknown account.
  refused(add(TargetKind::email, "alice@example.com"), "already");
  refused(add(TargetKind::webhook, "https://hooks.example.com/dag"), "already");
  EXPECT_EQ(add_target(*store_, {"nobody", TargetKind::email, "n@example.com"}, kNow).error().code,
            Errc::not_found);
  EXPECT_EQ(list_targets(*store_, "alice")->size(), 4U);  // nothing of the refused ones
}

TEST_F(CtlTest, TargetListShowsHealthButNoSecrets) {
  account("alice");
  auto hook = add_target(
      *store_, {"alice", store::TargetKind::webhook, "https://hooks.example.com/x", "s3cr3t"},
      kNow);
  ASSERT_TRUE(hook);
  {
    auto tx = store_->begin(store::TxMode::read_write);
    ASSERT_TRUE((*tx)->record_delivery(hook->id, true, "", kNow + 1));
    ASSERT_TRUE((*tx)->record_delivery(hook->id, false, "HTTP 500", kNow + 2));
    ASSERT_TRUE((*tx)->record_delivery(hook->id, false, "HTTP 503", kNow + 3));
    ASSERT_TRUE((*tx)->commit());
  }
  auto all = list_targets(*store_, "alice");
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  const bool hook_first = (*all)[0].id == hook->id;  // both made at kNow
  const auto& t = (*all)[hook_first ? 0 : 1];
  EXPECT_EQ(t.id, hook->id);
  EXPECT_EQ(t.failure_count, 2);
  const auto j = target_json(t);
  EXPECT_EQ(j["failureCount"], 2);
  EXPECT_EQ(j["lastError"], "HTTP 503");
  EXPECT_EQ(j["lastErrorAt"], kNow + 3);
  EXPECT_EQ(j["lastSuccessAt"], kNow + 1);
  EXPECT_EQ(j["verified"], true);
  EXPECT_EQ(j["secret"], "set");
  EXPECT_EQ(j.dump().find("s3cr3t"), std::string::npos);
  EXPECT_EQ(target_json((*all)[hook_first ? 1 : 0])["secret"], "none");
  EXPECT_EQ(list_targets(*store_, "nobody").error().code, Errc::not_found);
}

TEST_F(CtlTest, TargetsOfAnotherAccountAreNotTouched) {
  account("alice");
  account("bob");
  const auto bobs = list_targets(*store_, "bob");
  ASSERT_TRUE(bobs);
  ASSERT_EQ(bobs->size(), 1U);
  const auto id = (*bobs)[0].id;
  auto rm = remove_target(*store_, "alice", id);
  ASSERT_FALSE(rm);
  EXPECT_EQ(rm.error().code, Errc::not_found);
  EXPECT_NE(rm.error().message.find("no such target"), std::string::npos);
  EXPECT_EQ(resend_verification(*store_, "alice", id, kNow).error().code, Errc::not_found);
  EXPECT_EQ(list_targets(*store_, "bob")->size(), 1U);
  EXPECT_EQ(remove_target(*store_, "bob", "no-such-id").error().code, Errc::not_found);
  ASSERT_TRUE(remove_target(*store_, "bob", id));
  EXPECT_TRUE(list_targets(*store_, "bob")->empty());
}

TEST_F(CtlTest, VerificationResendIsRateLimited) {
  account("alice");
  const auto mail = (*list_targets(*store_, "alice"))[0];
  // dagd's worker mails the link.
  {
    auto tx = store_->begin(store::TxMode::read_write);
    ASSERT_TRUE((*tx)->create_verification(mail.id, std::string(64, 'a'), kNow, kNow + 86'400'000));
    ASSERT_TRUE((*tx)->commit());
  }
  auto early = resend_verification(*store_, "alice", mail.id, kNow + 10'000);
  ASSERT_FALSE(early);
  EXPECT_EQ(exit_code(early.error()), 2);
  EXPECT_NE(early.error().message.find("try again in 50 s"), std::string::npos)
      << early.error().message;
  ASSERT_TRUE(resend_verification(*store_, "alice", mail.id, kNow + kVerificationResendIntervalMs));
  EXPECT_TRUE((*list_targets(*store_, "alice"))[0].verification_requested);
  // Webhooks have nothing to verify; verified addresses need no mail.
  auto hook =
      add_target(*store_, {"alice", store::TargetKind::webhook, "https://h.example.com/"}, kNow);
  ASSERT_TRUE(hook);
  EXPECT_EQ(resend_verification(*store_, "alice", hook->id, kNow).error().code,
            Errc::invalid_argument);
  {
    auto tx = store_->begin(store::TxMode::read_write);
    ASSERT_TRUE((*tx)->set_target_verified(mail.id, true));
    ASSERT_TRUE((*tx)->commit());
  }
  auto verified = resend_verification(*store_, "alice", mail.id, kNow + 600'000);
  ASSERT_FALSE(verified);
  EXPECT_NE(verified.error().message.find("verified already"), std::string::npos);
}

TEST_F(CtlTest, PreferencesRoundTripAndAreChecked) {
  account("alice");
  auto defaults = get_settings(*store_, "alice");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(*defaults, store::AccountSettings{});
  auto set = set_settings(*store_, "alice",
                          {{"powerOffGraceS", 120},
                           {"disconnectGraceS", 604'800},
                           {"lowBatteryPercent", 0},
                           {"timeZone", "Europe/Oslo"},
                           {"notifyPowerLost", false},
                           {"notifyPowerBack", false},
                           {"notifyContactLost", false},
                           {"notifyDagBack", false},
                           {"notifyBatteryLow", false}});
  ASSERT_TRUE(set) << set.error().message;
  const store::AccountSettings want{120,   604'800, 0,     "Europe/Oslo", false,
                                    false, false,   false, false};
  EXPECT_EQ(*set, want);
  EXPECT_EQ(*get_settings(*store_, "alice"), want);
  EXPECT_EQ(settings_json(want)["timeZone"], "Europe/Oslo");
  EXPECT_EQ(settings_json(want)["disconnectGraceS"], 604'800);
  // Only the keys given change.
  ASSERT_TRUE(set_settings(*store_, "alice", {{"notifyDagBack", true}}));
  EXPECT_TRUE(get_settings(*store_, "alice")->notify_dag_back);
  EXPECT_EQ(get_settings(*store_, "alice")->power_off_grace_s, 120);

  // Bad keys and values name the key; one bad change stops the others.
  auto refused = [&](const std::map<std::string, json>& changes, const std::string& says) {
    auto r = set_settings(*store_, "alice", changes);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find(says), std::string::npos) << r.error().message;
  };
  refused({{"colour", "red"}}, "colour");
  refused({{"powerOffGraceS", -1}}, "powerOffGraceS: must be a whole number 0..604800");
  refused({{"disconnectGraceS", 604'801}}, "disconnectGraceS");
  refused({{"disconnectGraceS", 1.5}}, "disconnectGraceS");
  refused({{"lowBatteryPercent", 101}}, "lowBatteryPercent: must be a whole number 0..100");
  refused({{"lowBatteryPercent", "20"}}, "lowBatteryPercent");
  refused({{"timeZone", "Mars/Olympus_Mons"}}, "timeZone");
  refused({{"timeZone", 1}}, "timeZone");
  refused({{"notifyPowerLost", "yes"}}, "notifyPowerLost: must be true or false");
  refused({{"notifyBatteryLow", 1}}, "notifyBatteryLow");
  refused({{"notifyDagBack", false}, {"lowBatteryPercent", 200}}, "lowBatteryPercent");
  refused({}, "nothing to set");
  EXPECT_TRUE(get_settings(*store_, "alice")->notify_dag_back);  // unchanged
  EXPECT_EQ(set_settings(*store_, "nobody", {{"notifyDagBack", true}}).error().code,
            Errc::not_found);
  EXPECT_EQ(get_settings(*store_, "nobody").error().code, Errc::not_found);
}

}  // namespace
}  // namespace dag::ctl
