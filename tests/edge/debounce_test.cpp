#include "dag/edge/debounce.hpp"

#include <gtest/gtest.h>

#include "dag/common/clock.hpp"

namespace dag::edge {
namespace {

using namespace std::chrono_literals;

class DebounceTest : public ::testing::Test {
 protected:
  void edge(bool level) { d_.input(level, clock_.steady(), clock_.unix_ms()); }
  std::optional<LevelChange> poll() { return d_.poll(clock_.steady()); }

  FakeClock clock_{1'700'000'000'000};
  Debouncer d_{200ms};
};

TEST_F(DebounceTest, FirstLevelIsReportedAfterTheWindow) {
  edge(true);
  EXPECT_FALSE(poll());
  clock_.advance(199ms);
  EXPECT_FALSE(poll());
  clock_.advance(1ms);
  auto c = poll();
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->level);
  EXPECT_EQ(c->at_unix_ms, 1'700'000'000'000);
  EXPECT_FALSE(poll());  // once
  EXPECT_EQ(d_.stable(), true);
}

TEST_F(DebounceTest, ChatterShorterThanTheWindowIsIgnored) {
  edge(true);
  clock_.advance(200ms);
  ASSERT_TRUE(poll());
  for (int i = 0; i < 5; ++i) {  // 5 flickers of 30 ms
    edge(false);
    clock_.advance(30ms);
    EXPECT_FALSE(poll());
    edge(true);
    clock_.advance(30ms);
    EXPECT_FALSE(poll());
  }
  clock_.advance(1s);
  EXPECT_FALSE(poll());
  EXPECT_FALSE(d_.deadline());
}

TEST_F(DebounceTest, TransitionCarriesTheTimeOfTheEdgeThatStartedTheStableRun) {
  edge(true);
  clock_.advance(300ms);
  ASSERT_TRUE(poll());
  clock_.advance(5s);
  const auto cut_at = clock_.unix_ms();
  edge(false);
  clock_.advance(50ms);
  edge(false);  // repeated samples of the same level do not restart the run
  EXPECT_EQ(d_.deadline(), clock_.steady() - 50ms + 200ms);
  clock_.advance(150ms);
  auto c = poll();
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->level);
  EXPECT_EQ(c->at_unix_ms, cut_at);
}

TEST_F(DebounceTest, WindowCanChangeAtRunTime) {
  d_.set_window(10ms);
  edge(false);
  clock_.advance(10ms);
  ASSERT_TRUE(poll());
  EXPECT_EQ(d_.window(), 10ms);
}

}  // namespace
}  // namespace dag::edge
