#include "dag/api/metrics.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "dag/notify/worker.hpp"
#include "dag/shadow/service.hpp"

namespace dag::api {
namespace {

// True when `text` has `line` as a whole line.
bool has_line(const std::string& text, const std::string& line) {
  std::size_t pos = 0;
  while ((pos = text.find(line, pos)) != std::string::npos) {
    const bool starts = pos == 0 || text[pos - 1] == '\n';
    const std::size_t end = pos + line.size();
    const bool ends = end == text.size() || text[end] == '\n';
    if (starts && ends) return true;
    pos = end;
  }
  return false;
}

class ApiMetricsTest : public ::testing::Test {
 protected:
  std::string render() const { return metrics.render(ingest, notify, gauges); }

  ApiMetrics metrics;
  shadow::Metrics ingest;
  notify::WorkerMetrics notify;
  Gauges gauges;
};

TEST_F(ApiMetricsTest, EverySeriesIsThereFromTheStart) {
  const std::string text = render();
  for (const char* line : {
           "dagd_messages_total 0",
           "dagd_shadow_updates_total 0",
           "dagd_shadow_gets_total 0",
           "dagd_shadow_deletes_total 0",
           "dagd_presence_applied_total 0",
           "dagd_presence_dropped_total 0",
           "dagd_messages_ignored_total 0",
           "dagd_events_total 0",
           "dagd_duplicate_events_total 0",
           "dagd_intents_total 0",
           "dagd_timers_fired_total 0",
           "dagd_batches_total 0",
           "dagd_batch_fallbacks_total 0",
           "dagd_store_errors_total 0",
           "dagd_notifications_sent_total 0",
           "dagd_notifications_retried_total 0",
           "dagd_notifications_failed_total 0",
           "dagd_notifications_deferred_total 0",
           "dagd_notifications_storm_holds_total 0",
           "dagd_verifications_sent_total 0",
           "dagd_notify_store_errors_total 0",
           "dagd_outbox_depth 0",
           "dagd_shadow_last_update_commit_timestamp_seconds 0",
           "dagd_devices_connected 0",
           "dagd_devices 0",
           "dagd_ingest_queue 0",
           "dagd_sse_streams 0",
           "dagd_database_up 0",
           "dagd_broker_up 0",
           "# TYPE dagd_messages_total counter",
           "# TYPE dagd_outbox_depth gauge",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
  for (const int code : shadow::kRejectCodes) {
    const std::string line = "dagd_shadow_rejects_total{code=\"" + std::to_string(code) + "\"} 0";
    EXPECT_TRUE(has_line(text, line)) << line;
  }
}

TEST_F(ApiMetricsTest, RendersTheAtomicsCurrentValues) {
  ingest.messages = 12345;
  ingest.updates_accepted = 7;
  ingest.gets_accepted = 3;
  ingest.deletes_accepted = 1;
  ingest.count_reject(404);
  ingest.count_reject(404);
  ingest.count_reject(429);
  ingest.presence_applied = 5;
  ingest.presence_dropped = 6;
  ingest.ignored = 8;
  ingest.events = 9;
  ingest.duplicate_events = 10;
  ingest.intents = 11;
  ingest.timers_fired = 12;
  ingest.batches = 13;
  ingest.batch_fallbacks = 14;
  ingest.store_errors = 15;
  ingest.last_update_commit_ms = 1764300000250;
  notify.sent = 21;
  notify.retries = 22;
  notify.failed = 23;
  notify.deferred = 24;
  notify.verifications = 25;
  notify.storm_holds = 27;
  notify.store_errors = 26;
  gauges = Gauges{.outbox_depth = 31,
                  .devices_connected = 32,
                  .devices_total = 33,
                  .ingest_queue = 34,
                  .sse_streams = 35,
                  .database_ok = true,
                  .broker_ok = false};

  const std::string text = render();
  for (const char* line : {
           "dagd_messages_total 12345",
           "dagd_shadow_updates_total 7",
           "dagd_shadow_gets_total 3",
           "dagd_shadow_deletes_total 1",
           "dagd_shadow_rejects_total{code=\"404\"} 2",
           "dagd_shadow_rejects_total{code=\"429\"} 1",
           "dagd_shadow_rejects_total{code=\"400\"} 0",
           "dagd_presence_applied_total 5",
           "dagd_presence_dropped_total 6",
           "dagd_messages_ignored_total 8",
           "dagd_events_total 9",
           "dagd_duplicate_events_total 10",
           "dagd_intents_total 11",
           "dagd_timers_fired_total 12",
           "dagd_batches_total 13",
           "dagd_batch_fallbacks_total 14",
           "dagd_store_errors_total 15",
           "dagd_notifications_sent_total 21",
           "dagd_notifications_retried_total 22",
           "dagd_notifications_failed_total 23",
           "dagd_notifications_deferred_total 24",
           "dagd_notifications_storm_holds_total 27",
           "dagd_verifications_sent_total 25",
           "dagd_notify_store_errors_total 26",
           "dagd_outbox_depth 31",
           "dagd_shadow_last_update_commit_timestamp_seconds 1764300000.25",
           "dagd_devices_connected 32",
           "dagd_devices 33",
           "dagd_ingest_queue 34",
           "dagd_sse_streams 35",
           "dagd_database_up 1",
           "dagd_broker_up 0",
       }) {
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
  // A later scrape sees later values.
  ingest.messages = 12346;
  EXPECT_TRUE(has_line(render(), "dagd_messages_total 12346"));
}

TEST_F(ApiMetricsTest, HistogramCountsRequestsIntoBuckets) {
  const std::string route = "/v1/devices/{deviceId}";
  metrics.observe_request(route, "GET", 200, 0.0002);
  metrics.observe_request(route, "GET", 200, 0.003);
  metrics.observe_request(route, "GET", 200, 0.3);
  metrics.observe_request(route, "GET", 200, 10);
  metrics.observe_request(route, "GET", 404, 0.001);
  metrics.observe_request(route, "PATCH", 200, -1);  // a clock step: counts as 0

  const std::string text = render();
  const std::string bucket = "dagd_http_request_duration_seconds_bucket";
  const std::string get200 = R"(code="200",method="GET",route="/v1/devices/{deviceId}")";
  const std::string patch200 = R"(code="200",method="PATCH",route="/v1/devices/{deviceId}")";
  const std::vector<std::string> expected{
      bucket + "{" + get200 + R"(,le="0.0005"} 1)",
      bucket + "{" + get200 + R"(,le="0.001"} 1)",
      bucket + "{" + get200 + R"(,le="0.005"} 2)",
      bucket + "{" + get200 + R"(,le="0.25"} 2)",
      bucket + "{" + get200 + R"(,le="0.5"} 3)",
      bucket + "{" + get200 + R"(,le="2.5"} 3)",
      bucket + "{" + get200 + R"(,le="+Inf"} 4)",
      "dagd_http_request_duration_seconds_count{" + get200 + "} 4",
      "dagd_http_request_duration_seconds_sum{" + get200 + "} 10.3032",
      "dagd_http_requests_total{" + get200 + "} 4",
      R"(dagd_http_requests_total{code="404",method="GET",route="/v1/devices/{deviceId}"} 1)",
      bucket + "{" + patch200 + R"(,le="0.0005"} 1)",
      "dagd_http_request_duration_seconds_sum{" + patch200 + "} 0",
  };
  EXPECT_TRUE(has_line(text, "# TYPE dagd_http_request_duration_seconds histogram"));
  EXPECT_TRUE(has_line(text, "# TYPE dagd_http_requests_total counter"));
  for (const std::string& line : expected) {
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
}

TEST_F(ApiMetricsTest, EveryBucketIsExposed) {
  metrics.observe_request("/healthz", "GET", 200, 0.0001);
  const std::string text = render();
  for (const char* le : {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                         "0.25", "0.5", "1", "2.5", "+Inf"}) {
    const std::string line =
        std::string(R"(dagd_http_request_duration_seconds_bucket{code="200",method="GET",)") +
        R"(route="/healthz",le=")" + le + "\"} 1";
    EXPECT_TRUE(has_line(text, line)) << line << "\n" << text;
  }
}

TEST_F(ApiMetricsTest, LabelValuesAreEscaped) {
  metrics.observe_request("/odd\"route\\with\nnewline", "GET", 500, 0.01);
  const std::string text = render();
  EXPECT_TRUE(has_line(
      text,
      R"(dagd_http_requests_total{code="500",method="GET",route="/odd\"route\\with\nnewline"} 1)"))
      << text;
}

TEST_F(ApiMetricsTest, UnknownMethodsShareOneLabel) {
  metrics.observe_request("/v1/auth", "BREW", 405, 0.001);
  metrics.observe_request("/v1/auth", "GET /../../etc", 405, 0.001);
  const std::string text = render();
  EXPECT_TRUE(
      has_line(text, R"(dagd_http_requests_total{code="405",method="other",route="/v1/auth"} 2)"))
      << text;
  EXPECT_EQ(text.find("BREW"), std::string::npos);
}

TEST_F(ApiMetricsTest, ConcurrentObservationsAreAllCounted) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  const std::vector<std::string> routes{"/v1/devices/{deviceId}", "/v1/auth", "/healthz"};
  std::vector<std::thread> threads;
  threads.reserve(kThreads + 1);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics.observe_request(routes[static_cast<std::size_t>(i + t) % routes.size()], "GET", 200,
                                0.001);
      }
    });
  }
  // Scrapes while the counts change.
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) EXPECT_FALSE(render().empty());
  });
  for (auto& thread : threads) thread.join();

  const std::string text = render();
  // 8 threads x 2000 over 3 routes, each thread starting at a different route.
  std::vector<int> expected(routes.size(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) ++expected[static_cast<std::size_t>(i + t) % 3];
  }
  for (std::size_t r = 0; r < routes.size(); ++r) {
    const std::string labels = R"({code="200",method="GET",route=")" + routes[r] + "\"}";
    const std::string tail = labels + " " + std::to_string(expected[r]);
    EXPECT_TRUE(has_line(text, "dagd_http_requests_total" + tail)) << text;
    EXPECT_TRUE(has_line(text, "dagd_http_request_duration_seconds_count" + tail)) << text;
  }
}

}  // namespace
}  // namespace dag::api
