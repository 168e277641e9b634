// TempDir: a scratch directory for one test.
//
// Created with mkdtemp under $TMPDIR (or /tmp), mode 0700. Removed with its contents at
// destruction, except when the environment variable DAG_KEEP_TEST_FILES is set (to
// anything but "" or "0") or the current test has failed; a kept directory is announced on
// stderr so its logs can be read.
//
// Thread-safety: not shared between threads. Construction throws std::runtime_error when
// the directory cannot be created (a broken environment, not a test outcome).
#pragma once

#include <filesystem>
#include <string_view>

namespace dag::test {

class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "dag-test");
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(std::string_view name) const {
    return path_ / name;
  }
  /// Keep the directory whatever happens (for a test that wants to leave evidence).
  void keep() { keep_ = true; }

 private:
  void cleanup() noexcept;
  std::filesystem::path path_;
  bool keep_{false};
};

/// True when DAG_KEEP_TEST_FILES asks to keep test files.
bool keep_test_files_requested();

}  // namespace dag::test
