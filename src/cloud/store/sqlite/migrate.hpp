// Applies built-in migrations to a SQLite database, refusing one that is newer or
// different. See dag/store/sqlite.hpp for the rules.
// Blocking: file I/O; waits for the write lock up to the connection's busy timeout.
#pragma once

#include <span>

#include "dag/store/error.hpp"

#include "migration.hpp"
#include "sqlite/connection.hpp"

namespace dag::store::detail {

/// Brings the database to the last of `migrations` in one IMMEDIATE transaction, so two
/// processes opening a new file at once do not both run them. Errors: incompatible (an
/// applied migration unknown to this build, or one whose name or checksum differs), busy,
/// io, corrupt, internal (a migration failed: a bug in its SQL).
StoreResult<void> migrate(Connection& connection, std::span<const Migration> migrations);

}  // namespace dag::store::detail
