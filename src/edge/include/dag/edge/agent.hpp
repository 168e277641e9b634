// Agent: dag-edge's logic, free of I/O loops so that tests drive it with fakes.
//
// Inputs arrive as calls on the agent's single thread: line edges, transport events
// (connected, disconnected, messages), timer expiry, control commands. Outputs go to the
// Transport and the Outbox. The run loop (run.cpp) owns the real descriptors and calls
// these methods.
//
// Reporting contract (docs/protocol.md, "dag-edge"): every debounced transition becomes a
// durable outbox entry {status, observedAt, seq, battery, agent} published to the shadow's
// update topic with clientToken "e<seq>"; it leaves the outbox only on the matching
// /update/accepted. Up to kWindow entries are in flight at once, in seq order.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/result.hpp"
#include "dag/edge/battery.hpp"
#include "dag/edge/debounce.hpp"
#include "dag/edge/outbox.hpp"
#include "dag/edge/power_source.hpp"
#include "dag/edge/settings.hpp"

namespace dag::edge {

/// What the agent needs of an MQTT connection (dag::mqtt::Client in production).
class Transport {
 public:
  virtual ~Transport() = default;
  /// Errors: Errc::unavailable when not connected.
  virtual Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                              bool retain) = 0;
  [[nodiscard]] virtual bool connected() const = 0;
};

struct TransportEvent {
  enum class Kind { connected, disconnected, message, published };
  Kind kind{Kind::message};
  std::string topic;
  std::string payload;
  int mid{0};  ///< for published: the message id the broker acknowledged
};

/// Static facts about this agent for reported.agent.
struct AgentInfo {
  std::string version;
  std::string boot_id;
};

class Agent {
 public:
  static constexpr std::size_t kWindow = 8;
  static constexpr std::chrono::seconds kAckTimeout{30};
  static constexpr std::chrono::seconds kRetryAfterThrottle{5};

  Agent(EdgeSettings settings, AgentInfo info, const Clock& clock, PowerSource& power,
        BatteryGauge& gauge, Outbox& outbox, Transport& transport);

  /// Reads the line's current level as the first sample and polls the gauge once.
  void start();
  void on_line_events(const std::vector<LineEvent>& events);
  void on_transport(const TransportEvent& event);
  /// Runs whatever is due (debounce, re-read, battery poll, ack timeouts).
  void on_timer();
  /// The earliest time on_timer() has work.
  [[nodiscard]] Clock::SteadyTime next_deadline() const;

  /// Local status for `dag-edge status` (line, battery, outbox depth, last ack, ...).
  [[nodiscard]] nlohmann::json status() const;
  /// Requests sent and not yet answered (accepted/rejected).
  [[nodiscard]] std::size_t in_flight() const { return inflight_.size(); }
  /// Tunables in force (initial settings + applied deltas).
  [[nodiscard]] const Tunables& tunables() const { return tunables_; }
  /// Replaces tunables without reporting (restored from disk at start-up).
  void restore_tunables(const Tunables& t);
  /// Called whenever tunables change so the run loop can persist them and set the log level.
  void set_tunables_listener(std::function<void(const Tunables&)> listener) {
    tunables_listener_ = std::move(listener);
  }
  /// Called when the critical battery level is reached (runs the shutdown command).
  void set_shutdown_hook(std::function<void()> hook) { shutdown_hook_ = std::move(hook); }

 private:
  void commit_transition(const LevelChange& change);
  void pump();
  void publish_report(const nlohmann::json& reported, const std::string& token);
  void on_message(const std::string& topic, const std::string& payload);
  void on_accepted(const nlohmann::json& doc);
  void on_rejected(const nlohmann::json& doc);
  void apply_config(const nlohmann::json& config_delta);
  void poll_battery();
  void read_battery();
  void report_battery_if_due();
  [[nodiscard]] nlohmann::json battery_json() const;
  [[nodiscard]] nlohmann::json agent_json() const;
  [[nodiscard]] std::string next_token(char prefix);

  EdgeSettings settings_;
  AgentInfo info_;
  const Clock& clock_;
  PowerSource& power_;
  BatteryGauge& gauge_;
  Outbox& outbox_;
  Transport& transport_;
  Tunables tunables_;
  std::function<void(const Tunables&)> tunables_listener_;
  std::function<void()> shutdown_hook_;

  Debouncer debouncer_;
  std::optional<bool> mains_;  // last committed level
  std::int64_t mains_since_ms_{0};
  Clock::SteadyTime started_;
  Clock::SteadyTime next_reread_;
  Clock::SteadyTime next_battery_poll_;
  Clock::SteadyTime retry_after_;

  std::optional<BatteryReading> battery_;
  std::string battery_error_;
  RuntimeEstimator estimator_;
  int last_reported_percent_{-1};
  std::optional<Clock::SteadyTime> last_battery_report_;
  bool shutdown_done_{false};

  struct Inflight {
    std::uint64_t seq;  // 0 for reports that are not outbox entries
    Clock::SteadyTime sent;
  };
  std::map<std::string, Inflight> inflight_;
  std::uint64_t token_counter_{0};
  std::int64_t last_ack_unix_ms_{0};
  std::uint64_t rejected_total_{0};
  std::string update_topic_;
  std::string presence_topic_;
};

}  // namespace dag::edge
