#include "sqlite/migrate.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dag::store::detail {

namespace {

constexpr const char* kCreateTable = R"(
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version       INTEGER NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    applied_at_ms INTEGER NOT NULL
  ) STRICT)";

constexpr const char* kSelectApplied =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";

// The clock of the database host is good enough for a bookkeeping column.
constexpr const char* kInsertApplied = R"(
  INSERT INTO schema_migrations (version, name, checksum, applied_at_ms)
  VALUES (?1, ?2, ?3, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)))";

struct Applied {
  std::int64_t version;
  std::string name;
  std::string checksum;
};

StoreResult<void> check_applied(const std::vector<Applied>& applied,
                                std::span<const Migration> migrations) {
  for (std::size_t i = 0; i < applied.size(); ++i) {
    const Applied& row = applied[i];
    if (i >= migrations.size() || row.version > static_cast<std::int64_t>(migrations.size())) {
      return fail(StoreErrc::incompatible,
                  "the database has schema migration " + std::to_string(row.version) + " (" +
                      row.name + ") but this program knows migrations up to " +
                      std::to_string(migrations.size()) +
                      ": it was written by a newer version; upgrade this program");
    }
    const Migration& known = migrations[i];
    if (row.version != known.number) {
      return fail(StoreErrc::incompatible, "schema_migrations is not a sequence from 1: found " +
                                               std::to_string(row.version) + " where " +
                                               std::to_string(known.number) + " was expected");
    }
    if (row.name != known.name || row.checksum != known.checksum) {
      return fail(StoreErrc::incompatible,
                  "schema migration " + std::to_string(row.version) + " (" + row.name +
                      ") was applied from a different file than this program's " +
                      std::string{known.name} + "; migrations must never change once released");
    }
  }
  return {};
}

StoreResult<void> migrate_locked(Connection& connection, std::span<const Migration> migrations) {
  if (auto created = connection.exec(kCreateTable, "migrate: create schema_migrations"); !created) {
    return created;
  }
  std::vector<Applied> applied;
  {
    auto select = connection.statement(kSelectApplied);
    for (;;) {
      auto row = select.step("migrate: read schema_migrations");
      if (!row) return Unexpected<StoreError>{std::move(row).error()};
      if (!*row) break;
      applied.push_back({select.column_int(0), select.column_text(1), select.column_text(2)});
    }
  }
  if (auto checked = check_applied(applied, migrations); !checked) return checked;
  for (std::size_t i = applied.size(); i < migrations.size(); ++i) {
    const Migration& migration = migrations[i];
    const std::string context =
        "migrate: apply " + std::to_string(migration.number) + "_" + std::string{migration.name};
    if (auto ran = connection.exec(migration.sql, context); !ran) return ran;
    auto record = connection.statement(kInsertApplied);
    record.bind_int(1, migration.number)
        .bind_text(2, migration.name)
        .bind_text(3, migration.checksum);
    if (auto recorded = record.run(context); !recorded) return recorded;
  }
  return {};
}

}  // namespace

StoreResult<void> migrate(Connection& connection, std::span<const Migration> migrations) {
  if (auto begun = connection.exec("BEGIN IMMEDIATE", "migrate: begin"); !begun) return begun;
  auto result = migrate_locked(connection, migrations);
  if (!result) {
    // Nothing of a failed or refused migration may stay: the database is left as found.
    static_cast<void>(connection.exec("ROLLBACK", "migrate: rollback"));
    return result;
  }
  return connection.exec("COMMIT", "migrate: commit");
}

}  // namespace dag::store::detail
