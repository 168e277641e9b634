#include "sqlite/error_map.hpp"

#include <sqlite3.h>

#include <string>

namespace dag::store::detail {

namespace {

StoreErrc map_constraint(int code) {
  switch (code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID: return StoreErrc::conflict;
    // A row we insert or update refers to a row that does not exist. Our foreign keys are
    // immediate and parents are never deleted under a child by the API, so this is
    // always "the account/device you named is unknown".
    case SQLITE_CONSTRAINT_FOREIGNKEY: return StoreErrc::not_found;
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_DATATYPE: return StoreErrc::invalid_argument;
    default: return StoreErrc::conflict;
  }
}

StoreErrc map_code(int code) {
  switch (code & 0xff) {  // the primary code of an extended one
    case SQLITE_CONSTRAINT: return map_constraint(code);
    // Another connection holds a lock past the busy timeout. In WAL mode SQLITE_LOCKED
    // only comes from shared-cache or same-connection conflicts, which are retryable too.
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return StoreErrc::busy;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return StoreErrc::corrupt;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
    case SQLITE_NOLFS: return StoreErrc::io;
    // Caller values too large or of the wrong kind for a column or a bind.
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH: return StoreErrc::invalid_argument;
    // SQLITE_ERROR (bad SQL, missing table), SQLITE_MISUSE, SQLITE_RANGE, SQLITE_NOMEM,
    // SQLITE_SCHEMA after retries, ...: our bug or a broken environment.
    default: return StoreErrc::internal;
  }
}

}  // namespace

StoreError sqlite_error(int code, std::string_view context, std::string_view detail) {
  std::string message{context};
  message += ": ";
  message += detail.empty() ? std::string_view{sqlite3_errstr(code)} : detail;
  return StoreError{map_code(code), std::move(message)};
}

}  // namespace dag::store::detail
