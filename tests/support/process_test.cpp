// Tests of the test-support pieces that need no broker: Process, TempDir, free ports.
#include "dag/test/process.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "dag/test/ports.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::test {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<Process> sh(const std::string& script, ProcessOptions options = {}) {
  options.argv = {"sh", "-c", script};
  auto p = Process::spawn(std::move(options));
  EXPECT_TRUE(p) << p.error().message;
  return p ? std::move(*p) : nullptr;
}

TEST(ProcessTest, WaitsForALineThenStopsWithTheSignal) {
  auto p = sh("echo starting; echo 'listening on 1234'; exec sleep 30");
  ASSERT_TRUE(p);
  auto line = p->wait_for_line("listening on", 5s);
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "listening on 1234");
  EXPECT_TRUE(p->running());
  const auto status = p->stop(SIGTERM, 5s);
  EXPECT_EQ(status.signal, SIGTERM) << status.to_string();
  EXPECT_FALSE(p->running());
}

TEST(ProcessTest, RegexAndStartIndex) {
  auto p = sh("echo 'port=1'; echo 'port=2'; exec sleep 30");
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->wait_for_line(std::regex{"port=2"}, 5s));
  auto first = p->wait_for_line(std::regex{R"(port=\d)"}, 5s);
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, "port=1");
  auto after = p->wait_for_line(std::regex{R"(port=\d)"}, 5s, 1);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, "port=2");
  EXPECT_EQ(p->line_count(), 2U);
}

TEST(ProcessTest, EndOfOutputEndsTheWaitEarly) {
  auto p = sh("echo only; exit 3");
  ASSERT_TRUE(p);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(p->wait_for_line("never printed", 30s));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(p->wait().code, 3);
  EXPECT_EQ(p->output(), "only\n");
}

TEST(ProcessTest, OutputIsWholeOnceTheExitIsSeen) {
  // A child that prints and exits at once: its last lines may still be in the pipe when
  // its exit is seen. run_to_end's output must hold them all, every time.
  for (int round = 0; round < 20; ++round) {
    const auto done = run_to_end({"sh", "-c", "seq 1 20000"}, 10s);
    ASSERT_TRUE(done.status.success()) << done.output;
    ASSERT_EQ(std::count(done.output.begin(), done.output.end(), '\n'), 20000) << round;
    ASSERT_TRUE(done.output.ends_with("\n20000\n")) << round;
  }
}

TEST(ProcessTest, TimesOutWhileTheChildIsSilent) {
  auto p = sh("exec sleep 30");
  ASSERT_TRUE(p);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(p->wait_for_line("x", 200ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_FALSE(p->wait_for_exit(50ms));
  EXPECT_EQ(p->kill9().signal, SIGKILL);
}

TEST(ProcessTest, CapturesStderrEnvironmentAndPartialLinesIntoTheLogFile) {
  TempDir dir;
  ProcessOptions options;
  options.env = {{"DAG_PROCESS_TEST", "hello"}};
  options.log_file = dir / "out.log";
  options.cwd = dir.path();
  auto p = sh("echo \"$DAG_PROCESS_TEST\"; echo oops >&2; pwd; printf tail", options);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->wait().success());
  ASSERT_TRUE(p->wait_for_line("tail", 5s));  // the unterminated line counts at EOF
  const auto lines = p->lines();
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_EQ(lines[0], "hello");
  EXPECT_EQ(lines[1], "oops");
  EXPECT_EQ(std::filesystem::canonical(lines[2]), std::filesystem::canonical(dir.path()));
  p.reset();  // joins the reader, so the file is complete
  std::ifstream in{dir / "out.log"};
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "hello\noops\n" + lines[2] + "\ntail\n");
}

TEST(ProcessTest, MissingProgramIsAnError) {
  auto p = Process::spawn({{"/nonexistent/dag-program"}, {}, {}, {}});
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::not_found);
  auto q = Process::spawn({{"dag-no-such-program-in-path"}, {}, {}, {}});
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().code, Errc::not_found);
}

TEST(ProcessTest, DestructorKillsAndReaps) {
  pid_t pid = 0;
  {
    auto p = sh("exec sleep 30");
    ASSERT_TRUE(p);
    pid = p->pid();
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped: no such process (or someone else's, not ours)
}

TEST(TempDirTest, RemovedUnlessKept) {
  std::filesystem::path removed;
  std::filesystem::path kept;
  {
    TempDir a;
    TempDir b;
    removed = a.path();
    kept = b.path();
    b.keep();
    std::ofstream{a / "file"} << "x";
    EXPECT_TRUE(std::filesystem::exists(a / "file"));
  }
  EXPECT_EQ(std::filesystem::exists(removed), keep_test_files_requested());
  EXPECT_TRUE(std::filesystem::exists(kept));
  std::filesystem::remove_all(kept);
}

TEST(PortsTest, FreeLoopbackPortIsNonZero) {
  auto port = free_loopback_port();
  ASSERT_TRUE(port) << port.error().message;
  EXPECT_GT(*port, 0);
}

}  // namespace
}  // namespace dag::test
