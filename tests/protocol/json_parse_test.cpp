// The private JSON parser must build exactly what nlohmann::json::parse builds.
#include "json_parse.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dag::protocol::detail {
namespace {

using nlohmann::json;

TEST(JsonParse, AgreesWithNlohmannOnValidText) {
  for (std::string_view text : {
           R"({})",
           R"([])",
           R"("")",
           "0",
           "-0",
           "1.5",
           "-2.5e-3",
           "1E+2",
           "true",
           "false",
           "null",
           R"( { "a" : [ 1 , 2 , { "b" : null } ] } )",
           R"({"s":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00\u0000"})",
           "18446744073709551615",
           "18446744073709551616",
           "-9223372036854775808",
           "-9223372036854775809",
           "1e-400",
           "123456789012345678901234567890",
           "[[[[[[[[[[[]]]]]]]]]]]",
           "{\"k\":{\"k\":{\"k\":{}}}}",
           " \t\r\n[1]\n",
           "{\"a\":1,\"a\":2}",
           "\"h\xc3\xa9llo\"",
           R"({"\u0000k":"\u0000"})",
           // Numbers RapidJSON 1.1.0 rejects or converts wrongly on its own.
           "0e400",
           "-0e999",
           "0.0e310",
           R"([0e400, 1, "x", 0E+999])",
           "1.0000000000e-2147483639",
           "1.1790070045819979778582601803265537801434e-326",
           "1.5462884568481974521112240470175101314002e-324",
       }) {
    auto ours = parse_json(text);
    ASSERT_TRUE(ours.has_value()) << text;
    EXPECT_EQ(*ours, json::parse(text)) << text;
    EXPECT_EQ(ours->type(), json::parse(text).type()) << text;
  }
  // Integer parts beyond RapidJSON's range, scaled back by an exponent or just below
  // DBL_MAX.
  for (const std::string& text :
       {"1" + std::string(400, '0') + "e-300", "[-1" + std::string(400, '0') + ".5e-390]",
        "17976931348623157" + std::string(292, '0')}) {
    auto ours = parse_json(text);
    ASSERT_TRUE(ours.has_value()) << text;
    EXPECT_EQ(*ours, json::parse(text)) << text;
  }
}

TEST(JsonParse, RejectsWhatIsNotExactlyOneValue) {
  for (std::string_view text : {
           "",           " ",         "{",           "}",           "[1,]",
           "{\"a\":1,}", "{,}",       "{\"a\" 1}",   "{a:1}",       "[1 2]",
           "01",         "-",         "1.",          ".5",          "1e",
           "+1",         "tru",       "nul",         "True",        "\"abc",
           "\"\\x\"",    "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
           "\"a\nb\"",   "[1] [2]",   "{} x",        "1e999",       "NaN",
           "Infinity",   "'a'",
       }) {
    EXPECT_FALSE(parse_json(text).has_value()) << text;
  }
  using std::string_view_literals::operator""sv;
  for (std::string_view text : {
           R"("\udc00\ud800")"sv,  // RapidJSON 1.1.0 lets an unpaired low surrogate through
           "[1]\0"sv,
           "1\0 "sv,
           "\"a\0b\""sv,
           "[0e400, -]"sv,  // the retry for RapidJSON's rejected numbers
           "[0e400, 01]"sv,
           "[0e400, 1e999]"sv,
           "[0e400]\0"sv,
           "1e309"sv,
           "-1e309"sv,
           "\xEF\xBB\xBF{}"sv,
       }) {
    EXPECT_FALSE(parse_json(text).has_value()) << text;
  }
}

TEST(JsonParse, ReportsTopLevelMemberSpansAndDuplicates) {
  constexpr std::string_view kText = R"({"state" : { "a" : [1, 2] },"n":5, "s":"x"})";
  ParseInfo info;
  auto value = parse_json(kText, &info);
  ASSERT_TRUE(value.has_value());
  ASSERT_EQ(info.members.size(), 3u);
  EXPECT_EQ(info.members[0].key, "state");
  EXPECT_EQ(info.members[0].text, R"({ "a" : [1, 2] })");
  EXPECT_EQ(info.members[0].whitespace, 5u);
  EXPECT_EQ(info.members[1].key, "n");
  EXPECT_EQ(info.members[1].text, "5");
  EXPECT_EQ(info.members[2].text, "\"x\"");
  EXPECT_FALSE(info.duplicate_keys);

  // Spaces inside strings are content, not insignificant whitespace.
  ParseInfo spaced;
  auto spaced_value = parse_json(R"({ "a" : "x y" , "b" :[ 1, {} ] })", &spaced);
  ASSERT_TRUE(spaced_value.has_value());
  ASSERT_EQ(spaced.members.size(), 2u);
  EXPECT_EQ(spaced.members[0].text, R"("x y")");
  EXPECT_EQ(spaced.members[0].whitespace, 0u);
  EXPECT_EQ(spaced.members[1].text, "[ 1, {} ]");
  EXPECT_EQ(spaced.members[1].whitespace, 3u);

  // The same through the retry for numbers RapidJSON rejects.
  ParseInfo retried;
  auto retried_value = parse_json(R"({"n" : 0e400,"s":{ "v" : -1e-999 } })", &retried);
  ASSERT_TRUE(retried_value.has_value());
  ASSERT_EQ(retried.members.size(), 2u);
  EXPECT_EQ(retried.members[0].key, "n");
  EXPECT_EQ(retried.members[0].text, "0e400");
  EXPECT_EQ(retried.members[1].text, R"({ "v" : -1e-999 })");
  EXPECT_EQ(retried.members[1].whitespace, 4u);
  EXPECT_FALSE(retried.duplicate_keys);

  ParseInfo dup;
  ASSERT_TRUE(parse_json(R"({"a":{"b":1,"b":2}})", &dup).has_value());
  EXPECT_TRUE(dup.duplicate_keys);
}

TEST(JsonParse, DeepNestingUsesNoRecursion) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto value = parse_json(deep);
  ASSERT_TRUE(value.has_value());
  EXPECT_TRUE(value->is_array());
  EXPECT_FALSE(parse_json(std::string(100000, '[')).has_value());
}

}  // namespace
}  // namespace dag::protocol::detail
