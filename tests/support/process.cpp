#include "dag/test/process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <pwd.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "sys_text.hpp"

// glibc 2.36's <sys/pidfd.h> lacks __BEGIN_DECLS, so C++ would mangle these C symbols.
extern "C" {
#include <sys/pidfd.h>
}

extern char** environ;  // NOLINT(readability-redundant-declaration): POSIX, not in a header

namespace dag::test {
namespace {

// Resolved in the parent: between fork and exec only async-signal-safe calls are allowed,
// and a PATH search allocates.
Result<std::string> resolve_program(const std::string& name) {
  if (name.empty()) return fail(Errc::invalid_argument, "empty program name");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) {
      return fail(Errc::not_found, fmt::format("{}: {}", name, detail::errno_text(errno)));
    }
    return name;
  }
  const std::string path = detail::env_or("PATH", "/usr/local/bin:/usr/bin:/bin");
  std::string_view dirs = path;
  while (!dirs.empty()) {
    const auto colon = dirs.find(':');
    std::string dir{dirs.substr(0, colon)};
    dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    if (dir.empty()) dir = ".";
    std::string candidate = dir;
    candidate += '/';
    candidate += name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return fail(Errc::not_found, fmt::format("{} not found in PATH", name));
}

std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv{*e};
    const auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string{kv.substr(0, eq)}] = std::string{kv.substr(eq + 1)};
  }
  for (const auto& [k, v] : extra) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) {
    std::string kv = k;
    kv += '=';
    kv += v;
    out.push_back(std::move(kv));
  }
  return out;
}

std::vector<char*> c_array(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

ExitStatus decode(int status) {
  ExitStatus s;
  if (WIFEXITED(status)) s.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) s.signal = WTERMSIG(status);
  return s;
}

// Child side of fork: async-signal-safe calls only. Reports exec's errno through `err_fd`
// (close-on-exec, so a successful exec closes it and the parent reads 0 bytes).
[[noreturn]] void exec_child(pid_t parent, int out_fd, int err_fd, const char* program,
                             char* const* argv, char* const* envp, const char* cwd) {
  auto die = [err_fd](int err) {
    (void)!::write(err_fd, &err, sizeof err);
    ::_exit(127);
  };
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die(errno);
  if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
  const int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull < 0 || ::dup2(devnull, STDIN_FILENO) < 0) die(errno);
  if (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(out_fd, STDERR_FILENO) < 0) die(errno);
  // The test process holds sockets (MQTT clients) that must not stay open in the child,
  // or closing them in the test would not reach the peer.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) die(errno);
  // Signal mask and ignored signals survive exec; the child should start clean.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // NOLINT(concurrency-mt-unsafe): one thread here
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT}) ::sigaction(sig, &dfl, nullptr);
  if (cwd != nullptr && ::chdir(cwd) != 0) die(errno);
  ::execve(program, argv, envp);
  die(errno);
  ::_exit(127);  // unreachable; keeps [[noreturn]] honest for the compiler
}

}  // namespace

std::string ExitStatus::to_string() const {
  if (signal != 0) return fmt::format("killed by {}", detail::signal_name(signal));
  return fmt::format("exit code {}", code);
}

Result<std::unique_ptr<Process>> Process::spawn(ProcessOptions options) {
  if (options.argv.empty()) return fail(Errc::invalid_argument, "Process needs argv[0]");
  auto program = resolve_program(options.argv.front());
  if (!program) return Unexpected<Error>{program.error()};

  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = build_env(options.env);
  std::vector<char*> argv = c_array(argv_strings);
  std::vector<char*> envp = c_array(env_strings);
  const std::string cwd = options.cwd.string();

  std::unique_ptr<Process> p{new Process()};
  if (!options.log_file.empty()) {
    p->log_ = std::fopen(options.log_file.c_str(), "ae");
    if (p->log_ == nullptr) {
      return fail(Errc::io, fmt::format("opening {}: {}", options.log_file.string(),
                                        detail::errno_text(errno)));
    }
  }
  std::array<int, 2> out{-1, -1};
  std::array<int, 2> err{-1, -1};
  if (::pipe2(out.data(), O_CLOEXEC) != 0)
    return fail(Errc::io, "pipe2: " + detail::errno_text(errno));
  if (::pipe2(err.data(), O_CLOEXEC) != 0) {
    const int saved = errno;
    ::close(out[0]);
    ::close(out[1]);
    return fail(Errc::io, "pipe2: " + detail::errno_text(saved));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int saved = errno;
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return fail(Errc::io, "fork: " + detail::errno_text(saved));
  }
  if (pid == 0) {
    exec_child(parent, out[1], err[1], program->c_str(), argv.data(), envp.data(),
               cwd.empty() ? nullptr : cwd.c_str());
  }
  ::close(out[1]);
  ::close(err[1]);
  p->pid_ = pid;
  p->out_fd_ = out[0];

  int child_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(err[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(err[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    p->pid_ = -1;
    const Errc code = child_errno == ENOENT || child_errno == EACCES ? Errc::not_found : Errc::io;
    return fail(code, fmt::format("exec {}: {}", *program, detail::errno_text(child_errno)));
  }

  p->pidfd_ = ::pidfd_open(pid, 0);
  p->wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (p->pidfd_ < 0 || p->wake_fd_ < 0) {
    const int saved = errno;
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    p->pid_ = -1;
    return fail(Errc::io, "pidfd_open/eventfd: " + detail::errno_text(saved));
  }
  p->reader_ = std::thread([raw = p.get()] { raw->reader_loop(); });
  return p;
}

Process::~Process() {
  if (pid_ > 0 && !status_) stop(SIGKILL, std::chrono::seconds{5});
  finish_reader();
  if (pidfd_ >= 0) ::close(pidfd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  if (out_fd_ >= 0) ::close(out_fd_);
  if (log_ != nullptr) std::fclose(log_);
}

void Process::finish_reader() {
  if (!reader_.joinable()) return;
  // A grandchild may still hold the pipe open; the reader drains what is there and quits.
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  reader_.join();
}

void Process::reader_loop() {
  std::string partial;
  std::array<char, 4096> buf{};
  bool draining = false;
  auto publish = [this](std::vector<std::string> batch, bool eof) {
    if (log_ != nullptr) {
      for (const auto& l : batch) std::fprintf(log_, "%s\n", l.c_str());
      std::fflush(log_);
    }
    {
      std::lock_guard lock{mu_};
      for (auto& l : batch) lines_.push_back(std::move(l));
      if (eof) eof_ = true;
    }
    cv_.notify_all();
  };
  for (;;) {
    std::array<pollfd, 2> fds{{{out_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}}};
    const int ready = ::poll(fds.data(), draining ? 1 : 2, draining ? 0 : -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;  // draining and nothing left, or poll failed
    if ((fds[1].revents & POLLIN) != 0) draining = true;
    if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
    const ssize_t n = ::read(out_fd_, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf.data(), static_cast<std::size_t>(n));
    std::vector<std::string> batch;
    for (auto nl = partial.find('\n'); nl != std::string::npos; nl = partial.find('\n')) {
      batch.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
    }
    if (!batch.empty()) publish(std::move(batch), false);
  }
  std::vector<std::string> rest;
  if (!partial.empty()) rest.push_back(std::move(partial));
  publish(std::move(rest), true);
}

std::optional<std::string> Process::wait_for_line_if(const LineMatcher& matches,
                                                     std::chrono::milliseconds timeout,
                                                     std::size_t from) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock{mu_};
  std::size_t next = from;
  for (;;) {
    for (; next < lines_.size(); ++next) {
      if (matches(lines_[next])) return lines_[next];
    }
    if (eof_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && next == lines_.size()) {
      return std::nullopt;
    }
  }
}

std::optional<std::string> Process::wait_for_line(std::string_view substring,
                                                  std::chrono::milliseconds timeout,
                                                  std::size_t from) {
  const std::string needle{substring};
  return wait_for_line_if(
      [&needle](const std::string& line) { return line.find(needle) != std::string::npos; },
      timeout, from);
}

std::optional<std::string> Process::wait_for_line(const std::regex& pattern,
                                                  std::chrono::milliseconds timeout,
                                                  std::size_t from) {
  return wait_for_line_if(
      [&pattern](const std::string& line) { return std::regex_search(line, pattern); }, timeout,
      from);
}

std::size_t Process::line_count() const {
  std::lock_guard lock{mu_};
  return lines_.size();
}

std::vector<std::string> Process::lines() const {
  std::lock_guard lock{mu_};
  return lines_;
}

std::string Process::output() const {
  std::lock_guard lock{mu_};
  std::string out;
  for (const auto& l : lines_) {
    out += l;
    out += '\n';
  }
  return out;
}

Result<void> Process::signal(int sig) {
  if (status_ || pid_ <= 0) return fail(Errc::unavailable, "process already exited");
  // pidfd_send_signal cannot hit a recycled pid, unlike kill().
  if (::pidfd_send_signal(pidfd_, sig, nullptr, 0) != 0) {
    return fail(Errc::io, "pidfd_send_signal: " + detail::errno_text(errno));
  }
  return ok();
}

std::optional<ExitStatus> Process::wait_for_exit(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return ExitStatus{};
  pollfd fd{pidfd_, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int ready = ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    break;
  }
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  status_ = r == pid_ ? decode(status) : ExitStatus{};
  // The child may exit with its last lines still in the pipe; read them now, so output()
  // after an exit is whole.
  finish_reader();
  return status_;
}

ExitStatus Process::wait() {
  for (;;) {
    if (auto s = wait_for_exit(std::chrono::hours{24})) return *s;
  }
}

bool Process::running() {
  return !wait_for_exit(std::chrono::milliseconds{0}).has_value();
}

ExitStatus Process::stop(int sig, std::chrono::milliseconds grace) {
  if (status_) return *status_;
  if (pid_ <= 0) return ExitStatus{};
  if (signal(sig)) {
    if (auto s = wait_for_exit(grace)) return *s;
  }
  (void)signal(SIGKILL);
  return wait();
}

std::string current_user_name() {
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 4096> buf{};
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return "root";
  }
  return pw.pw_name;
}

Finished run_to_end(std::vector<std::string> argv, std::chrono::milliseconds timeout) {
  auto p = Process::spawn({.argv = std::move(argv)});
  if (!p) return {ExitStatus{}, p.error().message};
  auto status = (*p)->wait_for_exit(timeout);
  if (!status) return {ExitStatus{}, "timed out: " + (*p)->output()};
  return {*status, (*p)->output()};
}

}  // namespace dag::test
