// dag-edge figures on this machine, against a real Mosquitto with TLS on loopback:
//   latency    line change -> PUBACK from the broker, N flips (in-process agent, debounce 0,
//              so the figure is the agent's own cost: outbox fsync + publish + broker ack)
//   footprint  the real dag-edge binary connected and idle: VmHWM, VmRSS, CPU over S seconds
// Usage: edge_bench [--flips N] [--idle-seconds S] [--edge-bin PATH]
// Prints one JSON line. Not a test: figures go in the closing note and bench/README.md.
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "dag/common/clock.hpp"
#include "dag/edge/agent.hpp"
#include "dag/edge/run.hpp"
#include "dag/mqtt/client.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/test/mosquitto_broker.hpp"
#include "dag/test/mqtt_test_client.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

#include "bench_support.hpp"

namespace {

using dag::bench::percentile;
using dag::bench::proc_status;
using dag::bench::proc_status_file;

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using dag::test::MqttTestClient;

// Replies /accepted to every update, as dagd will.
class Responder {
 public:
  explicit Responder(std::unique_ptr<MqttTestClient> c) : c_(std::move(c)) {
    (void)c_->subscribe("$aws/things/+/shadow/update", 1);
    t_ = std::thread([this] {
      while (!stop_) {
        auto m = c_->wait_for_message("$aws/things/+/shadow/update", 100ms);
        if (!m) continue;
        const json doc = json::parse(m->payload, nullptr, false);
        json acc = {{"version", 1}};
        if (doc.is_object() && doc.contains("clientToken")) acc["clientToken"] = doc["clientToken"];
        (void)c_->publish(m->topic + "/accepted", acc.dump(), 1);
      }
    });
  }
  ~Responder() {
    stop_ = true;
    t_.join();
  }
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

 private:
  std::unique_ptr<MqttTestClient> c_;
  std::atomic<bool> stop_{false};
  std::thread t_;
};

class Events final : public dag::mqtt::Handler {
 public:
  void on_connected(bool /*sp*/) override {
    push({dag::edge::TransportEvent::Kind::connected, {}, {}});
  }
  void on_disconnected(const std::string& /*r*/) override {
    push({dag::edge::TransportEvent::Kind::disconnected, {}, {}});
  }
  void on_message(dag::mqtt::Message m) override {
    push({dag::edge::TransportEvent::Kind::message, std::move(m.topic), std::move(m.payload)});
  }
  void on_published(int mid) override {
    std::lock_guard l(mu_);
    acked_[mid] = Clock::now();
    cv_.notify_all();
  }
  void push(dag::edge::TransportEvent e) {
    std::lock_guard l(mu_);
    q_.push_back(std::move(e));
    cv_.notify_all();
  }
  std::deque<dag::edge::TransportEvent> take() {
    std::lock_guard l(mu_);
    std::deque<dag::edge::TransportEvent> out;
    out.swap(q_);
    return out;
  }
  bool wait_event(std::chrono::milliseconds t) {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, t, [&] { return !q_.empty(); });
  }
  std::optional<Clock::time_point> wait_ack(int mid, std::chrono::milliseconds t) {
    std::unique_lock l(mu_);
    if (!cv_.wait_for(l, t, [&] { return acked_.contains(mid); })) return std::nullopt;
    return acked_[mid];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<dag::edge::TransportEvent> q_;
  std::map<int, Clock::time_point> acked_;
};

class RecordingTransport final : public dag::edge::Transport {
 public:
  explicit RecordingTransport(dag::mqtt::Client& c) : c_(c) {}
  dag::Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                           bool retain) override {
    auto r = c_.publish(topic, payload, qos, retain);
    if (r && topic.ends_with("/shadow/update")) last_update_mid = *r;
    return r;
  }
  [[nodiscard]] bool connected() const override { return c_.connected(); }
  int last_update_mid{-1};

 private:
  dag::mqtt::Client& c_;
};

json latency(dag::test::TestPki& pki, dag::test::MosquittoBroker& broker, int flips) {
  dag::test::TempDir dir("dag-edge-bench");
  const auto& cert = pki.client("bench-dag");
  dag::edge::EdgeSettings s;
  s.device_id = "bench-dag";
  s.state_dir = dir.path();
  s.tunables.debounce_ms = 0;
  Events events;
  dag::mqtt::Options o;
  o.client_id = s.device_id;
  o.host = broker.host();
  o.port = broker.port();
  o.ca_file = broker.ca_file().string();
  o.cert_file = cert.cert.string();
  o.key_file = cert.key.string();
  auto client = dag::mqtt::Client::create(o, events);
  if (!client) throw std::runtime_error(client.error().message);
  for (const auto& f : dag::protocol::device_subscriptions(s.device_id)) (*client)->subscribe(f, 1);
  auto box = dag::edge::Outbox::open(dir.path());
  if (!box) throw std::runtime_error(box.error().message);
  dag::SystemClock clock;
  dag::edge::SimLine line(true);
  dag::edge::NoGauge gauge;
  RecordingTransport transport(**client);
  dag::edge::Agent agent(s, {"bench", "bench"}, clock, line, gauge, *box, transport);
  agent.start();
  (*client)->start();
  auto drain = [&] {
    for (auto& e : events.take()) agent.on_transport(e);
  };
  while (!(*client)->connected()) events.wait_event(100ms);
  drain();
  agent.on_timer();

  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(flips));
  for (int i = 0; i < flips; ++i) {
    const int before = transport.last_update_mid;
    const auto t0 = Clock::now();
    line.toggle();
    agent.on_line_events(*line.drain());
    if (transport.last_update_mid == before) throw std::runtime_error("flip was not published");
    auto t1 = events.wait_ack(transport.last_update_mid, 5s);
    if (!t1) throw std::runtime_error("no PUBACK");
    ms.push_back(std::chrono::duration<double, std::milli>(*t1 - t0).count());
    // Let /accepted arrive so the in-flight window never fills.
    while (box->pending().size() > 0 && events.wait_event(1s)) drain();
  }
  (*client)->stop();
  return {{"flips", flips},
          {"p50_ms", percentile(ms, 0.50)},
          {"p90_ms", percentile(ms, 0.90)},
          {"p99_ms", percentile(ms, 0.99)},
          {"max_ms", percentile(ms, 1.0)}};
}

long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = all.rfind(')');
  std::istringstream rest(all.substr(close + 2));
  std::string field;
  long utime = 0;
  long stime = 0;
  for (int i = 3; i <= 15; ++i) {
    rest >> field;
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

json footprint(dag::test::TestPki& pki, dag::test::MosquittoBroker& broker, const std::string& bin,
               int idle_seconds) {
  dag::test::TempDir dir("dag-edge-footprint");
  const auto& cert = pki.client("idle-dag");
  auto p = dag::test::Process::spawn({.argv = {bin, "run"},
                                      .env = {{"DAG_DEVICE_ID", "idle-dag"},
                                              {"DAG_DEVICE_STATE_DIR", dir.path().string()},
                                              {"DAG_BROKER_HOST", broker.host()},
                                              {"DAG_BROKER_PORT", std::to_string(broker.port())},
                                              {"DAG_TLS_CA", broker.ca_file().string()},
                                              {"DAG_TLS_CERT", cert.cert.string()},
                                              {"DAG_TLS_KEY", cert.key.string()},
                                              {"DAG_POWER_SOURCE", "sim"},
                                              {"DAG_BATTERY_GAUGE", "sim"}}});
  if (!p) throw std::runtime_error(p.error().message);
  if (!(*p)->wait_for_line("mqtt.connected", 10s)) throw std::runtime_error((*p)->output());
  // Connected and its start-up report accepted: now it only keeps alive.
  for (int i = 0; i < 100; ++i) {
    auto st = dag::edge::control_request(dir.path(), "status");
    if (st && json::parse(*st)["outboxDepth"] == 0) break;
  }
  const pid_t pid = (*p)->pid();
  const long t0 = cpu_ticks(pid);
  const auto w0 = Clock::now();
  (*p)->wait_for_exit(std::chrono::seconds{idle_seconds});  // it does not exit: a bounded wait
  const double wall = std::chrono::duration<double>(Clock::now() - w0).count();
  const long t1 = cpu_ticks(pid);
  const auto st = proc_status(pid);
  const auto rollup = proc_status_file("/proc/" + std::to_string(pid) + "/smaps_rollup");
  (*p)->stop();
  struct stat sb {};
  ::stat(bin.c_str(), &sb);
  // The size that ships: without symbols and debug info.
  const dag::test::TempDir strip_dir("dag-edge-strip");
  const auto stripped = strip_dir.path() / "dag-edge";
  long stripped_bytes = -1;
  if (auto s = dag::test::Process::spawn({.argv = {"strip", "-o", stripped.string(), bin}});
      s && (*s)->wait().success()) {
    struct stat ss {};
    if (::stat(stripped.c_str(), &ss) == 0) stripped_bytes = static_cast<long>(ss.st_size);
  }
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {{"idle_seconds", wall},
          {"cpu_percent", 100.0 * static_cast<double>(t1 - t0) / hz / wall},
          {"vm_hwm_kib", st.count("VmHWM") != 0 ? st.at("VmHWM") : -1},
          {"vm_rss_kib", st.count("VmRSS") != 0 ? st.at("VmRSS") : -1},
          {"rss_anon_kib", st.count("RssAnon") != 0 ? st.at("RssAnon") : -1},
          {"rss_file_kib", st.count("RssFile") != 0 ? st.at("RssFile") : -1},
          {"pss_kib", rollup.count("Pss") != 0 ? rollup.at("Pss") : -1},
          {"threads", st.count("Threads") != 0 ? st.at("Threads") : -1},
          {"binary_bytes", static_cast<long>(sb.st_size)},
          {"stripped_binary_bytes", stripped_bytes}};
}

}  // namespace

int main(int argc, char** argv) {
  int flips = 1000;
  int idle = 60;
  std::string bin = DAG_EDGE_BIN;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--flips") flips = std::stoi(argv[i + 1]);
    if (a == "--idle-seconds") idle = std::stoi(argv[i + 1]);
    if (a == "--edge-bin") bin = argv[i + 1];
  }
  dag::log::set_level(dag::log::Level::warn);
  dag::test::TestPki pki;
  auto broker = dag::test::MosquittoBroker::start(pki);
  if (!broker) {
    std::cerr << broker.error().message << "\n";
    return 1;
  }
  auto rc = MqttTestClient::connect(
      dag::test::client_options(**broker, pki.client("dagd"), "bench-dagd"));
  if (!rc) {
    std::cerr << rc.error().message << "\n";
    return 1;
  }
  Responder responder(std::move(*rc));
  json out;
  out["latency"] = latency(pki, **broker, flips);
  if (idle > 0) out["footprint"] = footprint(pki, **broker, bin, idle);
  std::cout << out.dump() << "\n";
  return 0;
}
