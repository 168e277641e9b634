// Scenarios of dag-sim: what happens to which simulated dag, and when.
//
// A plan is a pure function of (scenario, fleet size, seed): the same seed gives the same
// devices and the same times, so a run can be repeated against another build of dagd.
// Times are milliseconds after the scenario's start (after every dag connected).
//
// Thread-safety: values. Blocking: none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::sim {

enum class ScenarioKind {
  storm,    ///< the selected dags lose power within storm_window_ms, spread uniformly
  random,   ///< each selected dag has one outage at a random time, of a random length
  flap,     ///< the selected dags' power toggles every flap_period_ms / 2 for the duration
  network,  ///< the selected dags lose their network for outage_ms; power goes off meanwhile
  drain,    ///< the selected dags lose power; their battery is empty at 80 % of the duration
  rolling,  ///< the selected dags lose power one after another, interval_ms apart
};

/// "storm", "random", "flap", "network", "drain", "rolling". Errors: invalid_argument.
Result<ScenarioKind> parse_scenario(std::string_view name);
std::string_view to_string(ScenarioKind kind) noexcept;

struct ScenarioSpec {
  ScenarioKind kind{ScenarioKind::storm};
  double percent{100};  ///< share of the fleet selected, 0..100
  std::int64_t duration_ms{10'000};
  std::uint64_t seed{1};
  std::int64_t storm_window_ms{1000};
  std::int64_t outage_ms{5000};       ///< network: length; random: mean length
  std::int64_t flap_period_ms{1000};  ///< one off+on cycle
  std::int64_t interval_ms{1000};     ///< rolling: between one dag's cut and the next
};

enum class ActionKind { power_off, power_on, network_down, network_up, drain_start };
std::string_view to_string(ActionKind kind) noexcept;

struct Action {
  std::int64_t at_ms{0};  ///< after the scenario's start
  std::uint32_t device{0};
  ActionKind kind{ActionKind::power_off};
  bool operator==(const Action&) const = default;
};

struct Plan {
  std::vector<std::uint32_t> selected;  ///< device indexes, ascending
  std::vector<Action> actions;          ///< by at_ms, then device
};

/// The plan for `devices` dags. Every action falls in [0, duration_ms] (a network outage
/// that would outlast the scenario ends with it, so the drain phase sees every dag back).
/// Errors: invalid_argument (percent outside 0..100, non-positive durations or periods, a
/// rolling outage that does not fit in the duration).
Result<Plan> make_plan(const ScenarioSpec& spec, std::uint32_t devices);

}  // namespace dag::sim
