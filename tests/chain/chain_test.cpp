// The whole chain with real processes, as a deployment runs it: `dagctl init` writes the
// CA and the configurations, Mosquitto runs on them (TLS client certificates, the presence
// plugin), dagd on SQLite delivers e-mail to an SMTP server that writes a Maildir, and
// three dag-edge agents with simulated power lines run on the bundles `dagctl device add`
// wrote. The owner's address is verified the way an owner does it: through the link in
// the verification mail, opened on dagd's API.
//
// The story: a power cut on one dag mails "You've lost power!" within 3 s of the
// `dag-edge sim off` command, power back mails "Your power's back!", a dag killed with
// SIGKILL (no DISCONNECT: the broker publishes its last will) mails "We've lost contact"
// once the account's (shortened) disconnect grace ran out, its restart mails "Your dag is
// back!", and the history API lists every one of these transitions. A second story: a
// regional cut (three lines fall at once) is one alert at once and one follow-up naming
// the other two dags when dagd's coalescing window ends; a dag that then falls silent
// while off is "lost contact", Was Off.
//
// Every wait is for an event (a log line, a stored mail, an API answer), bounded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <array>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "dag/test/ports.hpp"
#include "dag/test/process.hpp"
#include "dag/test/smtp_server.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::test {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Env = std::vector<std::pair<std::string, std::string>>;

constexpr auto kWait = 15s;
constexpr std::string_view kOwner = "alice";
constexpr std::string_view kAddress = "alice@example.com";
constexpr std::string_view kPassword = "a long enough password";
// The account's disconnect grace, shortened from 15 min so that the test sees it expire.
constexpr int kDisconnectGraceS = 2;
// dag-edge's smallest keep-alive (AWS IoT's range starts at 30 s). A SIGKILLed agent's
// socket is closed by the kernel, so the broker publishes the will at once, without
// waiting for 1.5 keep-alives.
constexpr int kKeepaliveS = 30;

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

long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

struct Reply {
  int status{0};
  std::string body;
  [[nodiscard]] json js() const { return json::parse(body, nullptr, false); }
};

struct Dag {
  std::string name;
  std::string id;
  Env env;
  std::filesystem::path state_dir;
  std::unique_ptr<Process> process;
};

class ChainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto setup_start = Clock::now();
    auto phase = [&](const char* what) {
      std::cerr << "chain: " << what << " at " << ms_since(setup_start) << " ms\n";
    };
    auto smtp = SmtpServer::start({});
    ASSERT_TRUE(smtp) << smtp.error().message;
    smtp_ = std::move(*smtp);

    auto device_port = free_loopback_port();
    auto service_port = free_loopback_port();
    ASSERT_TRUE(device_port && service_port);
    auto init = ctl({"init", "--host", "127.0.0.1", "--device-port", std::to_string(*device_port),
                     "--service-port", std::to_string(*service_port), "--broker-user",
                     current_user_name()});
    ASSERT_TRUE(init.first.success()) << init.second;
    ASSERT_NE(read(state() / "broker/mosquitto.conf").find("dag_presence"), std::string::npos)
        << "dagctl init should configure the presence plugin";
    phase("deployment initialised");
    // The device listener listens on every interface in a deployment; here loopback only.
    const auto conf_file = state() / "broker/mosquitto.conf";
    std::string conf = read(conf_file);
    const std::string any = "\nlistener " + std::to_string(*device_port) + "\n";
    const auto at = conf.find(any);
    ASSERT_NE(at, std::string::npos) << conf;
    conf.replace(at, any.size(), "\nlistener " + std::to_string(*device_port) + " 127.0.0.1\n");
    std::ofstream(conf_file, std::ios::trunc) << conf;

    auto broker =
        Process::spawn({.argv = {"mosquitto", "-c", (state() / "broker/mosquitto.conf").string()},
                        .log_file = dir_.path() / "mosquitto.log"});
    ASSERT_TRUE(broker) << broker.error().message;
    broker_ = std::move(*broker);
    ASSERT_TRUE(broker_->wait_for_line(std::regex{R"(mosquitto version \S+ running)"}, kWait))
        << broker_->output();

    Env dagd_env{{"DAG_API_PORT", "0"},  // any free port, read from api.listening
                 {"DAG_API_PUBLIC_URL", "http://dashboard.test"},
                 {"DAG_SMTP_URL", smtp_->url()},
                 {"DAG_SMTP_STARTTLS", "none"},
                 {"DAG_SMTP_FROM", "detectordag <dag@dashboard.test>"},
                 {"DAG_LOG_LEVEL", "debug"}};
    if (coalesce_window_ms_) {
      dagd_env.emplace_back("DAG_NOTIFY_COALESCE_WINDOW_MS", std::to_string(*coalesce_window_ms_));
    }
    auto dagd = Process::spawn({.argv = {DAG_DAGD_BIN, "-c", (state() / "dagd/dagd.toml").string()},
                                .env = dagd_env,
                                .log_file = dir_.path() / "dagd.log"});
    ASSERT_TRUE(dagd) << dagd.error().message;
    dagd_ = std::move(*dagd);
    ASSERT_TRUE(dagd_->wait_for_line("mqtt.subscribed", kWait)) << dagd_->output();
    const auto listening = dagd_->wait_for_line("api.listening", kWait);
    ASSERT_TRUE(listening) << dagd_->output();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(*listening, m, std::regex{R"( port=(\d+))"})) << *listening;
    http_ = std::make_unique<httplib::Client>("127.0.0.1", std::stoi(m[1].str()));
    http_->set_connection_timeout(5s);
    http_->set_read_timeout(10s);

    phase("broker and dagd up");
    auto account =
        sh("echo '" + std::string(kPassword) + "' | " + ctl_command() + " account add --username " +
           std::string(kOwner) + " --email " + std::string(kAddress) + " --password-stdin");
    ASSERT_TRUE(account.first.success()) << account.second;
    auto grace =
        ctl({"account", "set", "--username", std::string(kOwner),
             "disconnectGraceS=" + std::to_string(kDisconnectGraceS), "timeZone=Europe/Oslo"});
    ASSERT_TRUE(grace.first.success()) << grace.second;
    verify_address();
    if (HasFatalFailure()) return;

    auto token = call("POST", "/v1/auth", json{{"username", kOwner}, {"password", kPassword}});
    ASSERT_EQ(token.status, 200) << token.body;
    token_ = token.js()["token"].get<std::string>();
    account_id_ = token.js()["accountId"].get<std::string>();

    phase("address verified, logged in");
    for (const char* name : {"Kitchen", "Barn", "Cabin"}) add_dag(name);
    for (auto& [name, dag] : dags_) start_edge(dag);
    if (HasFatalFailure()) return;
    // Each dag's first report is its initial state: in the history, not mailed.
    for (auto& [name, dag] : dags_) {
      ASSERT_TRUE(wait_for_user_state(dag.id, "on")) << name << "\n" << dag.process->output();
    }
    phase("three dags on");
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& [name, dag] : dags_) {
        if (dag.process) std::cerr << "--- dag-edge " << name << "\n" << dag.process->output();
      }
      if (dagd_) std::cerr << "--- dagd\n" << dagd_->output();
      if (broker_) std::cerr << "--- mosquitto\n" << broker_->output();
      if (smtp_) std::cerr << "--- smtp\n" << smtp_->log();
    }
    dags_.clear();
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

  Reply call(const std::string& method, const std::string& path,
             const std::optional<json>& body = std::nullopt) {
    httplib::Headers headers;
    if (!token_.empty()) headers.emplace("Authorization", "Bearer " + token_);
    auto r = method == "POST"
                 ? http_->Post(path, headers, body ? body->dump() : "", "application/json")
                 : http_->Get(path, headers);
    EXPECT_TRUE(r) << method << " " << path << ": " << httplib::to_string(r.error());
    if (!r) return {};
    return {r->status, r->body};
  }

  // The next mail (after the ones already looked at) whose subject is `subject`, waiting
  // for the SMTP server to store it. Mails with other subjects in between are kept in
  // `other_mails_` (the test expects none).
  std::optional<ReceivedMail> wait_for_mail(const std::string& subject,
                                            std::chrono::milliseconds timeout = kWait) {
    return wait_for_mail(
        std::regex{std::regex_replace(subject, std::regex{R"([.^$|()\[\]{}*+?\\])"}, R"(\$&)")},
        timeout);
  }
  // The same with a pattern the whole subject must match.
  std::optional<ReceivedMail> wait_for_mail(const std::regex& subject,
                                            std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      const auto all = smtp_->messages();
      while (seen_mails_ < all.size()) {
        const auto& mail = all[seen_mails_++];
        if (std::regex_match(mail.subject, subject)) return mail;
        other_mails_.push_back(mail.subject);
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= 0ms) return std::nullopt;
      (void)smtp_->wait_for_messages(all.size() + 1, left);
    }
  }

  // The owner opens the link of the verification mail; from then on the address gets alerts.
  void verify_address() {
    auto mail = wait_for_mail("Confirm your address for detectordag alerts");
    ASSERT_TRUE(mail) << smtp_->log();
    const auto* text = mail->part("text/plain");
    ASSERT_NE(text, nullptr);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(text->text, m,
                                  std::regex{R"(http://dashboard\.test(/v1/verify\?token=\S+))"}))
        << text->text;
    auto page = call("GET", m[1].str());
    ASSERT_EQ(page.status, 200) << page.body;
  }

  void add_dag(const std::string& name) {
    const auto file = dir_.path() / (name + ".env");
    auto r = ctl({"device", "add", "--account", std::string(kOwner), "--name", name, "--out",
                  file.string()});
    ASSERT_TRUE(r.first.success()) << r.second;
    Dag dag{.name = name, .env = read_env(file), .state_dir = dir_.path() / ("edge-" + name)};
    dag.id = value_of(dag.env, "AWS_THING_NAME");
    ASSERT_FALSE(dag.id.empty()) << read(file);
    dags_[name] = std::move(dag);
  }

  void start_edge(Dag& dag) {
    Env env = dag.env;
    env.emplace_back("DAG_DEVICE_STATE_DIR", dag.state_dir.string());
    env.emplace_back("DAG_POWER_SOURCE", "sim");
    env.emplace_back("DAG_BATTERY_GAUGE", "sim");
    env.emplace_back("DAG_BROKER_KEEPALIVE_S", std::to_string(kKeepaliveS));
    env.emplace_back("DAG_LOG_LEVEL", "debug");
    auto p = Process::spawn(
        {.argv = {DAG_EDGE_BIN, "run"}, .env = env, .log_file = dir_.path() / (dag.name + ".log")});
    ASSERT_TRUE(p) << p.error().message;
    dag.process = std::move(*p);
  }

  // Polls the device's API answer (no event says when dagd committed), bounded.
  bool wait_for_user_state(const std::string& id, const std::string& state,
                           std::chrono::milliseconds timeout = kWait) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto r = call("GET", "/v1/devices/" + id);
      if (r.status == 200) {
        const auto j = r.js();
        if (j.is_object() && j["userState"].is_object() && j["userState"]["state"] == state) {
          return true;
        }
      }
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // The kinds of a device's history, oldest first.
  std::vector<std::string> history(const std::string& id) {
    const auto r = call("GET", "/v1/devices/" + id + "/events?limit=100");
    EXPECT_EQ(r.status, 200) << r.body;
    std::vector<std::string> kinds;
    const auto j = r.js();
    if (!j.is_object() || !j["events"].is_array()) return kinds;
    for (const auto& e : j["events"]) kinds.insert(kinds.begin(), e["kind"].get<std::string>());
    return kinds;
  }

  // The alert's plain text says what happened to which dag, and the state now.
  static void expect_alert(const ReceivedMail& mail, const std::string& sentence,
                           const std::string& now) {
    EXPECT_EQ(mail.rcpt_to, std::vector<std::string>{std::string(kAddress)});
    EXPECT_NE(mail.header("To").value_or("").find(kAddress), std::string::npos);
    EXPECT_NE(mail.header("From").value_or("").find("dag@dashboard.test"), std::string::npos);
    EXPECT_TRUE(mail.defects.empty()) << mail.defects.front();
    EXPECT_FALSE(mail.raw.empty()) << "not in the Maildir: " << mail.key;
    const auto* text = mail.part("text/plain");
    ASSERT_NE(text, nullptr);
    EXPECT_NE(text->text.find("Hello alice,"), std::string::npos) << text->text;
    EXPECT_NE(text->text.find(sentence), std::string::npos) << text->text;
    EXPECT_NE(text->text.find("Now: " + now + "."), std::string::npos) << text->text;
    // Times in the account's time zone.
    EXPECT_TRUE(text->text.find(" CET") != std::string::npos ||
                text->text.find(" CEST") != std::string::npos)
        << text->text;
    EXPECT_NE(text->text.find("See your dags: http://dashboard.test"), std::string::npos);
    EXPECT_NE(mail.part("text/html"), nullptr);
  }

  // dagd's notify.coalesce_window_ms (set by the derived fixtures); nullopt: the default.
  std::optional<int> coalesce_window_ms_;
  TempDir dir_{"dag-chain"};
  std::unique_ptr<SmtpServer> smtp_;
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> dagd_;
  std::unique_ptr<httplib::Client> http_;
  std::string token_;
  std::string account_id_;
  std::map<std::string, Dag> dags_;
  std::size_t seen_mails_{0};
  std::vector<std::string> other_mails_;
};

// Each transition its own mail: without coalescing (the default 5 s window would hold the
// second alert of this story back as a follow-up; ChainCoalescingTest tests that).
class ChainEachMailTest : public ChainTest {
 protected:
  ChainEachMailTest() { coalesce_window_ms_ = 0; }
};

TEST_F(ChainEachMailTest, PowerCutLostContactAndReturnReachTheOwnerByMailAndTheHistory) {
  Dag& kitchen = dags_["Kitchen"];
  Dag& barn = dags_["Barn"];
  Dag& cabin = dags_["Cabin"];

  // The owner's address is verified (through the mailed link, in SetUp).
  const auto targets = call("GET", "/v1/accounts/" + account_id_ + "/targets").js();
  ASSERT_TRUE(targets.is_array() && targets.size() == 1) << targets.dump();
  EXPECT_EQ(targets[0]["address"], kAddress);
  EXPECT_TRUE(targets[0]["verified"].get<bool>());

  {
    SCOPED_TRACE("power cut on Kitchen: mailed within 3 s of `dag-edge sim off`");
    const auto start = Clock::now();
    auto off = run({DAG_EDGE_BIN, "sim", "off", "--state-dir", kitchen.state_dir.string()});
    ASSERT_TRUE(off.first.success()) << off.second;
    auto mail = wait_for_mail("You've lost power! (Kitchen)", 10s);
    const auto elapsed = ms_since(start);
    ASSERT_TRUE(mail) << "other mails: " << testing::PrintToString(other_mails_);
    EXPECT_LT(elapsed, 3000) << "the power-lost mail took " << elapsed << " ms";
    std::cerr << "power cut -> mail in the Maildir: " << elapsed << " ms\n";
    expect_alert(*mail, "Kitchen: the power went off on", "Off");
  }
  {
    SCOPED_TRACE("power back on Kitchen");
    const auto start = Clock::now();
    auto on = run({DAG_EDGE_BIN, "sim", "on", "--state-dir", kitchen.state_dir.string()});
    ASSERT_TRUE(on.first.success()) << on.second;
    auto mail = wait_for_mail("Your power's back! (Kitchen)", 10s);
    ASSERT_TRUE(mail) << "other mails: " << testing::PrintToString(other_mails_);
    std::cerr << "power back -> mail: " << ms_since(start) << " ms\n";
    expect_alert(*mail, "Kitchen: the power came back on", "On");
  }
  {
    SCOPED_TRACE("Barn killed with SIGKILL: lost contact after the grace");
    // Barn is connected and has nothing pending, so its will is all the broker has.
    const auto start = Clock::now();
    barn.process->kill9();
    auto mail = wait_for_mail("We've lost contact with your dag! (Barn)",
                              std::chrono::seconds{kDisconnectGraceS} + 10s);
    const auto elapsed = ms_since(start);
    ASSERT_TRUE(mail) << "other mails: " << testing::PrintToString(other_mails_);
    std::cerr << "SIGKILL -> lost-contact mail: " << elapsed << " ms (grace " << kDisconnectGraceS
              << " s)\n";
    // Not before the grace ran out (short blips never reach the owner), not much after.
    EXPECT_GE(elapsed, kDisconnectGraceS * 1000);
    EXPECT_LT(elapsed, kDisconnectGraceS * 1000 + 3000);
    expect_alert(*mail, "Barn: we lost contact with it on", "Was On");
    // No DISCONNECT: the broker saw the socket close (and so published the will).
    EXPECT_TRUE(broker_->wait_for_line("Client " + barn.id + " closed its connection", 1s))
        << broker_->output();
  }
  {
    SCOPED_TRACE("Barn restarted: back");
    const auto start = Clock::now();
    start_edge(barn);
    auto mail = wait_for_mail("Your dag is back! (Barn)", 10s);
    ASSERT_TRUE(mail) << "other mails: " << testing::PrintToString(other_mails_);
    std::cerr << "restart -> dag-back mail: " << ms_since(start) << " ms\n";
    expect_alert(*mail, "Barn: it is back in contact on", "On");
  }

  // Cabin had nothing happen to it, and nobody was told anything else.
  EXPECT_TRUE(other_mails_.empty()) << testing::PrintToString(other_mails_);

  // The history lists every transition, oldest first; the first is each dag's initial state.
  EXPECT_EQ(history(kitchen.id), (std::vector<std::string>{"power_on", "power_off", "power_on"}));
  EXPECT_EQ(history(barn.id), (std::vector<std::string>{"power_on", "lost_contact", "back"}));
  EXPECT_EQ(history(cabin.id), (std::vector<std::string>{"power_on"}));
  // And the devices are all On again.
  for (const auto* dag : {&kitchen, &barn, &cabin}) {
    EXPECT_TRUE(wait_for_user_state(dag->id, "on", 2s)) << dag->name;
  }
}

// A regional cut, coalesced: the first alert goes out at once with every cut dagd had
// committed by then; any cut that came after it waits for the window (shortened from the
// default 5 s) and arrives in one follow-up. Then a dag that is off falls silent (its
// battery ran out): "lost contact", and the state Was Off.
constexpr auto kWindow = 2s;

class ChainCoalescingTest : public ChainTest {
 protected:
  ChainCoalescingTest() {
    coalesce_window_ms_ = static_cast<int>(std::chrono::milliseconds{kWindow}.count());
  }

  // The dags whose cut a mail tells ("Kitchen: the power went off on ...", bulleted or not).
  static std::set<std::string> cuts_told(const ReceivedMail& mail) {
    std::set<std::string> out;
    const auto* text = mail.part("text/plain");
    if (text == nullptr) return out;
    for (const char* name : {"Kitchen", "Barn", "Cabin"}) {
      if (text->text.find(std::string(name) + ": the power went off on") != std::string::npos) {
        out.insert(name);
      }
    }
    return out;
  }
};

TEST_F(ChainCoalescingTest, ARegionalCutIsOneAlertAtOnceAndOneFollowUpThenASilentDagIsWasOff) {
  // The three lines fall together: three `dag-edge sim off` at once.
  const auto start = Clock::now();
  std::vector<std::unique_ptr<Process>> cuts;
  for (const char* name : {"Kitchen", "Barn", "Cabin"}) {
    auto p = Process::spawn(
        {.argv = {DAG_EDGE_BIN, "sim", "off", "--state-dir", dags_[name].state_dir.string()}});
    ASSERT_TRUE(p) << p.error().message;
    cuts.push_back(std::move(*p));
  }
  for (auto& cut : cuts) {
    const auto status = cut->wait_for_exit(kWait);
    ASSERT_TRUE(status && status->success()) << cut->output();
  }
  // The first alert, at once: one dag (whichever dagd committed first), or several when
  // their reports were committed before the worker looked.
  const std::regex first_subject{
      R"(You've lost power! \((Kitchen|Barn|Cabin)\)|[23] of your dags lost power)"};
  const auto first = wait_for_mail(first_subject, 10s);
  const auto first_ms = ms_since(start);
  ASSERT_TRUE(first) << smtp_->messages().size() << " mails";
  EXPECT_LT(first_ms, 3000) << "the first alert took " << first_ms << " ms";
  const auto told_first = cuts_told(*first);
  ASSERT_FALSE(told_first.empty()) << first->subject;
  expect_alert(*first, *told_first.begin() + ": the power went off on", "Off");

  // The others, if any: one follow-up when the window ends.
  std::set<std::string> told = told_first;
  if (told_first.size() < 3) {
    auto follow_up = wait_for_mail(
        std::regex{R"(You've lost power! \((Kitchen|Barn|Cabin)\)|2 more of your dags lost power)"},
        kWindow + 10s);
    const auto follow_up_ms = ms_since(start);
    ASSERT_TRUE(follow_up) << "other mails: " << testing::PrintToString(other_mails_);
    std::cerr << "regional cut: first alert " << first_ms << " ms (" << told_first.size()
              << " dags), follow-up " << follow_up_ms << " ms\n";
    EXPECT_GE(follow_up_ms - first_ms, std::chrono::milliseconds{kWindow}.count() - 1000);
    const auto told_later = cuts_told(*follow_up);
    EXPECT_EQ(told_later.size(), 3 - told_first.size()) << follow_up->subject;
    for (const auto& name : told_later) {
      EXPECT_TRUE(told.insert(name).second) << name << " was told twice";
    }
    if (told_later.size() > 1) {
      const auto* text = follow_up->part("text/plain");
      ASSERT_NE(text, nullptr);
      EXPECT_NE(text->text.find("Since our last message:"), std::string::npos) << text->text;
    }
  } else {
    std::cerr << "regional cut: all three in the first alert, " << first_ms << " ms\n";
  }
  EXPECT_EQ(told, (std::set<std::string>{"Barn", "Cabin", "Kitchen"}));
  EXPECT_TRUE(other_mails_.empty()) << testing::PrintToString(other_mails_);

  // Cabin, still off, falls silent: lost contact after the grace (and after the window of
  // the follow-up), and its state is Was Off.
  Dag& cabin = dags_["Cabin"];
  cabin.process->kill9();
  auto lost = wait_for_mail("We've lost contact with your dag! (Cabin)",
                            std::chrono::seconds{kDisconnectGraceS} + kWindow + 10s);
  ASSERT_TRUE(lost) << "other mails: " << testing::PrintToString(other_mails_);
  expect_alert(*lost, "Cabin: we lost contact with it on", "Was Off");
  EXPECT_TRUE(wait_for_user_state(cabin.id, "was_off", 2s));
  EXPECT_EQ(history(cabin.id), (std::vector<std::string>{"power_on", "power_off", "lost_contact"}));
  for (const char* name : {"Kitchen", "Barn"}) {
    EXPECT_EQ(history(dags_[name].id), (std::vector<std::string>{"power_on", "power_off"})) << name;
  }
  EXPECT_TRUE(other_mails_.empty()) << testing::PrintToString(other_mails_);
}

}  // namespace
}  // namespace dag::test
