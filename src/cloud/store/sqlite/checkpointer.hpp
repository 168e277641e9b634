// Background WAL checkpoints, so that the thread committing dagd's batches never copies
// pages back into the database file itself.
//
// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, on the
// committing thread. On the reference machine that was about 40 % of the cost of an event
// insert (each scattered index page is read back from the WAL and written to the file)
// and 10-20 % of a whole ingest batch (store_bench, inline against background).
// Here a WAL hook on the write connection only signals a thread with its own connection,
// which runs PASSIVE checkpoints (they never block the writer or readers). If the WAL still
// grows past 8 x the threshold (the thread cannot keep up, or PASSIVE checkpoints racing
// the writer never catch up with the end of the WAL, so it never starts over) the writer
// runs a RESTART checkpoint inline, which bounds the WAL file.
//
// Thread-safety: on_commit runs on the writer's thread; last_error() from any thread.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "dag/store/error.hpp"

#include "sqlite/connection.hpp"

namespace dag::store::detail {

class Checkpointer {
 public:
  /// Opens the thread's connection and starts it. Errors: those of Connection::open.
  static StoreResult<std::unique_ptr<Checkpointer>> start(const std::filesystem::path& path,
                                                          std::chrono::milliseconds busy_timeout,
                                                          int threshold_pages);
  /// Stops and joins the thread. The writer must have been detached first.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;
  Checkpointer(Checkpointer&&) = delete;
  Checkpointer& operator=(Checkpointer&&) = delete;

  /// Installs the WAL hook on `writer` (replacing SQLite's automatic checkpoint).
  void attach(sqlite3* writer);
  /// Removes the hook again.
  static void detach(sqlite3* writer);

  /// The error of the last checkpoint if it failed (a success clears it).
  [[nodiscard]] std::optional<StoreError> last_error() const;
  /// Checkpoints run so far (for tests).
  [[nodiscard]] long completed() const;

 private:
  Checkpointer(std::unique_ptr<Connection> connection, int threshold_pages);
  static int on_commit(void* self, sqlite3* db, const char* schema, int frames);
  void run();
  void checkpoint(sqlite3* db, int mode);

  std::unique_ptr<Connection> connection_;
  int threshold_pages_;
  std::mutex running_;  ///< held while a checkpoint runs (thread or writer)
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool requested_{false};
  bool stopping_{false};
  long completed_{0};
  std::optional<StoreError> last_error_;
  std::thread thread_;
};

}  // namespace dag::store::detail
