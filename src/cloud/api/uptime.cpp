#include "dag/api/uptime.hpp"

#include <algorithm>
#include <cstddef>
#include <limits>

namespace dag::api {
namespace {

// Lengths are kept unsigned: until - from can exceed INT64_MAX (but never UINT64_MAX), and
// a sum of disjoint intervals of the window never exceeds the window.
using Length = std::uint64_t;

Length length(std::int64_t from, std::int64_t until) noexcept {
  // Two's complement wrap-around gives the exact difference for until >= from.
  return static_cast<Length>(until) - static_cast<Length>(from);
}

std::int64_t saturate(Length value) noexcept {
  constexpr auto kMax = static_cast<Length>(std::numeric_limits<std::int64_t>::max());
  return static_cast<std::int64_t>(std::min(value, kMax));
}

// Accumulates the statistics while the power state is walked through the window.
class Walk {
 public:
  explicit Walk(std::int64_t until) : until_(until) {}

  // The power state is `on` from `at` (inside the window) on.
  void set(std::int64_t at, bool on) {
    if (!known_) {
      known_ = true;
      monitored_from_ = at;
    } else if (on_ == on) {
      return;  // a repeat: the interval goes on
    } else if (!on_) {
      close_outage(at);
    }
    if (!on) outage_from_ = at;
    on_ = on;
  }

  Uptime finish() {
    Uptime out;
    if (!known_) return out;
    if (!on_) {
      close_outage(until_);
      out.ongoing = true;
    }
    const Length monitored = length(monitored_from_, until_);
    out.monitored_ms = saturate(monitored);
    out.outage_count = outages_;
    out.total_outage_ms = saturate(total_);
    out.longest_outage_ms = saturate(longest_);
    if (monitored > 0) {
      out.availability_percent =
          100.0 * static_cast<double>(monitored - total_) / static_cast<double>(monitored);
    }
    return out;
  }

 private:
  void close_outage(std::int64_t at) {
    const Length outage = length(outage_from_, at);
    ++outages_;
    total_ += outage;
    longest_ = std::max(longest_, outage);
  }

  std::int64_t until_;
  bool known_{false};
  bool on_{false};
  std::int64_t monitored_from_{0};
  std::int64_t outage_from_{0};
  int outages_{0};
  Length total_{0};
  Length longest_{0};
};

}  // namespace

Uptime compute_uptime(std::optional<bool> power_at_start, std::vector<PowerChange> changes,
                      std::int64_t from_ms, std::int64_t until_ms) {
  if (until_ms <= from_ms) return {};
  std::stable_sort(changes.begin(), changes.end(),
                   [](const PowerChange& a, const PowerChange& b) { return a.at_ms < b.at_ms; });

  // The state at from_ms: the caller's, else the last change before the window.
  std::optional<bool> at_start = power_at_start;
  auto it = changes.begin();
  for (; it != changes.end() && it->at_ms < from_ms; ++it) {
    if (!power_at_start) at_start = it->on;
  }

  Walk walk(until_ms);
  // Changes at the same instant: only the last counts, so it is applied once (at from_ms a
  // change overrides at_start the same way).
  const auto last_at = [&](std::vector<PowerChange>::iterator i, std::int64_t at) {
    while (i + 1 != changes.end() && (i + 1)->at_ms == at) ++i;
    return i;
  };
  if (at_start && (it == changes.end() || it->at_ms != from_ms)) walk.set(from_ms, *at_start);
  while (it != changes.end() && it->at_ms < until_ms) {
    it = last_at(it, it->at_ms);
    walk.set(it->at_ms, it->on);
    ++it;
  }
  return walk.finish();
}

}  // namespace dag::api
