#include <gtest/gtest.h>

#include <set>

#include "dag/mqtt/client.hpp"

namespace dag::mqtt {
namespace {

using namespace std::chrono_literals;

TEST(Backoff, GrowsExponentiallyWithJitterAndIsCapped) {
  std::mt19937_64 rng(42);
  for (unsigned attempt = 0; attempt < 40; ++attempt) {
    const auto base = std::min<std::int64_t>(300'000, 1000LL << std::min(attempt, 30U));
    for (int i = 0; i < 50; ++i) {
      const auto d = backoff_delay(attempt, 1000ms, 300'000ms, rng).count();
      EXPECT_GE(d, base / 2) << attempt;
      EXPECT_LE(d, base) << attempt;
    }
  }
}

TEST(Backoff, JitterSpreadsAFleet) {
  std::mt19937_64 rng(7);
  std::set<std::int64_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(backoff_delay(5, 1000ms, 300'000ms, rng).count());
  EXPECT_GT(seen.size(), 90U);
}

}  // namespace
}  // namespace dag::mqtt
