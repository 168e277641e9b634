// Opening: migrations applied once and recorded, newer or altered databases refused,
// durability across Store instances, files that are not databases.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <string>
#include <tuple>
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

std::vector<std::string> every_migration() {
  return {"1_initial", "2_provisioning", "3_notifications", "4_battery_readings"};
}

/// Takes migration 4 back out of a database, as a build that knew only 1 to 3 left it.
constexpr const char* kUndoMigration4 =
    "DROP TABLE battery_readings; DELETE FROM schema_migrations WHERE version > 3;";

/// Takes migration 3 back out of a database, as a build that knew only 1 and 2 left it
/// (the values of its columns are lost, as they never existed there). Run after
/// kUndoMigration4.
constexpr const char* kUndoMigration3 =
    "DROP TABLE verifications; DROP INDEX outbox_by_target;"
    "DROP INDEX targets_needing_verification;"
    "ALTER TABLE outbox DROP COLUMN target_id;"
    "ALTER TABLE notification_targets DROP COLUMN failure_count;"
    "ALTER TABLE notification_targets DROP COLUMN last_error;"
    "ALTER TABLE notification_targets DROP COLUMN last_error_at_ms;"
    "ALTER TABLE notification_targets DROP COLUMN last_success_at_ms;"
    "ALTER TABLE notification_targets DROP COLUMN body_template;"
    "ALTER TABLE notification_targets DROP COLUMN content_type;"
    "ALTER TABLE notification_targets DROP COLUMN verification_sent_at_ms;"
    "ALTER TABLE notification_targets DROP COLUMN verification_requested;"
    "DELETE FROM schema_migrations WHERE version > 2;";

TEST_F(MigrationsTest, ANewDatabaseGetsEveryMigrationRecordedOnceInWalMode) {
  Raw raw{path_};
  EXPECT_EQ(raw.column("SELECT version || '_' || name FROM schema_migrations ORDER BY version"),
            every_migration());
  EXPECT_EQ(raw.column("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  const auto tables = raw.column(
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
      "ORDER BY name");
  EXPECT_EQ(tables, (std::vector<std::string>{"accounts", "battery_readings", "certificates",
                                              "config_entries", "devices", "events",
                                              "notification_targets", "outbox", "schema_migrations",
                                              "shadows", "timers", "verifications"}));
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
        "INSERT INTO schema_migrations VALUES (5, 'from_the_future', 'abc', 0);"
        "CREATE TABLE future_things (x INTEGER);");
  }
  auto refused = open_sqlite(path_);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::incompatible);
  EXPECT_NE(refused.error().message.find("newer"), std::string::npos) << refused.error().message;
  Raw raw{path_};
  EXPECT_EQ(raw.column("SELECT count(*) FROM schema_migrations"), std::vector<std::string>{"5"});
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
    raw.exec(kUndoMigration4);
    raw.exec(kUndoMigration3);
    raw.exec(
        "DROP TABLE certificates; DROP TABLE config_entries;"
        "DELETE FROM schema_migrations WHERE version > 1;");
  }
  store_ = open();
  {
    Raw raw{path_};
    EXPECT_EQ(raw.column("SELECT version || '_' || name FROM schema_migrations ORDER BY version"),
              every_migration());
  }
  auto tx = begin();
  EXPECT_EQ(must(tx->get_device(device.id)), device);
  must(tx->add_certificate(DeviceCertificate{"AB", device.id, kT0, kT0 + 1, std::nullopt}));
  must(tx->set_config_entry(ConfigEntry{ConfigScope::device, device.id, "k", "1", kT0}));
  must(tx->record_battery(BatteryReading{device.id, kT0, 50.0}, 0));
  must(tx->delete_device(device.id));
  must(tx->commit());
}

TEST_F(MigrationsTest, TargetsAndIntentsOfAnOlderProgramGetTheNotificationColumns) {
  const Device device = seed();
  std::int64_t intent_id = 0;
  {
    auto tx = begin();
    std::int64_t created = kT0;
    for (auto [kind, address, verified] :
         {std::tuple{TargetKind::email, "new@example.org", false},
          std::tuple{TargetKind::email, "old@example.org", true},
          std::tuple{TargetKind::webhook, "https://example.org/h", false},
          std::tuple{TargetKind::ntfy, "https://ntfy.sh/dag", true}}) {
      must(tx->add_target(
          NewTarget{device.account_id, kind, address, verified, std::nullopt, ++created}));
    }
    intent_id = must(
        tx->enqueue_intent(Intent{device.account_id, device.id, device.name, Transition::power_lost,
                                  protocol::UserState::off, kT0, kT0, "{}"}));
    must(tx->commit());
  }
  store_.reset();
  {
    Raw raw{path_};
    raw.exec(kUndoMigration4);
    raw.exec(kUndoMigration3);
  }
  store_ = open();
  auto tx = begin();
  const auto targets = must(tx->list_targets(device.account_id));
  ASSERT_EQ(targets.size(), 4U);
  // Only the unverified e-mail target waits for a verification mail.
  EXPECT_TRUE(targets[0].verification_requested);
  EXPECT_FALSE(targets[1].verification_requested);
  EXPECT_FALSE(targets[2].verification_requested);
  EXPECT_FALSE(targets[3].verification_requested);
  for (const NotificationTarget& t : targets) {
    EXPECT_EQ(t.failure_count, 0);
    EXPECT_EQ(t.last_error, std::nullopt);
    EXPECT_EQ(t.body_template, std::nullopt);
    EXPECT_EQ(t.verification_sent_at_ms, std::nullopt);
  }
  EXPECT_EQ(must(tx->targets_needing_verification(kT0 + 10, 10)).at(0).id, targets[0].id);
  const StoredIntent stored = must(tx->get_intent(intent_id));
  EXPECT_EQ(stored.status, IntentStatus::pending);
  EXPECT_EQ(stored.intent.target_id, std::nullopt);
  // Removing a target of the old rows works with the new foreign key in place.
  must(tx->remove_target(targets[1].id));
  EXPECT_EQ(must(tx->get_intent(intent_id)).status, IntentStatus::pending);
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
    must(tx->record_battery(BatteryReading{device.id, kT0, 87.5, 4.05, 312, true}, 0));
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
  EXPECT_EQ(must(tx->list_battery(device.id, kT0, kT0 + 1, 10)),
            (std::vector<BatteryReading>{{device.id, kT0, 87.5, 4.05, 312, true}}));
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
