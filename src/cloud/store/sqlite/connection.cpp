#include "sqlite/connection.hpp"

#include <string>
#include <utility>

#include "sqlite/error_map.hpp"

namespace dag::store::detail {

// ---- Statement --------------------------------------------------------------------------

Statement::Statement(Connection& connection, sqlite3_stmt* stmt, int prepare_error)
    : connection_(connection), stmt_(stmt), error_(prepare_error) {}

Statement::~Statement() {
  if (stmt_ != nullptr) {
    // reset() repeats the last step's error code; it was already reported by step().
    static_cast<void>(sqlite3_reset(stmt_));
    static_cast<void>(sqlite3_clear_bindings(stmt_));
  }
}

void Statement::note_bind(int rc) {
  if (rc != SQLITE_OK && error_ == SQLITE_OK) error_ = rc;
}

Statement& Statement::bind_int(int index, std::int64_t value) {
  if (stmt_ != nullptr) note_bind(sqlite3_bind_int64(stmt_, index, value));
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  // SQLITE_STATIC: the caller keeps the text alive until the destructor's reset and
  // clear_bindings, after which SQLite holds no pointer to it.
  if (stmt_ != nullptr) {
    note_bind(
        sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (stmt_ != nullptr) note_bind(sqlite3_bind_null(stmt_, index));
  return *this;
}

Statement& Statement::bind_opt_int(int index, const std::optional<std::int64_t>& value) {
  return value ? bind_int(index, *value) : bind_null(index);
}

Statement& Statement::bind_opt_text(int index, const std::optional<std::string>& value) {
  return value ? bind_text(index, *value) : bind_null(index);
}

Statement& Statement::bind_opt_double(int index, const std::optional<double>& value) {
  if (!value) return bind_null(index);
  if (stmt_ != nullptr) note_bind(sqlite3_bind_double(stmt_, index, *value));
  return *this;
}

StoreResult<bool> Statement::step(std::string_view context) {
  if (error_ != SQLITE_OK) {
    StoreError error = connection_.error(error_, context);
    return Unexpected<StoreError>{std::move(error)};
  }
  if (stmt_ == nullptr)
    return Unexpected<StoreError>{
        StoreError{StoreErrc::internal, std::string{context} + ": empty statement"}};
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Unexpected<StoreError>{connection_.error(rc, context)};
}

StoreResult<void> Statement::run(std::string_view context) {
  for (;;) {
    auto row = step(context);
    if (!row) return Unexpected<StoreError>{std::move(row).error()};
    if (!*row) return {};
  }
}

std::int64_t Statement::column_int(int index) const {
  return sqlite3_column_int64(stmt_, index);
}

std::string Statement::column_text(int index) const {
  const auto* text = sqlite3_column_text(stmt_, index);
  const int size = sqlite3_column_bytes(stmt_, index);  // after column_text, as SQLite asks
  if (text == nullptr) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)};
}

std::optional<std::int64_t> Statement::column_opt_int(int index) const {
  if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) return std::nullopt;
  return column_int(index);
}

std::optional<std::string> Statement::column_opt_text(int index) const {
  if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) return std::nullopt;
  return column_text(index);
}

std::optional<double> Statement::column_opt_double(int index) const {
  if (sqlite3_column_type(stmt_, index) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt_, index);
}

// ---- Connection -------------------------------------------------------------------------

StoreResult<std::unique_ptr<Connection>> Connection::open(const std::filesystem::path& path,
                                                          int flags,
                                                          std::chrono::milliseconds busy_timeout) {
  // SQLite counts every allocation under a global mutex unless told not to; nothing here
  // reads those counts. Only possible before SQLite initialises, hence the first open.
  static const bool kNoMemStatus = [] {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    return true;
  }();
  (void)kNoMemStatus;
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Unexpected<StoreError>{sqlite_error(rc, "open " + path.string(), detail)};
  }
  std::unique_ptr<Connection> connection{new Connection(db)};
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(busy_timeout.count()));
  // Defensive mode: no writable_schema or other ways to corrupt the file from SQL.
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  // Foreign keys are off by default in SQLite, and must be set outside a transaction.
  auto pragmas = connection->exec("PRAGMA foreign_keys = ON", "open " + path.string());
  if (!pragmas) return Unexpected<StoreError>{std::move(pragmas).error()};
  return connection;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  // Every statement is finalized and no backup is running, so close cannot be busy.
  sqlite3_close_v2(db_);
}

Statement Connection::statement(const char* sql) {
  if (auto it = cache_.find(sql); it != cache_.end()) return {*this, it->second, SQLITE_OK};
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return {*this, nullptr, rc};
  }
  cache_.emplace(sql, stmt);
  return {*this, stmt, SQLITE_OK};
}

StoreResult<void> Connection::exec(std::string_view sql, std::string_view context) {
  const std::string text{sql};  // sqlite3_exec wants a terminated string
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Unexpected<StoreError>{error(rc, context)};
  return {};
}

StoreError Connection::error(int code, std::string_view context) const {
  // errmsg describes the connection's most recent failure; for a bind or prepare error
  // kept until step() it may be stale, so fall back to the code's generic text then.
  const int last = sqlite3_extended_errcode(db_);
  const std::string_view detail = last == code ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
  return sqlite_error(code, context, detail);
}

}  // namespace dag::store::detail
