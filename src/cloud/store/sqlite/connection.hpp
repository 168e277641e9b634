// A SQLite connection with its cache of prepared statements, and a borrowed statement
// handle that binds, steps and reads columns with StoreError results.
//
// Thread-safety: none. A connection is used by one transaction (so one thread) at a time;
// the store hands connections out. Opened with SQLITE_OPEN_NOMUTEX for that reason.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dag/store/error.hpp"

namespace dag::store::detail {

class Connection;

/// A cached prepared statement borrowed from its connection for one execution. Bound text
/// is referenced, not copied. The destructor resets it (and drops the bindings) for the
/// next user. Errors of preparation or binding are kept and returned by the first step(),
/// so building a statement never needs its own error check.
class Statement {
 public:
  Statement(Connection& connection, sqlite3_stmt* stmt, int prepare_error);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&&) = delete;
  Statement& operator=(Statement&&) = delete;

  // Parameters are 1-based, as in SQLite. Text is bound by reference, not copied (a copy
  // per bound value measured as ~5% of an ingest update): it must stay alive and unchanged
  // until the Statement is destroyed. Temporary strings are refused for that reason.
  Statement& bind_int(int index, std::int64_t value);
  Statement& bind_bool(int index, bool value) { return bind_int(index, value ? 1 : 0); }
  Statement& bind_text(int index, std::string_view value);
  Statement& bind_text(int index, std::string&& value) = delete;
  Statement& bind_null(int index);
  Statement& bind_opt_int(int index, const std::optional<std::int64_t>& value);
  Statement& bind_opt_text(int index, const std::optional<std::string>& value);
  Statement& bind_opt_text(int index, std::optional<std::string>&& value) = delete;
  Statement& bind_opt_double(int index, const std::optional<double>& value);

  /// One step: true when a row is available, false when the statement is done.
  StoreResult<bool> step(std::string_view context);
  /// Steps to the end, ignoring rows (INSERT/UPDATE/DELETE).
  StoreResult<void> run(std::string_view context);

  // Columns are 0-based, as in SQLite.
  [[nodiscard]] std::int64_t column_int(int index) const;
  [[nodiscard]] bool column_bool(int index) const { return column_int(index) != 0; }
  [[nodiscard]] std::string column_text(int index) const;
  [[nodiscard]] std::optional<std::int64_t> column_opt_int(int index) const;
  [[nodiscard]] std::optional<std::string> column_opt_text(int index) const;
  [[nodiscard]] std::optional<double> column_opt_double(int index) const;

 private:
  void note_bind(int rc);

  Connection& connection_;
  sqlite3_stmt* stmt_;
  int error_;  ///< first preparation or bind error, SQLITE_OK when none
};

class Connection {
 public:
  /// Opens `path` with `flags` (SQLITE_OPEN_*; NOMUTEX and EXRESCODE are added) and sets
  /// the per-connection pragmas: busy timeout, foreign keys, defensive mode.
  static StoreResult<std::unique_ptr<Connection>> open(const std::filesystem::path& path, int flags,
                                                       std::chrono::milliseconds busy_timeout);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) = delete;
  Connection& operator=(Connection&&) = delete;

  /// A prepared statement for `sql`, which must be a string literal (or otherwise live as
  /// long as the connection): the cache is keyed by its address, so a lookup costs one
  /// hash of a pointer.
  Statement statement(const char* sql);

  /// Runs one or more statements without results (BEGIN, COMMIT, PRAGMA, migrations).
  StoreResult<void> exec(std::string_view sql, std::string_view context);

  /// A StoreError for `code` with this connection's error message.
  [[nodiscard]] StoreError error(int code, std::string_view context) const;

  /// Rows changed by the last INSERT/UPDATE/DELETE.
  [[nodiscard]] std::int64_t changes() const { return sqlite3_changes64(db_); }
  [[nodiscard]] std::int64_t last_insert_id() const { return sqlite3_last_insert_rowid(db_); }
  /// True outside an explicit transaction (SQLite may end one on its own after an error).
  [[nodiscard]] bool autocommit() const { return sqlite3_get_autocommit(db_) != 0; }
  [[nodiscard]] sqlite3* handle() const { return db_; }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;
};

}  // namespace dag::store::detail
