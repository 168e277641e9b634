// The SQLite backend of dag::store::Store: the embedded default, one database file.
//
// Durability: WAL journal with synchronous=FULL by default, so a committed transaction
// survives a power cut or kernel crash, not only a dagd crash. A device deletes a report
// from its own outbox once dagd has acknowledged it, and dagd acknowledges after commit,
// so a commit that a power cut could take back would lose a power event for good. The
// cost is one fsync of the WAL per commit, which dagd amortises by committing batches.
// synchronous=NORMAL (Durability::crash_safe) drops that fsync: commits survive a process
// crash but the last ones may be lost in a power cut; for tests and benchmarks.
//
// Checkpoints: SQLite's automatic checkpoint would run inside the commit that crosses its
// threshold; here a background thread with its own connection copies the WAL back into the
// database file, so the thread committing dagd's batches does not (10-20 % of a batch's
// cost on the reference machine). The WAL file is truncated back to 64 MiB after a burst.
// See sqlite/checkpointer.hpp.
//
// Threading: one write connection, used by one read_write transaction at a time (SQLite
// has a single writer anyway; a queue in front of it is fairer than SQLITE_BUSY spinning),
// plus a small pool of read connections for read_only transactions, which WAL lets read
// a snapshot while a write goes on. Each connection caches its prepared statements.
// Other processes (dagctl) may open the same file: SQLite's file locks and the busy
// timeout serialise them with us. Write transactions start with BEGIN IMMEDIATE, so a
// transaction never fails half-way because another process took the write lock first.
//
// Schema: the migrations in src/cloud/store/migrations/sqlite/NNNN_name.sql are built into
// the library and applied, in order and in one transaction, by open_sqlite; each is
// recorded in `schema_migrations` with a checksum. A database carrying a migration this
// build does not know (written by a newer dagd), or whose applied migrations differ from
// the built-in ones, is refused (StoreErrc::incompatible) and never modified.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>

#include "dag/store/store.hpp"

namespace dag::store {

struct SqliteOptions {
  enum class Durability {
    power_safe,  ///< synchronous=FULL: every commit fsyncs the WAL (the default)
    crash_safe,  ///< synchronous=NORMAL: survives a process crash, not a power cut
  };
  Durability durability{Durability::power_safe};
  /// How long begin() and statements wait for another writer before StoreErrc::busy.
  std::chrono::milliseconds busy_timeout{5000};
  /// Read connections for read_only transactions (opened on demand). 0 makes read_only
  /// transactions share the write connection (and so wait for writers).
  int read_connections{2};
  /// Create the file when missing; otherwise a missing file is StoreErrc::io.
  bool create_if_missing{true};
  /// WAL size (in pages of 4 KiB) at which a background thread copies the WAL back into
  /// the database file; past 8 x this the writer does it itself. Larger: fewer copies of
  /// pages that are written again and again (device rows), a larger WAL file. 100..1000000.
  int checkpoint_pages{4000};
  /// Page cache of the write connection, in MiB (SQLite's default is 2). Each update
  /// walks a shadow, a device and index pages scattered over the file; once the file
  /// outgrows the cache every walk reads them back through pread(2), which was a fifth of
  /// the ingest thread in a storm of 10,000 dags (16 MB database). The cache only grows as
  /// pages are read, so a small database never takes all of it. 1..65536.
  int writer_cache_mib{32};
};

/// Opens (creating if allowed) the database at `path` and migrates it to this build's
/// schema. ":memory:" gives a private in-memory database (read_only transactions then use
/// the write connection). Blocks for the file I/O and the migrations; waits up to
/// busy_timeout for another process that holds the write lock.
/// Errors: io (cannot open or create), corrupt (not a database, damaged), incompatible
/// (newer or different schema), busy, invalid_argument (negative options), internal
/// (SQLite built without thread support).
StoreResult<std::unique_ptr<Store>> open_sqlite(const std::filesystem::path& path,
                                                const SqliteOptions& options = {});

}  // namespace dag::store
