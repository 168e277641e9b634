#include "dag/rules/rules.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace dag::rules {
namespace {

using protocol::Connection;
using protocol::Power;
using protocol::UserState;
using store::Transition;

bool wants(const store::AccountSettings& s, Transition t) {
  switch (t) {
    case Transition::power_lost: return s.notify_power_lost;
    case Transition::power_back: return s.notify_power_back;
    case Transition::contact_lost: return s.notify_contact_lost;
    case Transition::dag_back: return s.notify_dag_back;
    case Transition::battery_low: return s.notify_battery_low;
  }
  return true;
}

// The owner's view; unknown until the first power report.
std::optional<UserState> user_state_of(const store::DeviceState& s) {
  if (!s.power) return std::nullopt;
  return protocol::user_state(*s.power, s.connection.value_or(Connection::connected));
}

class Builder {
 public:
  explicit Builder(const Context& ctx) : ctx_(ctx) { d_.state = ctx.device.state; }

  store::DeviceState& state() { return d_.state; }
  const Context& ctx() const { return ctx_; }

  void event(store::EventKind kind, std::int64_t observed_at, std::optional<std::int64_t> seq,
             bool clock_fallback) {
    d_.events.push_back({ctx_.device.id, kind, observed_at, ctx_.now_ms, seq, clock_fallback,
                         user_state_of(d_.state)});
  }

  // An intent only when the account wants this kind; the caller sets the notified_* flag
  // either way, so that "back" follows "lost" consistently.
  void intent(Transition t, std::int64_t observed_at,
              nlohmann::json extra = nlohmann::json::object()) {
    if (!wants(ctx_.settings, t)) return;
    d_.intents.push_back({ctx_.account_id, ctx_.device.id, ctx_.device.name, t,
                          user_state_of(d_.state).value_or(UserState::on), observed_at, ctx_.now_ms,
                          extra.dump()});
  }

  void schedule(std::string_view kind, std::int64_t due, std::string marker) {
    d_.timers.push_back(
        {TimerChange::Op::schedule, {std::string(kind), ctx_.device.id, due, std::move(marker)}});
  }
  void cancel(std::string_view kind) {
    d_.timers.push_back({TimerChange::Op::cancel, {std::string(kind), ctx_.device.id, 0, {}}});
  }
  void request_status() { d_.request_status = true; }

  Decision finish() {
    d_.state.user_state = user_state_of(d_.state);
    d_.state_changed = !(d_.state == ctx_.device.state);
    return std::move(d_);
  }

 private:
  const Context& ctx_;
  Decision d_;
};

// Contact: any message from the device. Ends a pending disconnect debounce, and says
// "dag back" when "lost contact" had been said.
void mark_contact(Builder& b) {
  auto& s = b.state();
  const auto now = b.ctx().now_ms;
  s.last_seen_ms = now;
  if (!s.presence_marker.empty()) {
    s.presence_marker.clear();
    b.cancel(store::kDisconnectTimer);
  }
  if (s.connection != Connection::connected) {
    const bool was_lost = s.connection == Connection::disconnected;
    s.connection = Connection::connected;
    s.connection_since_ms = now;
    if (was_lost) {
      b.event(store::EventKind::back, now, std::nullopt, false);
      if (s.notified_lost_contact) b.intent(Transition::dag_back, now);
    }
    s.notified_lost_contact = false;
  }
}

}  // namespace

Report parse_report(std::string_view reported_json) {
  return parse_report(nlohmann::json::parse(reported_json, nullptr, false));
}

Report parse_report(const nlohmann::json& j) {
  Report r;
  if (!j.is_object()) return r;
  if (auto it = j.find("status"); it != j.end() && it->is_string()) {
    r.status = protocol::parse_power(it->get<std::string>());
  }
  if (auto it = j.find("observedAt"); it != j.end() && it->is_number_integer()) {
    r.observed_at_ms = it->get<std::int64_t>();
  }
  // seq counts from 1 (docs/protocol.md); anything else, including numbers beyond int64
  // that would wrap, is not a seq at all, so a broken device cannot poison the history.
  if (auto it = j.find("seq"); it != j.end() && it->is_number_unsigned()) {
    const auto seq = it->get<std::uint64_t>();
    if (seq >= 1 && seq <= static_cast<std::uint64_t>(INT64_MAX)) {
      r.seq = static_cast<std::int64_t>(seq);
    }
  }
  if (auto it = j.find("battery"); it != j.end() && it->is_object()) {
    r.battery_json = it->dump();
    if (auto p = it->find("percent"); p != it->end() && p->is_number()) {
      r.battery_percent = p->get<double>();
    }
    if (auto v = it->find("volts"); v != it->end() && v->is_number()) {
      r.battery_volts = v->get<double>();
    }
    // Unsigned only: a negative or fractional estimate is not one.
    if (auto m = it->find("minutesLeft"); m != it->end() && m->is_number_unsigned()) {
      const auto minutes = m->get<std::uint64_t>();
      if (minutes <= static_cast<std::uint64_t>(INT64_MAX)) {
        r.battery_minutes_left = static_cast<std::int64_t>(minutes);
      }
    }
  }
  return r;
}

Decision on_report(const Context& ctx, const Report& report) {
  Builder b(ctx);
  auto& s = b.state();
  mark_contact(b);
  if (report.battery_json) s.battery_json = report.battery_json;

  if (report.status) {
    // Believe the device's clock only when it is plausible.
    std::int64_t observed = report.observed_at_ms.value_or(ctx.now_ms);
    bool fallback = !report.observed_at_ms;
    if (observed > ctx.now_ms + kMaxClockSkewMs || observed < ctx.device.provisioned_at_ms) {
      observed = ctx.now_ms;
      fallback = true;
    }
    const bool stale = report.seq && *report.seq <= s.last_seq;
    if (stale) {
      // A resend (same seq) changes nothing; an older report that was never seen becomes
      // history only (the store refuses a second event with the same (device, seq)).
      if (*report.seq < s.last_seq) {
        b.event(
            *report.status == Power::off ? store::EventKind::power_off : store::EventKind::power_on,
            observed, report.seq, fallback);
      }
      return b.finish();
    }
    if (report.seq) s.last_seq = *report.seq;
    const auto before = s.power;
    if (before != report.status) {
      s.power = report.status;
      s.power_since_ms = observed;
      if (before) {  // the first status ever is the initial state, not a change
        if (*report.status == Power::off) {
          b.event(store::EventKind::power_off, observed, report.seq, fallback);
          if (ctx.settings.power_off_grace_s > 0) {
            b.schedule(store::kPowerOffGraceTimer,
                       ctx.now_ms + std::int64_t{ctx.settings.power_off_grace_s} * 1000,
                       std::to_string(observed));
          } else {
            b.intent(Transition::power_lost, observed);
            s.notified_power_lost = true;
          }
        } else {
          b.event(store::EventKind::power_on, observed, report.seq, fallback);
          b.cancel(store::kPowerOffGraceTimer);
          if (s.notified_power_lost) b.intent(Transition::power_back, observed);
          s.notified_power_lost = false;
          s.notified_battery_low = false;
        }
      } else if (report.seq) {
        // Keep the initial state in the history too, so uptime starts somewhere.
        b.event(
            *report.status == Power::off ? store::EventKind::power_off : store::EventKind::power_on,
            observed, report.seq, fallback);
      }
    }
  }

  // Low battery: once per outage, only while on battery.
  if (report.battery_percent && s.power == Power::off && !s.notified_battery_low &&
      *report.battery_percent <= ctx.settings.low_battery_percent) {
    s.notified_battery_low = true;
    b.event(store::EventKind::battery_low, ctx.now_ms, std::nullopt, false);
    b.intent(Transition::battery_low, ctx.now_ms, {{"percent", *report.battery_percent}});
  }
  return b.finish();
}

Decision on_connected(const Context& ctx) {
  Builder b(ctx);
  mark_contact(b);
  return b.finish();
}

Decision on_disconnected(const Context& ctx, const std::string& marker) {
  Builder b(ctx);
  auto& s = b.state();
  // Already known to be gone (a repeated will, a retained presence seen again), or a
  // debounce already running: the first disconnect starts the clock, so the will and the
  // lifecycle event of one disconnect, or a retained will redelivered when dagd
  // resubscribes, never push "lost contact" further out.
  if (s.connection == Connection::disconnected || !s.presence_marker.empty()) {
    return b.finish();
  }
  s.presence_marker = marker;
  b.schedule(store::kDisconnectTimer,
             ctx.now_ms + std::int64_t{ctx.settings.disconnect_grace_s} * 1000, marker);
  b.request_status();
  return b.finish();
}

Decision on_timer(const Context& ctx, const store::Timer& timer) {
  Builder b(ctx);
  auto& s = b.state();
  if (timer.kind == store::kDisconnectTimer) {
    // A newer disconnect, or any message since, replaced or cleared the marker.
    if (s.presence_marker.empty() || s.presence_marker != timer.marker ||
        s.connection == Connection::disconnected) {
      return b.finish();
    }
    s.presence_marker.clear();
    s.connection = Connection::disconnected;
    s.connection_since_ms = ctx.now_ms;
    b.event(store::EventKind::lost_contact, ctx.now_ms, std::nullopt, false);
    b.intent(Transition::contact_lost, s.last_seen_ms.value_or(ctx.now_ms));
    s.notified_lost_contact = true;
  } else if (timer.kind == store::kPowerOffGraceTimer) {
    // Still off since the same cut: now the owner hears of it.
    if (s.power == Power::off && !s.notified_power_lost &&
        std::to_string(s.power_since_ms.value_or(-1)) == timer.marker) {
      b.intent(Transition::power_lost, s.power_since_ms.value_or(ctx.now_ms));
      s.notified_power_lost = true;
    }
  }
  return b.finish();
}

}  // namespace dag::rules
