#include "dag/test/temp_dir.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <system_error>

#include "sys_text.hpp"

namespace dag::test {

bool keep_test_files_requested() {
  const std::string v = detail::env_or("DAG_KEEP_TEST_FILES", "");
  return !v.empty() && v != "0";
}

TempDir::TempDir(std::string_view prefix) {
  const std::filesystem::path base = detail::env_or("TMPDIR", "/tmp");
  std::string templ = (base / (std::string{prefix} + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) {
    throw std::runtime_error("mkdtemp " + templ + ": " + detail::errno_text(errno));
  }
  path_ = templ;
}

TempDir::~TempDir() {
  cleanup();
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)), keep_(other.keep_) {
  other.path_.clear();
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    cleanup();
    path_ = std::move(other.path_);
    keep_ = other.keep_;
    other.path_.clear();
  }
  return *this;
}

void TempDir::cleanup() noexcept {
  if (path_.empty()) return;
  if (keep_ || keep_test_files_requested() || ::testing::Test::HasFailure()) {
    std::cerr << "[dag::test] kept test files in " << path_.string() << '\n';
  } else {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  path_.clear();
}

}  // namespace dag::test
