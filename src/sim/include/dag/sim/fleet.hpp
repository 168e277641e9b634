// The fleet: N simulated dags in one process, each a real dag::edge::Agent with its own
// MQTT connection, client certificate and key, driven by a few threads.
//
// Each dag is the edge library's Agent (debounce, seq, observedAt, outbox, in-flight
// window, replies) with a simulated power line, a battery gauge that can drain, an outbox
// (in memory, or on disk with outbox_dir) and a libmosquitto client. No thread per dag:
// `threads` workers each own a share of the dags and run libmosquitto's external loop
// (mosquitto_loop_read / write / misc) over one epoll set, with a timer heap for the
// agents' deadlines and the scenario's actions.
//
// run_fleet connects every dag (at most connect_concurrency TLS handshakes at once),
// waits until each one's first report was accepted, plays the scenario, waits until
// every outbox is empty (bounded by drain_timeout), disconnects cleanly and returns the
// summary (see docs/sim.md for its fields).
//
// Descriptors: one socket per dag (and an outbox file with outbox_dir). run_fleet makes
// its libmosquitto handles with the process's descriptor limit at 0 for a few
// milliseconds, so that libmosquitto skips the per-client socket pair it would make for a
// loop thread we do not use (see docs/sim.md); another thread that opens a descriptor in
// that moment fails with EMFILE. Raising the soft limit is the caller's job (main does).
//
// Blocking: run_fleet blocks for the whole run. Thread-safety: one run at a time per
// process is the intended use; `progress` is called on the calling thread about once a
// second. Errors: invalid_argument (options, TLS material that does not load),
// io (epoll, eventfd), crypto.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "dag/common/result.hpp"
#include "dag/sim/identity.hpp"
#include "dag/sim/scenario.hpp"

namespace dag::sim {

struct Progress {
  double elapsed_s{0};
  std::string phase;  ///< "connect", "scenario", "drain", "linger", "stop"
  std::int64_t devices{0};
  std::int64_t connected{0};
  std::int64_t ready{0};      ///< dags whose first report was accepted
  std::int64_t published{0};  ///< shadow updates sent (resends included)
  std::int64_t accepted{0};   ///< /update/accepted received
  std::int64_t rejected{0};
  std::int64_t errors{0};  ///< failed connects, unexpected disconnects, publish errors
};

/// One line for a terminal: "t=3.0s connect connected=812/1000 ready=790 ...".
std::string format_progress(const Progress& p);

struct FleetOptions {
  std::string host{"127.0.0.1"};
  int port{8883};
  int keepalive_s{60};
  unsigned threads{2};
  /// TLS handshakes in progress at once, over the whole fleet.
  int connect_concurrency{64};
  /// Bound for "every dag connected and its first report accepted".
  std::chrono::milliseconds connect_timeout{std::chrono::seconds{120}};
  /// Bound for "every outbox empty" after the scenario.
  std::chrono::milliseconds drain_timeout{std::chrono::seconds{30}};
  ScenarioSpec scenario{};
  std::int64_t debounce_ms{200};
  /// Empty: outboxes in memory (the seq counter then starts at the run's start time in
  /// epoch ms, so the cloud sees every run's seqs above the last run's). Otherwise one
  /// durable outbox per dag in outbox_dir/<id>/ (one more descriptor per dag).
  std::filesystem::path outbox_dir{};
  /// Drain scenario: the charge at which a dag reports shuttingDown and goes dark.
  int shutdown_percent{5};
  /// When set: one JSON line per selected dag (its cut and the acceptance of its report).
  std::filesystem::path per_device{};
  std::function<void(const Progress&)> progress{};
  /// Set from a signal handler to cut the run short (the summary says so). While the
  /// fleet lingers (below), it only ends the linger.
  const std::atomic<bool>* interrupt{nullptr};
  /// After the drain, every dag stays connected this long (or until interrupt) before the
  /// clean disconnects, so that a harness measuring what the cloud does after a scenario
  /// (mails going out) measures it without the fleet's teardown: 10,000 disconnects are
  /// 10,000 presence events for dagd and TLS closes for the broker. 0: none.
  std::chrono::milliseconds linger{0};
  /// Called (on the calling thread) when the linger begins.
  std::function<void()> on_lingering{};
};

/// Runs the fleet; returns the JSON summary. A run that finished but where something
/// went wrong (dags never connected, reports never accepted) still returns its summary,
/// with "ok": false.
Result<nlohmann::json> run_fleet(const FleetOptions& options, const Credentials& credentials);

/// p-th percentile (0..100, nearest rank) of `values` (sorted in place); 0 when empty.
double percentile(std::vector<double>& values, double p);

/// {"count", "p50", "p90", "p99", "max"} of `values` (sorted in place), in milliseconds
/// rounded to 0.1.
nlohmann::json distribution(std::vector<double>& values);

}  // namespace dag::sim
