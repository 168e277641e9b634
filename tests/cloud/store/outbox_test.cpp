// The notification outbox: enqueue, claim with leases, done, retry, permanent failure.
#include <gtest/gtest.h>

#include <string>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

constexpr std::int64_t kLease = 60'000;

class OutboxTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    device_ = seed();
  }
  Intent intent(Transition transition = Transition::power_lost, std::int64_t created = kT0) {
    return Intent{
        device_.account_id,       device_.id,    device_.name, transition,
        protocol::UserState::off, created - 100, created,      R"({"batteryPercent":87})"};
  }
  Device device_;
};

TEST_F(OutboxTest, AnEnqueuedIntentIsPendingWithEveryField) {
  auto tx = begin();
  const Intent queued = intent();
  const auto id = must(tx->enqueue_intent(queued));
  const StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.id, id);
  EXPECT_EQ(stored.intent, queued);
  EXPECT_EQ(stored.status, IntentStatus::pending);
  EXPECT_EQ(stored.attempts, 0);
  EXPECT_EQ(stored.next_attempt_at_ms, kT0);
  EXPECT_EQ(stored.claimed_by, std::nullopt);
  EXPECT_EQ(stored.last_error, std::nullopt);
  EXPECT_EQ(stored.finished_at_ms, std::nullopt);
  EXPECT_EQ(must(tx->count_pending_intents()), 1);
  EXPECT_EQ(error_of(tx->get_intent(id + 1)), StoreErrc::not_found);
}

TEST_F(OutboxTest, ClaimsAreOldestFirstAndLeased) {
  auto tx = begin();
  const auto a = must(tx->enqueue_intent(intent(Transition::power_lost, kT0)));
  const auto b = must(tx->enqueue_intent(intent(Transition::power_back, kT0 + 10)));
  const auto c = must(tx->enqueue_intent(intent(Transition::contact_lost, kT0 + 20)));
  // Not yet created at kT0 + 5: only a.
  auto claimed = must(tx->claim_intents(kT0 + 5, 10, "notifier-1", kLease));
  ASSERT_EQ(claimed.size(), 1U);
  EXPECT_EQ(claimed[0].id, a);
  EXPECT_EQ(claimed[0].attempts, 1);
  EXPECT_EQ(claimed[0].claimed_by, "notifier-1");
  EXPECT_EQ(claimed[0].claimed_until_ms, kT0 + 5 + kLease);
  claimed = must(tx->claim_intents(kT0 + 100, 10, "notifier-2", kLease));
  ASSERT_EQ(claimed.size(), 2U);
  EXPECT_EQ(claimed[0].id, b);
  EXPECT_EQ(claimed[1].id, c);
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 100, 10, "notifier-3", kLease)).empty());
  EXPECT_EQ(must(tx->count_pending_intents()), 3);  // claimed is still pending
}

TEST_F(OutboxTest, AnExpiredLeaseMakesTheIntentClaimableAgainAndCountsTheAttempt) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent()));
  ASSERT_EQ(must(tx->claim_intents(kT0, 10, "notifier-1", kLease)).size(), 1U);
  EXPECT_TRUE(must(tx->claim_intents(kT0 + kLease - 1, 10, "notifier-2", kLease)).empty());
  const auto again = must(tx->claim_intents(kT0 + kLease, 10, "notifier-2", kLease));
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].id, id);
  EXPECT_EQ(again[0].attempts, 2);
  EXPECT_EQ(again[0].claimed_by, "notifier-2");
}

TEST_F(OutboxTest, DoneIsFinalAndIdempotent) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent()));
  must(tx->claim_intents(kT0, 10, "n", kLease));
  must(tx->mark_intent_done(id, kT0 + 50));
  must(tx->mark_intent_done(id, kT0 + 60));
  const StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.status, IntentStatus::done);
  EXPECT_EQ(stored.finished_at_ms, kT0 + 50);
  EXPECT_EQ(must(tx->count_pending_intents()), 0);
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 10 * kLease, 10, "n", kLease)).empty());
  EXPECT_EQ(error_of(tx->mark_intent_failed(id, "late", std::nullopt, kT0)), StoreErrc::conflict);
  EXPECT_EQ(error_of(tx->mark_intent_done(id + 100, kT0)), StoreErrc::not_found);
}

TEST_F(OutboxTest, ARetryWaitsUntilItsTimeUnclaimed) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent()));
  must(tx->claim_intents(kT0, 10, "n", kLease));
  must(tx->mark_intent_failed(id, "smtp: 451 try later", kT0 + 5000, kT0 + 10));
  StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.status, IntentStatus::pending);
  EXPECT_EQ(stored.next_attempt_at_ms, kT0 + 5000);
  EXPECT_EQ(stored.claimed_by, std::nullopt);
  EXPECT_EQ(stored.last_error, "smtp: 451 try later");
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 4999, 10, "n", kLease)).empty());
  const auto retried = must(tx->claim_intents(kT0 + 5000, 10, "n", kLease));
  ASSERT_EQ(retried.size(), 1U);
  EXPECT_EQ(retried[0].attempts, 2);
}

TEST_F(OutboxTest, APermanentFailureIsFinal) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent()));
  must(tx->mark_intent_failed(id, std::string(5000, 'x'), std::nullopt, kT0 + 7));
  const StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.status, IntentStatus::failed);
  EXPECT_EQ(stored.finished_at_ms, kT0 + 7);
  EXPECT_EQ(stored.last_error->size(), 1024U);  // truncated, not refused
  EXPECT_EQ(must(tx->count_pending_intents()), 0);
  EXPECT_EQ(error_of(tx->mark_intent_done(id, kT0)), StoreErrc::conflict);
  EXPECT_EQ(error_of(tx->mark_intent_failed(id, "again", kT0, kT0)), StoreErrc::conflict);
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 10 * kLease, 10, "n", kLease)).empty());
}

TEST_F(OutboxTest, BadReferencesAndPayloadsAreRefused) {
  auto tx = begin();
  Intent bad = intent();
  bad.account_id = "no-account";
  EXPECT_EQ(error_of(tx->enqueue_intent(bad)), StoreErrc::not_found);
  bad = intent();
  bad.device_id = "no-device";
  EXPECT_EQ(error_of(tx->enqueue_intent(bad)), StoreErrc::not_found);
  bad = intent();
  bad.payload = "{broken";
  EXPECT_EQ(error_of(tx->enqueue_intent(bad)), StoreErrc::invalid_argument);
  bad.payload = "42";
  EXPECT_EQ(error_of(tx->enqueue_intent(bad)), StoreErrc::invalid_argument);
  bad = intent();
  bad.device_name = std::string(129, 'n');
  EXPECT_EQ(error_of(tx->enqueue_intent(bad)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_intents(kT0, 0, "n", kLease)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_intents(kT0, 1, std::string(129, 'o'), kLease)),
            StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->count_pending_intents()), 0);
}

}  // namespace
}  // namespace dag::store::test
