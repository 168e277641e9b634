// dagd's Prometheus exposition for `GET /metrics` (text format 0.0.4), every series
// prefixed `dagd_`:
// - the ingest and notification counters, read from the atomics the shadow service and
//   the outbox worker keep anyway (dag/shadow/service.hpp, dag/notify/worker.hpp), so the
//   hot paths pay nothing for the exposition;
// - gauges the caller samples at scrape time (outbox depth, devices, queues, health);
// - per request: http_request_duration_seconds and http_requests_total by route TEMPLATE,
//   method and status code. Labels come from the route table, never from the concrete
//   path, so the number of series stays bounded whatever clients send; a method that is no
//   standard HTTP method is recorded as "other" for the same reason.
//
// Thread-safety: observe_request() and render() may be called from any thread at once.
// Blocking: neither does I/O; both take short internal locks.
// Errors: none (allocation failure throws).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dag::shadow {
struct Metrics;
}  // namespace dag::shadow

namespace dag::notify {
struct WorkerMetrics;
}  // namespace dag::notify

namespace dag::api {

/// Values sampled when /metrics is scraped.
struct Gauges {
  std::int64_t outbox_depth{0};       ///< notification intents not yet done
  std::int64_t devices_connected{0};  ///< devices whose connection status is "connected"
  std::int64_t devices_total{0};      ///< registered, unrevoked devices
  std::size_t ingest_queue{0};        ///< inbound messages waiting for the ingest worker
  std::size_t sse_streams{0};         ///< open live streams (EventHub::streams())
  bool database_ok{false};
  bool broker_ok{false};
};

class ApiMetrics {
 public:
  /// Upper bounds of the request duration buckets (seconds): a fast API, so fine below 0.1.
  static constexpr std::array<double, 12> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1,    2.5};

  ApiMetrics();
  ApiMetrics(const ApiMetrics&) = delete;
  ApiMetrics& operator=(const ApiMetrics&) = delete;
  ApiMetrics(ApiMetrics&&) = delete;
  ApiMetrics& operator=(ApiMetrics&&) = delete;
  ~ApiMetrics();

  /// Records one answered request. `route` is the route template (e.g.
  /// "/v1/devices/{deviceId}"); `seconds` below zero or NaN counts as 0.
  void observe_request(std::string_view route, std::string_view method, int status, double seconds);

  /// Every series, as the body of a /metrics answer (Content-Type
  /// `text/plain; version=0.0.4`).
  [[nodiscard]] std::string render(const shadow::Metrics& ingest,
                                   const notify::WorkerMetrics& notify, const Gauges& gauges) const;

 private:
  struct Series {
    prometheus::Histogram* duration;
    prometheus::Counter* requests;
  };

  prometheus::Registry registry_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Family<prometheus::Counter>& requests_;
  /// Each label set's series, so that a request costs one lookup rather than the
  /// family's Add() (which builds a histogram each call just to find the existing one).
  std::mutex series_mutex_;
  std::unordered_map<std::string, Series> series_;
};

}  // namespace dag::api
