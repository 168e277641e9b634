#include "dag/edge/battery.hpp"

#include <gtest/gtest.h>

namespace dag::edge {
namespace {

TEST(Max17040, DecodesRegisters) {
  // VCELL 0xD2C0 -> 0xD2C (3372) * 1.25 mV = 4.215 V
  EXPECT_DOUBLE_EQ(Max17040Gauge::volts_from_vcell(0xD2C0), 4.215);
  // SOC 0x5A80 -> 90 + 128/256 = 90.5 %
  EXPECT_DOUBLE_EQ(Max17040Gauge::percent_from_soc(0x5A80), 90.5);
}

TEST(Max17040, MissingBusIsAnIoError) {
  Max17040Gauge g("/dev/i2c-nonexistent", 0x36);
  auto r = g.read();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io);
}

TEST(RuntimeEstimator, UnknownOnMainsOrWithTooLittleData) {
  RuntimeEstimator e;
  e.on_mains(true);
  e.sample(0, 100);
  EXPECT_FALSE(e.minutes_left());
  e.on_mains(false);
  e.sample(0, 100);
  EXPECT_FALSE(e.minutes_left());
  e.sample(30'000, 99);  // under a minute of data
  EXPECT_FALSE(e.minutes_left());
}

TEST(RuntimeEstimator, ExtrapolatesTheDischargeSlope) {
  RuntimeEstimator e;
  e.on_mains(false);
  // 1 % every 2 minutes from 80 %: 70 % left at the last sample -> 140 minutes.
  for (int i = 0; i <= 10; ++i) e.sample(i * 120'000LL, 80.0 - i);
  ASSERT_TRUE(e.minutes_left());
  EXPECT_EQ(*e.minutes_left(), 140);
}

TEST(RuntimeEstimator, NotDischargingIsUnknownAndMainsResets) {
  RuntimeEstimator e;
  e.on_mains(false);
  e.sample(0, 50);
  e.sample(120'000, 50);
  EXPECT_FALSE(e.minutes_left());
  e.sample(240'000, 49);
  EXPECT_TRUE(e.minutes_left());
  e.on_mains(true);
  EXPECT_FALSE(e.minutes_left());
}

}  // namespace
}  // namespace dag::edge
