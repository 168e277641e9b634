// Transaction semantics: visibility, rollback, read-only snapshots, errors that end a
// transaction, waiting for the writer, and the transact() helper.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <future>
#include <string>
#include <thread>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using TransactionsTest = StoreTest;

bool has_account(Store& store, const std::string& username) {
  auto tx = must(store.begin(TxMode::read_only));
  return tx->find_account_by_username(username).has_value();
}

TEST_F(TransactionsTest, DestroyingAnUncommittedTransactionRollsBack) {
  {
    auto tx = begin();
    add_account(*tx, "alice");
    EXPECT_FALSE(must(tx->find_account_by_username("alice")).id.empty());
  }
  EXPECT_FALSE(has_account(*store_, "alice"));
}

TEST_F(TransactionsTest, WritesBecomeVisibleToOthersAtCommit) {
  auto tx = begin();
  add_account(*tx, "alice");
  EXPECT_FALSE(has_account(*store_, "alice"));
  must(tx->commit());
  EXPECT_TRUE(has_account(*store_, "alice"));
}

TEST_F(TransactionsTest, AReadOnlyTransactionKeepsItsSnapshot) {
  {
    auto tx = begin();
    add_account(*tx, "alice");
    must(tx->commit());
  }
  auto reader = begin(TxMode::read_only);
  EXPECT_EQ(must(reader->list_accounts()).size(), 1U);  // the snapshot starts here
  {
    auto tx = begin();
    add_account(*tx, "bob");
    must(tx->commit());
  }
  EXPECT_EQ(must(reader->list_accounts()).size(), 1U);
  must(reader->commit());
  EXPECT_EQ(must(begin(TxMode::read_only)->list_accounts()).size(), 2U);
}

TEST_F(TransactionsTest, ExplicitRollbackEndsTheTransaction) {
  auto tx = begin();
  add_account(*tx, "alice");
  tx->rollback();
  tx->rollback();  // idempotent
  EXPECT_EQ(error_of(tx->commit()), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->list_accounts()), StoreErrc::invalid_argument);
  EXPECT_FALSE(has_account(*store_, "alice"));
  // The write connection is free again.
  auto next = begin();
  add_account(*next, "bob");
  must(next->commit());
}

TEST_F(TransactionsTest, ACommittedTransactionIsOver) {
  auto tx = begin();
  add_account(*tx, "alice");
  must(tx->commit());
  EXPECT_EQ(error_of(tx->commit()), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->create_account("bob", "h", kT0)), StoreErrc::invalid_argument);
}

TEST_F(TransactionsTest, AReadOnlyTransactionRefusesWrites) {
  const Device device = seed();
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(tx->mode(), TxMode::read_only);
  EXPECT_EQ(error_of(tx->create_account("bob", "h", kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, "{}", 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->append_event(Event{device.id, EventKind::back, kT0, kT0})),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_due_timers(kT0, 1, "r", 1)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->claim_intents(kT0, 1, "r", 1)), StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->get_device(device.id)).id, device.id);  // still usable for reads
}

TEST_F(TransactionsTest, ASecondWriteTransactionOnTheSameThreadIsRefusedNotADeadlock) {
  auto tx = begin();
  EXPECT_EQ(error_of(store_->begin()), StoreErrc::invalid_argument);
  // Reading alongside is fine.
  auto reader = begin(TxMode::read_only);
  must(reader->list_accounts());
}

TEST_F(TransactionsTest, AnotherThreadWaitsForTheWriterThenGetsBusy) {
  store_.reset();
  SqliteOptions options;
  options.busy_timeout = std::chrono::milliseconds{100};
  store_ = open(options);
  auto tx = begin();
  auto other = std::async(std::launch::async, [&] { return store_->begin().has_value(); });
  EXPECT_FALSE(other.get());
  auto waiting = std::async(std::launch::async, [&] {
    auto second = store_->begin();
    return second.has_value();
  });
  tx.reset();  // frees the writer while the other thread waits (or before it starts)
  EXPECT_TRUE(waiting.get());
}

TEST_F(TransactionsTest, AnotherProcessHoldingTheWriteLockGivesBusyAfterTheTimeout) {
  store_.reset();
  SqliteOptions options;
  options.busy_timeout = std::chrono::milliseconds{50};
  store_ = open(options);
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto refused = store_->begin();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::busy);
  // Reads go on meanwhile (WAL).
  must(begin(TxMode::read_only)->list_accounts());
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  auto tx = begin();
  add_account(*tx);
  must(tx->commit());
}

TEST_F(TransactionsTest, AnUnreadableRowEndsTheTransaction) {
  const Device device = seed();
  {
    // Another writer that bypasses our CHECKs stores a kind this program does not know.
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &raw), SQLITE_OK);
    const std::string sql =
        "PRAGMA ignore_check_constraints = ON; INSERT INTO notification_targets (id, "
        "account_id, kind, address, created_at_ms) VALUES ('t1', '" +
        device.account_id + "', 'pigeon', 'loft 3', 0);";
    ASSERT_EQ(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(raw);
  }
  auto tx = begin();
  add_account(*tx, "bob");
  EXPECT_EQ(error_of(tx->list_targets(device.account_id)), StoreErrc::corrupt);
  // Dead from now on, and nothing it did is committed.
  EXPECT_EQ(error_of(tx->get_device(device.id)), StoreErrc::corrupt);
  EXPECT_EQ(error_of(tx->commit()), StoreErrc::corrupt);
  EXPECT_FALSE(has_account(*store_, "bob"));
}

TEST_F(TransactionsTest, TransactCommitsOnSuccessAndRollsBackOnError) {
  auto made = transact(*store_, TxMode::read_write,
                       [](Transaction& tx) { return tx.create_account("alice", "h", kT0); });
  ASSERT_TRUE(made);
  EXPECT_TRUE(has_account(*store_, "alice"));

  auto refused = transact(*store_, TxMode::read_write, [](Transaction& tx) -> StoreResult<void> {
    must(tx.create_account("bob", "h", kT0));
    return fail(StoreErrc::conflict, "changed my mind");
  });
  EXPECT_EQ(error_of(refused), StoreErrc::conflict);
  EXPECT_FALSE(has_account(*store_, "bob"));
}

TEST_F(TransactionsTest, TransactRunsTheWholeTransactionAgainOnBusy) {
  int runs = 0;
  auto result =
      transact(*store_, TxMode::read_write, [&](Transaction& tx) -> StoreResult<std::string> {
        auto account = tx.create_account("alice", "h", kT0);
        if (!account) return Unexpected<StoreError>{account.error()};
        if (++runs < 3) return fail(StoreErrc::busy, "lost a race");
        return account->id;
      });
  ASSERT_TRUE(result);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(must(begin(TxMode::read_only)->list_accounts()).size(), 1U);

  runs = 0;
  auto exhausted = transact(
      *store_, TxMode::read_write,
      [&](Transaction&) -> StoreResult<void> {
        ++runs;
        return fail(StoreErrc::busy, "always");
      },
      2);
  EXPECT_EQ(error_of(exhausted), StoreErrc::busy);
  EXPECT_EQ(runs, 2);
}

TEST_F(TransactionsTest, PingAnswers) {
  must(store_->ping());
}

TEST_F(TransactionsTest, TheChangeMarkerMovesWithEveryCommitFromAnyConnection) {
  const auto m0 = store_->change_marker();
  ASSERT_TRUE(m0.has_value());
  EXPECT_EQ(store_->change_marker(), m0);  // reads and nothing at all change nothing
  EXPECT_EQ(must(begin(TxMode::read_only)->list_accounts()).size(), 0U);
  EXPECT_EQ(store_->change_marker(), m0);
  {
    auto tx = begin();
    add_account(*tx, "alice");
    tx->rollback();
  }
  EXPECT_EQ(store_->change_marker(), m0);

  {
    auto tx = begin();
    add_account(*tx, "alice");
    must(tx->commit());
  }
  const auto m1 = store_->change_marker();
  EXPECT_NE(m1, m0);
  // Another process (a second store on the file, as dagctl would be).
  auto other = open();
  {
    auto tx = must(other->begin());
    add_account(*tx, "bob");
    must(tx->commit());
  }
  EXPECT_NE(store_->change_marker(), m1);
}

TEST_F(TransactionsTest, AnInMemoryStoreHasNoChangeMarker) {
  auto memory = must(open_sqlite(":memory:"));
  EXPECT_FALSE(memory->change_marker().has_value());
}

TEST_F(TransactionsTest, AnInMemoryStoreWorksWithReadsOnTheWriteConnection) {
  auto memory = must(open_sqlite(":memory:"));
  {
    auto tx = must(memory->begin());
    must(tx->create_account("alice", "h", kT0));
    must(tx->commit());
  }
  auto reader = must(memory->begin(TxMode::read_only));
  EXPECT_EQ(must(reader->list_accounts()).size(), 1U);
  reader.reset();
  must(memory->ping());
}

}  // namespace
}  // namespace dag::store::test
