// dagd's REST API under load, everything real: Mosquitto (TLS on loopback), the release dagd
// binary on a SQLite file, plain HTTP on loopback.
//   list  GET /v1/accounts/{id}/devices for an account of N devices (100), driven by wrk
//         (Debian's) with C connections (32) for S seconds: requests/s and wrk's latency
//         distribution (p50, p75, p90, p99). Once per value of --api-threads (dagd's
//         DAG_API_THREADS), each on a fresh dagd. With --healthz, the same load on /healthz
//         (no token, no database, no JSON) on the last dagd: the HTTP layer's own ceiling.
//   sse   A accounts (100) of one dag each, K streams per account (10): A*K event streams
//         (GET /v1/accounts/{id}/stream) opened as raw non-blocking sockets in this one
//         thread (epoll). Once every stream has its `event: snapshot`, every dag reports
//         `off` over MQTT (QoS 1, a service identity); for every stream the time from its
//         dag's publish to its `event: device` with power "off". dagd's RSS and threads
//         with the streams open. A stream whose request dagd accepted but left unanswered
//         for 2 s is counted as stalled (dagd's thread pool can strand a connection in its
//         queue until the next one arrives) and a throwaway GET /healthz is sent once a
//         second while one waits; the count is reported, the run goes on.
// The accounts are made through the SQLite file (dag::store), the tokens by POST /v1/auth.
//
// Usage: api_bench [flags], each with a value:
//   --devices N (100)          dags of the listed account
//   --connections C (32)       wrk -c
//   --wrk-threads T (2)        wrk -t
//   --seconds S (10)           wrk -d, per measured run
//   --warmup-s W (1)           an unmeasured wrk run first (0: none)
//   --api-threads L (8,32)     comma-separated DAG_API_THREADS values, one list run each
//   --healthz B (1)            also measure /healthz (0: no)
//   --accounts A (100)         SSE accounts, one dag each
//   --streams-per-account K (10)
//   --open-window W (32)       streams being opened at once (dagd's listen backlog is 5)
//   --sse-api-threads T (8)    DAG_API_THREADS of the SSE dagd
//   --timeout-s T (30)         bound for opening the streams and for the change to arrive
//   --dagd-bin PATH            the dagd to run (default: the one built with this program)
// Prints a table on stderr and one JSON line on stdout. Exit status 1 on errors (an answer
// that is not 200, a stream that fails or never gets its change); the goals are reported,
// not enforced. Not a test: figures go in bench/README.md.
#include <httplib.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
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
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/log.hpp"
#include "dag/common/password.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/test/dagd_process.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/process.hpp"
#include "dag/test/test_pki.hpp"

#include "bench_support.hpp"

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace store = dag::store;
namespace proto = dag::protocol;
using dag::bench::cpu_seconds;
using dag::bench::die;
using dag::bench::machine_busy_seconds;
using dag::bench::MqttConnection;
using dag::bench::percentile;
using dag::bench::proc_status;

constexpr const char* kPassword = "api bench password";
constexpr const char* kPublisher = "bench-pub";

struct Args {
  int devices{100};
  int connections{32};
  int wrk_threads{2};
  int seconds{10};
  int warmup_s{1};
  std::vector<int> api_threads{8, 32};
  bool healthz{true};
  int accounts{100};
  int streams_per_account{10};
  int open_window{32};
  int sse_api_threads{8};
  int timeout_s{30};
  std::string dagd_bin{DAG_DAGD_BIN};
};

/// strerror's text, thread-safe.
std::string sys_error(int e) {
  return std::generic_category().message(e);
}

double ms_between(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

// ---- /proc ----------------------------------------------------------------------------------

long status_field(const std::map<std::string, long>& status, const char* key) {
  const auto it = status.find(key);
  return it == status.end() ? -1L : it->second;
}

/// CPU time of reaped children (wrk, once waited for).
double children_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_CHILDREN, &u);
  const auto sec = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

/// TcpExt ListenOverflows of this machine: connections dropped for a full accept queue.
long listen_overflows() {
  std::ifstream in("/proc/net/netstat");
  std::string names;
  std::string values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (!names.starts_with("TcpExt:")) continue;
    std::istringstream n(names);
    std::istringstream v(values);
    std::string name;
    std::string value;
    while (n >> name && v >> value) {
      if (name == "ListenOverflows") return std::stol(value);
    }
  }
  return -1;
}

json load_average() {
  std::ifstream in("/proc/loadavg");
  double a = 0;
  double b = 0;
  double c = 0;
  in >> a >> b >> c;
  return json::array({a, b, c});
}

// ---- provisioning through the database --------------------------------------------------------

struct BenchAccount {
  std::string username;
  std::string id;
  std::vector<std::string> devices;
  std::string token;
};

// Accounts with their dags, every dag last reported "on" an hour ago with its shadow
// stored (a fleet as dagd knows it), all in one transaction.
void provision(const std::filesystem::path& database, const std::string& hash,
               std::vector<BenchAccount>& accounts) {
  auto db = store::open_sqlite(database);
  if (!db) die("open " + database.string() + ": " + db.error().message);
  const std::int64_t now = dag::SystemClock().unix_ms();
  const std::int64_t before = now - 3'600'000;
  const json battery = {{"percent", 87}, {"volts", 4.05}, {"minutesLeft", 312}};
  const json on = {
      {"state",
       {{"reported",
         {{"status", "on"}, {"observedAt", before}, {"seq", 1}, {"battery", battery}}}}}};
  const auto doc = proto::update(nullptr, on.dump(), before / 1000);
  if (!doc) die("initial shadow: " + doc.error().message);
  const std::string document = proto::shadow_to_json(doc->document);
  store::DeviceState state;
  state.power = proto::Power::on;
  state.power_since_ms = before;
  state.last_seq = 1;
  state.connection = proto::Connection::connected;
  state.connection_since_ms = before;
  state.last_seen_ms = before;
  state.user_state = proto::UserState::on;
  state.battery_json = battery.dump();
  auto r = store::transact(**db, store::TxMode::read_write,
                           [&](store::Transaction& tx) -> store::StoreResult<void> {
                             for (auto& a : accounts) {
                               auto acct = tx.create_account(a.username, hash, before);
                               if (!acct) return dag::Unexpected<store::StoreError>{acct.error()};
                               a.id = acct->id;
                               int k = 0;
                               for (const auto& id : a.devices) {
                                 char name[32];
                                 std::snprintf(name, sizeof name, "Dag %03d", ++k);
                                 auto dev = tx.create_device({id, a.id, name, now - 86'400'000});
                                 if (!dev) return dag::Unexpected<store::StoreError>{dev.error()};
                                 if (auto s = tx.update_device_state(id, state); !s) {
                                   return dag::Unexpected<store::StoreError>{s.error()};
                                 }
                                 if (auto p = tx.put_shadow(id, document, 0); !p) {
                                   return dag::Unexpected<store::StoreError>{p.error()};
                                 }
                               }
                             }
                             return {};
                           });
  if (!r) die("provision: " + r.error().message);
}

// POST /v1/auth for every account, from `parallel` connections (each login costs dagd one
// argon2id verification, ~0.1 s and 64 MiB).
void log_in(int port, std::vector<BenchAccount>& accounts, int parallel) {
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::string error;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(parallel));
  for (int t = 0; t < parallel; ++t) {
    threads.emplace_back([&] {
      httplib::Client http("127.0.0.1", port);
      http.set_read_timeout(30, 0);
      for (std::size_t i = next++; i < accounts.size(); i = next++) {
        auto& a = accounts[i];
        const json body = {{"username", a.username}, {"password", kPassword}};
        auto res = http.Post("/v1/auth", body.dump(), "application/json");
        const auto js = res ? json::parse(res->body, nullptr, false) : json();
        if (!res || res->status != 200 || !js.is_object() || js.value("accountId", "") != a.id) {
          std::lock_guard l(mu);
          error = "POST /v1/auth for " + a.username + ": " +
                  (res ? std::to_string(res->status) + " " + res->body
                       : httplib::to_string(res.error()));
          return;
        }
        a.token = js.value("token", "");
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!error.empty()) die(error);
}

// ---- dagd and the broker ----------------------------------------------------------------------

std::unique_ptr<dag::test::DagdProcess> start_dagd(const Args& a, dag::test::TestPki& pki,
                                                   const dag::test::MosquittoBroker& broker,
                                                   int api_threads, int max_streams) {
  dag::test::DagdOptions o;
  o.binary = a.dagd_bin;
  o.port = broker.port();
  o.env = {{"DAG_LOG_LEVEL", "info"},
           {"DAG_API_THREADS", std::to_string(api_threads)},
           {"DAG_API_MAX_STREAMS", std::to_string(max_streams)},
           {"DAG_API_LOGIN_PER_ADDRESS_PER_MINUTE", "100000"}};
  auto dagd = dag::test::DagdProcess::start(pki, o);
  if (!dagd) die(dagd.error().message);
  if ((*dagd)->api_port() <= 0) die("dagd serves no API:\n" + (*dagd)->log());
  return std::move(*dagd);
}

// ---- the list: wrk ------------------------------------------------------------------------

struct WrkResult {
  double requests_per_s{0};
  long requests{0};
  double duration_s{0};
  double avg_ms{0};
  double max_ms{0};
  std::map<int, double> latency_ms;  // 50, 75, 90, 99: all four (parse_wrk checks)
  long non_2xx{0};
  long socket_errors{0};  // connect + read + write + timeout
  std::string socket_errors_text;
  double dagd_cpu_s{0};
  double wrk_cpu_s{0};
  double others_cpu_s{0};
  long dagd_threads{0};
  long dagd_rss_kib{0};
  long listen_overflows{0};

  [[nodiscard]] json to_json() const {
    return {{"requests_per_s", requests_per_s},
            {"requests", requests},
            {"duration_s", duration_s},
            {"avg_ms", avg_ms},
            {"max_ms", max_ms},
            {"p50_ms", latency_ms.at(50)},
            {"p75_ms", latency_ms.at(75)},
            {"p90_ms", latency_ms.at(90)},
            {"p99_ms", latency_ms.at(99)},
            {"non_2xx", non_2xx},
            {"socket_errors", socket_errors},
            {"listen_overflows", listen_overflows},
            {"dagd_cpu_s", dagd_cpu_s},
            {"wrk_cpu_s", wrk_cpu_s},
            {"others_cpu_s", others_cpu_s},
            {"dagd_threads", dagd_threads},
            {"dagd_rss_kib", dagd_rss_kib}};
  }
};

/// "1.23ms", "456.00us", "1.02s", "2.00m" -> milliseconds.
double wrk_time_ms(const std::string& text) {
  std::size_t used = 0;
  const double v = std::stod(text, &used);
  const std::string unit = text.substr(used);
  if (unit == "us") return v / 1000;
  if (unit == "ms") return v;
  if (unit == "s") return v * 1000;
  if (unit == "m") return v * 60'000;
  if (unit == "h") return v * 3'600'000;
  die("wrk: unknown time unit in '" + text + "'");
}

WrkResult parse_wrk(const std::string& out) {
  WrkResult r;
  std::smatch m;
  static const std::regex rps(R"(Requests/sec:\s+([0-9.]+))");
  static const std::regex total(R"((\d+) requests in ([0-9.]+\w+),)");
  static const std::regex latency(R"(\n\s+Latency\s+(\S+)\s+(\S+)\s+(\S+))");
  static const std::regex dist(R"(\n\s+(50|75|90|99)%\s+(\S+))");
  static const std::regex non2xx(R"(Non-2xx or 3xx responses:\s+(\d+))");
  static const std::regex errors(
      R"(Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))");
  if (!std::regex_search(out, m, rps)) die("wrk printed no Requests/sec:\n" + out);
  r.requests_per_s = std::stod(m[1]);
  if (std::regex_search(out, m, total)) {
    r.requests = std::stol(m[1]);
    r.duration_s = wrk_time_ms(m[2]) / 1000;
  }
  if (std::regex_search(out, m, latency)) {
    r.avg_ms = wrk_time_ms(m[1]);
    r.max_ms = wrk_time_ms(m[3]);
  }
  for (auto it = std::sregex_iterator(out.begin(), out.end(), dist); it != std::sregex_iterator();
       ++it) {
    r.latency_ms[std::stoi((*it)[1])] = wrk_time_ms((*it)[2]);
  }
  if (r.latency_ms.size() != 4) die("wrk printed no latency distribution:\n" + out);
  if (std::regex_search(out, m, non2xx)) r.non_2xx = std::stol(m[1]);
  if (std::regex_search(out, m, errors)) {
    r.socket_errors = std::stol(m[1]) + std::stol(m[2]) + std::stol(m[3]) + std::stol(m[4]);
    r.socket_errors_text = m[0];
  }
  return r;
}

WrkResult run_wrk(const Args& a, dag::test::DagdProcess& dagd, const std::string& path,
                  const std::string& token, int seconds) {
  std::vector<std::string> argv{"wrk", "-t" + std::to_string(a.wrk_threads),
                                "-c" + std::to_string(a.connections),
                                "-d" + std::to_string(seconds) + "s", "--latency"};
  if (!token.empty()) {
    argv.emplace_back("-H");
    argv.emplace_back("Authorization: Bearer " + token);
  }
  argv.push_back("http://127.0.0.1:" + std::to_string(dagd.api_port()) + path);
  const pid_t pid = dagd.process().pid();
  const double dagd0 = cpu_seconds(pid);
  const double children0 = children_cpu_seconds();
  const double busy0 = machine_busy_seconds();
  const long overflows0 = listen_overflows();
  auto wrk = dag::test::Process::spawn({.argv = argv});
  if (!wrk) die("wrk: " + wrk.error().message + " (apt-get install wrk)");
  // Its last line, or the end of its output: wait() alone may return before the reader
  // thread took every line.
  (void)(*wrk)->wait_for_line("Transfer/sec", std::chrono::seconds{seconds + 60});
  const auto status = (*wrk)->wait();
  const std::string out = (*wrk)->output();
  if (!status.success()) die("wrk ended with " + status.to_string() + ":\n" + out);
  WrkResult r = parse_wrk(out);
  r.listen_overflows = listen_overflows() - overflows0;
  r.dagd_cpu_s = cpu_seconds(pid) - dagd0;
  r.wrk_cpu_s = children_cpu_seconds() - children0;
  r.others_cpu_s = machine_busy_seconds() - busy0 - r.dagd_cpu_s - r.wrk_cpu_s;
  const auto st = proc_status(pid);
  r.dagd_threads = status_field(st, "Threads");
  r.dagd_rss_kib = status_field(st, "VmRSS");
  if (r.non_2xx > 0) {
    httplib::Client http("127.0.0.1", dagd.api_port());
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    auto res = http.Get(path, h);
    die("GET " + path + ": " + std::to_string(r.non_2xx) + " answers were not 2xx; now: " +
        (res ? std::to_string(res->status) + " " + res->body.substr(0, 300)
             : httplib::to_string(res.error())));
  }
  return r;
}

json list_phase(const Args& a, dag::test::TestPki& pki, const dag::test::MosquittoBroker& broker,
                const std::string& hash, int api_threads, bool healthz) {
  auto dagd = start_dagd(a, pki, broker, api_threads, 100);
  std::vector<BenchAccount> accounts(1);
  accounts[0].username = "bench-owner";
  for (int d = 0; d < a.devices; ++d) {
    char id[32];
    std::snprintf(id, sizeof id, "api-%05d", d);
    accounts[0].devices.emplace_back(id);
  }
  provision(dagd->database(), hash, accounts);
  log_in(dagd->api_port(), accounts, 1);
  const auto& acct = accounts[0];
  const std::string path = "/v1/accounts/" + acct.id + "/devices";

  // One answer checked by hand: 200 and every dag.
  httplib::Client http("127.0.0.1", dagd->api_port());
  auto res = http.Get(path, {{"Authorization", "Bearer " + acct.token}});
  if (!res || res->status != 200) {
    die("GET " + path + ": " +
        (res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error())));
  }
  const auto list = json::parse(res->body, nullptr, false);
  if (!list.is_array() || list.size() != static_cast<std::size_t>(a.devices)) {
    die("GET " + path + ": not the " + std::to_string(a.devices) + " dags");
  }

  std::fprintf(stderr, "api_bench: list, dagd pid %d, DAG_API_THREADS=%d, %d s\n",
               static_cast<int>(dagd->process().pid()), api_threads, a.seconds);
  if (a.warmup_s > 0) (void)run_wrk(a, *dagd, path, acct.token, a.warmup_s);
  json out = {{"api_threads", api_threads},
              {"load_before", load_average()},
              {"response_bytes", res->body.size()}};
  const auto devices = run_wrk(a, *dagd, path, acct.token, a.seconds);
  out["devices"] = devices.to_json();
  if (healthz) {
    std::fprintf(stderr, "api_bench: /healthz, dagd pid %d\n",
                 static_cast<int>(dagd->process().pid()));
    out["healthz"] = run_wrk(a, *dagd, "/healthz", "", a.seconds).to_json();
  }
  if (auto r = dagd->stop(); !r) die(r.error().message);
  return out;
}

// ---- the streams: raw sockets, one thread, epoll --------------------------------------------

struct Stream {
  enum class Phase { connecting, sending, headers, body, failed };
  int fd{-1};
  std::size_t account{0};
  Phase phase{Phase::connecting};
  std::string request;
  std::size_t sent{0};
  std::string raw;            // bytes not yet taken by the HTTP parser
  std::string events;         // decoded body not yet split into SSE events
  std::size_t chunk_left{0};  // data bytes of the current chunk still to come
  bool chunk_crlf{false};     // the CRLF after a chunk's data is next
  bool snapshot{false};
  bool changed{false};
  SteadyClock::time_point opened;
  SteadyClock::time_point sent_at;  // the request went out
  bool stalled{false};
  SteadyClock::time_point snapshot_at;
  SteadyClock::time_point changed_at;
  std::string error;
};

class Streams {
 public:
  Streams(int port, const std::vector<BenchAccount>& accounts, int per_account)
      : port_(port), accounts_(accounts) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) die(std::string("epoll_create1: ") + sys_error(errno));
    for (std::size_t i = 0; i < accounts.size(); ++i) {
      for (int k = 0; k < per_account; ++k) {
        Stream s;
        s.account = i;
        s.request = "GET /v1/accounts/" + accounts[i].id +
                    "/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                    "Authorization: Bearer " +
                    accounts[i].token + "\r\n\r\n";
        streams_.push_back(std::move(s));
      }
    }
  }
  ~Streams() {
    for (auto& s : streams_) {
      if (s.fd >= 0) ::close(s.fd);
    }
    for (int fd : pokes_) ::close(fd);
    ::close(epoll_);
  }
  Streams(const Streams&) = delete;
  Streams& operator=(const Streams&) = delete;

  /// Opens every stream, at most `window` of them waiting for their snapshot at once. True
  /// when all have their snapshot before the deadline.
  bool open_all(int window, SteadyClock::time_point deadline) {
    std::size_t next = 0;
    std::size_t pending = 0;
    while (SteadyClock::now() < deadline) {
      while (next < streams_.size() && pending < static_cast<std::size_t>(window)) {
        connect_one(streams_[next++]);
        ++pending;
      }
      poll(50ms);
      pending = 0;
      std::size_t ready = 0;
      for (std::size_t i = 0; i < next; ++i) {
        const auto& s = streams_[i];
        if (s.phase == Stream::Phase::failed) return false;
        if (s.snapshot) {
          ++ready;
        } else {
          ++pending;
        }
      }
      if (ready == streams_.size()) return true;
      unstall(next);
    }
    return false;
  }

  /// Streams whose request dagd took (TCP) but did not answer within 2 s.
  [[nodiscard]] int stalled() const { return stalled_; }
  /// Connections opened to unstick them.
  [[nodiscard]] int pokes() const { return static_cast<int>(pokes_.size()); }

  /// Polls until every stream saw its change (true) or the deadline passed.
  bool wait_changes(SteadyClock::time_point deadline) {
    while (SteadyClock::now() < deadline) {
      poll(50ms);
      bool all = true;
      for (const auto& s : streams_) {
        if (s.phase == Stream::Phase::failed) return false;
        all = all && s.changed;
      }
      if (all) return true;
    }
    return false;
  }

  [[nodiscard]] const std::vector<Stream>& streams() const { return streams_; }
  /// The first failure, else where the first stream without a snapshot stands.
  [[nodiscard]] std::string first_error() const {
    for (const auto& s : streams_) {
      if (!s.error.empty()) return s.error;
    }
    for (const auto& s : streams_) {
      if (s.snapshot) continue;
      return "a stream of " + accounts_[s.account].username + " is in phase " +
             std::to_string(static_cast<int>(s.phase)) + " with " + std::to_string(s.raw.size()) +
             " bytes unparsed: " + s.raw.substr(0, 200) + " / " + s.events.substr(0, 200);
    }
    return {};
  }

 private:
  void fail(Stream& s, std::string why) {
    if (s.phase == Stream::Phase::failed) return;
    s.phase = Stream::Phase::failed;
    s.error = "stream of " + accounts_[s.account].username + ": " + std::move(why);
  }

  // dagd's thread pool can leave an accepted connection in its queue with no thread to
  // take it (see bench/README.md) until the next connection arrives: count such streams and
  // open a throwaway connection (GET /healthz) once a second while one waits.
  void unstall(std::size_t opened) {
    const auto now = SteadyClock::now();
    bool waiting = false;
    for (std::size_t i = 0; i < opened; ++i) {
      auto& s = streams_[i];
      if (s.phase != Stream::Phase::headers || !s.raw.empty() || now - s.sent_at < 2s) continue;
      waiting = true;
      if (!s.stalled) ++stalled_;
      s.stalled = true;
    }
    if (!waiting || now - last_poke_ < 1s) return;
    last_poke_ = now;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    pokes_.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return;
    constexpr std::string_view kPoke =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    (void)::send(fd, kPoke.data(), kPoke.size(), MSG_NOSIGNAL);
  }

  void connect_one(Stream& s) {
    s.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) return fail(s, std::string("socket: ") + sys_error(errno));
    const int one = 1;
    ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s.opened = SteadyClock::now();
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (::connect(s.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
        errno != EINPROGRESS) {
      return fail(s, std::string("connect: ") + sys_error(errno));
    }
    epoll_event ev{};
    ev.events = EPOLLOUT | EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(&s - streams_.data());
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev) != 0) {
      return fail(s, std::string("epoll_ctl: ") + sys_error(errno));
    }
  }

  void poll(std::chrono::milliseconds timeout) {
    std::array<epoll_event, 256> ready{};
    const int n = epoll_wait(epoll_, ready.data(), static_cast<int>(ready.size()),
                             static_cast<int>(timeout.count()));
    // Everything ready now arrived by now: one timestamp for the batch.
    const auto now = SteadyClock::now();
    for (int i = 0; i < n; ++i) {
      auto& s = streams_[ready[static_cast<std::size_t>(i)].data.u64];
      const auto events = ready[static_cast<std::size_t>(i)].events;
      if (s.phase == Stream::Phase::failed) continue;
      if ((events & EPOLLOUT) != 0U && s.phase != Stream::Phase::headers &&
          s.phase != Stream::Phase::body) {
        writable(s);
      }
      if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0U) readable(s, now);
    }
  }

  void writable(Stream& s) {
    if (s.phase == Stream::Phase::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return fail(s, std::string("connect: ") + sys_error(err));
      s.phase = Stream::Phase::sending;
    }
    while (s.sent < s.request.size()) {
      const auto n =
          ::send(s.fd, s.request.data() + s.sent, s.request.size() - s.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN) return;
        return fail(s, std::string("send: ") + sys_error(errno));
      }
      s.sent += static_cast<std::size_t>(n);
    }
    s.phase = Stream::Phase::headers;
    s.sent_at = SteadyClock::now();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(&s - streams_.data());
    epoll_ctl(epoll_, EPOLL_CTL_MOD, s.fd, &ev);
  }

  void readable(Stream& s, SteadyClock::time_point now) {
    std::array<char, 16384> buf{};
    for (;;) {
      const auto n = ::recv(s.fd, buf.data(), buf.size(), 0);
      if (n == 0) return fail(s, "closed by dagd");
      if (n < 0) {
        if (errno == EAGAIN) break;
        return fail(s, std::string("recv: ") + sys_error(errno));
      }
      s.raw.append(buf.data(), static_cast<std::size_t>(n));
    }
    if (s.phase == Stream::Phase::headers) {
      const auto end = s.raw.find("\r\n\r\n");
      if (end == std::string::npos) return;
      const std::string head = s.raw.substr(0, end);
      s.raw.erase(0, end + 4);
      if (!head.starts_with("HTTP/1.1 200")) {
        return fail(s, "answered " + head.substr(0, head.find('\r')) + " " + s.raw.substr(0, 200));
      }
      std::string lower = head;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (lower.find("content-type: text/event-stream") == std::string::npos ||
          lower.find("transfer-encoding: chunked") == std::string::npos) {
        return fail(s, "not a chunked event stream: " + head);
      }
      s.phase = Stream::Phase::body;
    }
    if (!dechunk(s)) return;
    take_events(s, now);
  }

  // The chunked body (dagd writes each SSE message as a chunk) into s.events.
  bool dechunk(Stream& s) {
    std::size_t at = 0;
    while (at < s.raw.size()) {
      if (s.chunk_crlf) {
        if (s.raw.size() - at < 2) break;
        if (s.raw.compare(at, 2, "\r\n") != 0) {
          fail(s, "bad chunk end");
          return false;
        }
        at += 2;
        s.chunk_crlf = false;
      } else if (s.chunk_left > 0) {
        const auto take = std::min(s.chunk_left, s.raw.size() - at);
        s.events.append(s.raw, at, take);
        at += take;
        s.chunk_left -= take;
        if (s.chunk_left == 0) s.chunk_crlf = true;
      } else {
        const auto eol = s.raw.find("\r\n", at);
        if (eol == std::string::npos) break;
        std::size_t size = 0;
        try {
          size = std::stoul(s.raw.substr(at, eol - at), nullptr, 16);
        } catch (const std::exception&) {
          fail(s, "bad chunk size");
          return false;
        }
        at = eol + 2;
        if (size == 0) {
          fail(s, "the stream ended");
          return false;
        }
        s.chunk_left = size;
      }
    }
    s.raw.erase(0, at);
    return true;
  }

  void take_events(Stream& s, SteadyClock::time_point now) {
    for (auto end = s.events.find("\n\n"); end != std::string::npos; end = s.events.find("\n\n")) {
      const std::string block = s.events.substr(0, end);
      s.events.erase(0, end + 2);
      std::string name;
      std::string data;
      std::istringstream lines(block);
      for (std::string line; std::getline(lines, line);) {
        if (line.starts_with("event: ")) name = line.substr(7);
        if (line.starts_with("data: ")) data += line.substr(6);
      }
      const auto& account = accounts_[s.account];
      if (name == "snapshot") {
        const auto js = json::parse(data, nullptr, false);
        if (!js.is_array() || js.size() != account.devices.size()) {
          return fail(s, "a snapshot without the account's dags: " + data.substr(0, 200));
        }
        s.snapshot = true;
        s.snapshot_at = now;
      } else if (name == "device" && !s.changed) {
        const auto js = json::parse(data, nullptr, false);
        if (js.is_object() && js.value("deviceId", "") == account.devices.front() &&
            js["state"].value("power", "") == "off") {
          s.changed = true;
          s.changed_at = now;
        }
      }
    }
  }

  int port_;
  const std::vector<BenchAccount>& accounts_;
  std::vector<Stream> streams_;
  int epoll_{-1};
  int stalled_{0};
  std::vector<int> pokes_;
  SteadyClock::time_point last_poke_;
};

void raise_nofile(std::size_t need) {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0) return;
  if (l.rlim_cur >= need) return;
  l.rlim_cur = std::min<rlim_t>(l.rlim_max, std::max<rlim_t>(need, l.rlim_cur));
  setrlimit(RLIMIT_NOFILE, &l);
  if (getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur < need) {
    die("RLIMIT_NOFILE is " + std::to_string(l.rlim_cur) + ", " + std::to_string(need) +
        " needed (dagd inherits it too)");
  }
}

json sse_phase(const Args& a, dag::test::TestPki& pki, const dag::test::MosquittoBroker& broker,
               const std::string& hash, bool& ok) {
  const int total = a.accounts * a.streams_per_account;
  auto dagd = start_dagd(a, pki, broker, a.sse_api_threads, total + 100);
  const pid_t pid = dagd->process().pid();
  std::vector<BenchAccount> accounts(static_cast<std::size_t>(a.accounts));
  for (int i = 0; i < a.accounts; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "sse-%05d", i);
    auto& acct = accounts[static_cast<std::size_t>(i)];
    acct.username = "sse-owner-" + std::to_string(i);
    acct.devices.emplace_back(id);
  }
  provision(dagd->database(), hash, accounts);
  log_in(dagd->api_port(), accounts, 2);
  MqttConnection publisher(broker, pki.client(kPublisher), 0, std::nullopt);
  const auto before = proc_status(pid);
  std::fprintf(stderr, "api_bench: sse, dagd pid %d, %d streams\n", static_cast<int>(pid), total);

  json out = {{"accounts", a.accounts},
              {"streams", total},
              {"load_before", load_average()},
              {"dagd_threads_before", status_field(before, "Threads")},
              {"dagd_rss_kib_before", status_field(before, "VmRSS")},
              {"dagd_rss_anon_kib_before", status_field(before, "RssAnon")}};
  Streams streams(dagd->api_port(), accounts, a.streams_per_account);
  const long overflows0 = listen_overflows();
  const auto t0 = SteadyClock::now();
  if (!streams.open_all(a.open_window, t0 + std::chrono::seconds{a.timeout_s})) {
    const auto error = streams.first_error();
    die("the streams did not all open with a snapshot in " + std::to_string(a.timeout_s) + " s" +
        (error.empty() ? std::string() : ": " + error));
  }
  out["open_s"] = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  out["opens_stalled"] = streams.stalled();
  out["pokes"] = streams.pokes();
  out["listen_overflows"] = listen_overflows() - overflows0;
  const auto open = proc_status(pid);
  out["dagd_threads"] = status_field(open, "Threads");
  out["dagd_rss_kib"] = status_field(open, "VmRSS");
  out["dagd_rss_anon_kib"] = status_field(open, "RssAnon");
  out["dagd_hwm_kib"] = status_field(open, "VmHWM");

  // Every dag reports off at once; each publish time is taken just before its publish.
  std::vector<SteadyClock::time_point> published(accounts.size());
  const double dagd_cpu0 = cpu_seconds(pid);
  std::thread storm([&] {
    const std::int64_t now = dag::SystemClock().unix_ms();
    for (std::size_t i = 0; i < accounts.size(); ++i) {
      const auto& id = accounts[i].devices.front();
      const json off = {
          {"state", {{"reported", {{"status", "off"}, {"observedAt", now}, {"seq", 2}}}}}};
      published[i] = SteadyClock::now();
      publisher.publish(proto::shadow_topic(id, proto::ShadowOp::update), off.dump());
    }
  });
  const bool all = streams.wait_changes(SteadyClock::now() + std::chrono::seconds{a.timeout_s});
  storm.join();
  const bool acked = publisher.drain(10s);
  out["dagd_cpu_s"] = cpu_seconds(pid) - dagd_cpu0;
  const auto after = proc_status(pid);
  out["dagd_hwm_kib_after"] = status_field(after, "VmHWM");

  std::vector<double> latency;
  int within = 0;
  for (const auto& s : streams.streams()) {
    if (!s.changed) continue;
    const double ms = ms_between(published[s.account], s.changed_at);
    latency.push_back(ms);
    if (ms <= 1000) ++within;
  }
  out["received"] = latency.size();
  out["within_1s"] = within;
  out["p50_ms"] = percentile(latency, 0.50);
  out["p99_ms"] = percentile(latency, 0.99);
  out["max_ms"] = percentile(latency, 1.0);
  out["min_ms"] = percentile(latency, 0.0);
  out["publishes_acked"] = acked;
  if (!all || !acked) {
    ok = false;
    const auto error = streams.first_error();
    std::fprintf(stderr, "api_bench: %zu of %d streams got the change%s%s\n", latency.size(), total,
                 error.empty() ? "" : ": ", error.c_str());
  }
  if (auto r = dagd->stop(); !r) die(r.error().message);
  return out;
}

// ---- main -----------------------------------------------------------------------------------

void print_table(const json& summary) {
  std::fprintf(stderr, "\napi_bench: GET /devices of %d dags, wrk -t%d -c%d -d%ds\n",
               summary["devices"].get<int>(), summary["wrk_threads"].get<int>(),
               summary["connections"].get<int>(), summary["seconds"].get<int>());
  std::fprintf(stderr, "%-8s %-8s %9s %7s %7s %7s %7s %7s | %-22s | %7s\n", "threads", "path",
               "req/s", "p50 ms", "p75 ms", "p90 ms", "p99 ms", "max ms", "CPU s: dagd wrk other",
               "dagd thr");
  for (const auto& run : summary["list"]) {
    for (const char* path : {"devices", "healthz"}) {
      if (!run.contains(path)) continue;
      const auto& r = run[path];
      const auto num = [&](const char* k) { return r[k].get<double>(); };
      std::fprintf(stderr,
                   "%-8d %-8s %9.0f %7.2f %7.2f %7.2f %7.2f %7.1f | %11.2f %4.2f %5.2f | %7ld\n",
                   run["api_threads"].get<int>(), path, num("requests_per_s"), num("p50_ms"),
                   num("p75_ms"), num("p90_ms"), num("p99_ms"), num("max_ms"), num("dagd_cpu_s"),
                   num("wrk_cpu_s"), num("others_cpu_s"), r["dagd_threads"].get<long>());
    }
  }
  if (summary.contains("sse")) {
    const auto& s = summary["sse"];
    std::fprintf(stderr,
                 "\napi_bench: %d SSE streams (%d accounts): opened in %.2f s (%d stalled in "
                 "dagd's queue); publish -> event p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d of "
                 "%d within 1 s\n"
                 "dagd with the streams open: %ld threads (%ld before), VmRSS %.1f MiB "
                 "(%.1f before), RssAnon %.1f MiB (%.1f before)\n",
                 s["streams"].get<int>(), s["accounts"].get<int>(), s["open_s"].get<double>(),
                 s["opens_stalled"].get<int>(), s["p50_ms"].get<double>(),
                 s["p99_ms"].get<double>(), s["max_ms"].get<double>(), s["within_1s"].get<int>(),
                 s["streams"].get<int>(), s["dagd_threads"].get<long>(),
                 s["dagd_threads_before"].get<long>(),
                 static_cast<double>(s["dagd_rss_kib"].get<long>()) / 1024.0,
                 static_cast<double>(s["dagd_rss_kib_before"].get<long>()) / 1024.0,
                 static_cast<double>(s["dagd_rss_anon_kib"].get<long>()) / 1024.0,
                 static_cast<double>(s["dagd_rss_anon_kib_before"].get<long>()) / 1024.0);
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  const auto integer = [](int& into) { return dag::bench::int_flag(into); };
  const dag::bench::Flags flags{
      {"--devices", integer(a.devices)},
      {"--connections", integer(a.connections)},
      {"--wrk-threads", integer(a.wrk_threads)},
      {"--seconds", integer(a.seconds)},
      {"--warmup-s", integer(a.warmup_s)},
      {"--api-threads",
       [&](const std::string& v) {
         a.api_threads.clear();
         std::istringstream in(v);
         for (std::string item; std::getline(in, item, ',');)
           a.api_threads.push_back(std::stoi(item));
       }},
      {"--healthz", [&](const std::string& v) { a.healthz = v != "0"; }},
      {"--accounts", integer(a.accounts)},
      {"--streams-per-account", integer(a.streams_per_account)},
      {"--open-window", integer(a.open_window)},
      {"--sse-api-threads", integer(a.sse_api_threads)},
      {"--timeout-s", integer(a.timeout_s)},
      {"--dagd-bin", [&](const std::string& v) { a.dagd_bin = v; }},
  };
  dag::bench::parse_flags(argc, argv, flags);
  if (a.devices < 1 || a.connections < 1 || a.wrk_threads < 1 || a.seconds < 1 || a.warmup_s < 0 ||
      a.accounts < 0 || a.streams_per_account < 1 || a.open_window < 1 || a.timeout_s < 1) {
    die("bad counts");
  }
  for (int t : a.api_threads) {
    if (t < 1) die("--api-threads: values of 1 or more");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse_args(argc, argv);
  dag::log::set_level(dag::log::Level::warn);
  // Both ends of every stream in this machine, and dagd inherits the limit.
  raise_nofile(static_cast<std::size_t>(a.accounts * a.streams_per_account) + 1024);
  mosquitto_lib_init();
  dag::test::TestPki pki;
  dag::test::BrokerOptions bo;
  bo.service_identities = {"dagd", kPublisher};
  bo.log_types = {"error", "warning", "notice", "information"};  // not every PUBLISH
  auto broker = dag::test::MosquittoBroker::start(pki, bo);
  if (!broker) die(broker.error().message);
  auto hash = dag::password::hash(kPassword);
  if (!hash) die("password hash: " + hash.error().message);

  json summary = {{"devices", a.devices},
                  {"connections", a.connections},
                  {"wrk_threads", a.wrk_threads},
                  {"seconds", a.seconds},
                  {"nproc", std::thread::hardware_concurrency()},
                  {"list", json::array()}};
  bool ok = true;
  for (std::size_t i = 0; i < a.api_threads.size(); ++i) {
    summary["list"].push_back(list_phase(a, pki, **broker, *hash, a.api_threads[i],
                                         a.healthz && i + 1 == a.api_threads.size()));
  }
  // The goals against the best run (the most requests per second).
  const json* best = nullptr;
  for (const auto& run : summary["list"]) {
    if (best == nullptr || run["devices"]["requests_per_s"].get<double>() >
                               (*best)["devices"]["requests_per_s"].get<double>()) {
      best = &run;
    }
  }
  json goals;
  if (best != nullptr) {
    const auto& d = (*best)["devices"];
    summary["best_api_threads"] = (*best)["api_threads"];
    goals["list_p99_le_10ms"] = d["p99_ms"].get<double>() <= 10.0;
    goals["list_ge_5000_per_s"] = d["requests_per_s"].get<double>() >= 5000.0;
  }
  if (a.accounts > 0) {
    summary["sse"] = sse_phase(a, pki, **broker, *hash, ok);
    goals["sse_all_within_1s"] =
        summary["sse"]["within_1s"].get<int>() == summary["sse"]["streams"].get<int>();
  }
  summary["goals"] = goals;
  summary["ok"] = ok;
  print_table(summary);
  std::cout << summary.dump() << "\n";
  mosquitto_lib_cleanup();
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "api_bench: " << e.what() << "\n";
  return 1;
}
