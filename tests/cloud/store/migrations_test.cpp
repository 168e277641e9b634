// Opening: migrations applied once and recorded, newer or altered databases refused,
// durability across Store instances, files that are not databases.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <vector>

#include "dag/protocol/shadow.hpp"

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

/// A plain SQLite connection to look at (or tamper with) the file behind the store.
class Raw {
 public:
  explicit Raw(const std::filesystem::path& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open");
  }
  ~Raw() { sqlite3_close(db_); }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;

  void exec(const std::string& sql) {
    char* message = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
      std::string text = message != nullptr ? message : "?";
      sqlite3_free(message);
      throw std::runtime_error(sql + ": " + text);
    }
  }
  /// The first column of every row, as text.
  std::vector<std::string> column(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::string> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const auto* text = sqlite3_column_text(st, 0);
      out.emplace_back(text != nullptr ? reinterpret_cast<const char*>(text) : "NULL");
    }
    sqlite3_finalize(st);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

using MigrationsTest = StoreTest;

TEST_F(MigrationsTest, ANewDatabaseGetsEveryMigrationRecordedOnceInWalMode) {
  Raw raw{path_};
  EXPECT_EQ(raw.column("SELECT version || '_' || name FROM schema_migrations ORDER BY version"),
            (std::vector<std::string>{"1_initial", "2_provisioning"}));
  EXPECT_EQ(raw.column("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  const auto tables = raw.column(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
      "ORDER BY name");
  EXPECT_EQ(tables, (std::vector<std::string>{"accounts", "certificates", "config_entries",
                                              "devices", "events", "notification_targets", "outbox",
                                              "schema_migrations", "shadows", "timers"}));
}

TEST_F(MigrationsTest, ReopeningAppliesNothingAgain) {
  std::vector<std::string> before;
  {
    Raw raw{path_};
    before = raw.column(
        "SELECT version || ':' || applied_at_ms || ':' || checksum "
        "FROM schema_migrations");
  }
  store_.reset();
  store_ = open();
  store_.reset();
  store_ = open();
  Raw raw{path_};
  EXPECT_EQ(raw.column("SELECT version || ':' || applied_at_ms || ':' || checksum "
                       "FROM schema_migrations"),
            before);
}

TEST_F(MigrationsTest, ADatabaseFromANewerProgramIsRefusedAndLeftAlone) {
  store_.reset();
  {
    Raw raw{path_};
    raw.exec(
        "INSERT INTO schema_migrations VALUES (3, 'from_the_future', 'abc', 0);"
        "CREATE TABLE future_things (x INTEGER);");
  }
  auto refused = open_sqlite(path_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::incompatible);
  EXPECT_NE(refused.error().message.find("newer"), std::string::npos) << refused.error().message;
  Raw raw{path_};
  EXPECT_EQ(raw.column("SELECT count(*) FROM schema_migrations"), std::vector<std::string>{"3"});
}

TEST_F(MigrationsTest, AMigrationChangedAfterItWasAppliedIsRefused) {
  store_.reset();
  {
    Raw raw{path_};
    raw.exec("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1");
  }
  auto refused = open_sqlite(path_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::incompatible);
}

TEST_F(MigrationsTest, ADatabaseOfAnOlderProgramIsUpgradedWithItsDataKept) {
  const Device device = seed();
  store_.reset();
  {
    // What a build that knew only migration 1 left behind.
    Raw raw{path_};
    raw.exec(
        "DROP TABLE certificates; DROP TABLE config_entries;"
        "DELETE FROM schema_migrations WHERE version > 1;");
  }
  store_ = open();
  {
    Raw raw{path_};
    EXPECT_EQ(raw.column("SELECT version || '_' || name FROM schema_migrations ORDER BY version"),
              (std::vector<std::string>{"1_initial", "2_provisioning"}));
  }
  auto tx = begin();
  EXPECT_EQ(must(tx->get_device(device.id)), device);
  must(tx->add_certificate(DeviceCertificate{"AB", device.id, kT0, kT0 + 1, std::nullopt}));
  must(tx->set_config_entry(ConfigEntry{ConfigScope::device, device.id, "k", "1", kT0}));
  must(tx->delete_device(device.id));
  must(tx->commit());
}

TEST_F(MigrationsTest, DataSurvivesReopening) {
  const Device device = seed();
  std::int64_t event_id = 0;
  std::int64_t intent_id = 0;
  const std::string shadow = R"({"exists":true,"version":1})";
  {
    auto tx = begin();
    must(tx->put_shadow(device.id, shadow, 0));
    event_id = must(tx->append_event(
        Event{device.id, EventKind::power_off, kT0, kT0, 1, false, protocol::UserState::off}));
    intent_id = must(
        tx->enqueue_intent(Intent{device.account_id, device.id, device.name, Transition::power_lost,
                                  protocol::UserState::off, kT0, kT0, "{}"}));
    DeviceState state;
    state.power = protocol::Power::off;
    state.last_seq = 1;
    must(tx->update_device_state(device.id, state));
    must(tx->commit());
  }
  store_.reset();
  store_ = open();
  auto tx = begin(TxMode::read_only);
  const Device stored = must(tx->get_device(device.id));
  EXPECT_EQ(stored.state.power, protocol::Power::off);
  EXPECT_EQ(stored.state.last_seq, 1);
  EXPECT_EQ(must(tx->get_shadow(device.id))->document, shadow);
  EXPECT_EQ(must(tx->list_events(EventQuery{device.id})).events.at(0).id, event_id);
  EXPECT_EQ(must(tx->get_intent(intent_id)).status, IntentStatus::pending);
  EXPECT_EQ(must(tx->get_account(device.account_id)).username, "alice");
}

TEST_F(MigrationsTest, AFileThatIsNotADatabaseIsCorrupt) {
  const auto garbage = dir_ / "garbage.db";
  {
    std::ofstream out{garbage, std::ios::binary};
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 7919) & 0xff));
  }
  auto refused = open_sqlite(garbage);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::corrupt) << refused.error().message;
}

TEST_F(MigrationsTest, AnEmptyFileBecomesADatabase) {
  const auto empty = dir_ / "empty.db";
  { std::ofstream out{empty}; }
  auto opened = open_sqlite(empty);
  ASSERT_TRUE(opened) << opened.error().message;
}

TEST_F(MigrationsTest, MissingFilesAndDirectoriesAreIo) {
  SqliteOptions no_create;
  no_create.create_if_missing = false;
  auto missing = open_sqlite(dir_ / "missing.db", no_create);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, StoreErrc::io);
  auto no_dir = open_sqlite(dir_ / "no" / "such" / "dir.db");
  ASSERT_FALSE(no_dir);
  EXPECT_EQ(no_dir.error().code, StoreErrc::io);
}

TEST_F(MigrationsTest, BadOptionsAreInvalid) {
  SqliteOptions options;
  options.read_connections = -1;
  EXPECT_EQ(error_of(open_sqlite(dir_ / "x.db", options)), StoreErrc::invalid_argument);
  options = SqliteOptions{};
  options.busy_timeout = std::chrono::milliseconds{-1};
  EXPECT_EQ(error_of(open_sqlite(dir_ / "x.db", options)), StoreErrc::invalid_argument);
}

TEST_F(MigrationsTest, TwoStoresOnOneFileShareTheData) {
  auto second = open();
  {
    auto tx = begin();
    add_account(*tx, "alice");
    must(tx->commit());
  }
  auto tx = must(second->begin(TxMode::read_only));
  EXPECT_EQ(must(tx->find_account_by_username("alice")).username, "alice");
}

}  // namespace
}  // namespace dag::store::test
