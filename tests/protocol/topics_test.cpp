#include "dag/protocol/topics.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dag::protocol {
namespace {

TEST(DeviceId, AcceptsTheThingNameAlphabetUpTo128Characters) {
  EXPECT_TRUE(is_valid_device_id("dag-1"));
  EXPECT_TRUE(is_valid_device_id("3f2a9c4e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"));
  EXPECT_TRUE(is_valid_device_id("A.b_c:d-9"));
  EXPECT_TRUE(is_valid_device_id(std::string(128, 'x')));
}

TEST(DeviceId, RejectsEmptyTooLongAndForeignCharacters) {
  EXPECT_FALSE(is_valid_device_id(""));
  EXPECT_FALSE(is_valid_device_id(std::string(129, 'x')));
  for (std::string_view bad : {"a/b", "a+b", "a#b", "+", "#", "$aws", "a b", "é", "a\nb"}) {
    EXPECT_FALSE(is_valid_device_id(bad)) << bad;
  }
  EXPECT_FALSE(is_valid_device_id(std::string_view("a\0b", 3)));
}

TEST(Topics, ParsesShadowRequests) {
  EXPECT_EQ(parse_topic("$aws/things/dag-1/shadow/update"),
            Topic(ShadowRequestTopic{"dag-1", ShadowOp::update}));
  EXPECT_EQ(parse_topic("$aws/things/dag-1/shadow/get"),
            Topic(ShadowRequestTopic{"dag-1", ShadowOp::get}));
  EXPECT_EQ(parse_topic("$aws/things/dag-1/shadow/delete"),
            Topic(ShadowRequestTopic{"dag-1", ShadowOp::remove}));
}

TEST(Topics, ParsesShadowReplies) {
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/update/accepted"),
            Topic(ShadowResponseTopic{"d", ShadowOp::update, ShadowReply::accepted}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/update/rejected"),
            Topic(ShadowResponseTopic{"d", ShadowOp::update, ShadowReply::rejected}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/update/delta"),
            Topic(ShadowResponseTopic{"d", ShadowOp::update, ShadowReply::delta}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/update/documents"),
            Topic(ShadowResponseTopic{"d", ShadowOp::update, ShadowReply::documents}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/get/accepted"),
            Topic(ShadowResponseTopic{"d", ShadowOp::get, ShadowReply::accepted}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/get/rejected"),
            Topic(ShadowResponseTopic{"d", ShadowOp::get, ShadowReply::rejected}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/delete/accepted"),
            Topic(ShadowResponseTopic{"d", ShadowOp::remove, ShadowReply::accepted}));
  EXPECT_EQ(parse_topic("$aws/things/d/shadow/delete/rejected"),
            Topic(ShadowResponseTopic{"d", ShadowOp::remove, ShadowReply::rejected}));
}

TEST(Topics, ParsesLifecyclePresenceAndStatusRequest) {
  EXPECT_EQ(parse_topic("$aws/events/presence/connected/dag-1"),
            Topic(LifecycleTopic{Connection::connected, "dag-1"}));
  EXPECT_EQ(parse_topic("$aws/events/presence/disconnected/dag-1"),
            Topic(LifecycleTopic{Connection::disconnected, "dag-1"}));
  EXPECT_EQ(parse_topic("dags/dag-1/presence"), Topic(PresenceTopic{"dag-1"}));
  EXPECT_EQ(parse_topic("dags/dag-1/status/request"), Topic(StatusRequestTopic{"dag-1"}));
}

TEST(Topics, RejectsEverythingElse) {
  for (std::string_view bad : {
           "",
           "/",
           "$aws/things//shadow/update",                  // empty id
           "$aws/things/a+b/shadow/update",               // bad id
           "$aws/things/+/shadow/update",                 // a filter, not a topic
           "$aws/things/d/shadow",                        // missing level
           "$aws/things/d/shadow/update/",                // empty trailing level
           "$aws/things/d/shadow/update/accepted/extra",  // extra level
           "$aws/things/d/shadow/get/delta",              // delta is update-only
           "$aws/things/d/shadow/delete/documents",       // documents is update-only
           "$aws/things/d/shadow/name/n/update",          // named shadows are not ours
           "$aws/things/d/shadow/patch",                  // unknown op
           "$aws/things/d/shadows/update",                // misspelt level
           "$AWS/things/d/shadow/update",                 // case matters
           "$aws/events/presence/connected",              // missing client id
           "$aws/events/presence/connected/",             // empty client id
           "$aws/events/presence/connected/a/b",          // extra level
           "$aws/events/presence/online/dag-1",           // unknown event
           "$aws/events/subscriptions/subscribed/dag-1",  // other AWS events
           "dags/dag-1",                                  // missing level
           "dags//presence",                              // empty id
           "dags/dag-1/presence/extra",                   // extra level
           "dags/dag-1/status",                           // missing level
           "dags/dag-1/status/request/x",                 // extra level
           "dags/dag-1/status/reply",                     // unknown level
           "dags/#/presence",                             // wildcard id
           "other/dag-1/presence",                        // unknown root
       }) {
    EXPECT_FALSE(parse_topic(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parse_topic("dags/" + std::string(129, 'x') + "/presence").has_value());
}

TEST(Topics, BuildsEveryTopic) {
  EXPECT_EQ(shadow_topic("dag-1", ShadowOp::update), "$aws/things/dag-1/shadow/update");
  EXPECT_EQ(shadow_topic("dag-1", ShadowOp::remove), "$aws/things/dag-1/shadow/delete");
  EXPECT_EQ(shadow_topic("dag-1", ShadowOp::update, ShadowReply::documents),
            "$aws/things/dag-1/shadow/update/documents");
  EXPECT_EQ(shadow_topic("dag-1", ShadowOp::get, ShadowReply::rejected),
            "$aws/things/dag-1/shadow/get/rejected");
  EXPECT_EQ(lifecycle_topic(Connection::disconnected, "dag-1"),
            "$aws/events/presence/disconnected/dag-1");
  EXPECT_EQ(status_request_topic("dag-1"), "dags/dag-1/status/request");
  EXPECT_EQ(presence_topic("dag-1"), "dags/dag-1/presence");
}

TEST(Topics, FormatAndParseRoundTrip) {
  std::vector<Topic> topics = {
      LifecycleTopic{Connection::connected, "c-1"},
      LifecycleTopic{Connection::disconnected, "c-1"},
      StatusRequestTopic{"dag-1"},
      PresenceTopic{"dag-1"},
  };
  for (ShadowOp op : {ShadowOp::update, ShadowOp::get, ShadowOp::remove}) {
    topics.emplace_back(ShadowRequestTopic{"dag-1", op});
    for (ShadowReply reply : {ShadowReply::accepted, ShadowReply::rejected}) {
      topics.emplace_back(ShadowResponseTopic{"dag-1", op, reply});
    }
  }
  topics.emplace_back(ShadowResponseTopic{"dag-1", ShadowOp::update, ShadowReply::delta});
  topics.emplace_back(ShadowResponseTopic{"dag-1", ShadowOp::update, ShadowReply::documents});
  for (const Topic& topic : topics) {
    std::string text = format_topic(topic);
    EXPECT_EQ(parse_topic(text), topic) << text;
  }
  EXPECT_EQ(topics.size(), 15u);
}

TEST(Topics, CloudFiltersMatchTheTopicsTheyAreFor) {
  EXPECT_EQ(kCloudSubscriptions.size(), 5u);
  EXPECT_TRUE(topic_matches(filters::kShadowUpdate, "$aws/things/dag-1/shadow/update"));
  EXPECT_TRUE(topic_matches(filters::kShadowGet, "$aws/things/dag-1/shadow/get"));
  EXPECT_TRUE(topic_matches(filters::kShadowDelete, "$aws/things/dag-1/shadow/delete"));
  EXPECT_TRUE(topic_matches(filters::kPresence, "dags/dag-1/presence"));
  EXPECT_TRUE(topic_matches(filters::kLifecycle, "$aws/events/presence/connected/dag-1"));
  EXPECT_TRUE(topic_matches(filters::kLifecycle, "$aws/events/presence/disconnected/dag-1"));
  // The cloud must not hear its own replies.
  EXPECT_FALSE(topic_matches(filters::kShadowUpdate, "$aws/things/dag-1/shadow/update/accepted"));
  EXPECT_FALSE(topic_matches(filters::kShadowUpdate, "$aws/things/dag-1/shadow/get"));
  EXPECT_FALSE(topic_matches(filters::kPresence, "dags/dag-1/status/request"));
}

TEST(Topics, DeviceSubscriptionsAreItsRepliesAndStatusRequest) {
  EXPECT_EQ(device_subscriptions("dag-1"), (std::vector<std::string>{
                                               "$aws/things/dag-1/shadow/update/accepted",
                                               "$aws/things/dag-1/shadow/update/rejected",
                                               "$aws/things/dag-1/shadow/update/delta",
                                               "$aws/things/dag-1/shadow/get/accepted",
                                               "$aws/things/dag-1/shadow/get/rejected",
                                               "$aws/things/dag-1/shadow/delete/accepted",
                                               "$aws/things/dag-1/shadow/delete/rejected",
                                               "dags/dag-1/status/request",
                                           }));
}

TEST(TopicMatches, FollowsMqttWildcardRules) {
  EXPECT_TRUE(topic_matches("a/b", "a/b"));
  EXPECT_FALSE(topic_matches("a/b", "a/c"));
  EXPECT_TRUE(topic_matches("a/+/c", "a/b/c"));
  EXPECT_TRUE(topic_matches("a/+", "a/"));  // '+' matches an empty level
  EXPECT_FALSE(topic_matches("a/+", "a/b/c"));
  EXPECT_TRUE(topic_matches("a/#", "a"));
  EXPECT_TRUE(topic_matches("a/#", "a/b/c"));
  EXPECT_TRUE(topic_matches("#", "a/b"));
  EXPECT_FALSE(topic_matches("#", "$aws/things/x"));  // '$' topics need an explicit root
  EXPECT_FALSE(topic_matches("+/things/x", "$aws/things/x"));
  EXPECT_TRUE(topic_matches("$aws/#", "$aws/things/x"));
  EXPECT_FALSE(topic_matches("a/#/b", "a/x/b"));  // '#' must be last
  EXPECT_FALSE(topic_matches("a/b+", "a/b+"));    // wildcard sharing a level
  EXPECT_FALSE(topic_matches("a/b/c", "a/b"));
  EXPECT_FALSE(topic_matches("a", "a/b"));
  EXPECT_FALSE(topic_matches("", "a"));
}

TEST(Topics, LevelNames) {
  EXPECT_EQ(to_string(ShadowOp::remove), "delete");
  EXPECT_EQ(to_string(ShadowReply::documents), "documents");
}

}  // namespace
}  // namespace dag::protocol
