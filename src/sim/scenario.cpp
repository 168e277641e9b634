#include "dag/sim/scenario.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

namespace dag::sim {

Result<ScenarioKind> parse_scenario(std::string_view name) {
  if (name == "storm") return ScenarioKind::storm;
  if (name == "random") return ScenarioKind::random;
  if (name == "flap") return ScenarioKind::flap;
  if (name == "network") return ScenarioKind::network;
  if (name == "drain") return ScenarioKind::drain;
  if (name == "rolling") return ScenarioKind::rolling;
  return fail(Errc::invalid_argument, "unknown scenario '" + std::string(name) +
                                          "' (storm, random, flap, network, drain, rolling)");
}

std::string_view to_string(ScenarioKind kind) noexcept {
  switch (kind) {
    case ScenarioKind::storm: return "storm";
    case ScenarioKind::random: return "random";
    case ScenarioKind::flap: return "flap";
    case ScenarioKind::network: return "network";
    case ScenarioKind::drain: return "drain";
    case ScenarioKind::rolling: return "rolling";
  }
  return "?";
}

std::string_view to_string(ActionKind kind) noexcept {
  switch (kind) {
    case ActionKind::power_off: return "power_off";
    case ActionKind::power_on: return "power_on";
    case ActionKind::network_down: return "network_down";
    case ActionKind::network_up: return "network_up";
    case ActionKind::drain_start: return "drain_start";
  }
  return "?";
}

Result<Plan> make_plan(const ScenarioSpec& spec, std::uint32_t devices) {
  if (!(spec.percent >= 0 && spec.percent <= 100))
    return fail(Errc::invalid_argument, "percent must be 0..100");
  if (spec.duration_ms <= 0 || spec.storm_window_ms <= 0 || spec.outage_ms <= 0 ||
      spec.flap_period_ms < 2 || spec.interval_ms <= 0) {
    return fail(Errc::invalid_argument, "durations and periods must be positive");
  }
  std::mt19937_64 rng(spec.seed);
  Plan plan;
  const auto count =
      static_cast<std::uint32_t>(std::llround(static_cast<double>(devices) * spec.percent / 100.0));
  std::vector<std::uint32_t> all(devices);
  std::iota(all.begin(), all.end(), 0U);
  // A partial Fisher-Yates shuffle: the first `count` are a uniform sample.
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uniform_int_distribution<std::uint32_t> pick(i, devices - 1);
    std::swap(all[i], all[pick(rng)]);
  }
  plan.selected.assign(all.begin(), all.begin() + count);
  if (spec.kind == ScenarioKind::rolling) {
    // The sample's order is random already: the k-th drawn dag falls k intervals in.
    if (count > 0 && static_cast<std::int64_t>(count - 1) * spec.interval_ms > spec.duration_ms) {
      return fail(Errc::invalid_argument,
                  "a rolling outage of " + std::to_string(count) + " dags every " +
                      std::to_string(spec.interval_ms) + " ms needs a duration of at least " +
                      std::to_string(static_cast<std::int64_t>(count - 1) * spec.interval_ms) +
                      " ms");
    }
    for (std::uint32_t k = 0; k < count; ++k) {
      plan.actions.push_back({static_cast<std::int64_t>(k) * spec.interval_ms, plan.selected[k],
                              ActionKind::power_off});
    }
  }
  std::sort(plan.selected.begin(), plan.selected.end());

  const std::int64_t d = spec.duration_ms;
  auto uniform = [&](std::int64_t lo, std::int64_t hi) {  // [lo, hi)
    if (hi <= lo) return lo;
    return std::uniform_int_distribution<std::int64_t>(lo, hi - 1)(rng);
  };
  auto add = [&](std::int64_t at, std::uint32_t dev, ActionKind k) {
    plan.actions.push_back({std::clamp<std::int64_t>(at, 0, d), dev, k});
  };
  for (const std::uint32_t dev : plan.selected) {
    switch (spec.kind) {
      case ScenarioKind::storm:
        add(uniform(0, spec.storm_window_ms), dev, ActionKind::power_off);
        break;
      case ScenarioKind::drain:
        add(uniform(0, spec.storm_window_ms), dev, ActionKind::drain_start);
        break;
      case ScenarioKind::random: {
        const std::int64_t off = uniform(0, d);
        const std::int64_t len = uniform(spec.outage_ms / 2, spec.outage_ms * 3 / 2 + 1);
        add(off, dev, ActionKind::power_off);
        if (off + len < d) add(off + len, dev, ActionKind::power_on);
        break;
      }
      case ScenarioKind::flap: {
        const std::int64_t half = spec.flap_period_ms / 2;
        bool on = true;
        for (std::int64_t t = uniform(0, spec.flap_period_ms); t < d; t += half) {
          add(t, dev, on ? ActionKind::power_off : ActionKind::power_on);
          on = !on;
        }
        break;
      }
      case ScenarioKind::rolling: break;  // planned above, in the sample's order
      case ScenarioKind::network: {
        const std::int64_t len = std::min(spec.outage_ms, d);
        const std::int64_t down = uniform(0, d - len + 1);
        add(down, dev, ActionKind::network_down);
        add(down + len / 2, dev, ActionKind::power_off);
        add(down + len, dev, ActionKind::network_up);
        break;
      }
    }
  }
  std::stable_sort(plan.actions.begin(), plan.actions.end(), [](const Action& a, const Action& b) {
    return std::tie(a.at_ms, a.device) < std::tie(b.at_ms, b.device);
  });
  return plan;
}

}  // namespace dag::sim
