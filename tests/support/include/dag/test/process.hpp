// Process: a child program for integration tests (mosquitto, dag-edge, dagd).
//
// Its stdout and stderr go into one pipe that a reader thread splits into lines: each line
// is appended to a log file (optional) and kept in memory, and waiters are woken through a
// condition variable, so tests wait for events ("listening on ...") instead of sleeping.
// Exits are awaited through a pidfd, also without polling.
//
// The child is killed (SIGKILL) if the thread that spawned it dies (PR_SET_PDEATHSIG), so a
// crashing test leaves no stray broker holding a port: spawn from the test's own thread,
// not from a short-lived helper thread.
//
// Thread-safety: wait_for_line, lines, line_count and output may be called from any
// thread. signal/stop/kill9/wait/wait_for_exit must not race with each other (call them
// from the test thread). The destructor SIGKILLs a still-running child and reaps it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::test {

struct ProcessOptions {
  /// argv[0] is the program: a path, or a name searched in PATH.
  std::vector<std::string> argv;
  /// Added to (or replacing entries of) this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  /// Every output line is appended here as it arrives (empty: memory only).
  std::filesystem::path log_file;
  /// Working directory of the child (empty: inherit).
  std::filesystem::path cwd;
};

struct ExitStatus {
  int code{-1};   ///< exit() code when the child exited, else -1.
  int signal{0};  ///< Terminating signal, else 0.
  [[nodiscard]] bool success() const { return code == 0 && signal == 0; }
  [[nodiscard]] std::string to_string() const;
};

class Process {
 public:
  using LineMatcher = std::function<bool(const std::string&)>;

  /// Starts the child. Errors: Errc::not_found when the program is not found or not
  /// executable, Errc::io when pipe/fork/exec fail (exec errors are reported, not hidden).
  static Result<std::unique_ptr<Process>> spawn(ProcessOptions options);

  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Blocks until an output line with index >= from contains `substring` (returns it),
  /// the output ends (the child closed it, normally by exiting), or the timeout passes
  /// (both: nullopt).
  std::optional<std::string> wait_for_line(std::string_view substring,
                                           std::chrono::milliseconds timeout, std::size_t from = 0);
  /// As above with std::regex_search.
  std::optional<std::string> wait_for_line(const std::regex& pattern,
                                           std::chrono::milliseconds timeout, std::size_t from = 0);
  std::optional<std::string> wait_for_line_if(const LineMatcher& matches,
                                              std::chrono::milliseconds timeout,
                                              std::size_t from = 0);

  /// Lines seen so far (a partial last line counts once the output ends).
  [[nodiscard]] std::size_t line_count() const;
  [[nodiscard]] std::vector<std::string> lines() const;
  /// All lines joined with '\n'.
  [[nodiscard]] std::string output() const;

  /// Sends a signal (e.g. SIGHUP). Errors: Errc::unavailable once the child was reaped.
  Result<void> signal(int sig);

  /// Sends `sig`, waits up to `grace` for the exit, then SIGKILLs. Returns how it ended.
  /// Already reaped: returns the recorded status.
  ExitStatus stop(int sig = SIGTERM, std::chrono::milliseconds grace = std::chrono::seconds{5});
  ExitStatus kill9() { return stop(SIGKILL, std::chrono::seconds{5}); }

  /// Blocks until the child exits; reaps it and reads its output to the end.
  ExitStatus wait();
  /// Bounded wait; nullopt when still running at the deadline. Once the exit is seen, the
  /// output is read to its end (what a grandchild still holding the pipe writes later is not).
  std::optional<ExitStatus> wait_for_exit(std::chrono::milliseconds timeout);
  /// True until the child has exited (reaps it if it just did).
  bool running();

 private:
  Process() = default;
  void reader_loop();
  void finish_reader();

  pid_t pid_{-1};
  int pidfd_{-1};
  int out_fd_{-1};   // read end of the child's stdout/stderr
  int wake_fd_{-1};  // eventfd telling the reader to drain and quit
  std::FILE* log_{nullptr};
  std::optional<ExitStatus> status_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_{false};
  std::thread reader_;
};

/// How a program run to its end ended, and everything it printed.
struct Finished {
  ExitStatus status;
  std::string output;
};

/// The name of the user running this process ("root" when it has none): what
/// `dagctl init --broker-user` needs so that a test's broker keeps the test's user.
std::string current_user_name();

/// Runs a program to its end (a command-line tool under test). A program that cannot be
/// started, or is still running at `timeout` (then killed), gives the default ExitStatus
/// (code -1) and the reason in `output`.
Finished run_to_end(std::vector<std::string> argv, std::chrono::milliseconds timeout);

}  // namespace dag::test
