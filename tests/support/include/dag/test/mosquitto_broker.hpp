// MosquittoBroker: a real mosquitto for integration tests, configured by the production
// renderer (dag::broker::render_mosquitto_conf / render_acl) with a TestPki.
//
// start() writes mosquitto.conf and acl into a TempDir, runs `mosquitto -c <conf>` through
// Process with `log_type all` to stderr, and returns once the broker logged that it opened
// the listen socket on its port and is running (an event, bounded by a timeout). The
// listener is 127.0.0.1 only; `user` is the user running the tests, so a root test run
// needs no chmod games (see the mosquitto notes).
//
// On destruction the broker is stopped; if the test failed, its whole log is printed to
// stderr and its directory is kept (see TempDir).
//
// Blocking: start, restart, stop and sighup block until the broker confirms (bounded).
// Thread-safety: drive it from the test thread; log accessors may be called from anywhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "dag/broker/mosquitto_conf.hpp"
#include "dag/common/result.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {

struct BrokerOptions {
  /// Identities with full access (render_acl's service identities).
  std::vector<std::string> service_identities{"dagd"};
  /// Fixed port; default: a free loopback port (retried if taken meanwhile).
  std::optional<std::uint16_t> port;
  /// Configure crlfile (TestPki's CRL, empty at first) so revocation needs only SIGHUP.
  bool use_crl{true};
  bool persistence{false};
  std::optional<broker::Plugin> plugin;
  std::vector<std::string> log_types{"all"};
  /// Bound for every wait on the broker's log (start, reload, stop).
  std::chrono::milliseconds timeout{std::chrono::seconds{10}};
};

class MosquittoBroker {
 public:
  /// Errors: Errc::config when rendering fails; Errc::unavailable when mosquitto exits or
  /// does not come up in time (the message carries its log); Process errors.
  static Result<std::unique_ptr<MosquittoBroker>> start(const TestPki& pki,
                                                        BrokerOptions options = {});
  ~MosquittoBroker();
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  [[nodiscard]] static std::string host() { return "127.0.0.1"; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::filesystem::path& ca_file() const { return ca_file_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  [[nodiscard]] std::filesystem::path conf_file() const { return dir_ / "mosquitto.conf"; }
  [[nodiscard]] std::filesystem::path acl_file() const { return dir_ / "acl"; }
  /// Every run's output, appended (survives restart()).
  [[nodiscard]] std::filesystem::path log_file() const { return dir_ / "mosquitto.log"; }

  /// SIGTERM and wait for the exit. Errors: Errc::timeout (then it was SIGKILLed).
  Result<void> stop();
  /// stop() then start again with the same configuration on the SAME port.
  Result<void> restart();
  /// SIGHUP, then waits for the broker to log the reload: it reloads synchronously in its
  /// single thread, so every connection accepted after this returns sees the new ACL and CRL.
  Result<void> sighup();
  /// Sends `sig` (SIGSTOP freezes the broker: its clients' sockets fill up; SIGCONT).
  /// Errors: Errc::unavailable when not running.
  Result<void> signal(int sig);
  [[nodiscard]] bool running();

  /// Lines of the current run so far; pass line_count() as `from` to wait only for lines
  /// that appear after a point.
  [[nodiscard]] std::size_t line_count() const;
  std::optional<std::string> wait_for_log(std::string_view substring,
                                          std::chrono::milliseconds timeout, std::size_t from = 0);
  std::optional<std::string> wait_for_log(const std::regex& pattern,
                                          std::chrono::milliseconds timeout, std::size_t from = 0);
  /// The log of every run so far (reads log_file()).
  [[nodiscard]] std::string log() const;

 private:
  MosquittoBroker() = default;
  Result<void> launch();

  TempDir dir_{"dag-mosquitto"};  // outlives process_
  BrokerOptions options_;
  std::uint16_t port_{0};
  std::filesystem::path ca_file_;
  std::unique_ptr<Process> process_;
};

}  // namespace dag::test
