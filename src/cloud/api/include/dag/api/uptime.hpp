// Availability statistics of one dag over a window, for `GET /v1/devices/{id}/uptime`
// (docs/api.md "Uptime"): how long power was monitored, the share of it with power, and
// the outages (off intervals) that overlap the window, clipped to it.
//
// Only power counts, by the dag's observed time: an outage that was reported late after a
// network loss counts where it happened. Time before the first known power state is not
// monitored, so a dag that is new or never reported does not read as down.
//
// Pure: no I/O, no clock (the caller passes the window). Thread-safe, non-blocking.
// Errors: none; any input gives an answer (an empty or reversed window gives zeros, times
// near the int64 limits saturate instead of overflowing).
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace dag::api {

/// A power report: from `at_ms` (epoch ms, the dag's observed time) power is on / off.
struct PowerChange {
  std::int64_t at_ms{0};
  bool on{false};
};

struct Uptime {
  std::int64_t monitored_ms{0};  ///< time in the window with a known power state
  /// 100 * (monitored - outage) / monitored; nullopt when nothing was monitored.
  std::optional<double> availability_percent;
  int outage_count{0};                ///< off intervals overlapping the window
  std::int64_t total_outage_ms{0};    ///< their length inside the window
  std::int64_t longest_outage_ms{0};  ///< the longest of them, clipped to the window
  bool ongoing{false};                ///< the power is off at until_ms

  bool operator==(const Uptime&) const = default;
};

/// The statistics over the window [from_ms, until_ms).
///
/// `power_at_start` is the power state at from_ms (the last report before the window);
/// nullopt when unknown, in which case a change before from_ms in `changes` gives it, and
/// otherwise monitoring starts at the first change. `changes` may come in any order, may
/// repeat a state (a repeat is no change: an outage runs from the first off), and may lie
/// outside the window: changes at or after until_ms are ignored, changes before from_ms
/// only matter when `power_at_start` is unknown. Changes at the same time are applied in
/// input order, so the last of them holds (an off and an on at the same instant are no
/// outage). A change at from_ms overrides `power_at_start`.
[[nodiscard]] Uptime compute_uptime(std::optional<bool> power_at_start,
                                    std::vector<PowerChange> changes, std::int64_t from_ms,
                                    std::int64_t until_ms);

}  // namespace dag::api
