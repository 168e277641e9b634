#include "dag/api/metrics.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "dag/notify/worker.hpp"
#include "dag/shadow/service.hpp"

namespace dag::api {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

std::string_view bounded_method(std::string_view method) {
  static constexpr std::array<std::string_view, 9> kMethods{
      "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"};
  return std::find(kMethods.begin(), kMethods.end(), method) != kMethods.end() ? method : "other";
}

ClientMetric counter_value(std::uint64_t value) {
  ClientMetric m;
  m.counter.value = static_cast<double>(value);
  return m;
}

ClientMetric gauge_value(double value) {
  ClientMetric m;
  m.gauge.value = value;
  return m;
}

MetricFamily counter(std::string name, std::string help, const std::atomic<std::uint64_t>& value) {
  return {std::move(name),
          std::move(help),
          MetricType::Counter,
          {counter_value(value.load(std::memory_order_relaxed))}};
}

MetricFamily gauge(std::string name, std::string help, double value) {
  return {std::move(name), std::move(help), MetricType::Gauge, {gauge_value(value)}};
}

void add_ingest(std::vector<MetricFamily>& out, const shadow::Metrics& m) {
  out.push_back(counter("dagd_messages_total", "Inbound MQTT messages.", m.messages));
  out.push_back(
      counter("dagd_shadow_updates_total", "Committed shadow updates.", m.updates_accepted));
  out.push_back(counter("dagd_shadow_gets_total", "Shadow gets answered.", m.gets_accepted));
  out.push_back(
      counter("dagd_shadow_deletes_total", "Shadow deletes committed.", m.deletes_accepted));
  MetricFamily rejects{"dagd_shadow_rejects_total",
                       "Shadow requests rejected, by error code.",
                       MetricType::Counter,
                       {}};
  for (std::size_t i = 0; i < shadow::kRejectCodes.size(); ++i) {
    auto metric = counter_value(m.rejected.at(i).load(std::memory_order_relaxed));
    metric.label.push_back({"code", std::to_string(shadow::kRejectCodes.at(i))});
    rejects.metric.push_back(std::move(metric));
  }
  out.push_back(std::move(rejects));
  out.push_back(counter("dagd_presence_applied_total", "Presence and lifecycle news applied.",
                        m.presence_applied));
  out.push_back(counter("dagd_presence_dropped_total",
                        "Presence messages dropped: malformed, unknown, stale or duplicate.",
                        m.presence_dropped));
  out.push_back(
      counter("dagd_messages_ignored_total", "Messages on topics dagd ignores.", m.ignored));
  out.push_back(counter("dagd_events_total", "History events appended.", m.events));
  out.push_back(counter("dagd_duplicate_events_total", "Resent reports refused by (device, seq).",
                        m.duplicate_events));
  out.push_back(counter("dagd_intents_total", "Notification intents queued.", m.intents));
  out.push_back(counter("dagd_timers_fired_total", "Durable timers fired.", m.timers_fired));
  out.push_back(counter("dagd_batches_total", "Committed ingest batch transactions.", m.batches));
  out.push_back(counter("dagd_batch_fallbacks_total", "Ingest batches redone message by message.",
                        m.batch_fallbacks));
  out.push_back(counter("dagd_store_errors_total", "Ingest transactions that failed for good.",
                        m.store_errors));
  out.push_back(
      gauge("dagd_shadow_last_update_commit_timestamp_seconds",
            "When the last shadow update was committed (Unix time; 0: none yet).",
            static_cast<double>(m.last_update_commit_ms.load(std::memory_order_relaxed)) / 1000.0));
}

void add_notify(std::vector<MetricFamily>& out, const notify::WorkerMetrics& m) {
  out.push_back(
      counter("dagd_notifications_sent_total", "Notification messages delivered.", m.sent));
  out.push_back(counter("dagd_notifications_retried_total",
                        "Transient delivery failures scheduled again.", m.retries));
  out.push_back(
      counter("dagd_notifications_failed_total", "Notification intents given up.", m.failed));
  out.push_back(counter("dagd_notifications_deferred_total",
                        "Notification intents held for a follow-up message.", m.deferred));
  out.push_back(counter("dagd_notifications_storm_holds_total",
                        "Times deliveries were held while the ingest was behind (a storm).",
                        m.storm_holds));
  out.push_back(counter("dagd_verifications_sent_total", "Address verification mails sent.",
                        m.verifications));
  out.push_back(counter("dagd_notify_store_errors_total",
                        "Store failures of the notification worker.", m.store_errors));
}

void add_gauges(std::vector<MetricFamily>& out, const Gauges& g) {
  out.push_back(gauge("dagd_outbox_depth", "Notification intents not yet done.",
                      static_cast<double>(g.outbox_depth)));
  out.push_back(gauge("dagd_devices_connected", "Devices connected to the broker.",
                      static_cast<double>(g.devices_connected)));
  out.push_back(gauge("dagd_devices", "Registered devices.", static_cast<double>(g.devices_total)));
  out.push_back(gauge("dagd_ingest_queue", "Inbound messages waiting for the ingest worker.",
                      static_cast<double>(g.ingest_queue)));
  out.push_back(
      gauge("dagd_sse_streams", "Open live event streams.", static_cast<double>(g.sse_streams)));
  out.push_back(gauge("dagd_database_up", "1 when the database answers.", g.database_ok ? 1 : 0));
  out.push_back(
      gauge("dagd_broker_up", "1 when dagd is connected to the broker.", g.broker_ok ? 1 : 0));
}

}  // namespace

ApiMetrics::ApiMetrics()
    : durations_(prometheus::BuildHistogram()
                     .Name("dagd_http_request_duration_seconds")
                     .Help("Time to answer an API request, by route template, method and code.")
                     .Register(registry_)),
      requests_(prometheus::BuildCounter()
                    .Name("dagd_http_requests_total")
                    .Help("API requests answered, by route template, method and code.")
                    .Register(registry_)) {}

ApiMetrics::~ApiMetrics() = default;

void ApiMetrics::observe_request(std::string_view route, std::string_view method, int status,
                                 double seconds) {
  const std::string_view bounded = bounded_method(method);
  const std::string code = std::to_string(status);
  std::string key;
  key.reserve(route.size() + bounded.size() + code.size() + 2);
  key.append(route).append(1, '\n').append(bounded).append(1, '\n').append(code);

  Series series{};
  {
    const std::lock_guard lock(series_mutex_);
    auto it = series_.find(key);
    if (it == series_.end()) {
      const prometheus::Labels labels{
          {"route", std::string(route)}, {"method", std::string(bounded)}, {"code", code}};
      const prometheus::Histogram::BucketBoundaries buckets(kBuckets.begin(), kBuckets.end());
      it = series_
               .emplace(std::move(key),
                        Series{&durations_.Add(labels, buckets), &requests_.Add(labels)})
               .first;
    }
    series = it->second;
  }
  // Histogram and Counter synchronise themselves; the map's lock is not held for them.
  series.duration->Observe(std::isnan(seconds) || seconds < 0 ? 0.0 : seconds);
  series.requests->Increment();
}

std::string ApiMetrics::render(const shadow::Metrics& ingest, const notify::WorkerMetrics& notify,
                               const Gauges& gauges) const {
  std::vector<MetricFamily> families;
  families.reserve(40);
  add_ingest(families, ingest);
  add_notify(families, notify);
  add_gauges(families, gauges);
  auto collected = registry_.Collect();
  std::move(collected.begin(), collected.end(), std::back_inserter(families));
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace dag::api
