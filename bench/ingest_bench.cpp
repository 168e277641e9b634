// dagd's ingest path under an outage storm, through a real Mosquitto (TLS on loopback):
//   bare  U shadow updates published at QoS 1 by P connections as fast as the broker takes
//         them (each keeps W unacknowledged at most), received by one plain libmosquitto
//         subscriber on $aws/things/+/shadow/update: what this broker and machine allow.
//   dagd  the same U updates, on a fresh broker, to a real dagd (release binary) whose
//         database holds the devices, each last reported "on": every update is a power
//         transition (a shadow write, a power event and a notification intent). Done when
//         all U /update/accepted replies arrived (dagd publishes them only after the
//         commit); then the database is checked for every event and intent.
// The bench broker is permissive: P service identities publish for all devices, and its
// outgoing queue per client is raised (max_queued_messages, default 1000) so that a slow
// subscriber makes the broker wait instead of dropping QoS 1 messages.
//
// Usage: ingest_bench [flags], each with a value:
//   --devices N (10000)      dags provisioned, in accounts of 1..K devices (--per-account K, 10)
//   --updates U (= N)        update i goes to dag i % N: off, then on, off, ... (seq 2, 3, ...)
//   --publishers P (4)       publisher connections; each dag stays on one of them
//   --window W (256)         unacknowledged publishes per publisher
//   --durability D           power_safe (default), crash_safe or both (one run each)
//   --batch-max B, --max-inflight I, --rate-limit R
//                            dagd's DAG_INGEST_BATCH_MAX, DAG_MQTT_MAX_INFLIGHT,
//                            DAG_INGEST_RATE_PER_S (unset: dagd's defaults)
//   --broker-queue Q (1000000)  the broker's max_queued_messages; 0: Mosquitto's default
//   --sub-receive-max M      the bare subscriber's MQTT 5 receive maximum (libmosquitto: 20)
//   --timeout-s T (120)      give up on a phase after T s, or after 15 s without progress
//   --dagd-bin PATH          the dagd to run (default: the one built with this program)
// Prints a table on stderr and one JSON line on stdout. Exit status 1 when a phase did
// not complete or the database misses something (the goals are reported, not enforced).
// Not a test: figures go in bench/README.md.
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <nlohmann/json.hpp>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
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
#include <thread>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/log.hpp"
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
using dag::bench::cpu_seconds;
using dag::bench::die;
using dag::bench::machine_busy_seconds;
using dag::bench::MqttConnection;
using dag::bench::percentile;
using dag::bench::proc_status;
using dag::bench::stat_cpu_seconds;
namespace proto = dag::protocol;

struct Args {
  int devices{10'000};
  int updates{0};  // 0: one per device
  int publishers{4};
  int window{256};
  int per_account{10};  // accounts of 1..K devices
  std::string durability{"power_safe"};
  std::optional<int> batch_max;
  std::optional<int> max_inflight;
  std::optional<int> rate_limit;  // dagd's DAG_INGEST_RATE_PER_S; unset: dagd's default
  int broker_queue{1'000'000};
  std::optional<int> sub_receive_max;
  int timeout_s{120};
  std::string dagd_bin{DAG_DAGD_BIN};
};

// ---- the storm ----------------------------------------------------------------------------

std::string device_id(int d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "bench-%05d", d);
  return buf;
}

const json& battery() {
  static const json b = {{"percent", 87}, {"volts", 4.05}, {"minutesLeft", 312}};
  return b;
}

std::string report(std::string_view status, std::int64_t observed_ms, std::int64_t seq, int token) {
  json r = {
      {"state",
       {{"reported",
         {{"status", status}, {"observedAt", observed_ms}, {"seq", seq}, {"battery", battery()}}}}},
      {"clientToken", "u" + std::to_string(token)}};
  return r.dump();
}

struct Storm {
  int devices{0};
  std::vector<std::string> topics;    // by update index
  std::vector<std::string> payloads;  // by update index
  std::vector<std::vector<int>> by_publisher;
};

// Update i goes to device i % N, round r = i / N: off, on, off, ... with seq 2 + r. Each
// device stays on one publisher connection, so its reports arrive in order.
Storm make_storm(const Args& a) {
  Storm s;
  s.devices = a.devices;
  const int updates = a.updates > 0 ? a.updates : a.devices;
  const std::int64_t now = dag::SystemClock().unix_ms();
  s.by_publisher.resize(static_cast<std::size_t>(a.publishers));
  for (int i = 0; i < updates; ++i) {
    const int d = i % a.devices;
    const int round = i / a.devices;
    s.topics.push_back(proto::shadow_topic(device_id(d), proto::ShadowOp::update));
    s.payloads.push_back(report(round % 2 == 0 ? "off" : "on", now + round, 2 + round, i));
    s.by_publisher[static_cast<std::size_t>(d % a.publishers)].push_back(i);
  }
  return s;
}

/// Receipt side of a phase: counts distinct clientTokens "u<i>" and their arrival times.
class Receipts {
 public:
  explicit Receipts(std::size_t n) : at_(n), seen_(n, false) {}

  void on_message(std::string_view topic, std::string_view payload) {
    const auto now = SteadyClock::now();
    if (topic.ends_with("/rejected")) {
      rejected_.fetch_add(1);
      return;
    }
    constexpr std::string_view kToken = R"("clientToken":"u)";
    const auto k = payload.find(kToken);
    if (k == std::string_view::npos) return;
    std::size_t i = 0;
    for (std::size_t p = k + kToken.size();
         p < payload.size() && payload[p] >= '0' && payload[p] <= '9'; ++p) {
      i = i * 10 + static_cast<std::size_t>(payload[p] - '0');
    }
    std::lock_guard l(mu_);
    if (i >= seen_.size() || seen_[i]) return;  // a QoS 1 duplicate
    seen_[i] = true;
    at_[i] = now;
    ++count_;
    last_ = now;
    cv_.notify_all();
  }

  /// Waits until all arrived or nothing arrived for `stall`. True when all arrived.
  bool wait_all(std::chrono::seconds stall, std::chrono::seconds total) {
    const auto deadline = SteadyClock::now() + total;
    std::unique_lock l(mu_);
    std::size_t before = count_;
    while (count_ < seen_.size()) {
      if (SteadyClock::now() > deadline) return false;
      cv_.wait_for(l, stall, [&] { return count_ == seen_.size(); });
      if (count_ == before) return false;
      before = count_;
    }
    return true;
  }

  [[nodiscard]] std::size_t count() const {
    std::lock_guard l(mu_);
    return count_;
  }
  [[nodiscard]] std::uint64_t rejected() const { return rejected_.load(); }
  [[nodiscard]] SteadyClock::time_point last() const {
    std::lock_guard l(mu_);
    return last_;
  }
  [[nodiscard]] const std::vector<SteadyClock::time_point>& times() const { return at_; }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<SteadyClock::time_point> at_;
  std::vector<bool> seen_;
  std::size_t count_{0};
  SteadyClock::time_point last_;
  std::atomic<std::uint64_t> rejected_{0};
};

struct PhaseResult {
  bool complete{false};
  std::size_t received{0};
  std::uint64_t rejected{0};
  double seconds{0};
  double rate{0};
  double p50_ms{0};
  double p99_ms{0};
  double max_ms{0};
  double broker_cpu_s{0};  // mosquitto during the phase
  double bench_cpu_s{0};   // this program: publishers and subscribers
  double others_cpu_s{0};  // every other process (other work on the machine spoils figures)

  [[nodiscard]] json to_json() const {
    return {{"complete", complete},
            {"received", received},
            {"rejected", rejected},
            {"seconds", seconds},
            {"rate_per_s", rate},
            {"p50_ms", p50_ms},
            {"p99_ms", p99_ms},
            {"max_ms", max_ms},
            {"broker_cpu_s", broker_cpu_s},
            {"bench_cpu_s", bench_cpu_s},
            {"others_cpu_s", others_cpu_s}};
  }
};

pid_t broker_pid(const dag::test::MosquittoBroker& broker);

/// Publishes the storm from P connections and waits for `receipts` to see all of it.
PhaseResult publish_storm(const Args& a, const Storm& storm, dag::test::TestPki& pki,
                          const dag::test::MosquittoBroker& broker_ref, Receipts& receipts) {
  const std::size_t n = storm.topics.size();
  std::vector<std::unique_ptr<MqttConnection>> pubs;
  pubs.reserve(static_cast<std::size_t>(a.publishers));
  for (int p = 0; p < a.publishers; ++p) {
    pubs.push_back(std::make_unique<MqttConnection>(
        broker_ref, pki.client("bench-pub-" + std::to_string(p)), a.window, std::nullopt));
  }
  std::vector<SteadyClock::time_point> sent(n);
  std::mutex go_mu;
  std::condition_variable go_cv;
  bool go = false;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(a.publishers));
  for (int p = 0; p < a.publishers; ++p) {
    threads.emplace_back([&, p] {
      {
        std::unique_lock l(go_mu);
        go_cv.wait(l, [&] { return go; });
      }
      auto& c = *pubs[static_cast<std::size_t>(p)];
      for (int i : storm.by_publisher[static_cast<std::size_t>(p)]) {
        const auto k = static_cast<std::size_t>(i);
        sent[k] = SteadyClock::now();
        c.publish(storm.topics[k], storm.payloads[k]);
      }
      (void)c.drain(std::chrono::seconds{a.timeout_s});
    });
  }
  const pid_t broker = broker_pid(broker_ref);
  const double broker_cpu0 = cpu_seconds(broker);
  const double bench_cpu0 = cpu_seconds(::getpid());
  const double busy0 = machine_busy_seconds();
  const auto t0 = SteadyClock::now();
  {
    std::lock_guard l(go_mu);
    go = true;
  }
  go_cv.notify_all();
  PhaseResult r;
  r.complete = receipts.wait_all(15s, std::chrono::seconds{a.timeout_s});
  for (auto& t : threads) t.join();
  r.broker_cpu_s = cpu_seconds(broker) - broker_cpu0;
  r.bench_cpu_s = cpu_seconds(::getpid()) - bench_cpu0;
  r.others_cpu_s = machine_busy_seconds() - busy0 - r.broker_cpu_s - r.bench_cpu_s;
  r.received = receipts.count();
  r.rejected = receipts.rejected();
  r.seconds = std::chrono::duration<double>(receipts.last() - t0).count();
  r.rate = r.seconds > 0 ? static_cast<double>(r.received) / r.seconds : 0;
  if (r.complete) {
    std::vector<double> ms;
    ms.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      ms.push_back(
          std::chrono::duration<double, std::milli>(receipts.times()[i] - sent[i]).count());
    }
    r.p50_ms = percentile(ms, 0.50);
    r.p99_ms = percentile(ms, 0.99);
    r.max_ms = percentile(ms, 1.0);
  }
  return r;
}

// ---- broker, dagd, database -------------------------------------------------------------

std::vector<std::string> identities(const Args& a) {
  std::vector<std::string> ids{"dagd", "bench-sub", "bench-acc"};
  for (int p = 0; p < a.publishers; ++p) ids.push_back("bench-pub-" + std::to_string(p));
  return ids;
}

std::unique_ptr<dag::test::MosquittoBroker> start_broker(const Args& a, dag::test::TestPki& pki) {
  dag::test::BrokerOptions o;
  o.service_identities = identities(a);
  o.log_types = {"error", "warning", "notice", "information"};  // not every PUBLISH
  auto b = dag::test::MosquittoBroker::start(pki, o);
  if (!b) die(b.error().message);
  if (a.broker_queue > 0) {
    // The rendered configuration has no knob for this (see the header comment); append it
    // and restart on the same port.
    std::ofstream conf((*b)->conf_file(), std::ios::app);
    conf << "\n# ingest_bench: queue for a slow subscriber instead of dropping\n"
         << "max_queued_messages " << a.broker_queue << "\n";
    conf.close();
    if (auto r = (*b)->restart(); !r) die(r.error().message);
  }
  return std::move(*b);
}

// Accounts of 1..K devices (cycling), every device last reported "on" (seq 1, an hour
// ago) with its shadow stored: the state a fleet is in when the storm starts.
void provision(const Args& a, const std::filesystem::path& database) {
  auto db = store::open_sqlite(database);
  if (!db) die("open " + database.string() + ": " + db.error().message);
  const std::int64_t now = dag::SystemClock().unix_ms();
  const std::int64_t before = now - 3'600'000;
  const auto doc = proto::update(nullptr, report("on", before, 1, 0), before / 1000);
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
  state.battery_json = battery().dump();

  int d = 0;
  int account = 0;
  constexpr int kPerTransaction = 2000;
  while (d < a.devices) {
    auto r = store::transact(
        **db, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<int> {
          int made = d;
          int acc = account;
          while (made < a.devices && made - d < kPerTransaction) {
            auto acct = tx.create_account("owner-" + std::to_string(acc), "x", before);
            if (!acct) return dag::Unexpected<store::StoreError>{acct.error()};
            const int size = 1 + acc % std::max(1, a.per_account);
            ++acc;
            for (int k = 0; k < size && made < a.devices; ++k, ++made) {
              const auto id = device_id(made);
              auto dev = tx.create_device({id, acct->id, id, now - 86'400'000});
              if (!dev) return dag::Unexpected<store::StoreError>{dev.error()};
              if (auto s = tx.update_device_state(id, state); !s) {
                return dag::Unexpected<store::StoreError>{s.error()};
              }
              if (auto p = tx.put_shadow(id, document, 0); !p) {
                return dag::Unexpected<store::StoreError>{p.error()};
              }
            }
          }
          account = acc;
          return made;
        });
    if (!r) die("provision: " + r.error().message);
    d = *r;
  }
}

struct Persisted {
  std::int64_t events{0};   // power events with the storm's seqs
  std::int64_t intents{0};  // notification intents of the storm's devices, any status
  int devices_missing{0};   // devices without every expected event
};

Persisted verify(const Args& a, const std::filesystem::path& database) {
  auto db = store::open_sqlite(database);
  if (!db) die("open " + database.string() + ": " + db.error().message);
  const int updates = a.updates > 0 ? a.updates : a.devices;
  Persisted p;
  auto r = store::transact(
      **db, store::TxMode::read_only, [&](store::Transaction& tx) -> store::StoreResult<void> {
        for (int d = 0; d < a.devices; ++d) {
          const int expected = updates / a.devices + (d < updates % a.devices ? 1 : 0);
          auto page = tx.list_events({.device_id = device_id(d), .limit = 1000});
          if (!page) return dag::Unexpected<store::StoreError>{page.error()};
          int found = 0;
          for (const auto& e : page->events) {
            if (store::is_power_event(e.event.kind) && e.event.seq && *e.event.seq >= 2) ++found;
          }
          p.events += found;
          if (found != expected) ++p.devices_missing;
        }
        return {};
      });
  if (!r) die("verify: " + r.error().message);
  // dagd's notifier may have handled some intents already (done or failed), and the
  // Store interface counts only pending ones: count the outbox rows themselves.
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(database.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(raw);
    die("open " + database.string() + " read-only");
  }
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> sql(raw, sqlite3_close);
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(sql.get(), "SELECT count(*) FROM outbox WHERE device_id LIKE 'bench-%'",
                         -1, &st, nullptr) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    die(std::string("count intents: ") + sqlite3_errmsg(sql.get()));
  }
  p.intents = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return p;
}

/// CPU seconds of each thread of `pid`, by thread id (dagd: main, then its threads in the
/// order it starts them: store checkpointer, MQTT network thread, ingest worker).
std::map<long, double> thread_cpu_seconds(pid_t pid) {
  std::map<long, double> out;
  std::error_code ec;
  // increment(ec): a range-for's operator++ throws when dagd exits during the walk.
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid) + "/task", ec), end;
       !ec && it != end; it.increment(ec)) {
    const long tid = std::stol(it->path().filename().string());
    out[tid] = stat_cpu_seconds((it->path() / "stat").string());
  }
  return out;
}

/// The broker's pid: MosquittoBroker keeps its Process private, so look for the child
/// whose command line names this broker's configuration file. -1 when not found.
pid_t broker_pid(const dag::test::MosquittoBroker& broker) {
  const std::string conf = broker.conf_file().string();
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.starts_with("mosquitto ") && cmdline.find(conf) != std::string::npos) {
      return static_cast<pid_t>(std::stol(name));
    }
  }
  return -1;
}

/// dagd's counters (SIGHUP makes it log them), as numbers.
std::map<std::string, long> dagd_counters(dag::test::DagdProcess& dagd) {
  auto& p = dagd.process();
  const auto from = p.line_count();
  std::map<std::string, long> out;
  if (!p.signal(SIGHUP)) return out;
  const auto line = p.wait_for_line("dagd.counters", 5s, from);
  if (!line) return out;
  static const std::regex kv(R"((\w+)=(\d+))");
  for (auto it = std::sregex_iterator(line->begin(), line->end(), kv); it != std::sregex_iterator();
       ++it) {
    out[(*it)[1]] = std::stol((*it)[2]);
  }
  return out;
}

json run(const Args& a, const Storm& storm, dag::test::TestPki& pki,
         const std::string& durability) {
  const std::size_t n = storm.topics.size();
  json out = {{"durability", durability}};

  // Bare limit: a broker nobody else uses yet (dagd's persistent session would make the
  // broker queue for it), one subscriber.
  auto broker = start_broker(a, pki);
  PhaseResult bare;
  {
    Receipts receipts(n);
    MqttConnection sub(*broker, pki.client("bench-sub"), 20, a.sub_receive_max,
                       [&](std::string_view t, std::string_view p) { receipts.on_message(t, p); });
    sub.subscribe(std::string(proto::filters::kShadowUpdate));
    bare = publish_storm(a, storm, pki, *broker, receipts);
  }
  out["bare"] = bare.to_json();
  if (auto r = broker->stop(); !r) die(r.error().message);
  broker.reset();

  // dagd on a fresh broker.
  broker = start_broker(a, pki);
  dag::test::DagdOptions o;
  o.binary = a.dagd_bin;
  o.port = broker->port();
  o.env = {{"DAG_LOG_LEVEL", "info"}, {"DAG_DATABASE_DURABILITY", durability}};
  if (a.rate_limit) o.env.emplace_back("DAG_INGEST_RATE_PER_S", std::to_string(*a.rate_limit));
  if (a.batch_max) o.env.emplace_back("DAG_INGEST_BATCH_MAX", std::to_string(*a.batch_max));
  if (a.max_inflight) o.env.emplace_back("DAG_MQTT_MAX_INFLIGHT", std::to_string(*a.max_inflight));
  auto dagd = dag::test::DagdProcess::start(pki, o);
  if (!dagd) die(dagd.error().message);
  const pid_t pid = (*dagd)->process().pid();
  const auto p0 = SteadyClock::now();
  provision(a, (*dagd)->database());
  out["provision_s"] = std::chrono::duration<double>(SteadyClock::now() - p0).count();

  PhaseResult with_dagd;
  double cpu = 0;
  std::vector<double> thread_cpu;
  {
    Receipts receipts(n);
    // The measuring subscriber takes as much as the broker sends (receive maximum).
    MqttConnection acc(*broker, pki.client("bench-acc"), 20, 65535,
                       [&](std::string_view t, std::string_view p) { receipts.on_message(t, p); });
    acc.subscribe(std::string(proto::filters::kShadowUpdate) + "/accepted");
    acc.subscribe(std::string(proto::filters::kShadowUpdate) + "/rejected");
    const double cpu0 = cpu_seconds(pid);
    const auto threads0 = thread_cpu_seconds(pid);
    with_dagd = publish_storm(a, storm, pki, *broker, receipts);
    cpu = cpu_seconds(pid) - cpu0;
    with_dagd.others_cpu_s -= cpu;
    for (const auto& [tid, s] : thread_cpu_seconds(pid)) {
      const auto before = threads0.find(tid);
      thread_cpu.push_back(s - (before == threads0.end() ? 0.0 : before->second));
    }
  }
  const auto st = proc_status(pid);
  const auto counters = dagd_counters(**dagd);
  auto get = [](const std::map<std::string, long>& m, const char* k) {
    const auto it = m.find(k);
    return it == m.end() ? -1L : it->second;
  };
  json d = with_dagd.to_json();
  d["cpu_s"] = cpu;
  d["thread_cpu_s"] = thread_cpu;
  d["vm_hwm_kib"] = get(st, "VmHWM");
  d["vm_rss_kib"] = get(st, "VmRSS");
  d["rss_anon_kib"] = get(st, "RssAnon");
  d["threads"] = get(st, "Threads");
  d["batches"] = get(counters, "batches");
  d["updates_accepted"] = get(counters, "updates");
  d["mean_batch"] = get(counters, "batches") > 0 ? static_cast<double>(get(counters, "messages")) /
                                                       static_cast<double>(get(counters, "batches"))
                                                 : 0.0;
  d["store_errors"] = get(counters, "store_errors");
  if (auto r = (*dagd)->stop(); !r) die(r.error().message);
  const auto persisted = verify(a, (*dagd)->database());
  d["persisted"] = {{"events", persisted.events},
                    {"intents", persisted.intents},
                    {"devices_missing_events", persisted.devices_missing}};
  out["dagd"] = d;
  out["ratio"] = bare.rate > 0 ? with_dagd.rate / bare.rate : 0.0;
  const bool ok = bare.complete && with_dagd.complete && persisted.devices_missing == 0 &&
                  persisted.events == static_cast<std::int64_t>(n) &&
                  persisted.intents == static_cast<std::int64_t>(n);
  out["ok"] = ok;
  out["goals"] = {{"ratio_ge_0.5", out["ratio"].get<double>() >= 0.5},
                  {"rate_ge_20k", with_dagd.rate >= 20'000}};
  return out;
}

void print_table(const json& summary) {
  std::fprintf(stderr, "\ningest_bench: %d updates to %d devices, %d publishers x window %d\n",
               summary["updates"].get<int>(), summary["devices"].get<int>(),
               summary["publishers"].get<int>(), summary["window"].get<int>());
  std::fprintf(stderr, "%-10s %-5s %7s %7s %7s %7s %6s | %-27s | %7s %5s\n", "durability", "phase",
               "seconds", "rate/s", "p50 ms", "p99 ms", "ratio", "CPU s: broker bench dagd other",
               "HWM MiB", "batch");
  for (const auto& r : summary["runs"]) {
    const auto& b = r["bare"];
    const auto& d = r["dagd"];
    const auto num = [](const json& j, const char* k) { return j[k].get<double>(); };
    std::fprintf(stderr,
                 "%-10s %-5s %7.3f %7.0f %7.1f %7.1f %6s | %13.2f %5.2f %4s %5.2f | %7s %5s\n",
                 r["durability"].get<std::string>().c_str(), "bare", num(b, "seconds"),
                 num(b, "rate_per_s"), num(b, "p50_ms"), num(b, "p99_ms"), "",
                 num(b, "broker_cpu_s"), num(b, "bench_cpu_s"), "", num(b, "others_cpu_s"), "", "");
    std::fprintf(stderr,
                 "%-10s %-5s %7.3f %7.0f %7.1f %7.1f %5.0f%% | %13.2f %5.2f %4.2f %5.2f | %7.1f "
                 "%5.0f\n",
                 "", "dagd", num(d, "seconds"), num(d, "rate_per_s"), num(d, "p50_ms"),
                 num(d, "p99_ms"), 100 * r["ratio"].get<double>(), num(d, "broker_cpu_s"),
                 num(d, "bench_cpu_s"), num(d, "cpu_s"), num(d, "others_cpu_s"),
                 static_cast<double>(d["vm_hwm_kib"].get<long>()) / 1024.0, num(d, "mean_batch"));
    std::fprintf(stderr, "%-10s persisted: %lld events, %lld intents: %s\n", "",
                 static_cast<long long>(d["persisted"]["events"].get<std::int64_t>()),
                 static_cast<long long>(d["persisted"]["intents"].get<std::int64_t>()),
                 r["ok"].get<bool>() ? "complete" : "INCOMPLETE");
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  const auto integer = [](int& into) { return dag::bench::int_flag(into); };
  const auto optional = [](std::optional<int>& into) { return dag::bench::int_flag(into); };
  const dag::bench::Flags flags{
      {"--devices", integer(a.devices)},
      {"--updates", integer(a.updates)},
      {"--publishers", integer(a.publishers)},
      {"--window", integer(a.window)},
      {"--per-account", integer(a.per_account)},
      {"--durability", [&](const std::string& v) { a.durability = v; }},
      {"--batch-max", optional(a.batch_max)},
      {"--max-inflight", optional(a.max_inflight)},
      {"--rate-limit", optional(a.rate_limit)},
      {"--broker-queue", integer(a.broker_queue)},
      {"--sub-receive-max", optional(a.sub_receive_max)},
      {"--timeout-s", integer(a.timeout_s)},
      {"--dagd-bin", [&](const std::string& v) { a.dagd_bin = v; }},
  };
  dag::bench::parse_flags(argc, argv, flags);
  if (a.devices < 1 || a.publishers < 1 || a.window < 1 || a.updates < 0) die("bad counts");
  if (a.durability != "power_safe" && a.durability != "crash_safe" && a.durability != "both") {
    die("--durability: power_safe, crash_safe or both");
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse_args(argc, argv);
  dag::log::set_level(dag::log::Level::warn);
  mosquitto_lib_init();
  dag::test::TestPki pki;
  const Storm storm = make_storm(a);
  json summary = {{"devices", a.devices},
                  {"updates", storm.topics.size()},
                  {"publishers", a.publishers},
                  {"window", a.window},
                  {"runs", json::array()}};
  bool ok = true;
  for (const std::string d : {"power_safe", "crash_safe"}) {
    if (a.durability != "both" && a.durability != d) continue;
    auto r = run(a, storm, pki, d);
    ok = ok && r["ok"].get<bool>();
    summary["runs"].push_back(std::move(r));
  }
  print_table(summary);
  std::cout << summary.dump() << "\n";
  mosquitto_lib_cleanup();
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::cerr << "ingest_bench: " << e.what() << "\n";
  return 1;
}
