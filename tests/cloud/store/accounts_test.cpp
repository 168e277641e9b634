// Accounts and notification targets.
#include <gtest/gtest.h>

#include <string>

#include "dag/common/encoding.hpp"

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using AccountsTest = StoreTest;

TEST_F(AccountsTest, CreatedAccountHasAUuidAndTheDefaultSettings) {
  auto tx = begin();
  const Account account = must(tx->create_account("alice", "hash-1", kT0));
  EXPECT_TRUE(is_uuid(account.id));
  EXPECT_EQ(account.username, "alice");
  EXPECT_EQ(account.password_hash, "hash-1");
  EXPECT_EQ(account.created_at_ms, kT0);
  // The schema's column defaults and the struct's defaults must agree.
  EXPECT_EQ(account.settings, AccountSettings{});
  EXPECT_EQ(account.settings.disconnect_grace_s, 900);
  EXPECT_EQ(account.settings.low_battery_percent, 20);
  EXPECT_EQ(account.settings.time_zone, "UTC");
  EXPECT_EQ(must(tx->get_account(account.id)), account);
  EXPECT_EQ(must(tx->find_account_by_username("alice")), account);
}

TEST_F(AccountsTest, UsernamesAreUniqueAndTheTransactionGoesOnAfterAConflict) {
  auto tx = begin();
  add_account(*tx, "alice");
  EXPECT_EQ(error_of(tx->create_account("alice", "other", kT0)), StoreErrc::conflict);
  add_account(*tx, "bob");
  must(tx->commit());
  auto read = begin(TxMode::read_only);
  const auto accounts = must(read->list_accounts());
  ASSERT_EQ(accounts.size(), 2U);
  EXPECT_EQ(accounts[0].username, "alice");
  EXPECT_EQ(accounts[1].username, "bob");
}

TEST_F(AccountsTest, UsernamesCompareExactly) {
  auto tx = begin();
  add_account(*tx, "alice");
  EXPECT_EQ(error_of(tx->find_account_by_username("Alice")), StoreErrc::not_found);
  add_account(*tx, "Alice");  // normalising case is the caller's business
}

TEST_F(AccountsTest, UnknownOrMalformedIdsAreNotFound) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->get_account("00000000-0000-4000-8000-000000000000")),
            StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->get_account("")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->get_account(std::string("\0x'; DROP TABLE accounts;--", 27))),
            StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->find_account_by_username("nobody")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->update_account_settings("nope", AccountSettings{})), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->set_password_hash("nope", "h")), StoreErrc::not_found);
}

TEST_F(AccountsTest, CreateRejectsEmptyOrOversizedFields) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->create_account("", "h", kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->create_account(std::string(129, 'u'), "h", kT0)),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->create_account("alice", "", kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->create_account("alice", std::string(513, 'h'), kT0)),
            StoreErrc::invalid_argument);
  add_account(*tx, std::string(128, 'u'));
}

TEST_F(AccountsTest, SettingsAndPasswordHashAreUpdated) {
  auto tx = begin();
  const Account account = add_account(*tx);
  AccountSettings settings;
  settings.power_off_grace_s = 120;
  settings.disconnect_grace_s = 5;
  settings.low_battery_percent = 35;
  settings.time_zone = "Europe/London";
  settings.notify_power_lost = false;
  settings.notify_power_back = false;
  settings.notify_contact_lost = true;
  settings.notify_dag_back = false;
  settings.notify_battery_low = false;
  must(tx->update_account_settings(account.id, settings));
  must(tx->set_password_hash(account.id, "hash-2"));
  must(tx->commit());
  auto read = begin(TxMode::read_only);
  const Account stored = must(read->get_account(account.id));
  EXPECT_EQ(stored.settings, settings);
  EXPECT_EQ(stored.password_hash, "hash-2");
}

TEST_F(AccountsTest, SettingsOutOfRangeAreRefusedAndNothingChanges) {
  auto tx = begin();
  const Account account = add_account(*tx);
  auto refused = [&](auto mutate) {
    AccountSettings settings;
    mutate(settings);
    return error_of(tx->update_account_settings(account.id, settings));
  };
  EXPECT_EQ(refused([](auto& s) { s.power_off_grace_s = -1; }), StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](auto& s) { s.disconnect_grace_s = kMaxGraceSeconds + 1; }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](auto& s) { s.low_battery_percent = 101; }), StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](auto& s) { s.time_zone = ""; }), StoreErrc::invalid_argument);
  EXPECT_EQ(refused([](auto& s) { s.time_zone = std::string(65, 'z'); }),
            StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->get_account(account.id)).settings, AccountSettings{});
}

using TargetsTest = StoreTest;

TEST_F(TargetsTest, AddedTargetsAreListedOldestFirstWithTheirFields) {
  auto tx = begin();
  const Account account = add_account(*tx);
  const auto mail = must(tx->add_target(
      NewTarget{account.id, TargetKind::email, "owner@example.org", false, std::nullopt, kT0}));
  const auto hook =
      must(tx->add_target(NewTarget{account.id, TargetKind::webhook, "https://example.org/hook",
                                    true, std::string{"s3cret"}, kT0 + 1}));
  EXPECT_TRUE(is_uuid(mail.id));
  EXPECT_EQ(mail.account_id, account.id);
  EXPECT_FALSE(mail.verified);
  EXPECT_EQ(mail.secret, std::nullopt);
  EXPECT_EQ(hook.kind, TargetKind::webhook);
  EXPECT_TRUE(hook.verified);
  EXPECT_EQ(hook.secret, "s3cret");
  const auto listed = must(tx->list_targets(account.id));
  ASSERT_EQ(listed.size(), 2U);
  EXPECT_EQ(listed[0], mail);
  EXPECT_EQ(listed[1], hook);
  EXPECT_TRUE(must(tx->list_targets("unknown-account")).empty());
}

TEST_F(TargetsTest, VerifyAndRemove) {
  auto tx = begin();
  const Account account = add_account(*tx);
  const auto target = must(tx->add_target(
      NewTarget{account.id, TargetKind::ntfy, "https://ntfy.sh/dag", false, std::nullopt, kT0}));
  must(tx->set_target_verified(target.id, true));
  EXPECT_TRUE(must(tx->list_targets(account.id)).at(0).verified);
  must(tx->set_target_verified(target.id, false));
  EXPECT_FALSE(must(tx->list_targets(account.id)).at(0).verified);
  must(tx->remove_target(target.id));
  EXPECT_TRUE(must(tx->list_targets(account.id)).empty());
  EXPECT_EQ(error_of(tx->remove_target(target.id)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->set_target_verified(target.id, true)), StoreErrc::not_found);
}

TEST_F(TargetsTest, SameAddressTwiceIsAConflictButAnotherKindIsNot) {
  auto tx = begin();
  const Account account = add_account(*tx);
  NewTarget target{account.id, TargetKind::email, "a@example.org", false, std::nullopt, kT0};
  must(tx->add_target(target));
  EXPECT_EQ(error_of(tx->add_target(target)), StoreErrc::conflict);
  target.kind = TargetKind::webhook;
  must(tx->add_target(target));
  // Another account may use the same address.
  const Account other = add_account(*tx, "bob");
  target.account_id = other.id;
  must(tx->add_target(target));
}

TEST_F(TargetsTest, UnknownAccountIsNotFoundAndBadFieldsAreInvalid) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->add_target(NewTarget{"no-such-account", TargetKind::email, "a@example.org",
                                              false, std::nullopt, kT0})),
            StoreErrc::not_found);
  const Account account = add_account(*tx);
  EXPECT_EQ(error_of(tx->add_target(
                NewTarget{account.id, TargetKind::email, "", false, std::nullopt, kT0})),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->add_target(NewTarget{account.id, TargetKind::email, std::string(513, 'a'),
                                              false, std::nullopt, kT0})),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->add_target(NewTarget{account.id, TargetKind::webhook, "https://x", false,
                                              std::string(513, 's'), kT0})),
            StoreErrc::invalid_argument);
}

}  // namespace
}  // namespace dag::store::test
