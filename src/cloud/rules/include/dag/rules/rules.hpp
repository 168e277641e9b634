// Rules: what a device's message, presence change or expired timer means for its state,
// its history and its owner's notifications. Pure: the caller loads the device and its
// account, calls one function, and writes the Decision in the same transaction as the
// shadow (transactional outbox), so a crash can never separate a state change from its
// event and intent.
//
// The rules (docs/protocol.md "State vocabulary", issue 4):
// - A change of reported.status is a power event; the first status ever reported is the
//   initial state, not a change. Reports carry seq: an older seq than the stored one goes
//   into history without touching the current state; the same seq again is a resend and
//   changes nothing (the store's (device, seq) uniqueness backs this up).
// - observedAt comes from the device; an implausible one (more than kMaxClockSkew ahead
//   of receipt, or before the device was provisioned, as after a cut on a Pi without a
//   real-time clock) is replaced by the receipt time and flagged.
// - Power lost notifies at once, or after the account's power-off grace if still off;
//   power back notifies only if power lost was notified (NUT's upssched idiom).
// - Any message from a device means connected: trusted at once; "dag back" is notified
//   only if "lost contact" was.
// - A disconnect (last will, lifecycle event) only starts the debounce: a fresh marker, a
//   durable timer at now + grace and a status request to the device. When the timer fires
//   with the marker unchanged, the dag is marked disconnected and the owner told.
// - Battery at or below the account's threshold while on battery: one event and intent
//   per outage.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dag/store/records.hpp"

namespace dag::rules {

/// Device clocks more than this far ahead of receipt are not believed.
inline constexpr std::int64_t kMaxClockSkewMs = std::int64_t{5} * 60 * 1000;

/// The device and account as loaded in the transaction.
struct Context {
  store::Device device;
  std::string account_id;
  store::AccountSettings settings;
  std::int64_t now_ms{0};  ///< receipt time (dagd's clock)
};

/// The fields of an accepted shadow update that the rules read (absent = not in the update).
struct Report {
  std::optional<protocol::Power> status;
  std::optional<std::int64_t> observed_at_ms;
  std::optional<std::int64_t> seq;
  std::optional<double> battery_percent;
  std::optional<double> battery_volts;
  std::optional<std::int64_t> battery_minutes_left;  ///< an integer >= 0; null is absent
  std::optional<std::string> battery_json;           ///< the reported battery object, as JSON text
};

/// Extracts a Report from an update request's state.reported (JSON text). Unknown or
/// mistyped fields are ignored: the shadow engine already accepted the document, and
/// the rules only read what they understand.
Report parse_report(std::string_view reported_json);
/// The same, from an already parsed `state.reported` (anything but an object gives an
/// empty Report).
Report parse_report(const nlohmann::json& reported);

struct TimerChange {
  enum class Op { schedule, cancel };
  Op op{Op::schedule};
  store::Timer timer;  ///< for cancel only kind and device_id matter
};

struct Decision {
  store::DeviceState state;  ///< the device's state afterwards (write it back)
  bool state_changed{false};
  std::vector<store::Event> events;
  std::vector<store::Intent> intents;
  std::vector<TimerChange> timers;
  bool request_status{false};  ///< publish dags/{id}/status/request
};

/// An accepted shadow update from the device (any update counts as contact).
Decision on_report(const Context& ctx, const Report& report);

/// The device is present again: birth message or lifecycle "connected".
Decision on_connected(const Context& ctx);

/// The device may be gone: last will or lifecycle "disconnected". `marker` identifies this
/// disconnect (e.g. a UUID); the timer carries it.
Decision on_disconnected(const Context& ctx, const std::string& marker);

/// A durable timer fired (claimed by this replica).
Decision on_timer(const Context& ctx, const store::Timer& timer);

}  // namespace dag::rules
