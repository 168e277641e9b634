// Cost of the shadow engine on a dag's typical traffic: one report applied to a stored
// shadow (producing /update/accepted and /update/documents), and a get.
// Goal (docs/protocol.md): <= 10 us per update in the release build.
#include <benchmark/benchmark.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>

#include "dag/protocol/shadow.hpp"

namespace {

using dag::protocol::ShadowDocument;

constexpr std::int64_t kNow = 1'700'000'000;

// What a dag publishes every time it reports, serialized as the edge agent does it
// (nlohmann: compact, keys sorted).
std::string typical_report() {
  nlohmann::json report = {
      {"state",
       {{"reported",
         {{"status", "on"},
          {"observedAt", 1700000000123},
          {"seq", 42},
          {"battery", {{"percent", 87}, {"volts", 4.05}, {"minutesLeft", 312}}},
          {"agent",
           {{"version", "0.1.0"},
            {"bootId", "6c1f3e0a-5d2b-4c1e-9f1a-2b3c4d5e6f70"},
            {"uptimeS", 12345}}}}}}},
      {"clientToken", "dag-1-42"}};
  return report.dump();
}

// A stored shadow as the cloud holds it: the dag's full report plus the user's name and
// its configuration.
ShadowDocument stored_shadow() {
  auto first = dag::protocol::update(nullptr, R"({"state":{"reported":{
    "status":"off","observedAt":1699999000000,"seq":41,"name":"Ring A",
    "battery":{"percent":90,"volts":4.1,"minutesLeft":330},
    "agent":{"version":"0.1.0","bootId":"6c1f3e0a-5d2b-4c1e-9f1a-2b3c4d5e6f70","uptimeS":11000},
    "config":{"pollS":60,"debounceMs":200}}}})",
                                     kNow - 1000);
  if (!first) {
    std::cerr << "bench setup failed: " << first.error().message << "\n";
    std::abort();
  }
  return first->document;
}

void BM_ShadowUpdateTypicalReport(benchmark::State& state) {
  const ShadowDocument stored = stored_shadow();
  const std::string report = typical_report();
  std::size_t bytes = 0;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto result = dag::protocol::update(&stored, report, kNow);
    if (!result) {
      state.SkipWithError("update rejected");
      break;
    }
    bytes += result->accepted.size() + result->documents.size();
    benchmark::DoNotOptimize(result);
  }
  state.counters["reply_bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_ShadowUpdateTypicalReport);

void BM_ShadowGet(benchmark::State& state) {
  const ShadowDocument stored = stored_shadow();
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto reply = dag::protocol::get("dag-1", &stored, R"({"clientToken":"g"})", kNow);
    benchmark::DoNotOptimize(reply);
  }
}
BENCHMARK(BM_ShadowGet);

void BM_ShadowStorageRoundTrip(benchmark::State& state) {
  const ShadowDocument stored = stored_shadow();
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): benchmark idiom
    auto back = dag::protocol::shadow_from_json(dag::protocol::shadow_to_json(stored));
    benchmark::DoNotOptimize(back);
  }
}
BENCHMARK(BM_ShadowStorageRoundTrip);

}  // namespace

BENCHMARK_MAIN();
