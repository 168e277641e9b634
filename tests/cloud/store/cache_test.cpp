// The write connection keeps the pages it walks in its own cache (writer_cache_mib), so a
// database larger than SQLite's default 2 MiB cache is not read back from the file on
// every transaction.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

/// read(2)-family system calls this process has made so far (pread64 among them).
long read_calls() {
  std::ifstream io("/proc/self/io");
  std::string key;
  long value = 0;
  while (io >> key >> value) {
    if (key == "syscr:") return value;
  }
  return -1;
}

class CacheTest : public StoreTest {
 protected:
  static constexpr int kDevices = 800;  // ~3.3 MB of shadows: past the default cache

  /// A fresh database of kDevices shadows of ~4 KiB, opened with `cache_mib`.
  std::unique_ptr<Store> seeded(int cache_mib) {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(path_.string() + suffix);
    }
    SqliteOptions options;
    options.writer_cache_mib = cache_mib;
    options.durability = SqliteOptions::Durability::crash_safe;
    auto store = open(options);
    const std::string document = R"({"pad":")" + std::string(4000, 'x') + R"("})";
    auto tx = must(store->begin());
    const Account account = add_account(*tx);
    for (int i = 0; i < kDevices; ++i) {
      const auto id = "dag-" + std::to_string(i);
      add_device(*tx, account.id, id);
      must(tx->put_shadow(id, document, 0));
    }
    must(tx->commit());
    return store;
  }

  /// Reads every shadow through the write connection twice; returns the read calls of
  /// the second pass, when every page has been read once already.
  static long rereads(Store& store) {
    auto pass = [&store] {
      auto tx = must(store.begin(TxMode::read_write));
      for (int i = 0; i < kDevices; ++i) {
        const auto shadow = must(tx->get_shadow("dag-" + std::to_string(i)));
        if (!shadow) throw std::runtime_error("shadow missing");
      }
      must(tx->commit());
    };
    pass();
    const long before = read_calls();
    pass();
    return read_calls() - before;
  }
};

TEST_F(CacheTest, TheWriterKeepsWhatItReadInItsCache) {
  ASSERT_GE(read_calls(), 0) << "no /proc/self/io here";
  auto small = seeded(1);
  const long small_reads = rereads(*small);
  small.reset();
  auto large = seeded(64);
  const long large_reads = rereads(*large);
  // With 1 MiB most of the ~800 pages fall out between passes; with 64 MiB none do.
  EXPECT_GT(small_reads, kDevices / 2);
  EXPECT_LT(large_reads, 20);
}

TEST_F(CacheTest, TheCacheSizeMustBeSensible) {
  SqliteOptions options;
  options.writer_cache_mib = 0;
  EXPECT_EQ(error_of(open_sqlite(dir_ / "x.db", options)), StoreErrc::invalid_argument);
  options.writer_cache_mib = 65537;
  EXPECT_EQ(error_of(open_sqlite(dir_ / "x.db", options)), StoreErrc::invalid_argument);
}

}  // namespace
}  // namespace dag::store::test
