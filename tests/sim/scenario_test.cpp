#include "dag/sim/scenario.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace dag::sim {
namespace {

ScenarioSpec spec(ScenarioKind kind, double percent = 100) {
  ScenarioSpec s;
  s.kind = kind;
  s.percent = percent;
  s.duration_ms = 10'000;
  s.seed = 42;
  return s;
}

TEST(Scenario, ParsesEveryNameAndRefusesOthers) {
  for (auto k : {ScenarioKind::storm, ScenarioKind::random, ScenarioKind::flap,
                 ScenarioKind::network, ScenarioKind::drain, ScenarioKind::rolling}) {
    auto parsed = parse_scenario(to_string(k));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, k);
  }
  auto bad = parse_scenario("hail");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST(Scenario, StormCutsTheSelectedShareOnceEachWithinTheWindow) {
  auto plan = make_plan(spec(ScenarioKind::storm, 30), 1000);
  ASSERT_TRUE(plan);
  EXPECT_EQ(plan->selected.size(), 300U);
  EXPECT_TRUE(std::is_sorted(plan->selected.begin(), plan->selected.end()));
  ASSERT_EQ(plan->actions.size(), 300U);
  std::set<std::uint32_t> cut;
  for (const auto& a : plan->actions) {
    EXPECT_EQ(a.kind, ActionKind::power_off);
    EXPECT_GE(a.at_ms, 0);
    EXPECT_LT(a.at_ms, 1000);
    cut.insert(a.device);
  }
  EXPECT_EQ(cut, std::set<std::uint32_t>(plan->selected.begin(), plan->selected.end()));
  EXPECT_TRUE(std::is_sorted(plan->actions.begin(), plan->actions.end(),
                             [](const Action& a, const Action& b) { return a.at_ms < b.at_ms; }));
  // Spread over the window, not bunched: each quarter gets a fair share.
  std::array<int, 4> quarters{};
  for (const auto& a : plan->actions) ++quarters[static_cast<std::size_t>(a.at_ms / 250)];
  for (int q : quarters) EXPECT_GT(q, 40);
}

TEST(Scenario, SameSeedSamePlanOtherSeedOtherPlan) {
  auto a = make_plan(spec(ScenarioKind::random, 50), 200);
  auto b = make_plan(spec(ScenarioKind::random, 50), 200);
  auto s = spec(ScenarioKind::random, 50);
  s.seed = 43;
  auto c = make_plan(s, 200);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->actions, b->actions);
  EXPECT_NE(a->actions, c->actions);
}

TEST(Scenario, NetworkOutagesEndWithinTheScenarioAndCutPowerMeanwhile) {
  auto s = spec(ScenarioKind::network);
  s.outage_ms = 4000;
  auto plan = make_plan(s, 50);
  ASSERT_TRUE(plan);
  std::map<std::uint32_t, std::vector<Action>> per;
  for (const auto& a : plan->actions) per[a.device].push_back(a);
  ASSERT_EQ(per.size(), 50U);
  for (const auto& [dev, acts] : per) {
    ASSERT_EQ(acts.size(), 3U);
    EXPECT_EQ(acts[0].kind, ActionKind::network_down);
    EXPECT_EQ(acts[1].kind, ActionKind::power_off);
    EXPECT_EQ(acts[2].kind, ActionKind::network_up);
    EXPECT_EQ(acts[2].at_ms - acts[0].at_ms, 4000);
    EXPECT_LE(acts[2].at_ms, s.duration_ms);
  }
}

TEST(Scenario, FlapAlternatesOffAndOnEveryHalfPeriod) {
  auto s = spec(ScenarioKind::flap, 10);
  s.flap_period_ms = 1000;
  auto plan = make_plan(s, 100);
  ASSERT_TRUE(plan);
  std::map<std::uint32_t, std::vector<Action>> per;
  for (const auto& a : plan->actions) per[a.device].push_back(a);
  ASSERT_EQ(per.size(), 10U);
  for (const auto& [dev, acts] : per) {
    ASSERT_GE(acts.size(), 18U);
    for (std::size_t i = 0; i < acts.size(); ++i) {
      EXPECT_EQ(acts[i].kind, i % 2 == 0 ? ActionKind::power_off : ActionKind::power_on);
      if (i > 0) {
        EXPECT_EQ(acts[i].at_ms - acts[i - 1].at_ms, 500);
      }
    }
  }
}

TEST(Scenario, RandomOutagesEndAfterTheyBegin) {
  auto plan = make_plan(spec(ScenarioKind::random), 300);
  ASSERT_TRUE(plan);
  std::map<std::uint32_t, std::vector<Action>> per;
  for (const auto& a : plan->actions) per[a.device].push_back(a);
  EXPECT_EQ(per.size(), 300U);
  for (const auto& [dev, acts] : per) {
    ASSERT_GE(acts.size(), 1U);
    EXPECT_EQ(acts[0].kind, ActionKind::power_off);
    if (acts.size() == 2) {
      EXPECT_EQ(acts[1].kind, ActionKind::power_on);
      EXPECT_GT(acts[1].at_ms, acts[0].at_ms);
    }
  }
}

TEST(Scenario, RollingCutsOneDagPerIntervalInARandomOrder) {
  auto s = spec(ScenarioKind::rolling, 10);
  s.interval_ms = 500;
  auto plan = make_plan(s, 100);
  ASSERT_TRUE(plan) << plan.error().message;
  ASSERT_EQ(plan->selected.size(), 10U);
  ASSERT_EQ(plan->actions.size(), 10U);
  std::set<std::uint32_t> cut;
  bool ascending = true;
  for (std::size_t k = 0; k < plan->actions.size(); ++k) {
    const auto& a = plan->actions[k];
    EXPECT_EQ(a.kind, ActionKind::power_off);
    EXPECT_EQ(a.at_ms, static_cast<std::int64_t>(k) * 500);
    if (k > 0 && a.device < plan->actions[k - 1].device) ascending = false;
    cut.insert(a.device);
  }
  EXPECT_EQ(cut, std::set<std::uint32_t>(plan->selected.begin(), plan->selected.end()));
  EXPECT_FALSE(ascending) << "the order should be the sample's, not the ids'";

  s.interval_ms = 1200;  // 9 intervals of 1.2 s do not fit in 10 s
  auto too_long = make_plan(s, 100);
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("at least 10800 ms"), std::string::npos)
      << too_long.error().message;
}

TEST(Scenario, RefusesBadSpecs) {
  auto s = spec(ScenarioKind::storm, 101);
  EXPECT_FALSE(make_plan(s, 10));
  s = spec(ScenarioKind::storm);
  s.duration_ms = 0;
  EXPECT_FALSE(make_plan(s, 10));
  s = spec(ScenarioKind::flap);
  s.flap_period_ms = 1;
  EXPECT_FALSE(make_plan(s, 10));
  s = spec(ScenarioKind::rolling);
  s.interval_ms = 0;
  EXPECT_FALSE(make_plan(s, 10));
  auto none = make_plan(spec(ScenarioKind::storm, 0), 10);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->actions.empty());
}

}  // namespace
}  // namespace dag::sim
