#include "sqlite/checkpointer.hpp"

#include <utility>

#include "dag/common/thread_name.hpp"

#include "sqlite/error_map.hpp"

namespace dag::store::detail {

namespace {
// Past this multiple of the threshold the writer stops waiting for the thread.
constexpr int kInlineFactor = 8;
}  // namespace

StoreResult<std::unique_ptr<Checkpointer>> Checkpointer::start(
    const std::filesystem::path& path, std::chrono::milliseconds busy_timeout,
    int threshold_pages) {
  auto connection = Connection::open(path, SQLITE_OPEN_READWRITE, busy_timeout);
  if (!connection) return Unexpected<StoreError>{std::move(connection).error()};
  // A connection only attaches to the WAL when it first reads; until then SQLite's
  // checkpoint call on it returns SQLITE_OK having copied nothing.
  if (auto read = (*connection)->exec("SELECT count(*) FROM sqlite_schema", "checkpointer");
      !read) {
    return Unexpected<StoreError>{std::move(read).error()};
  }
  std::unique_ptr<Checkpointer> checkpointer{
      new Checkpointer(std::move(connection).value(), threshold_pages)};
  checkpointer->thread_ = std::thread([raw = checkpointer.get()] {
    set_thread_name("sqlite-ckpt");
    raw->run();
  });
  return checkpointer;
}

Checkpointer::Checkpointer(std::unique_ptr<Connection> connection, int threshold_pages)
    : connection_(std::move(connection)), threshold_pages_(threshold_pages) {}

Checkpointer::~Checkpointer() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Checkpointer::attach(sqlite3* writer) {
  sqlite3_wal_hook(writer, &on_commit, this);
}

void Checkpointer::detach(sqlite3* writer) {
  sqlite3_wal_hook(writer, nullptr, nullptr);
}

int Checkpointer::on_commit(void* self, sqlite3* db, const char* /*schema*/, int frames) {
  auto* checkpointer = static_cast<Checkpointer*>(self);
  if (frames >= checkpointer->threshold_pages_ * kInlineFactor) {
    // The WAL only starts over when a checkpoint has copied all of it before the next
    // write, which PASSIVE checkpoints racing a busy writer may never manage. RESTART
    // waits (busy timeout) for the background checkpoint and for readers of old frames,
    // copies everything and lets the next transaction reuse the file from its start. This
    // is the writer's back-pressure: it happens only when the thread falls behind.
    checkpointer->checkpoint(db, SQLITE_CHECKPOINT_RESTART);
  } else if (frames >= checkpointer->threshold_pages_) {
    {
      std::lock_guard lock{checkpointer->mutex_};
      checkpointer->requested_ = true;
    }
    checkpointer->wake_.notify_one();
  }
  return SQLITE_OK;  // a failed checkpoint never fails the commit that triggered it
}

void Checkpointer::checkpoint(sqlite3* db, int mode) {
  int rc = SQLITE_OK;
  {
    // SQLite refuses (BUSY, without waiting) a checkpoint while another one runs, so the
    // writer's RESTART would fail whenever the thread happens to be copying: take turns.
    std::lock_guard turn{running_};
    rc = sqlite3_wal_checkpoint_v2(db, nullptr, mode, nullptr, nullptr);
  }
  std::lock_guard lock{mutex_};
  // BUSY: another connection is checkpointing right now (or, for RESTART, a reader stayed
  // on old frames past the busy timeout); the next commit tries again.
  if (rc == SQLITE_OK || rc == SQLITE_BUSY) {
    ++completed_;
    last_error_.reset();
  } else {
    last_error_ = sqlite_error(rc, "wal checkpoint", sqlite3_errmsg(db));
  }
}

void Checkpointer::run() {
  for (;;) {
    {
      std::unique_lock lock{mutex_};
      wake_.wait(lock, [this] { return requested_ || stopping_; });
      if (stopping_) return;
      requested_ = false;
    }
    checkpoint(connection_->handle(), SQLITE_CHECKPOINT_PASSIVE);
  }
}

std::optional<StoreError> Checkpointer::last_error() const {
  std::lock_guard lock{mutex_};
  return last_error_;
}

long Checkpointer::completed() const {
  std::lock_guard lock{mutex_};
  return completed_;
}

}  // namespace dag::store::detail
