// DagdProcess: a real dagd for integration tests and benchmarks, connected to a
// MosquittoBroker with the TestPki's "dagd" identity and a SQLite file in its own TempDir.
//
// start() runs the dagd binary with its configuration in DAG_* environment variables (the
// path of the TLS files, the database, the broker) and returns once dagd logged
// `mqtt.subscribed`: from then on nothing published to its filters is missed. restart()
// keeps the database and the client id, so the broker's persistent session carries over.
// Tests open the same database file (dag::store::open_sqlite) to provision devices and to
// read results: SQLite's locking makes that safe while dagd runs.
//
// Blocking: start/restart/stop block until dagd confirms (bounded by `timeout`).
// Thread-safety: drive it from the test thread.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dag/common/result.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::test {

struct DagdOptions {
  std::filesystem::path binary;  ///< the dagd executable (tests get it from CMake)
  std::string host{"127.0.0.1"};
  std::uint16_t port{0};  ///< the broker's port
  std::string client_id{"dagd"};
  /// Extra DAG_* settings, e.g. {"DAG_INGEST_RATE_PER_S", "0"}; later entries win.
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{std::chrono::seconds{20}};
};

class DagdProcess {
 public:
  /// Errors: Errc::unavailable when dagd exits or does not subscribe in time (the message
  /// carries its output); Process errors.
  static Result<std::unique_ptr<DagdProcess>> start(TestPki& pki, DagdOptions options);
  ~DagdProcess();
  DagdProcess(const DagdProcess&) = delete;
  DagdProcess& operator=(const DagdProcess&) = delete;

  [[nodiscard]] std::filesystem::path database() const { return dir_ / "dagd.db"; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  [[nodiscard]] Process& process() { return *process_; }
  /// The port of the REST API of the current run (0 when it is off). dagd listens on
  /// any free port unless options.env sets DAG_API_PORT.
  [[nodiscard]] int api_port() const { return api_port_; }
  /// Every run's output so far (this run's lines are also in process()).
  [[nodiscard]] std::string log() const;

  /// SIGTERM and wait for a clean exit. Errors: Errc::internal when it did not exit 0.
  Result<void> stop();
  /// SIGKILL: no shutdown at all.
  void kill9();
  /// Starts again (after stop or kill9) with the same database and identity.
  Result<void> restart();

 private:
  DagdProcess() = default;
  Result<void> launch();

  TempDir dir_{"dag-dagd"};
  DagdOptions options_;
  std::vector<std::pair<std::string, std::string>> env_;
  std::unique_ptr<Process> process_;
  int api_port_{0};
};

}  // namespace dag::test
