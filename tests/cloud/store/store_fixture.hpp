// Shared set-up of the store tests: a fresh SQLite file per test, and helpers that turn a
// failed StoreResult into a test failure with the store's message.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>  // mkdtemp
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"

namespace dag::store::test {

/// The value of a result that must have succeeded; otherwise the test fails with the
/// store's message (gtest reports the exception).
template <class T>
T must(StoreResult<T> result) {
  if (!result) {
    throw std::runtime_error(std::string{"store error "} + to_string(result.error().code) + ": " +
                             result.error().message);
  }
  return std::move(result).value();
}

inline void must(const StoreResult<void>& result) {
  if (!result) {
    throw std::runtime_error(std::string{"store error "} + to_string(result.error().code) + ": " +
                             result.error().message);
  }
}

/// The code of a result that must have failed.
template <class T>
StoreErrc error_of(const StoreResult<T>& result) {
  if (result) throw std::runtime_error("expected a store error, got success");
  return result.error().code;
}

constexpr std::int64_t kT0 = 1'700'000'000'000;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "dag-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = dir_ / "dag.db";
    store_ = open();
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Store> open(const SqliteOptions& options = {}) {
    return must(open_sqlite(path_, options));
  }
  std::unique_ptr<Transaction> begin(TxMode mode = TxMode::read_write) {
    return must(store_->begin(mode));
  }

  static Account add_account(Transaction& tx, const std::string& username = "alice") {
    return must(tx.create_account(username, "$argon2id$hash", kT0));
  }
  static Device add_device(Transaction& tx, const std::string& account_id,
                           const std::string& id = "6c1f3e0a-5d2b-4c1e-9f1a-2b3c4d5e6f70",
                           const std::string& name = "Ring A") {
    return must(tx.create_device(NewDevice{id, account_id, name, kT0}));
  }
  /// An account with one device, committed; returns the device.
  Device seed() {
    auto tx = begin();
    const Account account = add_account(*tx);
    Device device = add_device(*tx, account.id);
    must(tx->commit());
    return device;
  }

  std::filesystem::path dir_;
  std::filesystem::path path_;
  std::unique_ptr<Store> store_;
};

}  // namespace dag::store::test
