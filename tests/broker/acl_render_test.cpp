// Unit tests of dag::broker::render_acl; acl_test.cpp proves the same text on mosquitto.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "dag/broker/acl.hpp"

#include "rendered_lines.hpp"

namespace dag::broker {
namespace {

using rendered::has;
const auto& rules = rendered::lines;

TEST(AclRenderTest, DevicesMayPublishOnlyTheirOwnRequests) {
  auto text = render_acl({});
  ASSERT_TRUE(text) << text.error().message;
  const auto r = rules(*text);
  for (const char* line :
       {"pattern write $aws/things/%u/shadow/update", "pattern write $aws/things/%u/shadow/get",
        "pattern write $aws/things/%u/shadow/delete", "pattern write dags/%u/presence"}) {
    EXPECT_TRUE(has(r, line)) << line;
  }
  // Every device rule is bound to %u and is never readwrite: a device must not publish
  // what the service answers, nor read what it publishes to others.
  for (const auto& line : r) {
    if (line.rfind("pattern ", 0) != 0) continue;
    EXPECT_NE(line.find("/%u/"), std::string::npos) << line;
    EXPECT_EQ(line.find("readwrite"), std::string::npos) << line;
    EXPECT_EQ(line.find('#'), std::string::npos) << line;
    EXPECT_EQ(line.find('+'), std::string::npos) << line;
  }
}

TEST(AclRenderTest, DevicesReceiveOnlyTheirOwnReplies) {
  auto text = render_acl({});
  ASSERT_TRUE(text);
  const auto r = rules(*text);
  for (const char* suffix :
       {"update/accepted", "update/rejected", "update/delta", "update/documents", "get/accepted",
        "get/rejected", "delete/accepted", "delete/rejected"}) {
    EXPECT_TRUE(has(r, std::string{"pattern read $aws/things/%u/shadow/"} + suffix)) << suffix;
  }
  EXPECT_TRUE(has(r, "pattern read dags/%u/status/request"));
  EXPECT_EQ(std::count_if(r.begin(), r.end(),
                          [](const std::string& l) { return l.rfind("pattern ", 0) == 0; }),
            13);
}

TEST(AclRenderTest, ServicesGetEverythingIncludingDollarAws) {
  AclConfig config;
  config.service_identities = {"dagd", "dagd-2"};
  auto text = render_acl(config);
  ASSERT_TRUE(text);
  const auto r = rules(*text);
  for (const char* user : {"dagd", "dagd-2"}) {
    const auto at = std::find(r.begin(), r.end(), std::string{"user "} + user);
    ASSERT_NE(at, r.end()) << user;
    ASSERT_GE(r.end() - at, 5);
    EXPECT_EQ(at[1], "topic readwrite #");
    EXPECT_EQ(at[2], "topic readwrite $aws/#");  // '#' alone never matches "$aws/..."
    EXPECT_EQ(at[3], "topic read $SYS/#");
    EXPECT_EQ(at[4], "topic write $CONTROL/dag-presence/#");  // the presence plugin's commands
  }
}

TEST(AclRenderTest, OnlyServicesMaySendPluginCommands) {
  AclConfig config;
  config.service_identities = {"dagd", "dagctl"};
  auto text = render_acl(config);
  ASSERT_TRUE(text);
  const auto r = rules(*text);
  std::vector<std::string> control;
  std::copy_if(r.begin(), r.end(), std::back_inserter(control),
               [](const std::string& l) { return l.find("$CONTROL") != std::string::npos; });
  // One topic line per service identity; no pattern line (which would cover every device).
  EXPECT_EQ(control, (std::vector<std::string>{"topic write $CONTROL/dag-presence/#",
                                               "topic write $CONTROL/dag-presence/#"}));
}

TEST(AclRenderTest, NoServiceMeansNoUserSection) {
  AclConfig config;
  config.service_identities.clear();
  auto text = render_acl(config);
  ASSERT_TRUE(text);
  const auto r = rules(*text);
  EXPECT_FALSE(std::any_of(r.begin(), r.end(), [](const std::string& l) {
    return l.rfind("user ", 0) == 0 || l.rfind("topic ", 0) == 0;
  }));
}

TEST(AclRenderTest, EveryRuleIsExplainedByTheCommentAboveIt) {
  auto text = render_acl({});
  ASSERT_TRUE(text);
  std::istringstream in{*text};
  std::string previous;
  for (std::string line; std::getline(in, line); previous = line) {
    if (line.rfind("pattern ", 0) == 0 || line.rfind("topic ", 0) == 0) {
      EXPECT_EQ(previous.rfind("# ", 0), 0U) << "no reason above: " << line;
    }
  }
}

TEST(AclRenderTest, RefusesIdentitiesThatCouldWidenAccess) {
  for (const char* bad : {"", "dagd\ntopic readwrite #", "a/b", "+", "#", "dag d"}) {
    AclConfig config;
    config.service_identities = {bad};
    auto text = render_acl(config);
    ASSERT_FALSE(text) << bad;
    EXPECT_EQ(text.error().code, Errc::config);
  }
  AclConfig dup;
  dup.service_identities = {"dagd", "dagd"};
  EXPECT_FALSE(render_acl(dup));
}

}  // namespace
}  // namespace dag::broker
