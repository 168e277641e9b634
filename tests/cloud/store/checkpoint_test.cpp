// WAL checkpoints happen off the committing thread, and the WAL stays bounded even when
// they cannot keep up.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

class CheckpointTest : public StoreTest {
 protected:
  std::unique_ptr<Store> open_small_wal() {
    store_.reset();
    std::filesystem::remove(path_);
    std::filesystem::remove(path_.string() + "-wal");
    std::filesystem::remove(path_.string() + "-shm");
    SqliteOptions options;
    options.checkpoint_pages = 100;
    options.durability = SqliteOptions::Durability::crash_safe;
    return open(options);
  }
  /// Writes `batches` transactions of 50 shadows of about 4 KiB each (about 50 WAL pages).
  static void write(Store& store, const std::vector<std::string>& devices, int batches) {
    const std::string document = R"({"pad":")" + std::string(4000, 'x') + R"("})";
    for (int b = 0; b < batches; ++b) {
      auto tx = must(store.begin());
      for (const auto& id : devices) {
        const auto current = must(tx->get_shadow(id));
        must(tx->put_shadow(id, document, current ? current->revision : 0));
      }
      must(tx->commit());
    }
  }
  static std::vector<std::string> seed_devices(Store& store) {
    std::vector<std::string> ids;
    auto tx = must(store.begin());
    const Account account = add_account(*tx);
    for (int i = 0; i < 50; ++i) {
      ids.push_back("dag-" + std::to_string(i));
      add_device(*tx, account.id, ids.back());
    }
    must(tx->commit());
    return ids;
  }
};

TEST_F(CheckpointTest, TheBackgroundThreadCopiesTheWalIntoTheDatabase) {
  auto store = open_small_wal();
  const auto devices = seed_devices(*store);
  const auto before = std::filesystem::file_size(path_);
  write(*store, devices, 3);  // ~150 pages: past the threshold, far below the inline limit
  // Await the copy (the main file grows when pages land in it), never a fixed sleep.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (std::filesystem::file_size(path_) <= before + 100'000 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{5});
  }
  EXPECT_GT(std::filesystem::file_size(path_), before + 100'000);
  must(store->ping());
}

TEST_F(CheckpointTest, TheWalStaysBounded) {
  auto store = open_small_wal();
  const auto devices = seed_devices(*store);
  write(*store, devices, 60);  // ~3,000 pages written in all
  // Never more than the inline limit (8 x 100 pages) plus one batch, whatever the thread did.
  const auto wal = std::filesystem::file_size(path_.string() + "-wal");
  EXPECT_LT(wal, (8 * 100 + 60) * (4096 + 24) + 32);
}

TEST_F(CheckpointTest, CheckpointPagesMustBeSensible) {
  SqliteOptions options;
  options.checkpoint_pages = 10;
  EXPECT_EQ(error_of(open_sqlite(dir_ / "x.db", options)), StoreErrc::invalid_argument);
}

}  // namespace
}  // namespace dag::store::test
