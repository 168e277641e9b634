// What notification delivery keeps in the store: intents per target (cascading with the
// target), deferring an intent without failing it, the health of each target, webhook body
// formats, and e-mail verification tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

constexpr std::int64_t kLease = 60'000;
constexpr std::int64_t kHour = 3'600'000;

/// A token hash as the caller makes it (64 lower-case hex digits), distinct per `n`.
std::string token(int n) {
  std::string hash(64, 'a');
  const std::string digits = std::to_string(n);
  hash.replace(0, digits.size(), digits);
  return hash;
}

std::vector<std::string> ids_of(const std::vector<NotificationTarget>& targets) {
  std::vector<std::string> ids;
  ids.reserve(targets.size());
  for (const NotificationTarget& t : targets) ids.push_back(t.id);
  return ids;
}

/// The ids of claimed intents, sorted.
std::vector<std::int64_t> ids(const std::vector<StoredIntent>& intents) {
  std::vector<std::int64_t> out;
  out.reserve(intents.size());
  for (const auto& i : intents) out.push_back(i.id);
  std::sort(out.begin(), out.end());
  return out;
}

class NotificationsTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    device_ = seed();
  }

  static NewTarget email(const std::string& account_id, const std::string& address,
                         std::int64_t created = kT0, bool verified = false) {
    return NewTarget{account_id, TargetKind::email, address, verified, std::nullopt, created};
  }
  NotificationTarget add_email(Transaction& tx, const std::string& address,
                               std::int64_t created = kT0, bool verified = false) const {
    return must(tx.add_target(email(device_.account_id, address, created, verified)));
  }
  Intent intent(std::optional<std::string> target_id, std::int64_t created = kT0) const {
    Intent i{device_.account_id,       device_.id,    device_.name, Transition::power_lost,
             protocol::UserState::off, created - 100, created,      R"({"batteryPercent":87})"};
    i.target_id = std::move(target_id);
    return i;
  }
  /// The target as list_targets has it now.
  static NotificationTarget target_of(Transaction& tx, const NotificationTarget& target) {
    for (NotificationTarget& t : must(tx.list_targets(target.account_id))) {
      if (t.id == target.id) return t;
    }
    throw std::runtime_error("target " + target.id + " is gone");
  }

  Device device_;
};

// ---- targets: formats and health --------------------------------------------------------

TEST_F(NotificationsTest, NewTargetsHaveACleanRecordAndOnlyUnverifiedMailsWantVerification) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  const NotificationTarget verified = add_email(*tx, "admin@example.org", kT0 + 1, true);
  NewTarget sms{device_.account_id,
                TargetKind::webhook,
                "https://sms.example.org/send",
                false,
                std::string{"k"},
                kT0 + 2,
                std::string{"to=+4412345&text={{text}}"},
                std::string{"application/x-www-form-urlencoded"}};
  const NotificationTarget hook = must(tx->add_target(sms));
  EXPECT_TRUE(mail.verification_requested);
  EXPECT_FALSE(verified.verification_requested);
  EXPECT_FALSE(hook.verification_requested);
  EXPECT_EQ(hook.body_template, "to=+4412345&text={{text}}");
  EXPECT_EQ(hook.content_type, "application/x-www-form-urlencoded");
  EXPECT_EQ(mail.body_template, std::nullopt);
  EXPECT_EQ(mail.content_type, std::nullopt);
  for (const NotificationTarget& t : {mail, verified, hook}) {
    EXPECT_EQ(t.failure_count, 0);
    EXPECT_EQ(t.last_error, std::nullopt);
    EXPECT_EQ(t.last_error_at_ms, std::nullopt);
    EXPECT_EQ(t.last_success_at_ms, std::nullopt);
    EXPECT_EQ(t.verification_sent_at_ms, std::nullopt);
  }
  EXPECT_EQ(must(tx->list_targets(device_.account_id)),
            (std::vector<NotificationTarget>{mail, verified, hook}));
}

TEST_F(NotificationsTest, BodyFormatsAreForWebhooksAndBounded) {
  auto tx = begin();
  NewTarget target{device_.account_id, TargetKind::webhook, "https://example.org/hook", true};
  auto refused = [&](auto mutate) {
    NewTarget t = target;
    mutate(t);
    return error_of(tx->add_target(t));
  };
  EXPECT_EQ(refused([](NewTarget& t) {
              t.kind = TargetKind::email;
              t.body_template = "x";
            }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](NewTarget& t) {
              t.kind = TargetKind::ntfy;
              t.content_type = "text/plain";
            }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](NewTarget& t) { t.body_template = std::string(4097, 'b'); }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](NewTarget& t) { t.content_type = ""; }), StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](NewTarget& t) { t.content_type = std::string(129, 'c'); }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](NewTarget& t) { t.content_type = "text/plain\r\nX-Evil: 1"; }),
            StoreErrc::invalid_argument);
  EXPECT_TRUE(must(tx->list_targets(device_.account_id)).empty());
  target.body_template = std::string(4096, 'b');
  target.content_type = std::string(128, 'c');
  const NotificationTarget added = must(tx->add_target(target));
  EXPECT_EQ(added.body_template->size(), 4096U);
  // Either alone is fine too.
  target.address = "https://example.org/other";
  target.content_type.reset();
  must(tx->add_target(target));
}

TEST_F(NotificationsTest, DeliveriesAreRecordedOnTheTarget) {
  auto tx = begin();
  const NotificationTarget target = add_email(*tx, "owner@example.org", kT0, true);
  must(tx->record_delivery(target.id, false, "smtp: 451 try later", kT0 + 10));
  must(tx->record_delivery(target.id, false, "smtp: 550 no such user", kT0 + 20));
  NotificationTarget stored = target_of(*tx, target);
  EXPECT_EQ(stored.failure_count, 2);
  EXPECT_EQ(stored.last_error, "smtp: 550 no such user");
  EXPECT_EQ(stored.last_error_at_ms, kT0 + 20);
  EXPECT_EQ(stored.last_success_at_ms, std::nullopt);

  must(tx->record_delivery(target.id, true, "ignored", kT0 + 30));
  stored = target_of(*tx, target);
  EXPECT_EQ(stored.failure_count, 0);
  EXPECT_EQ(stored.last_success_at_ms, kT0 + 30);
  // The last error stays for the account to see, with its time.
  EXPECT_EQ(stored.last_error, "smtp: 550 no such user");
  EXPECT_EQ(stored.last_error_at_ms, kT0 + 20);

  must(tx->record_delivery(target.id, false, std::string(5000, 'x'), kT0 + 40));
  EXPECT_EQ(target_of(*tx, target).last_error->size(), 1024U);  // truncated, not refused
  // Never through a character: 1023 bytes and a 2-byte "é" keep 1023.
  must(tx->record_delivery(target.id, false, std::string(1023, 'x') + "\xc3\xa9", kT0 + 50));
  stored = target_of(*tx, target);
  EXPECT_EQ(stored.last_error, std::string(1023, 'x'));
  EXPECT_EQ(stored.failure_count, 2);

  EXPECT_EQ(error_of(tx->record_delivery("no-such-target", true, "", kT0)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->record_delivery("no-such-target", false, "e", kT0)), StoreErrc::not_found);
}

TEST_F(NotificationsTest, VerifyingClearsTheRequestAndUnverifyingDoesNotSetIt) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  must(tx->set_target_verified(mail.id, true));
  EXPECT_FALSE(target_of(*tx, mail).verification_requested);
  must(tx->set_target_verified(mail.id, false));
  EXPECT_FALSE(target_of(*tx, mail).verification_requested);
  EXPECT_TRUE(must(tx->targets_needing_verification(kT0, 10)).empty());
}

// ---- intents per target -----------------------------------------------------------------

TEST_F(NotificationsTest, AnIntentKeepsItsTargetThroughClaims) {
  auto tx = begin();
  const NotificationTarget target = add_email(*tx, "owner@example.org", kT0, true);
  const Intent queued = intent(target.id);
  const auto id = must(tx->enqueue_intent(queued));
  const auto none = must(tx->enqueue_intent(intent(std::nullopt, kT0 + 1)));
  EXPECT_EQ(must(tx->get_intent(id)).intent, queued);
  EXPECT_EQ(must(tx->get_intent(none)).intent.target_id, std::nullopt);
  const auto claimed = must(tx->claim_intents(kT0 + 1, 10, "notifier", kLease));
  ASSERT_EQ(claimed.size(), 2U);
  EXPECT_EQ(claimed[0].id, id);
  EXPECT_EQ(claimed[0].intent.target_id, target.id);
  EXPECT_EQ(claimed[1].id, none);
  EXPECT_EQ(claimed[1].intent.target_id, std::nullopt);
}

// A claim never splits a target's due intents: they would become two messages.
TEST_F(NotificationsTest, ClaimsTakeWholeTargetsInTheOrderOfTheirOldestIntent) {
  auto tx = begin();
  const NotificationTarget a = add_email(*tx, "a@example.org", kT0, true);
  const NotificationTarget b = add_email(*tx, "b@example.org", kT0, true);
  // Interleaved, as a storm's intents are: a, b, a, b, a, then one without a target.
  std::vector<std::int64_t> of_a;
  std::vector<std::int64_t> of_b;
  for (int k = 0; k < 5; ++k) {
    const auto& t = k % 2 == 0 ? a : b;
    (k % 2 == 0 ? of_a : of_b).push_back(must(tx->enqueue_intent(intent(t.id, kT0 + k))));
  }
  const auto lone = must(tx->enqueue_intent(intent(std::nullopt, kT0 + 5)));
  // A limit of 2 ends inside a's three: a comes whole, b waits.
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 10, 2, "n", kLease))), of_a);
  // Then b's two reach the limit; the lone intent waits for the next claim.
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 10, 2, "n", kLease))), of_b);
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 10, 2, "n", kLease))),
            std::vector<std::int64_t>{lone});
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 10, 2, "n", kLease)).empty());
}

// The claim ranks targets from the oldest due intents only; a chosen target still comes
// with its due intents that are younger than those, and one not yet due stays.
TEST_F(NotificationsTest, AClaimTakesAChosenTargetsYoungerIntentsToo) {
  auto tx = begin();
  const NotificationTarget a = add_email(*tx, "a@example.org", kT0, true);
  const NotificationTarget b = add_email(*tx, "b@example.org", kT0, true);
  const NotificationTarget c = add_email(*tx, "c@example.org", kT0, true);
  std::vector<std::int64_t> of_a;
  of_a.push_back(must(tx->enqueue_intent(intent(a.id, kT0))));
  const auto of_b = must(tx->enqueue_intent(intent(b.id, kT0 + 1)));
  const auto of_c = must(tx->enqueue_intent(intent(c.id, kT0 + 2)));
  of_a.push_back(must(tx->enqueue_intent(intent(a.id, kT0 + 3))));
  of_a.push_back(must(tx->enqueue_intent(intent(a.id, kT0 + 4))));
  const auto later = must(tx->enqueue_intent(intent(a.id, kT0 + 100)));
  // A limit of 2: a (three due intents, two of them younger than b's and c's) reaches it.
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 10, 2, "n", kLease))), of_a);
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 10, 2, "n", kLease))),
            (std::vector<std::int64_t>{of_b, of_c}));
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 10, 2, "n", kLease)).empty());
  EXPECT_EQ(ids(must(tx->claim_intents(kT0 + 100, 2, "n", kLease))),
            std::vector<std::int64_t>{later});
}

TEST_F(NotificationsTest, AnUnknownTargetOrAnotherAccountsIsNotFoundAndQueuesNothing) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->enqueue_intent(intent(std::string{"no-such-target"}))),
            StoreErrc::not_found);
  const Account bob = add_account(*tx, "bob");
  const auto bobs =
      must(tx->add_target(NewTarget{bob.id, TargetKind::email, "bob@example.org", true}));
  EXPECT_EQ(error_of(tx->enqueue_intent(intent(bobs.id))), StoreErrc::not_found);
  EXPECT_EQ(must(tx->count_pending_intents()), 0);
  // The transaction goes on.
  must(tx->enqueue_intent(intent(std::nullopt)));
  must(tx->commit());
}

TEST_F(NotificationsTest, RemovingATargetRemovesItsIntentsOnly) {
  std::int64_t a1 = 0;
  std::int64_t a2 = 0;
  std::int64_t b1 = 0;
  std::int64_t none = 0;
  std::string a;
  {
    auto tx = begin();
    a = add_email(*tx, "a@example.org", kT0, true).id;
    const std::string b = add_email(*tx, "b@example.org", kT0, true).id;
    a1 = must(tx->enqueue_intent(intent(a)));
    b1 = must(tx->enqueue_intent(intent(b)));
    none = must(tx->enqueue_intent(intent(std::nullopt)));
    a2 = must(tx->enqueue_intent(intent(a, kT0 + 5)));
    must(tx->mark_intent_done(a2, kT0 + 6));  // finished ones go too
    must(tx->commit());
  }
  auto tx = begin();
  must(tx->remove_target(a));
  EXPECT_EQ(error_of(tx->get_intent(a1)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->get_intent(a2)), StoreErrc::not_found);
  EXPECT_EQ(must(tx->get_intent(b1)).status, IntentStatus::pending);
  EXPECT_EQ(must(tx->get_intent(none)).status, IntentStatus::pending);
  EXPECT_EQ(must(tx->count_pending_intents()), 2);
  must(tx->commit());
}

// ---- whether a storm may still add to the due intents ----------------------------------

TEST_F(NotificationsTest, DueIntentsMayGrowWhileAnAccountHasADagThatIsNotToldAsCut) {
  auto tx = begin();
  const auto second =
      add_device(*tx, device_.account_id, "7d2f4e1b-6e3c-4d2f-8a2b-3c4d5e6f7081", "Ring B");
  const auto other = add_account(*tx, "bob");
  add_device(*tx, other.id, "8e3a5f2c-7f4d-4e3a-9b3c-4d5e6f708192", "Bob's");  // never reported
  const auto cut_and_told = [&](const std::string& id, bool told) {
    DeviceState s;
    s.power = protocol::Power::off;
    s.power_since_ms = kT0;
    s.notified_power_lost = told;
    must(tx->update_device_state(id, s));
  };
  EXPECT_FALSE(must(tx->due_intents_may_grow(kT0)));  // nothing is waiting
  must(tx->enqueue_intent(intent(std::nullopt, kT0)));
  EXPECT_TRUE(must(tx->due_intents_may_grow(kT0)));       // neither dag has reported
  EXPECT_FALSE(must(tx->due_intents_may_grow(kT0 - 1)));  // not due yet: not waiting
  cut_and_told(device_.id, true);
  EXPECT_TRUE(must(tx->due_intents_may_grow(kT0)));  // Ring B may still be cut
  cut_and_told(second.id, false);
  EXPECT_TRUE(must(tx->due_intents_may_grow(kT0)));  // Ring B's grace still runs
  cut_and_told(second.id, true);
  EXPECT_FALSE(must(tx->due_intents_may_grow(kT0)));  // Bob's dag is another account's
  DeviceState on;
  on.power = protocol::Power::on;
  must(tx->update_device_state(second.id, on));
  EXPECT_TRUE(must(tx->due_intents_may_grow(kT0)));
  must(tx->set_device_revoked(second.id, true));  // a revoked dag reports nothing more
  EXPECT_FALSE(must(tx->due_intents_may_grow(kT0)));
  must(tx->commit());
}

// ---- deferring --------------------------------------------------------------------------

TEST_F(NotificationsTest, ADeferredIntentIsHeldUnclaimedWithoutFailing) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent(std::nullopt)));
  ASSERT_EQ(must(tx->claim_intents(kT0, 10, "notifier-1", kLease)).size(), 1U);
  must(tx->defer_intent(id, kT0 + 30'000));
  StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.status, IntentStatus::pending);
  EXPECT_EQ(stored.next_attempt_at_ms, kT0 + 30'000);
  EXPECT_EQ(stored.claimed_by, std::nullopt);
  EXPECT_EQ(stored.claimed_until_ms, std::nullopt);
  EXPECT_EQ(stored.last_error, std::nullopt);
  EXPECT_EQ(stored.attempts, 0);  // the claim's attempt is given back
  EXPECT_EQ(must(tx->count_pending_intents()), 1);
  // Held although no lease is live any more, then claimable at until_ms by anyone.
  EXPECT_TRUE(must(tx->claim_intents(kT0 + 29'999, 10, "notifier-2", kLease)).empty());
  const auto again = must(tx->claim_intents(kT0 + 30'000, 10, "notifier-2", kLease));
  ASSERT_EQ(again.size(), 1U);
  EXPECT_EQ(again[0].id, id);
  EXPECT_EQ(again[0].attempts, 1);
  EXPECT_EQ(again[0].claimed_by, "notifier-2");
}

TEST_F(NotificationsTest, DeferringKeepsTheLastErrorAndCountsNoAttemptOfAnUnclaimedIntent) {
  auto tx = begin();
  const auto id = must(tx->enqueue_intent(intent(std::nullopt)));
  must(tx->claim_intents(kT0, 10, "n", kLease));
  must(tx->mark_intent_failed(id, "http: 503", kT0 + 1'000, kT0 + 10));
  // Pending and unclaimed (waiting for its retry): the time moves, nothing else.
  must(tx->defer_intent(id, kT0 + 5'000));
  StoredIntent stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.next_attempt_at_ms, kT0 + 5'000);
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_EQ(stored.last_error, "http: 503");
  // Earlier works as well (a window that ends sooner).
  must(tx->defer_intent(id, kT0 + 2'000));
  EXPECT_EQ(must(tx->get_intent(id)).next_attempt_at_ms, kT0 + 2'000);
  // Claimed again, deferred again: back to 1.
  ASSERT_EQ(must(tx->claim_intents(kT0 + 2'000, 10, "n", kLease)).at(0).attempts, 2);
  must(tx->defer_intent(id, kT0 + 9'000));
  stored = must(tx->get_intent(id));
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_EQ(stored.last_error, "http: 503");
  EXPECT_EQ(stored.status, IntentStatus::pending);
}

TEST_F(NotificationsTest, OnlyPendingIntentsAreDeferred) {
  auto tx = begin();
  const auto done = must(tx->enqueue_intent(intent(std::nullopt)));
  const auto failed = must(tx->enqueue_intent(intent(std::nullopt)));
  must(tx->mark_intent_done(done, kT0 + 1));
  must(tx->mark_intent_failed(failed, "gone", std::nullopt, kT0 + 1));
  EXPECT_EQ(error_of(tx->defer_intent(done, kT0 + 100)), StoreErrc::conflict);
  EXPECT_EQ(error_of(tx->defer_intent(failed, kT0 + 100)), StoreErrc::conflict);
  EXPECT_EQ(error_of(tx->defer_intent(failed + 100, kT0 + 100)), StoreErrc::not_found);
  EXPECT_EQ(must(tx->get_intent(done)).status, IntentStatus::done);
  EXPECT_EQ(must(tx->get_intent(failed)).status, IntentStatus::failed);
  must(tx->commit());
}

// ---- e-mail verification ----------------------------------------------------------------

TEST_F(NotificationsTest, AMailedTokenVerifiesItsTargetOnce) {
  NotificationTarget mail;
  {
    auto tx = begin();
    mail = add_email(*tx, "owner@example.org");
    add_email(*tx, "admin@example.org", kT0, true);
    must(tx->add_target(
        NewTarget{device_.account_id, TargetKind::webhook, "https://example.org/h", false}));
    must(tx->commit());
  }
  {
    // The notifier: who needs a mail, then the mail's token.
    auto tx = begin();
    const auto needing = must(tx->targets_needing_verification(kT0 + 1, 10));
    ASSERT_EQ(needing.size(), 1U);
    EXPECT_EQ(needing[0], mail);
    must(tx->create_verification(mail.id, token(1), kT0 + 2, kT0 + 2 + kHour));
    const NotificationTarget sent = target_of(*tx, mail);
    EXPECT_FALSE(sent.verification_requested);
    EXPECT_EQ(sent.verification_sent_at_ms, kT0 + 2);
    EXPECT_FALSE(sent.verified);
    EXPECT_TRUE(must(tx->targets_needing_verification(kT0 + 3, 10)).empty());
    must(tx->commit());
  }
  {
    // The owner follows the link.
    auto tx = begin();
    EXPECT_EQ(must(tx->consume_verification(token(1), kT0 + 1'000)), mail.id);
    EXPECT_TRUE(target_of(*tx, mail).verified);
    must(tx->commit());
  }
  auto tx = begin();
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0 + 2'000)), StoreErrc::not_found);
  EXPECT_TRUE(target_of(*tx, mail).verified);
  EXPECT_TRUE(must(tx->targets_needing_verification(kT0 + 3'000, 10)).empty());
}

TEST_F(NotificationsTest, ExpiredAndUnknownTokensAreNotFoundAndVerifyNothing) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  must(tx->create_verification(mail.id, token(1), kT0, kT0 + kHour));
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0 + kHour)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0 + 2 * kHour)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->consume_verification(token(2), kT0)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->consume_verification("", kT0)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->consume_verification("not hex at all", kT0)), StoreErrc::not_found);
  EXPECT_FALSE(target_of(*tx, mail).verified);
  // One millisecond before the expiry it still works.
  EXPECT_EQ(must(tx->consume_verification(token(1), kT0 + kHour - 1)), mail.id);
  must(tx->commit());
}

TEST_F(NotificationsTest, ConsumingOneTokenSpendsTheTargetsOthers) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  must(tx->create_verification(mail.id, token(1), kT0, kT0 + kHour));
  must(tx->create_verification(mail.id, token(2), kT0 + 10, kT0 + kHour));
  EXPECT_EQ(must(tx->consume_verification(token(2), kT0 + 20)), mail.id);
  must(tx->set_target_verified(mail.id, false));
  // The older mail's link cannot verify the target again.
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0 + 30)), StoreErrc::not_found);
  EXPECT_FALSE(target_of(*tx, mail).verified);
}

TEST_F(NotificationsTest, TokensOfAnotherTargetStayValid) {
  auto tx = begin();
  const NotificationTarget a = add_email(*tx, "a@example.org");
  const NotificationTarget b = add_email(*tx, "b@example.org");
  must(tx->create_verification(a.id, token(1), kT0, kT0 + kHour));
  must(tx->create_verification(b.id, token(2), kT0, kT0 + kHour));
  EXPECT_EQ(must(tx->consume_verification(token(1), kT0 + 1)), a.id);
  EXPECT_FALSE(target_of(*tx, b).verified);
  EXPECT_EQ(must(tx->consume_verification(token(2), kT0 + 1)), b.id);
}

TEST_F(NotificationsTest, CreatingATokenChecksItsArgumentsAndWritesNothingWhenRefused) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  const NotificationTarget other = add_email(*tx, "other@example.org");
  EXPECT_EQ(error_of(tx->create_verification("no-such-target", token(1), kT0, kT0 + kHour)),
            StoreErrc::not_found);
  must(tx->create_verification(mail.id, token(1), kT0, kT0 + kHour));
  EXPECT_EQ(error_of(tx->create_verification(other.id, token(1), kT0 + 5, kT0 + kHour)),
            StoreErrc::conflict);
  const NotificationTarget untouched = target_of(*tx, other);
  EXPECT_TRUE(untouched.verification_requested);
  EXPECT_EQ(untouched.verification_sent_at_ms, std::nullopt);
  std::string upper = token(2);
  upper[10] = 'A';
  for (const std::string& bad :
       {upper, std::string(63, 'a'), std::string(65, 'a'), std::string(64, 'g'), std::string{}}) {
    EXPECT_EQ(error_of(tx->create_verification(other.id, bad, kT0, kT0 + kHour)),
              StoreErrc::invalid_argument)
        << bad;
  }
  EXPECT_EQ(error_of(tx->create_verification(other.id, token(3), kT0, kT0)),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->create_verification(other.id, token(3), kT0, kT0 - 1)),
            StoreErrc::invalid_argument);
  EXPECT_TRUE(target_of(*tx, other).verification_requested);
  must(tx->commit());
}

TEST_F(NotificationsTest, NeedingVerificationIsOldestFirstBoundedAndAsOfNow) {
  auto tx = begin();
  const NotificationTarget late = add_email(*tx, "late@example.org", kT0 + 50);
  const NotificationTarget second = add_email(*tx, "second@example.org", kT0 + 20);
  const NotificationTarget first = add_email(*tx, "first@example.org", kT0 + 10);
  EXPECT_EQ(ids_of(must(tx->targets_needing_verification(kT0 + 100, 10))),
            (std::vector<std::string>{first.id, second.id, late.id}));
  EXPECT_EQ(ids_of(must(tx->targets_needing_verification(kT0 + 100, 2))),
            (std::vector<std::string>{first.id, second.id}));
  EXPECT_EQ(ids_of(must(tx->targets_needing_verification(kT0 + 49, 10))),
            (std::vector<std::string>{first.id, second.id}));
  EXPECT_EQ(error_of(tx->targets_needing_verification(kT0, 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->targets_needing_verification(kT0, 1001)), StoreErrc::invalid_argument);
  // Another account's targets are listed too: the notifier serves every account.
  const Account bob = add_account(*tx, "bob");
  const auto bobs = must(tx->add_target(email(bob.id, "bob@example.org", kT0)));
  EXPECT_EQ(must(tx->targets_needing_verification(kT0 + 100, 10)).at(0).id, bobs.id);
}

TEST_F(NotificationsTest, ResendingIsRateLimited) {
  constexpr std::int64_t kInterval = std::int64_t{10} * 60'000;
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  // Never mailed: granted at once (it is requested already).
  EXPECT_TRUE(must(tx->request_verification(mail.id, kT0, kInterval)));
  must(tx->create_verification(mail.id, token(1), kT0 + 100, kT0 + kHour));
  EXPECT_FALSE(must(tx->request_verification(mail.id, kT0 + 100 + kInterval - 1, kInterval)));
  EXPECT_FALSE(target_of(*tx, mail).verification_requested);
  // A clock that went back counts as "just sent".
  EXPECT_FALSE(must(tx->request_verification(mail.id, kT0, kInterval)));
  EXPECT_TRUE(must(tx->request_verification(mail.id, kT0 + 100 + kInterval, kInterval)));
  EXPECT_TRUE(target_of(*tx, mail).verification_requested);
  EXPECT_EQ(ids_of(must(tx->targets_needing_verification(kT0 + 100 + kInterval, 10))),
            std::vector<std::string>{mail.id});
  // The new mail's token and the old one's both work until one is used.
  must(tx->create_verification(mail.id, token(2), kT0 + 200 + kInterval, kT0 + kHour));
  EXPECT_EQ(must(tx->consume_verification(token(1), kT0 + 300 + kInterval)), mail.id);
  // Verified: nothing to resend.
  EXPECT_FALSE(must(tx->request_verification(mail.id, kT0 + 100 * kInterval, kInterval)));
  EXPECT_FALSE(target_of(*tx, mail).verification_requested);
}

TEST_F(NotificationsTest, RequestingVerificationRefusesWhatCannotBeMailed) {
  auto tx = begin();
  const auto hook = must(tx->add_target(
      NewTarget{device_.account_id, TargetKind::webhook, "https://example.org/h", false}));
  EXPECT_EQ(error_of(tx->request_verification(hook.id, kT0, 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->request_verification("no-such-target", kT0, 0)), StoreErrc::not_found);
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  EXPECT_EQ(error_of(tx->request_verification(mail.id, kT0, -1)), StoreErrc::invalid_argument);
  EXPECT_TRUE(must(tx->request_verification(mail.id, kT0, 0)));
  must(tx->commit());
}

TEST_F(NotificationsTest, RemovingATargetRemovesItsTokens) {
  auto tx = begin();
  const NotificationTarget mail = add_email(*tx, "owner@example.org");
  must(tx->create_verification(mail.id, token(1), kT0, kT0 + kHour));
  must(tx->remove_target(mail.id));
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0 + 1)), StoreErrc::not_found);
  // The hash is free again.
  const NotificationTarget again = add_email(*tx, "owner@example.org");
  must(tx->create_verification(again.id, token(1), kT0 + 2, kT0 + kHour));
  EXPECT_EQ(must(tx->consume_verification(token(1), kT0 + 3)), again.id);
  must(tx->commit());
}

TEST_F(NotificationsTest, ReadOnlyTransactionsReadButDoNotWrite) {
  {
    auto tx = begin();
    add_email(*tx, "owner@example.org");
    must(tx->commit());
  }
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(must(tx->targets_needing_verification(kT0, 10)).size(), 1U);
  const std::string id = must(tx->targets_needing_verification(kT0, 10)).at(0).id;
  EXPECT_EQ(error_of(tx->create_verification(id, token(1), kT0, kT0 + kHour)),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->request_verification(id, kT0, 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->consume_verification(token(1), kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->record_delivery(id, true, "", kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->defer_intent(1, kT0)), StoreErrc::invalid_argument);
}

}  // namespace
}  // namespace dag::store::test
