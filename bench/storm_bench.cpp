// The outage storm, end to end, on a deployment made by `dagctl init`: Mosquitto on its
// rendered configuration (TLS client certificates, the per-device ACL, the presence plugin,
// the CRL), the release dagd on SQLite mailing a real SMTP server (aiosmtpd writing a
// Maildir), and dag-sim playing N dags, each a real dag-edge agent with its own certificate
// and MQTT/TLS connection, grouped into accounts of 1..10 dags whose owners have a verified
// e-mail address.
//
//   storm   for each N of --devices: every dag connects, then all of them (--percent)
//           lose power within 1 s. Measured: per dag, observedAt (the power edge) →
//           persisted (the dag's /update/accepted: dagd publishes it after the commit),
//           p50/p99; the last publish → every shadow persisted (that last reply, and dagd's
//           own clock of its last commit: /metrics' last-update gauge, read once every dag
//           has its reply, so without the replies' way back); the storm's start → every
//           coalesced e-mail accepted by the SMTP server (per account, a first alert at
//           once with every cut committed by then, and one follow-up with the others when
//           the coalescing window ends), each cut told in exactly one mail;
//           CPU and peak RSS of dagd and Mosquitto. The dags stay connected until then
//           (dag-sim's --linger). In the same run a bare subscriber on the
//           broker's service listener receives the same reports: the broker's and this
//           machine's limit. Every cut is then looked up in dagd's database.
//   single  --outages K dags, each in its own account, lose power one after another, 1 s
//           apart (dag-sim's rolling scenario): the power edge → the owner's mail accepted
//           by the SMTP server, p50 over the K outages.
//
// Usage: storm_bench [flags], each with a value:
//   --devices LIST (2000,10000)  storm sizes, one fresh deployment each; 0: no storm
//   --outages K (100)            single outages; 0: none
//   --percent P (100)            share of the dags the storm cuts
//   --account-size S (1-10)      dags per account (dag-sim's --account-size)
//   --sim-threads T (2), --connect-concurrency C (64)   dag-sim's
//   --seed S (1)
//   --timeout-s T (300)          bound for each phase
//   --smtp-workers W (1)         processes of the test SMTP server (each message is stored
//                                with an fsync before its 250; one process would hold every
//                                session behind the disk, where a mail relay runs many)
//   --dagd-bin, --dagctl-bin, --sim-bin PATH   default: the ones built with this program
// Needs `ulimit -Hn` above twice the largest N (dag-sim and Mosquitto each hold a socket
// per dag). Prints a table on stderr and one JSON line on stdout; exit status 1 when a
// phase did not complete (the goals are reported, not enforced). Figures go in
// docs/benchmarks.md.
#include <fmt/format.h>
#include <httplib.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dag/sim/fleet.hpp"
#include "dag/test/ports.hpp"
#include "dag/test/process.hpp"
#include "dag/test/smtp_server.hpp"
#include "dag/test/temp_dir.hpp"

#include "bench_support.hpp"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using dag::bench::cpu_seconds;
using dag::bench::cpu_seconds_with_children;
using dag::bench::die;
using dag::bench::proc_status;
using dag::test::Process;

constexpr std::string_view kOwnerDomain = "owners.example";

struct Args {
  std::vector<int> devices{2'000, 10'000};
  int outages{100};
  double percent{100};
  std::string account_size{"1-10"};
  int sim_threads{2};
  int connect_concurrency{64};
  int seed{1};
  int timeout_s{300};
  int smtp_workers{1};
  std::string dagd_bin{DAG_DAGD_BIN};
  std::string dagctl_bin{DAG_DAGCTL_BIN};
  std::string sim_bin{DAG_SIM_BIN};
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

double round1(double v) {
  return std::round(v * 10) / 10;
}
double round2(double v) {
  return std::round(v * 100) / 100;
}
double round3(double v) {
  return std::round(v * 1000) / 1000;
}

json machine() {
  std::string model;
  std::ifstream cpu("/proc/cpuinfo");
  for (std::string line; std::getline(cpu, line);) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  utsname u{};
  ::uname(&u);
  const auto mem = dag::bench::proc_status_file("/proc/meminfo");
  auto version = dag::test::run_to_end({"mosquitto", "-h"}, 10s).output;
  version = version.substr(0, version.find('\n'));
  return {{"cpu", model},
          {"cores", std::thread::hardware_concurrency()},
          {"memGiB", mem.contains("MemTotal")
                         ? round1(static_cast<double>(mem.at("MemTotal")) / (1024.0 * 1024.0))
                         : 0.0},
          {"kernel", std::string(u.release)},
          {"mosquitto", version},
          {"load1", [] {
             double l[1]{};
             return ::getloadavg(l, 1) == 1 ? round1(l[0]) : -1.0;
           }()}};
}

// ---- /proc sampling -----------------------------------------------------------------------

// CPU seconds (and the RSS of dagd and Mosquitto) of a few processes every 100 ms, so that
// a phase whose start is only known afterwards (the storm's first cut, from dag-sim's
// per-dag file) can be cut out.
// utime + stime of each live thread of `pid`, summed by thread name.
std::map<std::string, double> thread_cpu_seconds(pid_t pid) {
  std::map<std::string, double> out;
  if (pid <= 0) return out;
  std::error_code ec;
  const fs::path tasks = "/proc/" + std::to_string(pid) + "/task";
  // increment(ec), not a range-for: when dagd exits during the walk, operator++ throws,
  // and an exception out of the sampler's thread ends the whole benchmark.
  for (fs::directory_iterator it(tasks, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = read_file(it->path() / "comm");
    while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
    out[name.empty() ? "?" : name] += dag::bench::stat_cpu_seconds((it->path() / "stat").string());
  }
  return out;
}

class Sampler {
 public:
  struct Sample {
    std::int64_t at_ms;
    std::array<double, 4> cpu;                   // dagd, mosquitto, dag-sim, SMTP server
    std::array<long, 2> rss_kib;                 // dagd, mosquitto
    std::map<std::string, double> dagd_threads;  // CPU of dagd's live threads, by name
  };
  enum Who { kDagd = 0, kBroker = 1, kSim = 2, kSmtp = 3 };

  Sampler(pid_t dagd, pid_t broker, pid_t smtp) {
    pids_[kDagd] = dagd;
    pids_[kBroker] = broker;
    pids_[kSmtp] = smtp;
    thread_ = std::thread([this] { loop(); });
  }
  ~Sampler() { stop(); }
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  void set_sim(pid_t pid) { pids_[kSim] = pid; }
  void stop() {
    {
      std::lock_guard l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // CPU seconds of `who` between two epoch times (nearest samples).
  double cpu_between(Who who, std::int64_t from_ms, std::int64_t to_ms) const {
    std::lock_guard l(mu_);
    const auto at = [&](std::int64_t t) { return sample_at(t).cpu[who]; };
    if (samples_.empty()) return 0;
    return at(to_ms) - at(from_ms);
  }
  // dagd's CPU seconds between two epoch times by thread name (dagd names its threads;
  // threads of one name, such as the notify-send ones, are added up); "ended threads" is
  // what threads that are gone by `to_ms` used.
  std::map<std::string, double> dagd_threads_between(std::int64_t from_ms,
                                                     std::int64_t to_ms) const {
    std::lock_guard l(mu_);
    std::map<std::string, double> out;
    if (samples_.empty()) return out;
    const Sample& from = sample_at(from_ms);
    const Sample& to = sample_at(to_ms);
    double live = 0;
    for (const auto& [name, cpu] : to.dagd_threads) {
      const auto before = from.dagd_threads.find(name);
      const double used = cpu - (before == from.dagd_threads.end() ? 0 : before->second);
      out[name] = round2(std::max(0.0, used));
      live += std::max(0.0, used);
    }
    out["ended threads"] = round2(std::max(0.0, to.cpu[kDagd] - from.cpu[kDagd] - live));
    return out;
  }
  // The largest RSS of dagd or Mosquitto sampled between two epoch times, in MiB.
  double rss_peak_mib(Who who, std::int64_t from_ms, std::int64_t to_ms) const {
    std::lock_guard l(mu_);
    long most = 0;
    for (const auto& s : samples_) {
      if (s.at_ms >= from_ms && s.at_ms <= to_ms) {
        most = std::max(most, s.rss_kib[who == kDagd ? 0 : 1]);
      }
    }
    return round1(static_cast<double>(most) / 1024.0);
  }

 private:
  // The first sample at or after t (the last one when t is later); callers hold mu_ and
  // have checked that there is one.
  [[nodiscard]] const Sample& sample_at(std::int64_t t) const {
    const auto it = std::lower_bound(samples_.begin(), samples_.end(), t,
                                     [](const Sample& s, std::int64_t v) { return s.at_ms < v; });
    return it == samples_.end() ? samples_.back() : *it;
  }
  void loop() {
    std::unique_lock l(mu_);
    while (!stop_) {
      Sample s{now_ms(), {}, {}, {}};
      for (int w = 0; w < 2; ++w) {
        const pid_t p = pids_[static_cast<std::size_t>(w)].load();
        const auto status = p > 0 ? proc_status(p) : std::map<std::string, long>{};
        s.rss_kib[static_cast<std::size_t>(w)] = status.contains("VmRSS") ? status.at("VmRSS") : 0;
      }
      for (int w = 0; w < 4; ++w) {
        const pid_t p = pids_[static_cast<std::size_t>(w)].load();
        s.cpu[static_cast<std::size_t>(w)] =
            w == kSmtp ? cpu_seconds_with_children(p) : cpu_seconds(p);
      }
      s.dagd_threads = thread_cpu_seconds(pids_[kDagd].load());
      // A process that ended reads 0: keep its last figure.
      if (!samples_.empty()) {
        for (std::size_t w = 0; w < 4; ++w) s.cpu[w] = std::max(s.cpu[w], samples_.back().cpu[w]);
      }
      samples_.push_back(s);
      cv_.wait_for(l, 100ms, [&] { return stop_; });
    }
  }

  std::array<std::atomic<pid_t>, 4> pids_{};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_{false};
  std::vector<Sample> samples_;
  std::thread thread_;
};

// ---- the bare subscriber --------------------------------------------------------------------

// A plain libmosquitto subscriber on $aws/things/+/shadow/update with a service identity
// (dagctl's certificate), noting when each dag's "off" report arrived.
class BareSubscriber {
 public:
  BareSubscriber(const fs::path& state, int port) {
    m_ = mosquitto_new("bench-bare", true, this);
    if (m_ == nullptr) die("mosquitto_new failed");
    mosquitto_int_option(m_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m_, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(m_, MOSQ_OPT_RECEIVE_MAXIMUM, 1000);  // dagd's mqtt.max_inflight
    const auto ca = (state / "ca/ca.pem").string();
    const auto cert = (state / "dagctl/dagctl.pem").string();
    const auto key = (state / "dagctl/dagctl.key").string();
    if (mosquitto_tls_set(m_, ca.c_str(), nullptr, cert.c_str(), key.c_str(), nullptr) !=
        MOSQ_ERR_SUCCESS) {
      die("mosquitto_tls_set failed");
    }
    mosquitto_connect_v5_callback_set(
        m_, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
          auto* s = static_cast<BareSubscriber*>(self);
          std::lock_guard l(s->mu_);
          s->connack_ = rc;
          s->cv_.notify_all();
        });
    mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) {
      auto* s = static_cast<BareSubscriber*>(self);
      std::lock_guard l(s->mu_);
      s->subscribed_ = true;
      s->cv_.notify_all();
    });
    mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
      static_cast<BareSubscriber*>(self)->on_message(msg);
    });
    if (mosquitto_connect(m_, "127.0.0.1", port, 60) != MOSQ_ERR_SUCCESS) {
      die("bare subscriber: connect failed");
    }
    mosquitto_loop_start(m_);
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, 10s, [&] { return connack_.has_value(); }) || *connack_ != 0) {
      die("bare subscriber: no CONNACK");
    }
    l.unlock();
    if (mosquitto_subscribe(m_, nullptr, "$aws/things/+/shadow/update", 1) != MOSQ_ERR_SUCCESS) {
      die("bare subscriber: subscribe failed");
    }
    l.lock();
    if (!cv_.wait_for(l, 10s, [&] { return subscribed_; })) die("bare subscriber: no SUBACK");
  }
  ~BareSubscriber() {
    mosquitto_disconnect(m_);
    mosquitto_loop_stop(m_, false);
    mosquitto_destroy(m_);
  }
  BareSubscriber(const BareSubscriber&) = delete;
  BareSubscriber& operator=(const BareSubscriber&) = delete;

  // Device id -> when its first "off" report arrived (epoch ms).
  std::map<std::string, std::int64_t> offs() const {
    std::lock_guard l(mu_);
    return offs_;
  }
  std::int64_t messages() const { return messages_.load(); }

 private:
  void on_message(const mosquitto_message* msg) {
    const std::int64_t at = now_ms();
    messages_.fetch_add(1);
    const std::string_view topic = msg->topic;
    constexpr std::string_view kPrefix = "$aws/things/";
    const auto end = topic.find('/', kPrefix.size());
    if (topic.rfind(kPrefix, 0) != 0 || end == std::string_view::npos) return;
    const std::string_view payload(static_cast<const char*>(msg->payload),
                                   static_cast<std::size_t>(msg->payloadlen));
    // The cheap test first: most reports of a storm run are "off" anyway.
    if (payload.find(R"("status":"off")") == std::string_view::npos) return;
    std::lock_guard l(mu_);
    offs_.emplace(std::string(topic.substr(kPrefix.size(), end - kPrefix.size())), at);
  }

  mosquitto* m_{nullptr};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int> connack_;
  bool subscribed_{false};
  std::map<std::string, std::int64_t> offs_;
  std::atomic<std::int64_t> messages_{0};
};

// ---- a deployment ---------------------------------------------------------------------------

// dagctl init + Mosquitto + SMTP server + dagd, each a real process, on free loopback ports.
class Deployment {
 public:
  explicit Deployment(const Args& a) : args_(a) {
    auto smtp = dag::test::SmtpServer::start({.headers_only = true, .workers = a.smtp_workers});
    if (!smtp) die("SMTP server: " + smtp.error().message);
    smtp_ = std::move(*smtp);
    auto device_port = dag::test::free_loopback_port();
    auto service_port = dag::test::free_loopback_port();
    if (!device_port || !service_port) die("no free port");
    device_port_ = *device_port;
    service_port_ = *service_port;
    auto init = dag::test::run_to_end(
        {a.dagctl_bin, "--dir", state().string(), "init", "--host", "127.0.0.1", "--device-port",
         std::to_string(device_port_), "--service-port", std::to_string(service_port_),
         "--broker-user", dag::test::current_user_name()},
        60s);
    if (!init.status.success()) die("dagctl init: " + init.output);
    // The device listener listens on every interface in a deployment; here loopback only.
    const auto conf_file = state() / "broker/mosquitto.conf";
    std::string conf = read_file(conf_file);
    const std::string any = "\nlistener " + std::to_string(device_port_) + "\n";
    const auto at = conf.find(any);
    if (at == std::string::npos) die("no device listener in " + conf_file.string());
    conf.replace(at, any.size(), "\nlistener " + std::to_string(device_port_) + " 127.0.0.1\n");
    std::ofstream(conf_file, std::ios::trunc) << conf;

    auto broker = Process::spawn(
        {.argv = {"mosquitto", "-c", conf_file.string()}, .log_file = dir_ / "mosquitto.log"});
    if (!broker) die("mosquitto: " + broker.error().message);
    broker_ = std::move(*broker);
    if (!broker_->wait_for_line(std::regex{R"(mosquitto version \S+ running)"}, 20s)) {
      die("mosquitto did not start:\n" + broker_->output());
    }
    auto dagd = Process::spawn({.argv = {a.dagd_bin, "-c", (state() / "dagd/dagd.toml").string()},
                                .env = {{"DAG_API_PORT", "0"},
                                        {"DAG_API_PUBLIC_URL", "http://dashboard.test"},
                                        {"DAG_SMTP_URL", smtp_->url()},
                                        {"DAG_SMTP_STARTTLS", "none"},
                                        {"DAG_SMTP_FROM", "detectordag <dag@dashboard.test>"}},
                                .log_file = dir_ / "dagd.log"});
    if (!dagd) die("dagd: " + dagd.error().message);
    dagd_ = std::move(*dagd);
    if (!dagd_->wait_for_line("mqtt.subscribed", 30s))
      die("dagd did not start:\n" + dagd_->output());
    // The figures depend on it: "libc" unless dagd was built with DAG_JEMALLOC.
    std::smatch m;
    const auto started = dagd_->output();
    if (std::regex_search(started, m, std::regex{R"re(allocator="([^"]*)")re"})) {
      allocator_ = m[1];
    }
    if (std::regex_search(started, m, std::regex{R"(api\.listening .*port=(\d+))"})) {
      api_port_ = std::stoi(m[1]);
    }
  }
  ~Deployment() {
    if (dagd_) dagd_->stop();
    if (broker_) broker_->stop();
  }
  Deployment(const Deployment&) = delete;
  Deployment& operator=(const Deployment&) = delete;

  [[nodiscard]] fs::path state() const { return dir_ / "state"; }
  [[nodiscard]] const fs::path& dir() const { return dir_.path(); }
  [[nodiscard]] fs::path database() const { return state() / "dagd/dagd.db"; }
  [[nodiscard]] int device_port() const { return device_port_; }
  [[nodiscard]] int service_port() const { return service_port_; }
  Process& dagd() { return *dagd_; }
  [[nodiscard]] const std::string& allocator() const { return allocator_; }
  // dagd's gauge of its last committed shadow update (Unix ms), from /metrics; nullopt
  // when it cannot be read.
  [[nodiscard]] std::optional<std::int64_t> last_update_commit_ms() const {
    if (api_port_ == 0) return std::nullopt;
    httplib::Client http("127.0.0.1", api_port_);
    http.set_read_timeout(10s);
    const auto res = http.Get("/metrics");
    if (!res || res->status != 200) return std::nullopt;
    std::smatch m;
    if (!std::regex_search(
            res->body, m,
            std::regex{R"(\ndagd_shadow_last_update_commit_timestamp_seconds (\S+))"})) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(std::llround(std::stod(m[1]) * 1000.0));
  }
  Process& broker() { return *broker_; }
  dag::test::SmtpServer& smtp() { return *smtp_; }

  // Runs dag-sim to its end with these scenario arguments; returns its JSON summary. With
  // `after_drain`, the fleet stays connected after its scenario drained until after_drain
  // returned: what it waits for is then measured without the fleet's teardown.
  json run_sim(const std::string& prefix, int devices, const std::string& account_size,
               std::vector<std::string> scenario, Sampler& sampler,
               const std::function<void()>& after_drain = {}) {
    std::vector<std::string> argv{args_.sim_bin,
                                  "--ca-cert",
                                  (state() / "ca/ca.pem").string(),
                                  "--ca-key",
                                  (state() / "ca/ca.key").string(),
                                  "--provision-db",
                                  database().string(),
                                  "--id-prefix",
                                  prefix,
                                  "--account-size",
                                  account_size,
                                  "--owner-email-domain",
                                  std::string(kOwnerDomain),
                                  "--host",
                                  "127.0.0.1",
                                  "--port",
                                  std::to_string(device_port_),
                                  "--devices",
                                  std::to_string(devices),
                                  "--seed",
                                  std::to_string(args_.seed),
                                  "--threads",
                                  std::to_string(args_.sim_threads),
                                  "--connect-concurrency",
                                  std::to_string(args_.connect_concurrency),
                                  "--connect-timeout",
                                  std::to_string(args_.timeout_s),
                                  "--drain-timeout",
                                  "60",
                                  "--per-device",
                                  per_device_file().string()};
    argv.insert(argv.end(), scenario.begin(), scenario.end());
    const std::chrono::seconds bound{args_.timeout_s * 3};
    if (after_drain) {
      argv.insert(argv.end(), {"--linger", std::to_string(bound.count())});
    }
    auto sim = Process::spawn({.argv = argv, .log_file = dir_ / "dag-sim.log"});
    if (!sim) die("dag-sim: " + sim.error().message);
    sampler.set_sim((*sim)->pid());
    // A sim that fails before lingering ends its output: its summary says why.
    if (after_drain && (*sim)->wait_for_line("dag-sim: drained; lingering", bound)) {
      after_drain();
      (void)(*sim)->signal(SIGTERM);
    }
    const auto status = (*sim)->wait_for_exit(bound);
    if (!status) {
      (*sim)->kill9();
      die("dag-sim did not finish in time:\n" + (*sim)->output());
    }
    const auto lines = (*sim)->lines();
    for (std::size_t k = lines.size(); k-- > 0;) {  // the summary is the last JSON line
      if (!lines[k].empty() && lines[k].front() == '{') {
        auto summary = json::parse(lines[k], nullptr, false);
        if (summary.is_object()) return summary;
      }
    }
    die("dag-sim printed no summary (" + status->to_string() + "):\n" + (*sim)->output());
  }
  [[nodiscard]] fs::path per_device_file() const { return dir_ / "per-device.jsonl"; }

 private:
  const Args& args_;
  dag::test::TempDir dir_{"dag-storm"};  // outlives the processes
  std::unique_ptr<dag::test::SmtpServer> smtp_;
  std::unique_ptr<Process> broker_;
  std::unique_ptr<Process> dagd_;
  std::string allocator_{"unknown"};
  int api_port_{0};
  int device_port_{0};
  int service_port_{0};
};

// ---- reading the results ----------------------------------------------------------------------

struct Cut {
  std::string id;
  std::int64_t observed_at{0};
  std::optional<std::int64_t> accepted_at;
  std::int64_t published_at{0};
};

std::vector<Cut> read_cuts(const fs::path& file) {
  std::vector<Cut> cuts;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const auto j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    Cut c;
    c.id = j.value("id", "");
    // observedAt (the edge's time of the power edge) comes with an accepted report; the
    // scenario's cut time otherwise.
    c.observed_at = j.value("observedAt", j.value("cutAt", std::int64_t{0}));
    if (j["acceptedAt"].is_number()) {
      c.accepted_at = j["acceptedAt"].get<std::int64_t>();
      c.published_at =
          *c.accepted_at - static_cast<std::int64_t>(j.value("publishToAcceptedMs", 0.0));
    }
    cuts.push_back(std::move(c));
  }
  return cuts;
}

// Rows of a query on dagd's database (read-only; dagd may still run).
std::vector<std::vector<std::string>> query(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    die("open " + db.string());
  }
  sqlite3_busy_timeout(h, 10'000);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    const std::string e = sqlite3_errmsg(h);
    sqlite3_close(h);
    die("query: " + e);
  }
  std::vector<std::vector<std::string>> rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const auto* text = sqlite3_column_text(st, c);
      row.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "");
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return rows;
}

struct Mail {
  std::string account;  // the recipient's local part: the simulated account's name
  bool follow_up{false};
  std::int64_t accepted_at{0};       // the Maildir file's mtime: stored before the 250 reply
  std::vector<std::string> devices;  // the dags it tells of (ids with the storm's prefix)
};

// The text/plain part of a message as dagd writes it (quoted-printable), decoded.
std::string plain_text(const std::string& raw) {
  const auto type = raw.find("Content-Type: text/plain");
  const auto start = type == std::string::npos ? type : raw.find("\r\n\r\n", type);
  if (start == std::string::npos) return {};
  const auto end = raw.find("\r\n--", start + 4);
  const std::string_view part =
      std::string_view(raw).substr(start + 4, end == std::string::npos ? end : end - start - 4);
  std::string out;
  const auto hex = [&](std::size_t k) {
    return k < part.size() && std::isxdigit(static_cast<unsigned char>(part[k])) != 0;
  };
  for (std::size_t k = 0; k < part.size(); ++k) {
    if (part[k] == '=' && part.substr(k + 1, 2) == "\r\n") {
      k += 2;  // a soft line break
      continue;
    }
    if (part[k] == '=' && hex(k + 1) && hex(k + 2)) {
      out += static_cast<char>(std::stoi(std::string(part.substr(k + 1, 2)), nullptr, 16));
      k += 2;
      continue;
    }
    out += part[k];  // also a '=' that is not quoted-printable after all
  }
  return out;
}

// The dags a mail tells of: every id with the prefix in its text part. (The account's
// name, "<prefix>acct-…", has no digit after the prefix.)
std::vector<std::string> devices_in(const fs::path& file, const std::regex& id) {
  std::ifstream in(file, std::ios::binary);
  const std::string raw{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const std::string text = plain_text(raw);
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), id); it != std::sregex_iterator();
       ++it) {
    if (std::find(out.begin(), out.end(), it->str()) == out.end()) out.push_back(it->str());
  }
  return out;
}

std::vector<Mail> mails(dag::test::SmtpServer& smtp, const std::string& prefix) {
  static const std::regex follow_up{R"(^\d+ more of your dags )"};
  const std::regex id{prefix + R"(\d+)"};
  std::vector<Mail> out;
  for (const auto& m : smtp.messages()) {
    if (m.rcpt_to.empty()) continue;
    Mail mail;
    mail.account = m.rcpt_to.front().substr(0, m.rcpt_to.front().find('@'));
    mail.follow_up = std::regex_search(m.subject, follow_up);
    const auto file = smtp.maildir() / "new" / m.key;
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0) {
      mail.accepted_at =
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    }
    mail.devices = devices_in(file, id);
    out.push_back(std::move(mail));
  }
  return out;
}

// How the cuts were told: each should be in exactly one mail, to its own account.
struct Coverage {
  std::size_t once{0};
  std::size_t never{0};
  std::size_t more{0};           // a cut in more than one mail: a duplicate
  std::size_t wrong_account{0};  // a dag in a mail to another account
  [[nodiscard]] bool exact(std::size_t cuts) const {
    return once == cuts && more == 0 && wrong_account == 0;
  }
};

// The account (its name) of a dag; empty for a dag that is not in the map.
std::string account_of(const std::map<std::string, std::string>& account, const std::string& id) {
  const auto it = account.find(id);
  return it == account.end() ? std::string{} : it->second;
}

template <typename Cuts>
Coverage coverage(const Cuts& cuts, const std::vector<Mail>& got,
                  const std::map<std::string, std::string>& account) {
  Coverage c;
  std::map<std::string, int> told;
  for (const auto& m : got) {
    for (const auto& id : m.devices) {
      ++told[id];
      if (account_of(account, id) != m.account) ++c.wrong_account;
    }
  }
  for (const auto& cut : cuts) {
    const int n = told.contains(cut.id) ? told.at(cut.id) : 0;
    (n == 0 ? c.never : n == 1 ? c.once : c.more) += 1;
  }
  return c;
}

// The account (its name) of every dag with this prefix.
std::map<std::string, std::string> accounts_of(const fs::path& db, const std::string& prefix) {
  std::map<std::string, std::string> out;
  for (const auto& row :
       query(db,
             "SELECT d.id, a.username FROM devices d JOIN accounts a ON a.id = d.account_id "
             "WHERE d.id LIKE '" +
                 prefix + "%'")) {
    out[row[0]] = row[1];
  }
  return out;
}

// The mails of a storm once dagd is done with it, and whether it was done in time.
struct Delivered {
  bool complete{false};  // no intent left to deliver and every cut in a mail, in time
  std::vector<Mail> got;
};

// Waits until no intent is left to deliver (every cut was committed before: the fleet
// drained); false at the deadline.
bool await_outbox_empty(Deployment& d, std::chrono::steady_clock::time_point deadline) {
  // No event says "the outbox is empty": look, bounded. (Reading the mails meanwhile would
  // take CPU from the programs measured.)
  for (;;) {
    const auto left = query(d.database(), "SELECT count(*) FROM outbox WHERE status = 'pending'");
    if (!left.empty() && left[0][0] == "0") return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
}

// Waits until every cut is in a mail (or the deadline), once the outbox is empty.
// How many mails that takes is dagd's to decide: an account hears in one mail about the
// cuts committed before its first alert, and in a follow-up about the others.
Delivered await_mails(Deployment& d, const std::vector<Cut>& cuts,
                      const std::map<std::string, std::string>& account, const std::string& prefix,
                      bool outbox_empty, std::chrono::steady_clock::time_point deadline) {
  if (!outbox_empty) return {false, mails(d.smtp(), prefix)};
  // Every intent was recorded after its 250; the server's report of a mail can trail it.
  for (;;) {
    const auto seen = d.smtp().messages().size();
    Delivered out{true, mails(d.smtp(), prefix)};
    if (coverage(cuts, out.got, account).never == 0) return out;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms || !d.smtp().wait_for_messages(seen + 1, left)) {
      out.complete = false;
      return out;
    }
  }
}

// CPU-seconds by program between two times, and the window's length.
json cpu_window(Sampler& sampler, std::int64_t from, std::int64_t to) {
  const auto cpu = [&](Sampler::Who who) { return round2(sampler.cpu_between(who, from, to)); };
  return {{"dagd", cpu(Sampler::kDagd)},
          {"dagdThreads", sampler.dagd_threads_between(from, to)},
          {"mosquitto", cpu(Sampler::kBroker)},
          {"dagSim", cpu(Sampler::kSim)},
          {"smtpServer", cpu(Sampler::kSmtp)},
          {"windowS", round3(static_cast<double>(to - from) / 1000.0)}};
}

// Over the storm, and until every cut was persisted: what the ingest had to share the
// machine with.
json cpu_json(Sampler& sampler, std::int64_t storm_start, std::int64_t last_persisted,
              std::int64_t end) {
  json out = cpu_window(sampler, storm_start, end);
  out["untilPersisted"] = cpu_window(sampler, storm_start, last_persisted);
  return out;
}

std::size_t distinct_values(const std::map<std::string, std::string>& map) {
  std::set<std::string> values;
  for (const auto& [key, value] : map) values.insert(value);
  return values.size();
}

// Per account, its first cut (the power edge) → its first mail accepted.
template <typename Cuts>
std::vector<double> first_alert_ms(const Cuts& cuts, const std::vector<Mail>& got,
                                   const std::map<std::string, std::string>& account) {
  std::map<std::string, std::int64_t> first_mail;
  for (const auto& m : got) {
    auto [it, fresh] = first_mail.emplace(m.account, m.accepted_at);
    if (!fresh) it->second = std::min(it->second, m.accepted_at);
  }
  std::map<std::string, std::int64_t> first_cut;
  for (const auto& c : cuts) {
    auto [it, fresh] = first_cut.emplace(account_of(account, c.id), c.observed_at);
    if (!fresh) it->second = std::min(it->second, c.observed_at);
  }
  std::vector<double> out;
  for (const auto& [acc, at] : first_mail) {
    if (auto c = first_cut.find(acc); c != first_cut.end()) {
      out.push_back(static_cast<double>(at - c->second));
    }
  }
  return out;
}

// ---- the storm -------------------------------------------------------------------------------

json run_storm(const Args& a, int devices) {
  std::cerr << "storm_bench: storm of " << devices << " dags\n";
  Deployment d(a);
  Sampler sampler(d.dagd().pid(), d.broker().pid(), d.smtp().pid());
  BareSubscriber bare(d.state(), d.service_port());
  const std::string prefix = "storm-";
  // The dags stay connected until every mail is out: a fleet disconnecting meanwhile would
  // load dagd and the broker with 10,000 presence events no storm has.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{a.timeout_s} * 2;
  bool outbox_empty = false;
  std::optional<std::int64_t> last_commit;
  const auto sim = d.run_sim(prefix, devices, a.account_size,
                             {"--scenario", "storm", "--percent", fmt::format("{}", a.percent),
                              "--duration", "3", "--no-progress"},
                             sampler, [&] {
                               // Every report was answered: the last commit is behind us.
                               last_commit = d.last_update_commit_ms();
                               outbox_empty = await_outbox_empty(d, deadline);
                             });
  const auto cuts = read_cuts(d.per_device_file());
  auto account = accounts_of(d.database(), prefix);

  const auto [mails_done, got] = await_mails(d, cuts, account, prefix, outbox_empty, deadline);
  sampler.stop();
  const Coverage told = coverage(cuts, got, account);
  std::set<std::string> accounts_cut;
  for (const auto& c : cuts) accounts_cut.insert(account_of(account, c.id));

  std::int64_t storm_start = INT64_MAX;
  std::int64_t last_publish = 0;
  std::int64_t last_persisted = 0;
  std::vector<double> persisted;
  std::vector<double> bare_ms;
  const auto bare_offs = bare.offs();
  std::int64_t last_bare = 0;
  std::size_t missing = 0;
  for (const auto& c : cuts) {
    storm_start = std::min(storm_start, c.observed_at);
    if (!c.accepted_at) {
      ++missing;
      continue;
    }
    persisted.push_back(static_cast<double>(*c.accepted_at - c.observed_at));
    last_publish = std::max(last_publish, c.published_at);
    last_persisted = std::max(last_persisted, *c.accepted_at);
    if (auto b = bare_offs.find(c.id); b != bare_offs.end()) {
      bare_ms.push_back(static_cast<double>(b->second - c.observed_at));
      last_bare = std::max(last_bare, b->second);
    }
  }
  std::int64_t last_mail = 0;
  std::size_t follow_ups = 0;
  for (const auto& m : got) {
    last_mail = std::max(last_mail, m.accepted_at);
    if (m.follow_up) ++follow_ups;
  }
  std::vector<double> first_alert = first_alert_ms(cuts, got, account);

  // Every cut in dagd's database: one power_off event each.
  const auto stored = query(d.database(),
                            "SELECT count(DISTINCT device_id) FROM events WHERE kind = 'power_off' "
                            "AND observed_at_ms >= " +
                                std::to_string(storm_start));
  const std::size_t in_db = stored.empty() ? 0 : std::stoul(stored[0][0]);

  const std::int64_t end = std::max(last_persisted, last_mail);
  const auto dagd_status = proc_status(d.dagd().pid());
  const auto broker_status = proc_status(d.broker().pid());
  const auto kib = [](const std::map<std::string, long>& s, const char* k) {
    return s.contains(k) ? round1(static_cast<double>(s.at(k)) / 1024.0) : -1.0;
  };
  const double persisted_after_s = static_cast<double>(last_persisted - last_publish) / 1000.0;
  // The replies above travel back through the busy broker; the gauge is when dagd committed
  // the last update: "persisted" itself (also an upper bound: any later update moves it).
  const bool committed_known = last_commit.has_value();
  const double committed_after_s =
      committed_known ? static_cast<double>(*last_commit - last_publish) / 1000.0 : 0.0;
  const double mails_after_s = static_cast<double>(last_mail - storm_start) / 1000.0;
  json r = {
      {"devices", devices},
      {"dagdAllocator", d.allocator()},
      {"accounts", distinct_values(account)},
      {"cuts", cuts.size()},
      {"persisted",
       {{"count", cuts.size() - missing},
        {"inDatabase", in_db},
        {"observedToPersistedMs", dag::sim::distribution(persisted)},
        {"lastPublishToAllPersistedS", round3(persisted_after_s)},
        {"lastPublishToLastCommitS", committed_known ? json(round3(committed_after_s)) : json()},
        {"stormSpanS", round3(static_cast<double>(last_publish - storm_start) / 1000.0)}}},
      {"bare",
       {{"received", bare_ms.size()},
        {"observedToReceivedMs", dag::sim::distribution(bare_ms)},
        {"lastPublishToAllReceivedS",
         round3(static_cast<double>(last_bare - last_publish) / 1000.0)}}},
      {"emails",
       {{"accountsCut", accounts_cut.size()},
        {"accepted", got.size()},
        {"followUps", follow_ups},
        {"complete", mails_done},
        {"cutsInOneMail", told.once},
        {"cutsInNoMail", told.never},
        {"cutsInSeveralMails", told.more},
        {"dagsInAnotherAccountsMail", told.wrong_account},
        {"stormStartToAllAcceptedS", round3(mails_after_s)},
        {"lastPublishToAllAcceptedS",
         round3(static_cast<double>(last_mail - last_publish) / 1000.0)},
        {"firstAlertMs", dag::sim::distribution(first_alert)}}},
      {"cpuS", cpu_json(sampler, storm_start, last_persisted, end)},
      {"rssMiB",
       {{"dagdStorm", sampler.rss_peak_mib(Sampler::kDagd, storm_start, end)},
        {"dagdEnd", kib(dagd_status, "VmRSS")},
        {"dagdHWM", kib(dagd_status, "VmHWM")},
        {"mosquittoStorm", sampler.rss_peak_mib(Sampler::kBroker, storm_start, end)}}},
      {"sim",
       {{"connectS", sim["connect"]["allConnectedS"]},
        {"connectPerSecond", sim["connect"]["perSecond"]},
        {"ok", sim["ok"]}}},
      {"goals",
       {{"persistedWithin2s", missing == 0 && in_db == cuts.size() && persisted_after_s <= 2.0},
        {"committedWithin2s",
         missing == 0 && in_db == cuts.size() && committed_known && committed_after_s <= 2.0},
        {"emailsWithin10s", mails_done && told.exact(cuts.size()) && mails_after_s <= 10.0},
        {"dagdRssUnder100MB", sampler.rss_peak_mib(Sampler::kDagd, storm_start, end) <=
                                  100.0 * 1e6 / (1024.0 * 1024.0)}}},
  };
  r["ok"] = sim.value("ok", false) && missing == 0 && in_db == cuts.size() && mails_done &&
            told.exact(cuts.size());
  return r;
}

// ---- single outages ---------------------------------------------------------------------------

json run_single(const Args& a) {
  std::cerr << "storm_bench: " << a.outages << " single outages\n";
  Deployment d(a);
  Sampler sampler(d.dagd().pid(), d.broker().pid(), d.smtp().pid());
  const std::string prefix = "one-";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds{a.timeout_s * 2 + a.outages};
  bool outbox_empty = false;
  const auto sim = d.run_sim(prefix, a.outages, "1",
                             {"--scenario", "rolling", "--percent", "100", "--interval-ms", "1000",
                              "--duration", std::to_string(a.outages), "--no-progress"},
                             sampler, [&] { outbox_empty = await_outbox_empty(d, deadline); });
  const auto cuts = read_cuts(d.per_device_file());
  auto account = accounts_of(d.database(), prefix);
  const auto [mails_done, got] = await_mails(d, cuts, account, prefix, outbox_empty, deadline);
  sampler.stop();
  std::map<std::string, std::int64_t> mail_at;
  for (const auto& m : got) mail_at.emplace(m.account, m.accepted_at);
  std::vector<double> to_mail;
  std::vector<double> to_persisted;
  for (const auto& c : cuts) {
    if (c.accepted_at) to_persisted.push_back(static_cast<double>(*c.accepted_at - c.observed_at));
    if (auto m = mail_at.find(account[c.id]); m != mail_at.end()) {
      to_mail.push_back(static_cast<double>(m->second - c.observed_at));
    }
  }
  const double p50 = to_mail.empty() ? 0 : dag::bench::percentile(to_mail, 0.5);
  json r = {{"outages", cuts.size()},
            {"mailed", to_mail.size()},
            {"observedToMailAcceptedMs", dag::sim::distribution(to_mail)},
            {"observedToPersistedMs", dag::sim::distribution(to_persisted)},
            {"goals", {{"p50Within500ms", to_mail.size() == cuts.size() && p50 <= 500}}}};
  const Coverage told = coverage(cuts, got, account);
  r["cutsInOneMail"] = told.once;
  r["ok"] = sim.value("ok", false) && mails_done && to_mail.size() == cuts.size() &&
            told.exact(cuts.size());
  return r;
}

void raise_fd_limit(int devices) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const auto need = static_cast<rlim_t>(devices) + 1024;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < need) {
    die(fmt::format("{} dags need {} descriptors in Mosquitto; ulimit -Hn is {}", devices, need,
                    lim.rlim_max));
  }
  lim.rlim_cur =
      lim.rlim_max == RLIM_INFINITY ? std::max<rlim_t>(lim.rlim_cur, need * 2) : lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);  // Mosquitto and dag-sim inherit it
}

void print_table(const json& out) {
  for (const auto& s : out["storms"]) {
    std::cerr << fmt::format(
        "storm {:>6} dags: persisted p50 {} ms p99 {} ms, all {:.2f} s after the last publish "
        "(last commit {} s; bare p99 {} ms); {} mails to {} accounts ({} of {} cuts in exactly "
        "one), "
        "the last {:.2f} s after the first cut; dagd {:.1f} CPU-s, peak {:.1f} MiB; "
        "mosquitto {:.1f} CPU-s\n",
        s["devices"].get<int>(), s["persisted"]["observedToPersistedMs"].value("p50", 0.0),
        s["persisted"]["observedToPersistedMs"].value("p99", 0.0),
        s["persisted"]["lastPublishToAllPersistedS"].get<double>(),
        s["persisted"]["lastPublishToLastCommitS"].dump(),
        s["bare"]["observedToReceivedMs"].value("p99", 0.0), s["emails"]["accepted"].get<int>(),
        s["emails"]["accountsCut"].get<int>(), s["emails"]["cutsInOneMail"].get<int>(),
        s["cuts"].get<int>(), s["emails"]["stormStartToAllAcceptedS"].get<double>(),
        s["cpuS"]["dagd"].get<double>(), s["rssMiB"]["dagdStorm"].get<double>(),
        s["cpuS"]["mosquitto"].get<double>());
  }
  if (out.contains("single")) {
    const auto& m = out["single"]["observedToMailAcceptedMs"];
    std::cerr << fmt::format("single outages: power edge -> mail accepted p50 {} ms, p99 {} ms\n",
                             m.value("p50", 0.0), m.value("p99", 0.0));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a;
    dag::bench::parse_flags(argc, argv,
                            {{"--devices",
                              [&](const std::string& v) {
                                a.devices.clear();
                                std::stringstream in(v);
                                for (std::string n; std::getline(in, n, ',');) {
                                  if (std::stoi(n) > 0) a.devices.push_back(std::stoi(n));
                                }
                              }},
                             {"--outages", dag::bench::int_flag(a.outages)},
                             {"--percent", [&](const std::string& v) { a.percent = std::stod(v); }},
                             {"--account-size", [&](const std::string& v) { a.account_size = v; }},
                             {"--sim-threads", dag::bench::int_flag(a.sim_threads)},
                             {"--connect-concurrency", dag::bench::int_flag(a.connect_concurrency)},
                             {"--seed", dag::bench::int_flag(a.seed)},
                             {"--timeout-s", dag::bench::int_flag(a.timeout_s)},
                             {"--smtp-workers", dag::bench::int_flag(a.smtp_workers)},
                             {"--dagd-bin", [&](const std::string& v) { a.dagd_bin = v; }},
                             {"--dagctl-bin", [&](const std::string& v) { a.dagctl_bin = v; }},
                             {"--sim-bin", [&](const std::string& v) { a.sim_bin = v; }}});
    raise_fd_limit(std::max(
        a.outages, a.devices.empty() ? 0 : *std::max_element(a.devices.begin(), a.devices.end())));
    json out = {{"bench", "storm"},
                {"machine", machine()},
                {"smtpWorkers", a.smtp_workers},
                {"storms", json::array()}};
    bool ok = true;
    for (const int n : a.devices) {
      auto r = run_storm(a, n);
      ok = ok && r["ok"].get<bool>();
      out["storms"].push_back(std::move(r));
    }
    if (a.outages > 0) {
      out["single"] = run_single(a);
      ok = ok && out["single"]["ok"].get<bool>();
    }
    out["ok"] = ok;
    print_table(out);
    std::cout << out.dump() << std::endl;
    return ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "storm_bench: " << e.what() << "\n";
    return 1;
  }
}
