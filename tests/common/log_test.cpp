#include "dag/common/log.hpp"

#include <gtest/gtest.h>

namespace dag::log {
namespace {

TEST(Log, RendersKeyValueFields) {
  EXPECT_EQ(render("shadow.accepted", {{"device", "dag-1"}, {"version", 7}, {"ok", true}}),
            "shadow.accepted device=dag-1 version=7 ok=true");
}

TEST(Log, QuotesValuesThatWouldBreakParsing) {
  EXPECT_EQ(render("e", {{"msg", "two words"}, {"q", "a\"b"}, {"empty", ""}, {"eq", "a=b"}}),
            R"(e msg="two words" q="a\"b" empty="" eq="a=b")");
  EXPECT_EQ(render("e", {{"nl", "a\nb"}}), R"(e nl="a\nb")");
}

TEST(Log, SecretsNeverAppear) {
  const std::string line = render("auth", {{"user", "ann"}, {"password", Secret{"hunter2"}}});
  EXPECT_EQ(line, "auth user=ann password=***");
  EXPECT_EQ(line.find("hunter2"), std::string::npos);
}

TEST(Log, ParsesLevels) {
  Level l{};
  ASSERT_TRUE(parse_level("debug", l));
  EXPECT_EQ(l, Level::debug);
  EXPECT_FALSE(parse_level("loud", l));
  set_level(Level::warn);
  EXPECT_EQ(level(), Level::warn);
  set_level(Level::info);
}

}  // namespace
}  // namespace dag::log
