// Battery readings: one per (device, time), retention on record, windows oldest first with
// the newest kept under a limit, validation, and the cascade of a device's removal.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using BatteryTest = StoreTest;

constexpr std::int64_t kMinute = 60'000;
constexpr std::optional<std::int64_t> kNoRetention;  // deletes nothing

BatteryReading reading(const std::string& device_id, std::int64_t at_ms, double percent) {
  return BatteryReading{device_id, at_ms, percent, 4.05, 312, true};
}

std::vector<std::int64_t> times(const std::vector<BatteryReading>& readings) {
  std::vector<std::int64_t> out;
  out.reserve(readings.size());
  for (const auto& r : readings) out.push_back(r.at_ms);
  return out;
}

TEST_F(BatteryTest, RecordedReadingsComeBackOldestFirstWithEveryField) {
  const Device device = seed();
  auto tx = begin();
  const BatteryReading second = reading(device.id, kT0 + kMinute, 86.5);
  // A gauge that knows only some values, before the power was ever known.
  const BatteryReading first{device.id, kT0, 87.5, std::nullopt, std::nullopt, std::nullopt};
  must(tx->record_battery(second, kNoRetention));
  must(tx->record_battery(first, kNoRetention));
  must(tx->commit());

  auto read = begin(TxMode::read_only);
  const auto readings = must(read->list_battery(device.id, kT0, kT0 + 2 * kMinute, 10));
  ASSERT_EQ(readings.size(), 2U);
  EXPECT_EQ(readings[0], first);
  EXPECT_EQ(readings[1], second);
}

TEST_F(BatteryTest, TheWindowIncludesSinceAndExcludesUntil) {
  const Device device = seed();
  auto tx = begin();
  for (int i = 0; i < 5; ++i) must(tx->record_battery(reading(device.id, kT0 + i, 90), 0));
  EXPECT_EQ(times(must(tx->list_battery(device.id, kT0 + 1, kT0 + 3, 10))),
            (std::vector<std::int64_t>{kT0 + 1, kT0 + 2}));
  EXPECT_TRUE(must(tx->list_battery(device.id, kT0 + 3, kT0 + 3, 10)).empty());
  EXPECT_TRUE(must(tx->list_battery("no-such-dag", kT0, kT0 + 10, 10)).empty());
}

TEST_F(BatteryTest, OverTheLimitTheNewestAreKept) {
  const Device device = seed();
  auto tx = begin();
  for (int i = 0; i < 5; ++i) must(tx->record_battery(reading(device.id, kT0 + i, 90 - i), 0));
  EXPECT_EQ(times(must(tx->list_battery(device.id, kT0, kT0 + 10, 2))),
            (std::vector<std::int64_t>{kT0 + 3, kT0 + 4}));
}

TEST_F(BatteryTest, ASecondReadingAtTheSameTimeReplacesTheFirst) {
  const Device device = seed();
  auto tx = begin();
  must(tx->record_battery(reading(device.id, kT0, 80), kNoRetention));
  BatteryReading later = reading(device.id, kT0, 79.5);
  later.on_battery = false;
  must(tx->record_battery(later, kNoRetention));
  const auto readings = must(tx->list_battery(device.id, kT0, kT0 + 1, 10));
  ASSERT_EQ(readings.size(), 1U);
  EXPECT_EQ(readings[0], later);
}

TEST_F(BatteryTest, RecordingDeletesOnlyThatDevicesReadingsBeforeTheCutOff) {
  auto tx = begin();
  const Account account = add_account(*tx);
  const Device a = add_device(*tx, account.id, "dag-a", "A");
  const Device b = add_device(*tx, account.id, "dag-b", "B");
  for (int i = 0; i < 3; ++i) {
    must(tx->record_battery(reading(a.id, kT0 + i * kMinute, 90), kNoRetention));
    must(tx->record_battery(reading(b.id, kT0 + i * kMinute, 90), kNoRetention));
  }
  // Keeps a's readings from kT0 + 2 minutes on (the cut-off itself stays).
  must(tx->record_battery(reading(a.id, kT0 + 10 * kMinute, 85), kT0 + 2 * kMinute));
  EXPECT_EQ(times(must(tx->list_battery(a.id, 0, kT0 + kMinute * 60, 100))),
            (std::vector<std::int64_t>{kT0 + 2 * kMinute, kT0 + 10 * kMinute}));
  EXPECT_EQ(must(tx->list_battery(b.id, 0, kT0 + kMinute * 60, 100)).size(), 3U);
}

TEST_F(BatteryTest, AReadingOfAnUnknownDeviceIsNotFoundAndTheTransactionGoesOn) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(error_of(tx->record_battery(reading("no-such-dag", kT0, 50), kNoRetention)),
            StoreErrc::not_found);
  must(tx->record_battery(reading(device.id, kT0, 50), kNoRetention));
  must(tx->commit());
}

TEST_F(BatteryTest, ValuesOutOfRangeAreInvalidAndWriteNothing) {
  const Device device = seed();
  auto tx = begin();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const BatteryReading& bad :
       {BatteryReading{device.id, kT0, -0.1}, BatteryReading{device.id, kT0, 100.1},
        BatteryReading{device.id, kT0, nan}, BatteryReading{device.id, kT0, inf},
        BatteryReading{device.id, kT0, 50, -1.0}, BatteryReading{device.id, kT0, 50, nan},
        BatteryReading{device.id, kT0, 50, 4.0, -1}}) {
    EXPECT_EQ(error_of(tx->record_battery(bad, kNoRetention)), StoreErrc::invalid_argument)
        << bad.percent.value_or(-1);
  }
  EXPECT_TRUE(must(tx->list_battery(device.id, 0, kT0 + 1, 10)).empty());
  // The limits themselves are fine.
  must(tx->record_battery(BatteryReading{device.id, kT0, 0.0, 0.0, 0}, kNoRetention));
  must(tx->record_battery(BatteryReading{device.id, kT0 + 1, 100.0}, kNoRetention));
  must(tx->commit());
}

TEST_F(BatteryTest, ListLimitsAreChecked) {
  const Device device = seed();
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(error_of(tx->list_battery(device.id, 0, kT0, 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->list_battery(device.id, 0, kT0, 10'001)), StoreErrc::invalid_argument);
  EXPECT_TRUE(must(tx->list_battery(device.id, 0, kT0, 10'000)).empty());
}

TEST_F(BatteryTest, ReadOnlyTransactionsCannotRecord) {
  const Device device = seed();
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(error_of(tx->record_battery(reading(device.id, kT0, 50), kNoRetention)),
            StoreErrc::invalid_argument);
}

TEST_F(BatteryTest, RemovingTheDeviceOrItsAccountRemovesItsReadings) {
  auto tx = begin();
  const Account account = add_account(*tx);
  const Device a = add_device(*tx, account.id, "dag-a", "A");
  const Device b = add_device(*tx, account.id, "dag-b", "B");
  must(tx->record_battery(reading(a.id, kT0, 50), kNoRetention));
  must(tx->record_battery(reading(b.id, kT0, 50), kNoRetention));
  must(tx->delete_device(a.id));
  EXPECT_TRUE(must(tx->list_battery(a.id, 0, kT0 + 1, 10)).empty());
  EXPECT_EQ(must(tx->list_battery(b.id, 0, kT0 + 1, 10)).size(), 1U);
  must(tx->delete_account(account.id));
  EXPECT_TRUE(must(tx->list_battery(b.id, 0, kT0 + 1, 10)).empty());
  must(tx->commit());
}

}  // namespace
}  // namespace dag::store::test
