#include "dag/sim/fleet.hpp"

#include <gtest/gtest.h>

#include "dag/edge/outbox.hpp"

namespace dag::sim {
namespace {

TEST(Fleet, PercentilesAreNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(percentile(v, 50), 50);
  EXPECT_EQ(percentile(v, 99), 99);
  EXPECT_EQ(percentile(v, 100), 100);
  EXPECT_EQ(percentile(v, 0), 1);
  std::vector<double> empty;
  EXPECT_EQ(percentile(empty, 50), 0);
  const auto d = distribution(v);
  EXPECT_EQ(d["count"], 100);
  EXPECT_EQ(d["p90"], 90);
  EXPECT_EQ(d["max"], 100);
}

TEST(Fleet, ProgressLineCarriesTheCounters) {
  Progress p;
  p.elapsed_s = 2.5;
  p.phase = "connect";
  p.devices = 10;
  p.connected = 7;
  p.accepted = 3;
  const auto line = format_progress(p);
  EXPECT_NE(line.find("t=2.5s connect connected=7/10"), std::string::npos) << line;
  EXPECT_NE(line.find("accepted=3"), std::string::npos) << line;
}

TEST(Fleet, RefusesAnEmptyFleet) {
  FleetOptions o;
  auto r = run_fleet(o, Credentials{});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
}

// The edge library's in-memory outbox, which every simulated dag uses.
TEST(InMemoryOutbox, ContinuesTheSeqAndQueuesLikeTheDurableOne) {
  auto box = edge::Outbox::in_memory(10, 1000);
  ASSERT_TRUE(box);
  EXPECT_TRUE(box->path().empty());
  EXPECT_EQ(box->next_seq(), 1001U);
  ASSERT_TRUE(box->append(1001, "a"));
  ASSERT_TRUE(box->append(1002, "b"));
  EXPECT_FALSE(box->append(1005, "c"));
  ASSERT_TRUE(box->ack(1001));
  ASSERT_EQ(box->pending().size(), 1U);
  EXPECT_EQ(box->pending().front().body, "b");
  ASSERT_TRUE(box->ack(1002));
  EXPECT_TRUE(box->pending().empty());
  EXPECT_EQ(box->next_seq(), 1003U);
  // Full: the oldest tenth goes, counted.
  for (std::uint64_t s = 1003; s < 1014; ++s) ASSERT_TRUE(box->append(s, "x"));
  EXPECT_EQ(box->pending().size(), 10U);
  EXPECT_EQ(box->coalesced_total(), 1U);
  EXPECT_FALSE(edge::Outbox::in_memory(5));
}

}  // namespace
}  // namespace dag::sim
