// Cost of the SQLite store on dagd's write path, on a file database.
//
// BM_StoreBatch: the issue's batch — 100 shadow puts + 100 event appends + 100 intents in
// one transaction, committed (and the same with 1,000 of each). Reports the cost per item
// and per device update (a put, an event and an intent each). Every update in a batch is
// for another device, as in an outage storm: nothing shares index pages.
// BM_StoreIngestBatch: what one ingested report really costs the store, 100 per
// transaction: read the device and its shadow, put the shadow, append the power event,
// write the device state, queue the intent.
// BM_StoreOneUpdatePerTransaction: the same work committed one report at a time, to show
// what batching saves (one WAL fsync per commit with power_safe durability).
// BM_StoreOperation: one kind of operation alone (op: 0 get_device, 1 get_shadow,
// 2 put_shadow, 3 append_event, 4 update_device_state, 5 enqueue_intent).
// durability: SqliteOptions::Durability (0 power_safe = synchronous FULL, the default;
// 1 crash_safe = NORMAL). Goal (issue 4): the store well above 20k device updates/s in
// batches. Real time is what counts: WAL checkpoints run on a background thread.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "dag/protocol/shadow.hpp"
#include "dag/store/sqlite.hpp"

namespace {

using namespace dag::store;  // NOLINT(google-build-using-namespace): a benchmark file

constexpr int kBatch = 100;
constexpr std::int64_t kBigBatch = 1000;
constexpr std::int64_t kT0 = 1'700'000'000'000;

[[noreturn]] void die(const std::string& what, const StoreError& error) {
  std::cerr << "store_bench: " << what << ": " << to_string(error.code) << ": " << error.message
            << "\n";
  std::abort();
}

template <class T>
T check(StoreResult<T> result, const char* what) {
  if (!result) die(what, result.error());
  return std::move(result).value();
}
void check(const StoreResult<void>& result, const char* what) {
  if (!result) die(what, result.error());
}

// A shadow as dagd stores it after a dag's typical report (about 700 bytes).
std::string typical_shadow_json(std::int64_t seq) {
  const std::string report =
      R"({"state":{"reported":{"status":")" + std::string(seq % 2 ? "off" : "on") +
      R"(","observedAt":1700000000123,"seq":)" + std::to_string(seq) +
      R"(,"name":"Ring A","battery":{"percent":87.5,"volts":4.05,)"
      R"("minutesLeft":312,"low":false},"agent":{"version":"0.1.0",)"
      R"("bootId":"6c1f3e0a-5d2b-4c1e-9f1a-2b3c4d5e6f70","uptimeS":12345}}}})";
  auto updated = dag::protocol::update(nullptr, report, kT0 / 1000);
  if (!updated) {
    std::cerr << "store_bench: engine rejected the report\n";
    std::abort();
  }
  return dag::protocol::shadow_to_json(updated->document);
}

/// A store on a fresh file with one account and kBatch devices, removed at the end.
class Fixture {
 public:
  explicit Fixture(SqliteOptions::Durability durability, int devices = kBatch) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "dag-store-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    dir_ = pattern;
    SqliteOptions options;
    options.durability = durability;
    store_ = check(open_sqlite(dir_ / "bench.db", options), "open");
    auto tx = check(store_->begin(), "begin");
    account_id_ = check(tx->create_account("bench", "hash", kT0), "create_account").id;
    for (int i = 0; i < devices; ++i) {
      devices_.push_back("00000000-0000-4000-8000-" + std::to_string(100000000000 + i));
      check(tx->create_device(NewDevice{devices_.back(), account_id_, "Ring", kT0}),
            "create_device");
    }
    check(tx->commit(), "commit");
    revisions_.assign(devices_.size(), 0);
  }
  ~Fixture() {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  Fixture(const Fixture&) = delete;
  Fixture& operator=(const Fixture&) = delete;
  Fixture(Fixture&&) = delete;
  Fixture& operator=(Fixture&&) = delete;

  Store& store() { return *store_; }
  const std::string& account_id() const { return account_id_; }
  const std::string& device(int i) const { return devices_[static_cast<std::size_t>(i)]; }
  std::int64_t& revision(int i) { return revisions_[static_cast<std::size_t>(i)]; }
  std::int64_t next_seq() { return ++seq_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Store> store_;
  std::string account_id_;
  std::vector<std::string> devices_;
  std::vector<std::int64_t> revisions_;
  std::int64_t seq_{0};
};

Intent intent_for(const Fixture& f, int i, std::int64_t seq) {
  return Intent{f.account_id(),
                f.device(i),
                "Ring",
                seq % 2 ? Transition::power_lost : Transition::power_back,
                seq % 2 ? dag::protocol::UserState::off : dag::protocol::UserState::on,
                kT0 + seq,
                kT0 + seq,
                R"({"batteryPercent":87.5})"};
}

Event event_for(const Fixture& f, int i, std::int64_t seq) {
  return Event{f.device(i),
               seq % 2 ? EventKind::power_off : EventKind::power_on,
               kT0 + seq,
               kT0 + seq,
               seq,
               false,
               seq % 2 ? dag::protocol::UserState::off : dag::protocol::UserState::on};
}

// Rates, and their inverse as time per device update and per store operation (shown
// with SI prefixes, e.g. "9.5us").
void set_rates(benchmark::State& state, int updates_per_iteration, int items_per_update) {
  const auto updates = static_cast<double>(state.iterations()) * updates_per_iteration;
  state.counters["updates/s"] = benchmark::Counter(updates, benchmark::Counter::kIsRate);
  state.counters["per_update"] =
      benchmark::Counter(updates, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["per_item"] = benchmark::Counter(
      updates * items_per_update, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

SqliteOptions::Durability durability_arg(const benchmark::State& state) {
  return state.range(0) == 0 ? SqliteOptions::Durability::power_safe
                             : SqliteOptions::Durability::crash_safe;
}

void BM_StoreBatch(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(1));
  Fixture f{durability_arg(state), batch};
  const std::string shadow = typical_shadow_json(1);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto tx = check(f.store().begin(), "begin");
    for (int i = 0; i < batch; ++i) {
      const std::int64_t seq = f.next_seq();
      f.revision(i) = check(tx->put_shadow(f.device(i), shadow, f.revision(i)), "put_shadow");
      check(tx->append_event(event_for(f, i, seq)), "append_event");
      check(tx->enqueue_intent(intent_for(f, i, seq)), "enqueue_intent");
    }
    check(tx->commit(), "commit");
  }
  set_rates(state, batch, 3);
}
BENCHMARK(BM_StoreBatch)
    ->ArgNames({"durability", "batch"})
    ->ArgsProduct({{0, 1}, {kBatch, kBigBatch}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One report's store work inside an open transaction.
void ingest_one(Transaction& tx, Fixture& f, int i, const std::string& shadow) {
  const std::int64_t seq = f.next_seq();
  Device device = check(tx.get_device(f.device(i)), "get_device");
  auto stored = check(tx.get_shadow(f.device(i)), "get_shadow");
  benchmark::DoNotOptimize(stored);
  f.revision(i) = check(tx.put_shadow(f.device(i), shadow, f.revision(i)), "put_shadow");
  check(tx.append_event(event_for(f, i, seq)), "append_event");
  device.state.last_seq = seq;
  device.state.power = seq % 2 ? dag::protocol::Power::off : dag::protocol::Power::on;
  device.state.power_since_ms = kT0 + seq;
  device.state.last_seen_ms = kT0 + seq;
  check(tx.update_device_state(device.id, device.state), "update_device_state");
  check(tx.enqueue_intent(intent_for(f, i, seq)), "enqueue_intent");
}

void BM_StoreIngestBatch(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(1));
  Fixture f{durability_arg(state), batch};
  const std::string shadow = typical_shadow_json(1);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto tx = check(f.store().begin(), "begin");
    for (int i = 0; i < batch; ++i) ingest_one(*tx, f, i, shadow);
    check(tx->commit(), "commit");
  }
  set_rates(state, batch, 6);
}
BENCHMARK(BM_StoreIngestBatch)
    ->ArgNames({"durability", "batch"})
    ->ArgsProduct({{0, 1}, {kBatch, kBigBatch}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_StoreOneUpdatePerTransaction(benchmark::State& state) {
  Fixture f{durability_arg(state)};
  const std::string shadow = typical_shadow_json(1);
  int i = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto tx = check(f.store().begin(), "begin");
    ingest_one(*tx, f, i, shadow);
    check(tx->commit(), "commit");
    i = (i + 1) % kBatch;
  }
  set_rates(state, 1, 6);
}
BENCHMARK(BM_StoreOneUpdatePerTransaction)
    ->ArgName("durability")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// One kind of operation, 100 per transaction (crash_safe, so the figure is CPU rather
// than fsync): where a device update's time goes.
enum class Op {
  get_device,
  get_shadow,
  put_shadow,
  append_event,
  update_device_state,
  enqueue_intent
};

void BM_StoreOperation(benchmark::State& state) {
  Fixture f{SqliteOptions::Durability::crash_safe};
  const std::string shadow = typical_shadow_json(1);
  {
    auto tx = check(f.store().begin(), "begin");
    for (int i = 0; i < kBatch; ++i) {
      f.revision(i) = check(tx->put_shadow(f.device(i), shadow, 0), "put_shadow");
    }
    check(tx->commit(), "commit");
  }
  const auto op = static_cast<Op>(state.range(0));
  DeviceState device_state;
  device_state.power = dag::protocol::Power::on;
  device_state.battery_json = R"({"percent":87.5,"volts":4.05,"minutesLeft":312,"low":false})";
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto tx = check(f.store().begin(), "begin");
    for (int i = 0; i < kBatch; ++i) {
      const std::int64_t seq = f.next_seq();
      switch (op) {
        case Op::get_device:
          benchmark::DoNotOptimize(check(tx->get_device(f.device(i)), "get"));
          break;
        case Op::get_shadow:
          benchmark::DoNotOptimize(check(tx->get_shadow(f.device(i)), "get"));
          break;
        case Op::put_shadow:
          f.revision(i) = check(tx->put_shadow(f.device(i), shadow, f.revision(i)), "put_shadow");
          break;
        case Op::append_event: check(tx->append_event(event_for(f, i, seq)), "append_event"); break;
        case Op::update_device_state:
          device_state.last_seq = seq;
          check(tx->update_device_state(f.device(i), device_state), "update_device_state");
          break;
        case Op::enqueue_intent:
          check(tx->enqueue_intent(intent_for(f, i, seq)), "enqueue_intent");
          break;
      }
    }
    check(tx->commit(), "commit");
  }
  set_rates(state, kBatch, 1);
}
BENCHMARK(BM_StoreOperation)
    ->ArgName("op")
    ->DenseRange(0, 5)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
