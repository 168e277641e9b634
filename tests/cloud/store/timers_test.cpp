// Durable debounce timers: one per (device, kind), claims with leases. Time is explicit.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using TimersTest = StoreTest;

constexpr std::int64_t kLease = 30'000;

Timer disconnect(const std::string& device_id, std::int64_t due, const std::string& marker) {
  return Timer{std::string{kDisconnectTimer}, device_id, due, marker};
}

TEST_F(TimersTest, ScheduledTimerCanBeFound) {
  const Device device = seed();
  auto tx = begin();
  const Timer timer = disconnect(device.id, kT0 + 900'000, "m1");
  const auto id = must(tx->schedule_timer(timer));
  const auto found = must(tx->find_timer(device.id, kDisconnectTimer));
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, (StoredTimer{id, timer, std::nullopt, std::nullopt}));
  EXPECT_EQ(must(tx->find_timer(device.id, kPowerOffGraceTimer)), std::nullopt);
}

TEST_F(TimersTest, SchedulingAgainReplacesWithANewIdAndNoClaim) {
  const Device device = seed();
  auto tx = begin();
  const auto first = must(tx->schedule_timer(disconnect(device.id, kT0, "m1")));
  ASSERT_EQ(must(tx->claim_due_timers(kT0, 10, "replica-a", kLease)).size(), 1U);
  const auto second = must(tx->schedule_timer(disconnect(device.id, kT0 + 5000, "m2")));
  EXPECT_NE(first, second);
  const auto found = must(tx->find_timer(device.id, kDisconnectTimer));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, second);
  EXPECT_EQ(found->timer.marker, "m2");
  EXPECT_EQ(found->claimed_by, std::nullopt);
  // The replica that claimed the first cannot complete the replacement.
  EXPECT_EQ(error_of(tx->complete_timer(first)), StoreErrc::not_found);
  EXPECT_TRUE(must(tx->find_timer(device.id, kDisconnectTimer)));
  // Another kind is another timer.
  must(tx->schedule_timer(Timer{std::string{kPowerOffGraceTimer}, device.id, kT0, ""}));
  EXPECT_TRUE(must(tx->find_timer(device.id, kDisconnectTimer)));
  EXPECT_TRUE(must(tx->find_timer(device.id, kPowerOffGraceTimer)));
}

TEST_F(TimersTest, CancelRemovesAndReportsWhetherThereWasOne) {
  const Device device = seed();
  auto tx = begin();
  must(tx->schedule_timer(disconnect(device.id, kT0, "m1")));
  EXPECT_TRUE(must(tx->cancel_timer(device.id, kDisconnectTimer)));
  EXPECT_FALSE(must(tx->cancel_timer(device.id, kDisconnectTimer)));
  EXPECT_EQ(must(tx->find_timer(device.id, kDisconnectTimer)), std::nullopt);
  EXPECT_TRUE(must(tx->claim_due_timers(kT0 + 1'000'000, 10, "r", kLease)).empty());
  EXPECT_FALSE(must(tx->cancel_timer("unknown", "whatever")));
}

TEST_F(TimersTest, OnlyDueTimersAreClaimedEarliestFirstUpToTheLimit) {
  auto tx = begin();
  const Account account = add_account(*tx);
  for (int i = 0; i < 5; ++i) add_device(*tx, account.id, "dag-" + std::to_string(i));
  // dag-4 is due first, dag-0 last; dag-3 and dag-4 are not due at kT0 + 2500.
  for (int i = 0; i < 5; ++i) {
    must(tx->schedule_timer(disconnect(
        "dag-" + std::to_string(i), kT0 + (4 - i) * std::int64_t{1000}, "m" + std::to_string(i))));
  }
  const auto claimed = must(tx->claim_due_timers(kT0 + 2500, 2, "replica-a", kLease));
  ASSERT_EQ(claimed.size(), 2U);
  EXPECT_EQ(claimed[0].timer.device_id, "dag-4");
  EXPECT_EQ(claimed[1].timer.device_id, "dag-3");
  EXPECT_EQ(claimed[0].claimed_by, "replica-a");
  EXPECT_EQ(claimed[0].claimed_until_ms, kT0 + 2500 + kLease);
  const auto rest = must(tx->claim_due_timers(kT0 + 2500, 10, "replica-a", kLease));
  ASSERT_EQ(rest.size(), 1U);
  EXPECT_EQ(rest[0].timer.device_id, "dag-2");
}

TEST_F(TimersTest, ALiveLeaseKeepsOthersOffAndAnExpiredOneLetsThemIn) {
  const Device device = seed();
  auto tx = begin();
  const auto id = must(tx->schedule_timer(disconnect(device.id, kT0, "m1")));
  ASSERT_EQ(must(tx->claim_due_timers(kT0, 10, "replica-a", kLease)).size(), 1U);
  // Replica B, while A's lease lives: nothing. Nor A itself.
  EXPECT_TRUE(must(tx->claim_due_timers(kT0 + kLease - 1, 10, "replica-b", kLease)).empty());
  EXPECT_TRUE(must(tx->claim_due_timers(kT0 + 1, 10, "replica-a", kLease)).empty());
  EXPECT_EQ(must(tx->next_timer_due_ms()), kT0 + kLease);
  // A died; once its lease has run out B gets the timer.
  const auto taken = must(tx->claim_due_timers(kT0 + kLease, 10, "replica-b", kLease));
  ASSERT_EQ(taken.size(), 1U);
  EXPECT_EQ(taken[0].id, id);
  EXPECT_EQ(taken[0].claimed_by, "replica-b");
  must(tx->complete_timer(id));
  EXPECT_EQ(must(tx->find_timer(device.id, kDisconnectTimer)), std::nullopt);
  EXPECT_EQ(error_of(tx->complete_timer(id)), StoreErrc::not_found);
  EXPECT_EQ(must(tx->next_timer_due_ms()), std::nullopt);
}

TEST_F(TimersTest, NextDueIsTheEarliestClaimableTime) {
  auto tx = begin();
  const Account account = add_account(*tx);
  add_device(*tx, account.id, "dag-1");
  add_device(*tx, account.id, "dag-2");
  EXPECT_EQ(must(tx->next_timer_due_ms()), std::nullopt);
  must(tx->schedule_timer(disconnect("dag-1", kT0 + 9000, "a")));
  must(tx->schedule_timer(disconnect("dag-2", kT0 + 4000, "b")));
  EXPECT_EQ(must(tx->next_timer_due_ms()), kT0 + 4000);
  must(tx->claim_due_timers(kT0 + 4000, 10, "r", 10'000));  // dag-2 leased until +14000
  EXPECT_EQ(must(tx->next_timer_due_ms()), kT0 + 9000);
}

TEST_F(TimersTest, TimersSurviveReopeningTheStore) {
  const Device device = seed();
  {
    auto tx = begin();
    must(tx->schedule_timer(disconnect(device.id, kT0 + 900'000, "m1")));
    must(tx->commit());
  }
  store_.reset();
  store_ = open();
  auto tx = begin();
  EXPECT_TRUE(must(tx->claim_due_timers(kT0 + 899'999, 10, "r", kLease)).empty());
  const auto fired = must(tx->claim_due_timers(kT0 + 900'000, 10, "r", kLease));
  ASSERT_EQ(fired.size(), 1U);
  EXPECT_EQ(fired[0].timer.marker, "m1");
}

TEST_F(TimersTest, BadArgumentsAreInvalid) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(error_of(tx->schedule_timer(Timer{"", device.id, kT0, ""})),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->schedule_timer(Timer{std::string(65, 'k'), device.id, kT0, ""})),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->schedule_timer(disconnect(device.id, kT0, std::string(257, 'm')))),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->schedule_timer(disconnect("unknown", kT0, ""))), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->claim_due_timers(kT0, 0, "r", kLease)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_due_timers(kT0, 1001, "r", kLease)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_due_timers(kT0, 1, "", kLease)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_due_timers(kT0, 1, "r", 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_due_timers(std::numeric_limits<std::int64_t>::max(), 1, "r", 1)),
            StoreErrc::invalid_argument);
}

}  // namespace
}  // namespace dag::store::test
