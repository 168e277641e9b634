#include "dag/api/hub.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "dag/common/clock.hpp"

namespace dag::api {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Long enough never to pass on a loaded CI machine; a passing test never waits for it.
constexpr auto kBound = std::chrono::seconds(10);

/// A hub on a fake clock that watches `accounts` (only watched accounts keep events).
struct Hub {
  explicit Hub(std::uint64_t start_id, std::initializer_list<const char*> accounts = {"a"},
               std::size_t per_account = EventHub::kDefaultPerAccount)
      : hub(clock, start_id, per_account) {
    for (const char* account : accounts) hub.watch(account);
  }
  FakeClock clock;
  EventHub hub;
};

std::vector<std::uint64_t> ids(const std::optional<std::vector<StreamEvent>>& events) {
  std::vector<std::uint64_t> out;
  if (events) {
    for (const auto& e : *events) out.push_back(e.id);
  }
  return out;
}

TEST(EventHub, IdsStartAfterStartIdAndAreGlobal) {
  Hub h(1000, {"a", "b"});
  auto& hub = h.hub;
  EXPECT_EQ(hub.last_id(), 1000U);
  EXPECT_EQ(hub.publish("a", "device", "1"), 1001U);
  EXPECT_EQ(hub.publish("b", "device", "2"), 1002U);
  EXPECT_EQ(hub.publish("a", "device", "3"), 1003U);
  EXPECT_EQ(hub.last_id(), 1003U);
}

TEST(EventHub, SinceReturnsTheAccountsEventsOldestFirst) {
  Hub h(0, {"a", "b"});
  auto& hub = h.hub;
  hub.publish("a", "device", R"({"n":1})");
  hub.publish("b", "device", "other");
  hub.publish("a", "device", R"({"n":2})");
  hub.publish("a", "snapshot", R"({"n":3})");

  const auto all = hub.since("a", 0);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3U);
  EXPECT_EQ((*all)[0], (StreamEvent{1, "device", R"({"n":1})"}));
  EXPECT_EQ((*all)[1], (StreamEvent{3, "device", R"({"n":2})"}));
  EXPECT_EQ((*all)[2], (StreamEvent{4, "snapshot", R"({"n":3})"}));

  EXPECT_EQ(ids(hub.since("a", 1)), (std::vector<std::uint64_t>{3, 4}));
  // An id of another account's event is a valid position too.
  EXPECT_EQ(ids(hub.since("a", 2)), (std::vector<std::uint64_t>{3, 4}));
  const auto none = hub.since("a", 4);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(ids(hub.since("b", 0)), (std::vector<std::uint64_t>{2}));
}

TEST(EventHub, AnAccountWithoutEventsHasNothingNew) {
  Hub h(10, {"a", "watched"});
  auto& hub = h.hub;
  const auto empty = hub.since("watched", 10);
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  hub.publish("a", "device", "x");
  const auto still = hub.since("watched", 10);
  ASSERT_TRUE(still);
  EXPECT_TRUE(still->empty());
}

TEST(EventHub, AnAccountNobodyWatchesKeepsNothingAndBuildsNoData) {
  Hub h(10, {});
  auto& hub = h.hub;
  EXPECT_TRUE(hub.since("nobody", 10));  // nothing happened since
  bool built = false;
  EXPECT_EQ(hub.publish("nobody", "device",
                        [&built] {
                          built = true;
                          return std::string("x");
                        }),
            11U);
  EXPECT_FALSE(built);
  EXPECT_EQ(hub.held(), 0U);
  // Something happened that the hub cannot replay: a snapshot.
  EXPECT_FALSE(hub.since("nobody", 10));
  EXPECT_EQ(ids(hub.since("nobody", 11)), (std::vector<std::uint64_t>{}));
}

TEST(EventHub, WatchingStartsNowAndEarlierEventsNeedASnapshot) {
  Hub h(0, {});
  auto& hub = h.hub;
  hub.publish("a", "device", "before");  // 1
  hub.watch("a");
  EXPECT_FALSE(hub.since("a", 0));
  EXPECT_EQ(ids(hub.since("a", 1)), (std::vector<std::uint64_t>{}));
  hub.publish("a", "device", "after");  // 2
  EXPECT_EQ(ids(hub.since("a", 1)), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(hub.held(), 1U);
}

TEST(EventHub, AnAccountStaysWatchedWhileAStreamIsOpenAndLingersAfter) {
  Hub h(0, {});
  auto& hub = h.hub;
  {
    const auto guard = hub.open_stream("a");
    h.clock.advance(EventHub::kDefaultLinger * 2);  // open: no linger counts
    hub.publish("a", "device", "1");
    EXPECT_EQ(ids(hub.since("a", 0)), (std::vector<std::uint64_t>{1}));
  }
  h.clock.advance(EventHub::kDefaultLinger - milliseconds(1));
  hub.publish("a", "device", "2");  // a reconnect within the linger resumes
  EXPECT_EQ(ids(hub.since("a", 1)), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(hub.held(), 2U);
  h.clock.advance(milliseconds(1));
  hub.publish("a", "device", "3");  // no longer watched: everything goes
  EXPECT_EQ(hub.held(), 0U);
  EXPECT_FALSE(hub.since("a", 2));
  EXPECT_EQ(ids(hub.since("a", 3)), (std::vector<std::uint64_t>{}));
  // Watched again: kept from now on.
  hub.watch("a");
  hub.publish("a", "device", "4");
  EXPECT_EQ(ids(hub.since("a", 3)), (std::vector<std::uint64_t>{4}));
}

TEST(EventHub, TheSweepEmptiesTheRingsOfAccountsNoLongerWatched) {
  Hub h(0, {"quiet"});
  auto& hub = h.hub;
  for (int i = 0; i < 3; ++i) hub.publish("quiet", "device", "q");
  h.clock.advance(EventHub::kDefaultLinger);
  EXPECT_EQ(hub.held(), 3U);  // the quiet account has no next event to give them up at
  for (int i = 0; i < 4096; ++i) hub.publish("other", "device", "o");
  EXPECT_EQ(hub.held(), 0U);
  EXPECT_FALSE(hub.since("quiet", 0));
}

TEST(EventHub, EvictedEventsNeedASnapshot) {
  Hub h(0, {"a"}, 3);
  auto& hub = h.hub;
  for (int i = 0; i < 5; ++i) hub.publish("a", "device", std::to_string(i));  // ids 1..5
  EXPECT_FALSE(hub.since("a", 0));                                            // 1 and 2 are gone
  EXPECT_FALSE(hub.since("a", 1));                                            // 2 is gone
  EXPECT_EQ(ids(hub.since("a", 2)), (std::vector<std::uint64_t>{3, 4, 5}));
  EXPECT_EQ(ids(hub.since("a", 4)), (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(ids(hub.since("a", 5)), (std::vector<std::uint64_t>{}));
}

TEST(EventHub, EvictionIsPerAccount) {
  Hub h(0, {"quiet", "busy"}, 2);
  auto& hub = h.hub;
  hub.publish("quiet", "device", "q");                             // id 1
  for (int i = 0; i < 10; ++i) hub.publish("busy", "device", "");  // ids 2..11
  // The busy account's evictions do not cost the quiet account its event.
  EXPECT_EQ(ids(hub.since("quiet", 0)), (std::vector<std::uint64_t>{1}));
  EXPECT_FALSE(hub.since("busy", 0));
  // The gap is judged by the account's own evictions: ids between the account's events
  // belong to other accounts and are no gap.
  EXPECT_EQ(ids(hub.since("busy", 9)), (std::vector<std::uint64_t>{10, 11}));
  EXPECT_FALSE(hub.since("busy", 8));
}

TEST(EventHub, IdsThisHubCannotHaveIssuedNeedASnapshot) {
  Hub h(5000);
  auto& hub = h.hub;
  hub.publish("a", "device", "x");     // 5001
  EXPECT_FALSE(hub.since("a", 4999));  // an earlier process's id
  EXPECT_FALSE(hub.since("a", 0));     // 0 is not special
  EXPECT_FALSE(hub.since("a", 5002));  // not issued yet
  EXPECT_FALSE(hub.since("unknown", 5002));
  EXPECT_FALSE(hub.since("unknown", 1));
  EXPECT_EQ(ids(hub.since("a", 5000)), (std::vector<std::uint64_t>{5001}));
  // wait() answers the same at once instead of sleeping.
  const auto far = steady_clock::now() + kBound;
  EXPECT_FALSE(hub.wait("a", 4999, far));
  EXPECT_FALSE(hub.wait("a", 9999, far));
}

TEST(EventHub, WaitReturnsAtOnceWhenEventsAreThere) {
  Hub h(0);
  auto& hub = h.hub;
  hub.publish("a", "device", "x");
  EXPECT_EQ(ids(hub.wait("a", 0, steady_clock::now() + kBound)), (std::vector<std::uint64_t>{1}));
}

TEST(EventHub, WaitWakesOnPublishFromAnotherThread) {
  Hub h(0, {});
  auto& hub = h.hub;
  const auto guard = hub.open_stream("a");
  const std::uint64_t after = hub.last_id();
  std::promise<void> waiting;
  auto result = std::async(std::launch::async, [&] {
    waiting.set_value();
    return hub.wait("a", after, steady_clock::now() + kBound);
  });
  waiting.get_future().wait();
  const auto start = steady_clock::now();
  // Whether the waiter is asleep yet or not, it must see the event.
  hub.publish("a", "device", "x");
  ASSERT_EQ(result.wait_for(kBound), std::future_status::ready);
  EXPECT_LT(steady_clock::now() - start, kBound);
  const auto events = result.get();
  ASSERT_TRUE(events);
  ASSERT_EQ(events->size(), 1U);
  EXPECT_EQ((*events)[0].data, "x");
}

TEST(EventHub, WaitTimesOutEmpty) {
  Hub h(0);
  auto& hub = h.hub;
  hub.publish("a", "device", "x");
  const auto start = steady_clock::now();
  const auto events = hub.wait("a", 1, start + milliseconds(50));
  EXPECT_GE(steady_clock::now() - start, milliseconds(50));
  ASSERT_TRUE(events);
  EXPECT_TRUE(events->empty());
}

TEST(EventHub, OtherAccountsEventsDoNotEndAWait) {
  Hub h(0);
  auto& hub = h.hub;
  const auto start = steady_clock::now();
  auto result =
      std::async(std::launch::async, [&] { return hub.wait("a", 0, start + milliseconds(200)); });
  for (int i = 0; i < 20; ++i) hub.publish("b", "device", "y");
  const auto events = result.get();
  EXPECT_GE(steady_clock::now() - start, milliseconds(200));
  ASSERT_TRUE(events);
  EXPECT_TRUE(events->empty());
}

TEST(EventHub, CloseWakesEveryWaiterAndLaterWaitsReturnAtOnce) {
  Hub h(0);
  auto& hub = h.hub;
  constexpr int kWaiters = 8;
  std::atomic<int> started{0};
  std::vector<std::future<std::optional<std::vector<StreamEvent>>>> waiters;
  waiters.reserve(kWaiters);
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(std::async(std::launch::async, [&hub, &started, i] {
      started.fetch_add(1);
      return hub.wait("acct" + std::to_string(i % 3), 0, steady_clock::now() + kBound);
    }));
  }
  while (started.load() < kWaiters) std::this_thread::yield();
  EXPECT_FALSE(hub.closed());
  hub.close();
  EXPECT_TRUE(hub.closed());
  for (auto& waiter : waiters) {
    ASSERT_EQ(waiter.wait_for(kBound), std::future_status::ready);
    const auto events = waiter.get();
    ASSERT_TRUE(events);
    EXPECT_TRUE(events->empty());
  }
  const auto start = steady_clock::now();
  const auto late = hub.wait("new", 0, start + kBound);
  EXPECT_LT(steady_clock::now() - start, kBound);
  ASSERT_TRUE(late);
  EXPECT_TRUE(late->empty());
}

TEST(EventHub, StreamGuardsCountOpenStreams) {
  Hub h(0);
  auto& hub = h.hub;
  EXPECT_EQ(hub.streams(), 0U);
  {
    auto first = hub.open_stream("a");
    auto second = hub.open_stream("b");
    EXPECT_EQ(hub.streams(), 2U);
    auto moved = std::move(first);
    EXPECT_EQ(hub.streams(), 2U);
    second = std::move(moved);  // releases what `second` counted
    EXPECT_EQ(hub.streams(), 1U);
  }
  EXPECT_EQ(hub.streams(), 0U);
}

// Many publishers and readers at once: every reader sees its account's events in id order
// without loss (the ring is large enough) and nothing of other accounts. Run under TSan.
TEST(EventHub, ConcurrentPublishersAndWaiters) {
  constexpr int kAccounts = 4;
  constexpr int kEvents = 200;
  Hub h(0, {"acct0", "acct1", "acct2", "acct3"}, kEvents);
  auto& hub = h.hub;
  std::vector<std::future<std::vector<StreamEvent>>> readers;
  readers.reserve(kAccounts);
  for (int a = 0; a < kAccounts; ++a) {
    readers.push_back(std::async(std::launch::async, [&hub, a] {
      const std::string account = "acct" + std::to_string(a);
      std::vector<StreamEvent> seen;
      std::uint64_t after = 0;
      const auto deadline = steady_clock::now() + kBound;
      while (seen.size() < static_cast<std::size_t>(kEvents) && steady_clock::now() < deadline) {
        const auto events = hub.wait(account, after, deadline);
        if (!events) break;
        for (const auto& e : *events) {
          seen.push_back(e);
          after = e.id;
        }
      }
      return seen;
    }));
  }
  std::vector<std::thread> publishers;
  publishers.reserve(kAccounts);
  for (int a = 0; a < kAccounts; ++a) {
    publishers.emplace_back([&hub, a] {
      const std::string account = "acct" + std::to_string(a);
      for (int i = 0; i < kEvents; ++i) hub.publish(account, "device", std::to_string(i));
    });
  }
  for (auto& t : publishers) t.join();
  for (int a = 0; a < kAccounts; ++a) {
    const auto seen = readers[static_cast<std::size_t>(a)].get();
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(kEvents)) << a;
    for (int i = 0; i < kEvents; ++i) {
      EXPECT_EQ(seen[static_cast<std::size_t>(i)].data, std::to_string(i));
      if (i > 0) {
        EXPECT_LT(seen[static_cast<std::size_t>(i) - 1].id, seen[static_cast<std::size_t>(i)].id);
      }
    }
  }
  EXPECT_EQ(hub.last_id(), static_cast<std::uint64_t>(kAccounts * kEvents));
}

}  // namespace
}  // namespace dag::api
