#include "dag/presence/presence.hpp"

#include <gtest/gtest.h>

namespace dag::presence {
namespace {

using protocol::Connection;

std::string lifecycle(std::string_view type, std::int64_t version, std::string_view id = "dag-1") {
  return R"({"clientId":")" + std::string(id) + R"(","timestamp":1700000000123,"eventType":")" +
         std::string(type) +
         R"(","sessionIdentifier":"s","principalIdentifier":"p","versionNumber":)" +
         std::to_string(version) + "}";
}

TEST(Presence, BirthAndWill) {
  auto on = from_presence({"dag-1"}, "connected", false);
  ASSERT_TRUE(on);
  EXPECT_EQ(on->device_id, "dag-1");
  EXPECT_EQ(on->connection, Connection::connected);
  EXPECT_FALSE(on->order);
  auto off = from_presence({"dag-1"}, " disconnected\n", true);  // mosquitto_pub adds '\n'
  ASSERT_TRUE(off);
  EXPECT_EQ(off->connection, Connection::disconnected);
  EXPECT_TRUE(off->retained);
}

TEST(Presence, OtherPayloadsAreErrors) {
  for (std::string_view p : {"", "Connected", "online", "{\"state\":1}", "connected!"}) {
    EXPECT_FALSE(from_presence({"dag-1"}, p, false)) << p;
  }
}

TEST(Presence, LifecycleOrderPutsTheDisconnectAfterItsConnect) {
  auto c = from_lifecycle({Connection::connected, "dag-1"}, lifecycle("connected", 7));
  auto d = from_lifecycle({Connection::disconnected, "dag-1"}, lifecycle("disconnected", 7));
  auto next = from_lifecycle({Connection::connected, "dag-1"}, lifecycle("connected", 8));
  ASSERT_TRUE(c && d && next);
  EXPECT_LT(*c->order, *d->order);  // AWS: same number for a connection's two events
  EXPECT_LT(*d->order, *next->order);
  EXPECT_TRUE(is_news(*d, c->order));
  EXPECT_FALSE(is_news(*d, next->order));  // a late disconnect of the old connection
  EXPECT_FALSE(is_news(*c, c->order));     // a duplicate
  EXPECT_TRUE(is_news(*c, std::nullopt));
}

TEST(Presence, LifecycleMustMatchItsTopic) {
  EXPECT_FALSE(from_lifecycle({Connection::connected, "dag-2"}, lifecycle("connected", 1)));
  EXPECT_FALSE(from_lifecycle({Connection::disconnected, "dag-1"}, lifecycle("connected", 1)));
  EXPECT_FALSE(from_lifecycle({Connection::connected, "dag-1"}, "not json"));
  EXPECT_FALSE(from_lifecycle({Connection::connected, "dag-1"},
                              lifecycle("connected", kMaxVersionNumber + 1)));
  EXPECT_TRUE(
      from_lifecycle({Connection::connected, "dag-1"}, lifecycle("connected", kMaxVersionNumber)));
}

TEST(Presence, NewsWithoutOrderIsAlwaysNews) {
  auto will = from_presence({"dag-1"}, "disconnected", false);
  ASSERT_TRUE(will);
  EXPECT_TRUE(is_news(*will, 1'000'000));
}

}  // namespace
}  // namespace dag::presence
