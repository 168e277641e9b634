#include "dag/edge/agent.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "dag/common/log.hpp"
#include "dag/protocol/topics.hpp"

namespace dag::edge {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::int64_t system_uptime_s() {
  std::ifstream in("/proc/uptime");
  double up = 0;
  in >> up;
  return static_cast<std::int64_t>(up);
}

std::optional<std::uint64_t> seq_of_token(std::string_view token) {
  if (token.size() < 2 || token[0] != 'e') return std::nullopt;
  std::uint64_t v = 0;
  for (char c : token.substr(1)) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

}  // namespace

Agent::Agent(EdgeSettings settings, AgentInfo info, const Clock& clock, PowerSource& power,
             BatteryGauge& gauge, Outbox& outbox, Transport& transport)
    : settings_(std::move(settings)),
      info_(std::move(info)),
      clock_(clock),
      power_(power),
      gauge_(gauge),
      outbox_(outbox),
      transport_(transport),
      tunables_(settings_.tunables),
      debouncer_(milliseconds{settings_.tunables.debounce_ms}),
      started_(clock.steady()),
      next_reread_(clock.steady()),
      next_battery_poll_(clock.steady()),
      retry_after_(clock.steady()),
      update_topic_(protocol::shadow_topic(settings_.device_id, protocol::ShadowOp::update)),
      presence_topic_(protocol::presence_topic(settings_.device_id)) {}

void Agent::restore_tunables(const Tunables& t) {
  tunables_ = t;
  debouncer_.set_window(milliseconds{t.debounce_ms});
}

void Agent::start() {
  const auto now = clock_.steady();
  if (auto level = power_.read(); level) {
    debouncer_.input(*level, now, clock_.unix_ms());
  } else {
    log::error("power.read_failed",
               {{"source", power_.describe()}, {"error", level.error().message}});
  }
  next_reread_ = now + seconds{tunables_.reread_s};
  poll_battery();
}

void Agent::on_line_events(const std::vector<LineEvent>& events) {
  const auto now = clock_.steady();
  const auto unix_ms = clock_.unix_ms();
  for (const auto& e : events) {
    log::debug("power.edge", {{"level", e.level ? "on" : "off"}});
    debouncer_.input(e.level, now, unix_ms);
  }
  on_timer();
}

void Agent::commit_transition(const LevelChange& change) {
  const bool was_known = mains_.has_value();
  mains_ = change.level;
  mains_since_ms_ = change.at_unix_ms;
  estimator_.on_mains(change.level);
  shutdown_done_ = shutdown_done_ && !change.level;
  // Power changes the gauge's cadence (10 s on battery, 60 s on mains): read it now, and
  // report battery changes only after the transition itself.
  read_battery();
  // The transition report carries this reading, so the first battery report on battery is
  // the first whole percent lost after it. Counting from "unknown" made every dag repeat
  // its cut's reading one poll later: in an outage storm, a second wave of reports as
  // large as the first, while the cloud is busiest.
  last_reported_percent_ = battery_ ? static_cast<int>(std::floor(battery_->percent)) : -1;

  const std::uint64_t seq = outbox_.next_seq();
  json reported = {{"status", change.level ? "on" : "off"},
                   {"observedAt", change.at_unix_ms},
                   {"seq", seq},
                   {"agent", agent_json()}};
  if (battery_) reported["battery"] = battery_json();
  if (outbox_.coalesced_total() > 0) reported["outboxCoalesced"] = outbox_.coalesced_total();
  if (auto r = outbox_.append(seq, reported.dump()); !r) {
    // The disk refused: still tell the cloud now, without durability, rather than stay silent.
    log::error("outbox.append_failed", {{"seq", seq}, {"error", r.error().message}});
    publish_report(reported, next_token('r'));
    return;
  }
  log::info("power.transition", {{"status", change.level ? "on" : "off"},
                                 {"seq", seq},
                                 {"observed_at", change.at_unix_ms},
                                 {"startup", !was_known}});
  pump();
}

void Agent::pump() {
  if (!transport_.connected() || clock_.steady() < retry_after_) return;
  std::size_t in_flight = 0;
  for (const auto& [token, f] : inflight_) in_flight += f.seq != 0 ? 1 : 0;
  for (const auto& entry : outbox_.pending()) {
    if (in_flight >= kWindow) break;
    const std::string token = "e" + std::to_string(entry.seq);
    if (inflight_.contains(token)) continue;
    // The body was serialised when the transition happened; wrap it without re-parsing.
    std::string payload;
    payload.reserve(entry.body.size() + 64);
    payload += R"({"state":{"reported":)";
    payload += entry.body;
    payload += R"(},"clientToken":")";
    payload += token;
    payload += "\"}";
    if (auto r = transport_.publish(update_topic_, payload, 1, false); !r) return;
    inflight_[token] = Inflight{entry.seq, clock_.steady()};
    ++in_flight;
  }
}

void Agent::publish_report(const json& reported, const std::string& token) {
  const json doc = {{"state", {{"reported", reported}}}, {"clientToken", token}};
  if (transport_.publish(update_topic_, doc.dump(), 1, false)) {
    inflight_[token] = Inflight{0, clock_.steady()};
  }
}

std::string Agent::next_token(char prefix) {
  return std::string(1, prefix) + std::to_string(++token_counter_);
}

void Agent::on_transport(const TransportEvent& event) {
  switch (event.kind) {
    case TransportEvent::Kind::connected: {
      log::info("mqtt.connected", {{"device", settings_.device_id}});
      (void)transport_.publish(presence_topic_, "connected", 1, true);
      // Fetch the shadow so a config change made while we were away is applied now.
      const json get = {{"clientToken", next_token('g')}};
      (void)transport_.publish(protocol::shadow_topic(settings_.device_id, protocol::ShadowOp::get),
                               get.dump(), 1, false);
      pump();
      break;
    }
    case TransportEvent::Kind::disconnected:
      // Anything unacknowledged is sent again after the next connect (same seq, same token).
      inflight_.clear();
      break;
    case TransportEvent::Kind::message: on_message(event.topic, event.payload); break;
    case TransportEvent::Kind::published: break;  // QoS 1 acks matter only at shutdown
  }
}

void Agent::on_message(const std::string& topic, const std::string& payload) {
  const auto parsed_topic = protocol::parse_topic(topic);
  if (!parsed_topic) return;
  if (std::holds_alternative<protocol::StatusRequestTopic>(*parsed_topic)) {
    log::info("status.requested", {});
    // Pending entries say it all; otherwise republish the current state.
    inflight_.clear();
    if (!outbox_.pending().empty()) {
      pump();
    } else if (mains_) {
      json reported = {{"status", *mains_ ? "on" : "off"},
                       {"observedAt", mains_since_ms_},
                       {"seq", outbox_.last_seq()},
                       {"agent", agent_json()}};
      if (battery_) reported["battery"] = battery_json();
      publish_report(reported, next_token('r'));
    }
    return;
  }
  const auto* reply = std::get_if<protocol::ShadowResponseTopic>(&*parsed_topic);
  if (reply == nullptr) return;
  const json doc = json::parse(payload, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    log::warn("shadow.bad_reply", {{"topic", topic}});
    return;
  }
  using protocol::ShadowOp;
  using protocol::ShadowReply;
  if (reply->op == ShadowOp::update && reply->reply == ShadowReply::accepted) {
    on_accepted(doc);
  } else if (reply->op == ShadowOp::update && reply->reply == ShadowReply::rejected) {
    on_rejected(doc);
  } else if (reply->op == ShadowOp::update && reply->reply == ShadowReply::delta) {
    if (doc.contains("state") && doc["state"].is_object() && doc["state"].contains("config")) {
      apply_config(doc["state"]["config"]);
    }
  } else if (reply->op == ShadowOp::get && reply->reply == ShadowReply::accepted) {
    const json* delta = nullptr;
    if (doc.contains("state") && doc["state"].is_object() && doc["state"].contains("delta")) {
      delta = &doc["state"]["delta"];
    }
    if (delta != nullptr && delta->is_object() && delta->contains("config")) {
      apply_config((*delta)["config"]);
    }
  }
}

void Agent::on_accepted(const json& doc) {
  if (!doc.contains("clientToken") || !doc["clientToken"].is_string()) return;
  const auto token = doc["clientToken"].get<std::string>();
  inflight_.erase(token);
  if (const auto seq = seq_of_token(token)) {
    if (auto r = outbox_.ack(*seq); !r) {
      log::error("outbox.ack_failed", {{"seq", *seq}, {"error", r.error().message}});
    }
    last_ack_unix_ms_ = clock_.unix_ms();
    log::debug("shadow.accepted", {{"seq", *seq}});
  }
  pump();
}

void Agent::on_rejected(const json& doc) {
  if (!doc.contains("clientToken") || !doc["clientToken"].is_string()) return;
  const auto token = doc["clientToken"].get<std::string>();
  const auto it = inflight_.find(token);
  if (it == inflight_.end()) return;
  const int code = doc.value("code", 0);
  const std::string message = doc.value("message", "");
  inflight_.erase(it);
  const auto seq = seq_of_token(token);
  if (code == 429 || code >= 500) {
    // The cloud is busy: keep the entry and try again shortly.
    log::warn("shadow.throttled", {{"token", token}, {"code", code}});
    retry_after_ = clock_.steady() + kRetryAfterThrottle;
    return;
  }
  // Any other rejection will not change by resending the same bytes; keep the evidence in
  // the log and move on rather than block every later transition behind it.
  ++rejected_total_;
  log::error("shadow.rejected", {{"token", token}, {"code", code}, {"message", message}});
  if (seq) (void)outbox_.ack(*seq);
  pump();
}

void Agent::apply_config(const json& config_delta) {
  const DeltaOutcome outcome = apply_delta(tunables_, config_delta);
  if (outcome.changed) {
    tunables_ = outcome.applied;
    debouncer_.set_window(milliseconds{tunables_.debounce_ms});
    next_reread_ = std::min(next_reread_, clock_.steady() + seconds{tunables_.reread_s});
    if (tunables_listener_) tunables_listener_(tunables_);
  }
  json reported_config = tunables_.to_json();
  if (outcome.rejected.empty()) {
    reported_config["rejected"] = nullptr;  // clears an earlier rejection
  } else {
    reported_config["rejected"] = outcome.rejected;
    for (const auto& [key, why] : outcome.rejected) {
      log::warn("config.rejected", {{"key", key}, {"reason", why}});
    }
  }
  log::info("config.applied",
            {{"changed", outcome.changed}, {"rejected", outcome.rejected.size()}});
  publish_report(json{{"config", reported_config}}, next_token('c'));
}

void Agent::poll_battery() {
  read_battery();
  if (battery_ && mains_.has_value() && !*mains_) report_battery_if_due();
}

void Agent::read_battery() {
  auto r = gauge_.read();
  const auto now = clock_.steady();
  const bool on_battery = mains_.has_value() && !*mains_;
  next_battery_poll_ =
      now + seconds{on_battery ? tunables_.battery_poll_battery_s : tunables_.battery_poll_mains_s};
  if (!r) {
    if (r.error().code != Errc::unavailable && battery_error_ != r.error().message) {
      log::warn("battery.read_failed", {{"error", r.error().message}});
    }
    battery_error_ = r.error().message;
    return;
  }
  battery_error_.clear();
  battery_ = *r;
  estimator_.sample(clock_.unix_ms(), r->percent);
}

void Agent::report_battery_if_due() {
  if (!battery_) return;
  const int whole = static_cast<int>(std::floor(battery_->percent));
  const auto now = clock_.steady();
  if (settings_.shutdown_percent > 0 && whole <= settings_.shutdown_percent && !shutdown_done_) {
    shutdown_done_ = true;
    log::warn("battery.critical", {{"percent", whole}, {"command", settings_.shutdown_command}});
    json reported = {{"battery", battery_json()}, {"shuttingDown", true}};
    publish_report(reported, next_token('b'));
    if (shutdown_hook_) shutdown_hook_();
    return;
  }
  // Each whole percent lost, at most once a minute: the owner watches the runtime left.
  if (last_reported_percent_ >= 0 && whole >= last_reported_percent_) return;
  if (last_battery_report_ && now - *last_battery_report_ < seconds{60}) return;
  last_reported_percent_ = whole;
  last_battery_report_ = now;
  publish_report(json{{"battery", battery_json()}}, next_token('b'));
}

json Agent::battery_json() const {
  json b = {{"percent", std::round(battery_->percent * 10) / 10},
            {"volts", std::round(battery_->volts * 1000) / 1000}};
  const auto left = estimator_.minutes_left();
  b["minutesLeft"] = left ? json(*left) : json(nullptr);
  b["low"] = battery_->percent <= static_cast<double>(tunables_.low_battery_percent);
  return b;
}

json Agent::agent_json() const {
  return {{"version", info_.version}, {"bootId", info_.boot_id}, {"uptimeS", system_uptime_s()}};
}

void Agent::on_timer() {
  const auto now = clock_.steady();
  if (auto change = debouncer_.poll(now)) {
    if (!mains_ || *mains_ != change->level) commit_transition(*change);
  }
  if (now >= next_reread_) {
    next_reread_ = now + seconds{tunables_.reread_s};
    if (auto level = power_.read(); level) {
      if (mains_ && *level != *mains_)
        log::warn("power.missed_edge", {{"level", *level ? "on" : "off"}});
      debouncer_.input(*level, now, clock_.unix_ms());
      if (auto change = debouncer_.poll(now)) {
        if (!mains_ || *mains_ != change->level) commit_transition(*change);
      }
    }
  }
  if (now >= next_battery_poll_) poll_battery();
  // Replies that never came (lost with a connection the broker still thinks alive).
  bool expired = false;
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if (now - it->second.sent >= kAckTimeout) {
      it = inflight_.erase(it);
      expired = true;
    } else {
      ++it;
    }
  }
  if (expired || now >= retry_after_) pump();
}

Clock::SteadyTime Agent::next_deadline() const {
  Clock::SteadyTime next = std::min(next_reread_, next_battery_poll_);
  if (auto d = debouncer_.deadline()) next = std::min(next, *d);
  for (const auto& [token, f] : inflight_) next = std::min(next, f.sent + kAckTimeout);
  const auto now = clock_.steady();
  if (retry_after_ > now && !outbox_.pending().empty()) next = std::min(next, retry_after_);
  return next;
}

json Agent::status() const {
  json s = {{"deviceId", settings_.device_id},
            {"power", mains_ ? json(*mains_ ? "on" : "off") : json(nullptr)},
            {"powerSince", mains_ ? json(mains_since_ms_) : json(nullptr)},
            {"source", power_.describe()},
            {"connected", transport_.connected()},
            {"outboxDepth", outbox_.pending().size()},
            {"lastSeq", outbox_.last_seq()},
            {"lastAck", last_ack_unix_ms_ > 0 ? json(last_ack_unix_ms_) : json(nullptr)},
            {"inflight", inflight_.size()},
            {"rejected", rejected_total_},
            {"outboxCoalesced", outbox_.coalesced_total()},
            {"config", tunables_.to_json()}};
  s["battery"] = battery_ ? battery_json() : json(nullptr);
  if (!battery_error_.empty()) s["batteryError"] = battery_error_;
  return s;
}

}  // namespace dag::edge
