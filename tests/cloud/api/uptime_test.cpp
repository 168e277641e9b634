#include "dag/api/uptime.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

namespace dag::api {
namespace {

constexpr std::int64_t kFrom = 1'000'000;
constexpr std::int64_t kUntil = 2'000'000;  // a window of 1,000,000 ms

constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

PowerChange off(std::int64_t at) {
  return {at, false};
}
PowerChange on(std::int64_t at) {
  return {at, true};
}

TEST(Uptime, NothingKnownIsNotMonitored) {
  const auto u = compute_uptime(std::nullopt, {}, kFrom, kUntil);
  EXPECT_EQ(u, Uptime{});
  EXPECT_FALSE(u.availability_percent);
}

TEST(Uptime, OnThroughoutIsFullAvailability) {
  const auto u = compute_uptime(true, {}, kFrom, kUntil);
  EXPECT_EQ(u.monitored_ms, 1'000'000);
  ASSERT_TRUE(u.availability_percent);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 100.0);
  EXPECT_EQ(u.outage_count, 0);
  EXPECT_EQ(u.total_outage_ms, 0);
  EXPECT_EQ(u.longest_outage_ms, 0);
  EXPECT_FALSE(u.ongoing);
}

TEST(Uptime, OffThroughoutIsOneOngoingOutage) {
  const auto u = compute_uptime(false, {}, kFrom, kUntil);
  EXPECT_EQ(u.monitored_ms, 1'000'000);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 0.0);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 1'000'000);
  EXPECT_EQ(u.longest_outage_ms, 1'000'000);
  EXPECT_TRUE(u.ongoing);
}

TEST(Uptime, OutagesInsideTheWindow) {
  const auto u = compute_uptime(
      true, {off(kFrom + 100), on(kFrom + 300), off(kFrom + 500'000), on(kFrom + 600'000)}, kFrom,
      kUntil);
  EXPECT_EQ(u.monitored_ms, 1'000'000);
  EXPECT_EQ(u.outage_count, 2);
  EXPECT_EQ(u.total_outage_ms, 100'200);
  EXPECT_EQ(u.longest_outage_ms, 100'000);
  EXPECT_FALSE(u.ongoing);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 100.0 * (1'000'000 - 100'200) / 1'000'000);
}

TEST(Uptime, ChangesInAnyOrder) {
  const std::vector<PowerChange> sorted{off(kFrom + 10), on(kFrom + 20), off(kFrom + 40),
                                        on(kFrom + 100)};
  const std::vector<PowerChange> shuffled{on(kFrom + 100), off(kFrom + 10), off(kFrom + 40),
                                          on(kFrom + 20)};
  const auto a = compute_uptime(true, sorted, kFrom, kUntil);
  EXPECT_EQ(a, compute_uptime(true, shuffled, kFrom, kUntil));
  EXPECT_EQ(a.outage_count, 2);
  EXPECT_EQ(a.total_outage_ms, 70);
  EXPECT_EQ(a.longest_outage_ms, 60);
}

TEST(Uptime, RepeatsAreNotChanges) {
  // The outage runs from the first off to the first on after it.
  const auto u = compute_uptime(true,
                                {on(kFrom + 5), off(kFrom + 10), off(kFrom + 50), off(kFrom + 70),
                                 on(kFrom + 110), on(kFrom + 200)},
                                kFrom, kUntil);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 100);
  EXPECT_EQ(u.longest_outage_ms, 100);
  EXPECT_EQ(u.monitored_ms, 1'000'000);
}

TEST(Uptime, OngoingOutageRunsToUntil) {
  const auto u = compute_uptime(true, {off(kUntil - 250)}, kFrom, kUntil);
  EXPECT_TRUE(u.ongoing);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 250);
  EXPECT_EQ(u.longest_outage_ms, 250);
}

TEST(Uptime, OutageOverlappingTheStartIsClipped) {
  // Off since before the window (the caller says so), back 400 ms into it.
  const auto u = compute_uptime(false, {on(kFrom + 400)}, kFrom, kUntil);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 400);
  EXPECT_EQ(u.longest_outage_ms, 400);
  EXPECT_FALSE(u.ongoing);
}

TEST(Uptime, ChangesBeforeTheWindowGiveTheStartStateWhenUnknown) {
  const std::vector<PowerChange> changes{off(kFrom - 5000), on(kFrom - 3000), off(kFrom - 1000),
                                         on(kFrom + 400)};
  const auto u = compute_uptime(std::nullopt, changes, kFrom, kUntil);
  EXPECT_EQ(u.monitored_ms, 1'000'000);
  EXPECT_EQ(u.outage_count, 1);  // the earlier outage does not overlap the window
  EXPECT_EQ(u.total_outage_ms, 400);
  // A known start state wins over older changes.
  const auto known = compute_uptime(true, changes, kFrom, kUntil);
  EXPECT_EQ(known.outage_count, 0);
  EXPECT_DOUBLE_EQ(*known.availability_percent, 100.0);
}

TEST(Uptime, ChangesAtOrAfterUntilAreIgnored) {
  const auto u =
      compute_uptime(true, {off(kUntil), on(kUntil + 10), off(kUntil + 1'000'000)}, kFrom, kUntil);
  EXPECT_EQ(u.outage_count, 0);
  EXPECT_FALSE(u.ongoing);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 100.0);
  // An outage that started inside and ended after the window is clipped at until.
  const auto clipped = compute_uptime(true, {off(kUntil - 10), on(kUntil + 500)}, kFrom, kUntil);
  EXPECT_EQ(clipped.total_outage_ms, 10);
  EXPECT_TRUE(clipped.ongoing);
}

TEST(Uptime, MonitoringStartsAtTheFirstReport) {
  const auto u =
      compute_uptime(std::nullopt, {on(kFrom + 600'000), off(kFrom + 900'000)}, kFrom, kUntil);
  EXPECT_EQ(u.monitored_ms, 400'000);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 100'000);
  EXPECT_TRUE(u.ongoing);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 75.0);
  // First report is off: the outage counts from the report, not from the window's start.
  const auto first_off = compute_uptime(std::nullopt, {off(kFrom + 500'000)}, kFrom, kUntil);
  EXPECT_EQ(first_off.monitored_ms, 500'000);
  EXPECT_EQ(first_off.total_outage_ms, 500'000);
  EXPECT_DOUBLE_EQ(*first_off.availability_percent, 0.0);
}

TEST(Uptime, EqualTimesTheLaterInInputWins) {
  // off then on at the same instant: no outage at all.
  const auto flicker = compute_uptime(true, {off(kFrom + 10), on(kFrom + 10)}, kFrom, kUntil);
  EXPECT_EQ(flicker.outage_count, 0);
  EXPECT_EQ(flicker.total_outage_ms, 0);
  // on then off at the same instant: off from then on.
  const auto down = compute_uptime(true, {on(kFrom + 10), off(kFrom + 10)}, kFrom, kUntil);
  EXPECT_EQ(down.outage_count, 1);
  EXPECT_EQ(down.total_outage_ms, 1'000'000 - 10);
  EXPECT_TRUE(down.ongoing);
  // The input order among equal times is kept even when other changes come between.
  const auto mixed =
      compute_uptime(true, {on(kFrom + 10), off(kFrom + 50), off(kFrom + 10)}, kFrom, kUntil);
  EXPECT_EQ(mixed.outage_count, 1);
  EXPECT_EQ(mixed.total_outage_ms, 1'000'000 - 10);
}

TEST(Uptime, AChangeAtFromOverridesTheStartState) {
  const auto u = compute_uptime(false, {on(kFrom)}, kFrom, kUntil);
  EXPECT_EQ(u.outage_count, 0);
  EXPECT_DOUBLE_EQ(*u.availability_percent, 100.0);
  const auto down = compute_uptime(true, {off(kFrom)}, kFrom, kUntil);
  EXPECT_EQ(down.outage_count, 1);
  EXPECT_EQ(down.total_outage_ms, 1'000'000);
  const auto unknown = compute_uptime(std::nullopt, {on(kFrom)}, kFrom, kUntil);
  EXPECT_EQ(unknown.monitored_ms, 1'000'000);
}

TEST(Uptime, EmptyOrReversedWindowIsZeros) {
  EXPECT_EQ(compute_uptime(false, {off(kFrom)}, kFrom, kFrom), Uptime{});
  const std::int64_t later = kUntil;
  const std::int64_t earlier = kFrom;
  EXPECT_EQ(compute_uptime(false, {off(kFrom)}, later, earlier), Uptime{});
  EXPECT_EQ(compute_uptime(true, {}, kMax, kMin), Uptime{});
}

TEST(Uptime, OneMillisecondWindow) {
  const auto u = compute_uptime(false, {}, kFrom, kFrom + 1);
  EXPECT_EQ(u.monitored_ms, 1);
  EXPECT_EQ(u.outage_count, 1);
  EXPECT_EQ(u.total_outage_ms, 1);
  EXPECT_TRUE(u.ongoing);
}

TEST(Uptime, HugeWindowSaturatesInsteadOfOverflowing) {
  const auto u = compute_uptime(false, {on(0), off(10)}, kMin, kMax);
  EXPECT_EQ(u.monitored_ms, kMax);
  EXPECT_EQ(u.total_outage_ms, kMax);
  EXPECT_EQ(u.longest_outage_ms, kMax);  // kMin..0 is 2^63 ms, one more than kMax
  EXPECT_EQ(u.outage_count, 2);
  EXPECT_TRUE(u.ongoing);
  ASSERT_TRUE(u.availability_percent);
  EXPECT_GE(*u.availability_percent, 0.0);
  EXPECT_LE(*u.availability_percent, 100.0);
  // Changes at the limits.
  const auto edges = compute_uptime(std::nullopt, {off(kMin), on(kMax)}, kMin, kMax);
  EXPECT_EQ(edges.monitored_ms, kMax);
  EXPECT_TRUE(edges.ongoing);  // the on at kMax is at until: ignored
}

TEST(Uptime, AvailabilityStaysWithinBounds) {
  // A pseudo-random walk of changes never gives availability outside [0, 100] or outage
  // sums beyond the monitored time.
  std::uint64_t seed = 42;
  const auto next = [&seed] {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return seed >> 33;
  };
  for (int round = 0; round < 200; ++round) {
    std::vector<PowerChange> changes;
    changes.reserve(30);
    for (int i = 0; i < 30; ++i) {
      changes.push_back(
          {kFrom - 100'000 + static_cast<std::int64_t>(next() % 1'300'000), next() % 2 == 0});
    }
    const std::optional<bool> start =
        next() % 3 == 0 ? std::nullopt : std::optional<bool>(next() % 2 == 0);
    const auto u = compute_uptime(start, changes, kFrom, kUntil);
    EXPECT_LE(u.total_outage_ms, u.monitored_ms);
    EXPECT_LE(u.longest_outage_ms, u.total_outage_ms);
    EXPECT_LE(u.monitored_ms, kUntil - kFrom);
    if (u.availability_percent) {
      EXPECT_GE(*u.availability_percent, 0.0);
      EXPECT_LE(*u.availability_percent, 100.0);
    }
  }
}

}  // namespace
}  // namespace dag::api
