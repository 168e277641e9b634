// dagd's ingest worker alone: dag::shadow::Service::process on batches of shadow updates,
// over a SQLite file, without MQTT. The same work as ingest_bench's dagd phase minus the
// network thread: every update is a power transition of another device (a shadow write,
// a power event, a notification intent), in accounts of 1 to 10 devices.
//
// BM_ServiceStorm/<durability>/<batch>: durability 0 = power_safe (synchronous FULL, the
// default), 1 = crash_safe. Reports updates/s and CPU per update (per_update, from the
// process's CPU time: the background checkpointer counts too). Goal (issue 4): a worker
// well under the ~55 µs of CPU per update that half the bare subscriber's rate leaves.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>  // getenv, mkdtemp
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/shadow/service.hpp"
#include "dag/store/sqlite.hpp"

namespace {

using dag::store::SqliteOptions;
namespace store = dag::store;
namespace shadow = dag::shadow;

// DAG_SERVICE_BENCH_DEVICES overrides the 10,000 dags (the CTest smoke run uses fewer).
int device_count() {
  static const int n = [] {
    const char* v = std::getenv("DAG_SERVICE_BENCH_DEVICES");
    const int parsed = v != nullptr ? std::atoi(v) : 0;
    return parsed >= 500 ? parsed : 10'000;
  }();
  return n;
}

template <class T>
T check(dag::store::StoreResult<T> r, const char* what) {
  if (!r) {
    std::cerr << what << ": " << r.error().message << "\n";
    std::abort();
  }
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

std::string report(const char* status, std::int64_t observed_ms, std::int64_t seq, int token) {
  return std::string{R"({"state":{"reported":{"status":")"} + status + R"(","observedAt":)" +
         std::to_string(observed_ms) + R"(,"seq":)" + std::to_string(seq) +
         R"(,"battery":{"percent":87,"volts":4.05,"minutesLeft":312}}},"clientToken":"u)" +
         std::to_string(token) + "\"}";
}

class Fixture {
 public:
  explicit Fixture(SqliteOptions::Durability durability) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "dag-service-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    SqliteOptions options;
    options.durability = durability;
    store_ = check(store::open_sqlite(dir_ / "dag.db", options), "open");
    check(store::transact(*store_, store::TxMode::read_write,
                          [&](store::Transaction& tx) -> store::StoreResult<void> {
                            int d = 0;
                            for (int a = 0; d < device_count(); ++a) {
                              auto account = check(tx.create_account("user" + std::to_string(a),
                                                                     "h", clock_.unix_ms()),
                                                   "account");
                              for (int k = 0; k <= a % 10 && d < device_count(); ++k, ++d) {
                                ids_.push_back("bench-" + std::to_string(d));
                                check(tx.create_device({ids_.back(), account.id, ids_.back(),
                                                        clock_.unix_ms() - 86'400'000}),
                                      "device");
                              }
                            }
                            return {};
                          }),
          "provision");
    shadow::ServiceOptions so;
    so.rate_per_s = 0;
    service_ = std::make_unique<shadow::Service>(*store_, clock_, so, metrics_);
    for (const auto& id : ids_) {
      topics_.push_back(dag::protocol::shadow_topic(id, dag::protocol::ShadowOp::update));
    }
    // Every dag reports "on" first, as in ingest_bench's provisioning.
    for (int first = 0; first < device_count(); first += 500) run_batch(first, 500);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
  Fixture(Fixture&&) = delete;
  Fixture& operator=(Fixture&&) = delete;
  ~Fixture() {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Devices first.. first+count-1 (mod device_count()) report their next transition.
  void run_batch(int first, int count) {
    std::vector<shadow::Inbound> batch;
    batch.reserve(static_cast<std::size_t>(count));
    clock_.advance(std::chrono::milliseconds{1});
    const std::int64_t now = clock_.unix_ms();
    for (int i = 0; i < count; ++i) {
      const auto d = static_cast<std::size_t>((first + i) % device_count());
      if (seqs_.size() <= d) seqs_.resize(d + 1, 0);
      const std::int64_t seq = ++seqs_[d];
      batch.push_back(
          {topics_[d], report(seq % 2 ? "on" : "off", now - 5, seq, first + i), false, now});
    }
    auto out = service_->process(batch);
    if (out.size() < static_cast<std::size_t>(count)) {
      std::cerr << "process: " << out.size() << " replies for " << count << " updates\n";
      std::abort();
    }
  }
  [[nodiscard]] const shadow::Metrics& metrics() const { return metrics_; }

 private:
  std::filesystem::path dir_;
  dag::FakeClock clock_{1'700'000'000'000};
  std::unique_ptr<store::Store> store_;
  shadow::Metrics metrics_;
  std::unique_ptr<shadow::Service> service_;
  std::vector<std::string> ids_;
  std::vector<std::string> topics_;
  std::vector<std::int64_t> seqs_;
};

void BM_ServiceStorm(benchmark::State& state) {
  Fixture f{state.range(0) == 0 ? SqliteOptions::Durability::power_safe
                                : SqliteOptions::Durability::crash_safe};
  const auto batch = static_cast<int>(state.range(1));
  const auto events0 = f.metrics().events.load();
  int first = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    f.run_batch(first, batch);
    first = (first + batch) % device_count();
  }
  const auto updates = static_cast<double>(state.iterations()) * batch;
  if (static_cast<double>(f.metrics().events.load() - events0) != updates) {
    state.SkipWithError("not every update became a power event");
  }
  state.counters["updates/s"] = benchmark::Counter(updates, benchmark::Counter::kIsRate);
  state.counters["per_update"] =
      benchmark::Counter(updates, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

BENCHMARK(BM_ServiceStorm)
    ->ArgsProduct({{0, 1}, {500}})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
