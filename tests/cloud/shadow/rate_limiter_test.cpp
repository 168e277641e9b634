#include "dag/shadow/rate_limiter.hpp"

#include <gtest/gtest.h>

namespace dag::shadow {
namespace {

using std::chrono::milliseconds;

TEST(RateLimiter, BurstThenRate) {
  RateLimiter limiter(20, 20);
  const RateLimiter::Time t0{};
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.allow("a", t0)) << i;
  EXPECT_FALSE(limiter.allow("a", t0));
  EXPECT_TRUE(limiter.allow("b", t0));                      // per key
  EXPECT_FALSE(limiter.allow("a", t0 + milliseconds(40)));  // 0.8 token
  EXPECT_TRUE(limiter.allow("a", t0 + milliseconds(50)));   // one token back after 1/20 s
  EXPECT_FALSE(limiter.allow("a", t0 + milliseconds(50)));
  // A long pause refills only up to the burst.
  const auto later = t0 + milliseconds(60'000);
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.allow("a", later)) << i;
  EXPECT_FALSE(limiter.allow("a", later));
}

TEST(RateLimiter, ZeroRateDisablesIt) {
  RateLimiter limiter(0, 1);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.allow("a", {}));
}

TEST(RateLimiter, IdleKeysAreDroppedWhenFull) {
  RateLimiter limiter(10, 1, 3);
  const RateLimiter::Time t0{};
  EXPECT_TRUE(limiter.allow("a", t0));
  EXPECT_TRUE(limiter.allow("b", t0));
  EXPECT_TRUE(limiter.allow("c", t0));
  EXPECT_EQ(limiter.tracked_keys(), 3U);
  // Later, all three have refilled: a fourth key sweeps them out.
  EXPECT_TRUE(limiter.allow("d", t0 + milliseconds(1000)));
  EXPECT_EQ(limiter.tracked_keys(), 1U);
  // Busy keys are kept; past the cap new keys pass untracked rather than being refused.
  RateLimiter busy(1, 1, 2);
  EXPECT_TRUE(busy.allow("a", t0));
  EXPECT_TRUE(busy.allow("b", t0));
  EXPECT_TRUE(busy.allow("c", t0));
  EXPECT_EQ(busy.tracked_keys(), 2U);
  EXPECT_FALSE(busy.allow("a", t0));
}

}  // namespace
}  // namespace dag::shadow
