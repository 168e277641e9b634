// Every rule and every error code of the shadow engine, each with its request and the
// exact reply expected (compared as JSON values, not strings).
#include "dag/protocol/shadow.hpp"

#include <gtest/gtest.h>

#include <string>

namespace dag::protocol {
namespace {

using nlohmann::json;

constexpr std::int64_t kT1 = 1'700'000'000;
constexpr std::int64_t kT2 = 1'700'000'100;
constexpr std::int64_t kT3 = 1'700'000'200;

json parse(std::string_view text) {
  return json::parse(text);
}

UpdateResult must_update(const ShadowDocument* current, std::string_view payload,
                         std::int64_t now) {
  auto result = update(current, payload, now);
  EXPECT_TRUE(result.has_value()) << "rejected: "
                                  << (result ? "" : render_rejected(result.error(), now));
  if (!result) return {};
  return std::move(result).value();
}

json rejected(const ShadowDocument* current, std::string_view payload, std::int64_t now) {
  auto result = update(current, payload, now);
  EXPECT_FALSE(result.has_value()) << "accepted: " << (result ? result->accepted : "");
  if (result) return nullptr;
  return parse(render_rejected(result.error(), now));
}

json get_json(const ShadowDocument& document, std::int64_t now, std::string_view payload = "") {
  auto result = get("dag-1", &document, payload, now);
  EXPECT_TRUE(result.has_value());
  if (!result) return nullptr;
  return parse(*result);
}

// ---- creation, merge, metadata -------------------------------------------------------

TEST(ShadowDelta, RenderDeltaMatchesWhatTheUpdateSent) {
  auto first = must_update(nullptr, R"({"state":{"reported":{"config":{"debounceMs":200}}}})", kT1);
  EXPECT_FALSE(render_delta(first.document, kT2));  // no desired state
  auto second =
      must_update(&first.document, R"({"state":{"desired":{"config":{"debounceMs":75}}}})", kT2);
  ASSERT_TRUE(second.delta);
  auto rendered = render_delta(second.document, kT2);
  ASSERT_TRUE(rendered);
  EXPECT_EQ(parse(*rendered), parse(*second.delta));
  EXPECT_EQ(parse(*rendered)["state"], parse(R"({"config":{"debounceMs":75}})"));
  auto agreed =
      must_update(&second.document, R"({"state":{"reported":{"config":{"debounceMs":75}}}})", kT3);
  EXPECT_FALSE(render_delta(agreed.document, kT3));
  auto tombstone = remove("dag-1", &agreed.document, "", kT3);
  ASSERT_TRUE(tombstone);
  EXPECT_FALSE(render_delta(tombstone->document, kT3));
}

TEST(ShadowUpdate, ReportedPatchIsHandedToTheCaller) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"status":"on","seq":3}}})", kT1);
  EXPECT_EQ(r.reported_patch, parse(R"({"status":"on","seq":3})"));
  auto d = must_update(&r.document, R"({"state":{"desired":{"x":1}}})", kT2);
  EXPECT_TRUE(d.reported_patch.is_null());
}

TEST(ShadowUpdate, FirstUpdateCreatesTheShadowAtVersionOne) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"status":"on","seq":1}},
                                     "clientToken":"tok-1"})",
                       kT1);
  EXPECT_EQ(parse(r.accepted), parse(R"({
    "state": {"reported": {"status": "on", "seq": 1}},
    "metadata": {"reported": {"status": {"timestamp": 1700000000},
                              "seq": {"timestamp": 1700000000}}},
    "version": 1, "timestamp": 1700000000, "clientToken": "tok-1"})"));
  EXPECT_EQ(parse(r.documents), parse(R"({
    "previous": null,
    "current": {
      "state": {"reported": {"status": "on", "seq": 1}},
      "metadata": {"reported": {"status": {"timestamp": 1700000000},
                                "seq": {"timestamp": 1700000000}}},
      "version": 1},
    "timestamp": 1700000000, "clientToken": "tok-1"})"));
  EXPECT_FALSE(r.delta.has_value());
  EXPECT_TRUE(r.document.exists());
  EXPECT_EQ(r.document.version(), 1u);
  EXPECT_EQ(r.document.reported(), parse(R"({"status":"on","seq":1})"));
  EXPECT_TRUE(r.document.desired().is_null());
}

TEST(ShadowUpdate, OnlyNamedFieldsChangeAndObjectsMergeRecursively) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{
      "status":"on","battery":{"percent":80,"volts":4.1},"name":"shed"}}})",
                        kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"battery":{"percent":79}}}})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"reported": {"battery": {"percent": 79}}},
    "metadata": {"reported": {"battery": {"percent": {"timestamp": 1700000100}}}},
    "version": 2, "timestamp": 1700000100})"));
  EXPECT_EQ(get_json(v2.document, kT3), parse(R"({
    "state": {"reported": {"status": "on", "battery": {"percent": 79, "volts": 4.1},
                           "name": "shed"}},
    "metadata": {"reported": {
      "status": {"timestamp": 1700000000},
      "battery": {"percent": {"timestamp": 1700000100}, "volts": {"timestamp": 1700000000}},
      "name": {"timestamp": 1700000000}}},
    "version": 2, "timestamp": 1700000200})"));
  // The stored v1 is untouched: documents are values.
  EXPECT_EQ(v1.document.reported()["battery"]["percent"], 80);
}

TEST(ShadowUpdate, NullLeafDeletesFieldAndAcceptedKeepsTheNull) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{
      "status":"on","battery":{"percent":80,"volts":4.1}}}})",
                        kT1);
  auto v2 = must_update(&v1.document,
                        R"({"state":{"reported":{"battery":{"volts":null},"status":null}}})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"reported": {"battery": {"volts": null}, "status": null}},
    "metadata": {"reported": {"battery": {"volts": {"timestamp": 1700000100}},
                              "status": {"timestamp": 1700000100}}},
    "version": 2, "timestamp": 1700000100})"));
  EXPECT_EQ(v2.document.reported(), parse(R"({"battery":{"percent":80}})"));
  EXPECT_EQ(v2.document.metadata(), parse(R"({
    "reported": {"battery": {"percent": {"timestamp": 1700000000}}}})"));
}

TEST(ShadowUpdate, NullForAMissingFieldIsANoOpButStillAccepted) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"ghost":null}}})", kT2);
  EXPECT_EQ(v2.document.reported(), parse(R"({"a":1})"));
  EXPECT_EQ(v2.document.version(), 2u);
}

TEST(ShadowUpdate, ObjectEmptiedByDeletionDisappears) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":{"b":{"c":1}},"x":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"a":{"b":{"c":null}}}}})", kT2);
  EXPECT_EQ(v2.document.reported(), parse(R"({"x":1})"));
  EXPECT_EQ(v2.document.metadata(), parse(R"({"reported":{"x":{"timestamp":1700000000}}})"));
}

TEST(ShadowUpdate, SectionEmptiedByDeletionDisappears) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"x":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"x":null}}})", kT2);
  EXPECT_TRUE(v2.document.reported().is_null());
  EXPECT_EQ(get_json(v2.document, kT3), parse(R"({
    "state": {}, "metadata": {}, "version": 2, "timestamp": 1700000200})"));
}

TEST(ShadowUpdate, DesiredNullDeletesTheWholeDesiredSection) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"color":"red"},
                                               "reported":{"color":"green"}}})",
                        kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":null}})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"desired": null},
    "metadata": {"desired": {"timestamp": 1700000100}},
    "version": 2, "timestamp": 1700000100})"));
  EXPECT_TRUE(v2.document.desired().is_null());
  EXPECT_EQ(v2.document.reported(), parse(R"({"color":"green"})"));
  EXPECT_FALSE(v2.delta.has_value());
}

TEST(ShadowUpdate, ReportedNullDeletesTheWholeReportedSection) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"color":"red"},
                                               "reported":{"color":"green"}}})",
                        kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":null},"clientToken":"c"})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"reported": null},
    "metadata": {"reported": {"timestamp": 1700000100}},
    "version": 2, "timestamp": 1700000100, "clientToken": "c"})"));
  EXPECT_TRUE(v2.document.reported().is_null());
  EXPECT_EQ(v2.document.desired(), parse(R"({"color":"red"})"));
}

TEST(ShadowUpdate, StateNullClearsBothSectionsButKeepsTheShadow) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"a":1},"reported":{"b":2}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":null})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"desired": null, "reported": null},
    "metadata": {"desired": {"timestamp": 1700000100}, "reported": {"timestamp": 1700000100}},
    "version": 2, "timestamp": 1700000100})"));
  EXPECT_TRUE(v2.document.exists());
  EXPECT_EQ(get_json(v2.document, kT3), parse(R"({
    "state": {}, "metadata": {}, "version": 2, "timestamp": 1700000200})"));
  EXPECT_EQ(parse(v2.documents)["current"], parse(R"({
    "state": {}, "metadata": {}, "version": 2})"));
}

TEST(ShadowUpdate, ArraysAreReplacedWholeWithOneTimestampPerElement) {
  auto v1 =
      must_update(nullptr, R"({"state":{"reported":{"colors":["RED","GREEN","BLUE"]}}})", kT1);
  EXPECT_EQ(parse(v1.accepted)["metadata"], parse(R"({"reported":{"colors":[
    {"timestamp":1700000000},{"timestamp":1700000000},{"timestamp":1700000000}]}})"));
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"colors":["RED"]}}})", kT2);
  EXPECT_EQ(v2.document.reported(), parse(R"({"colors":["RED"]})"));
  EXPECT_EQ(v2.document.metadata(), parse(R"({"reported":{"colors":[{"timestamp":1700000100}]}})"));
}

TEST(ShadowUpdate, ArrayMetadataFollowsNestedObjectsAndArrays) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"pts":[{"x":1,"y":[2,3]},4],
                                                           "none":[]}}})",
                       kT1);
  EXPECT_EQ(r.document.metadata(), parse(R"({"reported":{
    "pts": [{"x": {"timestamp": 1700000000},
             "y": [{"timestamp": 1700000000}, {"timestamp": 1700000000}]},
            {"timestamp": 1700000000}],
    "none": []}})"));
  EXPECT_EQ(parse(r.accepted)["metadata"], r.document.metadata());
}

TEST(ShadowUpdate, ValueReplacedByObjectAndObjectByValue) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"cfg":5}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"cfg":{"a":1}}}})", kT2);
  EXPECT_EQ(v2.document.reported(), parse(R"({"cfg":{"a":1}})"));
  EXPECT_EQ(v2.document.metadata(),
            parse(R"({"reported":{"cfg":{"a":{"timestamp":1700000100}}}})"));
  auto v3 = must_update(&v2.document, R"({"state":{"reported":{"cfg":"x"}}})", kT3);
  EXPECT_EQ(v3.document.reported(), parse(R"({"cfg":"x"})"));
  EXPECT_EQ(v3.document.metadata(), parse(R"({"reported":{"cfg":{"timestamp":1700000200}}})"));
}

TEST(ShadowUpdate, EmptyObjectCreatesNothingAndEmptiesAReplacedValue) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"x":1,"y":2}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"cfg":{},"y":{}}}})", kT2);
  EXPECT_EQ(parse(v2.accepted), parse(R"({
    "state": {"reported": {"cfg": {}, "y": {}}},
    "metadata": {"reported": {"cfg": {}, "y": {}}},
    "version": 2, "timestamp": 1700000100})"));
  EXPECT_EQ(v2.document.reported(), parse(R"({"x":1})"));
}

TEST(ShadowUpdate, EmptyStateIsAcceptedAndBumpsTheVersion) {
  auto v1 = must_update(nullptr, R"({"state":{}})", kT1);
  EXPECT_EQ(parse(v1.accepted), parse(R"({
    "state": {}, "metadata": {}, "version": 1, "timestamp": 1700000000})"));
  EXPECT_TRUE(v1.document.exists());
}

TEST(ShadowUpdate, KeysOutsideStateAreIgnored) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"a":1}},"metadata":{"x":1},
                                     "timestamp":5,"extra":[1,2]})",
                       kT1);
  EXPECT_EQ(parse(r.accepted), parse(R"({
    "state": {"reported": {"a": 1}},
    "metadata": {"reported": {"a": {"timestamp": 1700000000}}},
    "version": 1, "timestamp": 1700000000})"));
}

TEST(ShadowUpdate, RepeatedKeysKeepTheLastAndAcceptedShowsWhatWasApplied) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"a":1,"a":2}}})", kT1);
  EXPECT_EQ(r.document.reported(), parse(R"({"a":2})"));
  EXPECT_EQ(parse(r.accepted)["state"], parse(R"({"reported":{"a":2}})"));
}

TEST(ShadowUpdate, WhitespaceInTheRequestDoesNotCountTowardsTheLimit) {
  // 8192 bytes of state once the spaces are left out.
  std::string payload =
      R"({"state": {          "reported": {"b":")" + std::string(8184, 'x') + R"("}          }})";
  auto r = must_update(nullptr, payload, kT1);
  EXPECT_EQ(parse(r.accepted)["state"]["reported"]["b"], std::string(8184, 'x'));
  EXPECT_EQ(r.document.state_size(), kMaxShadowStateBytes);
}

TEST(ShadowUpdate, TypicalDagReportOnAStoredShadow) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"status":"on","name":"Ring A"}}})", kT1);
  constexpr std::string_view kReport = R"({"state":{"reported":{
      "status":"off","observedAt":1700000099123,"seq":42,
      "battery":{"percent":87,"volts":4.05,"minutesLeft":312},
      "agent":{"version":"0.1.0","bootId":"b-1","uptimeS":12345}}},
    "clientToken":"dag-1-42"})";
  auto v2 = must_update(&v1.document, kReport, kT2);
  EXPECT_EQ(v2.document.reported(), parse(R"({
    "status": "off", "name": "Ring A", "observedAt": 1700000099123, "seq": 42,
    "battery": {"percent": 87, "volts": 4.05, "minutesLeft": 312},
    "agent": {"version": "0.1.0", "bootId": "b-1", "uptimeS": 12345}})"));
  json documents = parse(v2.documents);
  EXPECT_EQ(documents["previous"]["state"]["reported"]["status"], "on");
  EXPECT_EQ(documents["current"]["state"]["reported"]["status"], "off");
  EXPECT_EQ(documents["previous"]["version"], 1);
  EXPECT_EQ(documents["current"]["version"], 2);
  EXPECT_EQ(documents["clientToken"], "dag-1-42");
  EXPECT_EQ(documents["current"]["metadata"]["reported"]["name"],
            parse(R"({"timestamp":1700000000})"));
  EXPECT_EQ(documents["current"]["metadata"]["reported"]["battery"]["volts"],
            parse(R"({"timestamp":1700000100})"));
  EXPECT_EQ(v2.document.timestamp_of("/reported/battery/percent"), kT2);
  EXPECT_EQ(v2.document.timestamp_of("/reported/name"), kT1);
}

TEST(ShadowUpdate, DocumentsCarryPreviousAndCurrent) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"a":2}},"clientToken":"x"})", kT2);
  EXPECT_EQ(parse(v2.documents), parse(R"({
    "previous": {"state": {"reported": {"a": 1}},
                 "metadata": {"reported": {"a": {"timestamp": 1700000000}}},
                 "version": 1},
    "current": {"state": {"desired": {"a": 2}, "reported": {"a": 1}},
                "metadata": {"desired": {"a": {"timestamp": 1700000100}},
                             "reported": {"a": {"timestamp": 1700000000}}},
                "version": 2},
    "timestamp": 1700000100, "clientToken": "x"})"));
}

// ---- versions and client tokens ------------------------------------------------------

TEST(ShadowUpdate, VersionIncrementsOnEveryAcceptedUpdate) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"a":1}}})", kT1);
  auto v3 = must_update(&v2.document, R"({"state":{}})", kT1);
  EXPECT_EQ(v1.document.version(), 1u);
  EXPECT_EQ(v2.document.version(), 2u);
  EXPECT_EQ(v3.document.version(), 3u);
  EXPECT_EQ(parse(v3.accepted)["version"], 3);
}

TEST(ShadowUpdate, MatchingVersionIsAccepted) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}},"version":0})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"a":2}},"version":1})", kT2);
  EXPECT_EQ(v2.document.version(), 2u);
}

TEST(ShadowUpdate, OtherVersionIsAConflict) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"a":2}}})", kT1);
  EXPECT_EQ(rejected(&v2.document, R"({"state":{"reported":{"a":3}},"version":1,
                                       "clientToken":"old"})",
                     kT2),
            parse(R"({"code":409,"message":"Version conflict","timestamp":1700000100,
                      "clientToken":"old"})"));
  EXPECT_EQ(rejected(&v2.document, R"({"state":{},"version":3})", kT2),
            parse(R"({"code":409,"message":"Version conflict","timestamp":1700000100})"));
  EXPECT_EQ(rejected(nullptr, R"({"state":{},"version":1})", kT2)["code"], 409);
}

TEST(ShadowUpdate, VersionThatIsNotANonNegativeIntegerIsInvalid) {
  for (std::string_view version : {"-1", "1.5", "1.0", "\"1\"", "null", "true", "{}", "[]"}) {
    std::string payload =
        R"({"state":{},"clientToken":"v","version":)" + std::string(version) + "}";
    EXPECT_EQ(rejected(nullptr, payload, kT1),
              parse(R"({"code":400,"message":"Invalid version","timestamp":1700000000,
                        "clientToken":"v"})"))
        << version;
  }
}

TEST(ShadowUpdate, ClientTokenIsEchoedInEveryReply) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}},"clientToken":"t1"})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"a":2}},"clientToken":"t2"})", kT2);
  EXPECT_EQ(parse(v2.accepted)["clientToken"], "t2");
  ASSERT_TRUE(v2.delta.has_value());
  EXPECT_EQ(parse(*v2.delta)["clientToken"], "t2");
  EXPECT_EQ(parse(v2.documents)["clientToken"], "t2");
  EXPECT_EQ(rejected(&v2.document, R"({"clientToken":"t3"})", kT2)["clientToken"], "t3");
  // Characters that need escaping survive the trip.
  auto v3 = must_update(&v2.document, R"({"state":{},"clientToken":"q\"\\\n\u0001é"})", kT3);
  EXPECT_EQ(parse(v3.accepted)["clientToken"], "q\"\\\n\x01\xc3\xa9");
}

TEST(ShadowUpdate, ClientTokenOf64BytesIsAcceptedAndLongerIsInvalid) {
  std::string token64(64, 'k');
  auto ok = must_update(nullptr, R"({"state":{},"clientToken":")" + token64 + "\"}", kT1);
  EXPECT_EQ(parse(ok.accepted)["clientToken"], token64);
  EXPECT_EQ(rejected(nullptr, R"({"state":{},"clientToken":")" + token64 + "k\"}", kT1),
            parse(R"({"code":400,"message":"Invalid clientToken","timestamp":1700000000})"));
}

TEST(ShadowUpdate, ClientTokenThatIsNotAStringIsInvalid) {
  for (std::string_view token : {"5", "null", "true", "[\"a\"]", "{\"a\":1}"}) {
    std::string payload = R"({"state":{},"clientToken":)" + std::string(token) + "}";
    EXPECT_EQ(rejected(nullptr, payload, kT1),
              parse(R"({"code":400,"message":"Invalid clientToken","timestamp":1700000000})"))
        << token;
  }
}

// ---- delta ---------------------------------------------------------------------------

TEST(ShadowDelta, PublishedWhenDesiredDiffersWithNestedPathsAndDesiredMetadata) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{
      "color":"green","lights":{"r":255,"g":0},"engine":"ON"}}})",
                        kT1);
  EXPECT_FALSE(v1.delta.has_value());
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{
      "color":"red","lights":{"r":255,"g":255}}},"clientToken":"app"})",
                        kT2);
  ASSERT_TRUE(v2.delta.has_value());
  EXPECT_EQ(parse(*v2.delta), parse(R"({
    "version": 2, "timestamp": 1700000100,
    "state": {"color": "red", "lights": {"g": 255}},
    "metadata": {"color": {"timestamp": 1700000100}, "lights": {"g": {"timestamp": 1700000100}}},
    "clientToken": "app"})"));
}

TEST(ShadowDelta, ContainsAllDifferingDesiredFieldsNotOnlyThoseInTheRequest) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"color":"red"}}})", kT1);
  ASSERT_TRUE(v1.delta.has_value());  // no reported section: all of desired differs
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"mode":"eco"}}})", kT2);
  ASSERT_TRUE(v2.delta.has_value());
  EXPECT_EQ(parse(*v2.delta), parse(R"({
    "version": 2, "timestamp": 1700000100,
    "state": {"color": "red", "mode": "eco"},
    "metadata": {"color": {"timestamp": 1700000000}, "mode": {"timestamp": 1700000100}}})"));
}

TEST(ShadowDelta, NotPublishedForReportedOnlyUpdatesButVisibleInGet) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"color":"red"}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"color":"blue"}}})", kT2);
  EXPECT_FALSE(v2.delta.has_value());
  EXPECT_EQ(get_json(v2.document, kT3)["state"]["delta"], parse(R"({"color":"red"})"));
  EXPECT_EQ(v2.document.delta(), parse(R"({"color":"red"})"));
  // Reporting the desired value resolves the delta.
  auto v3 = must_update(&v2.document, R"({"state":{"reported":{"color":"red"}}})", kT3);
  EXPECT_FALSE(v3.delta.has_value());
  EXPECT_FALSE(get_json(v3.document, kT3)["state"].contains("delta"));
  EXPECT_TRUE(v3.document.delta().is_null());
}

TEST(ShadowDelta, NotPublishedWhenDesiredMatchesReported) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"color":"green","n":1}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"color":"green","n":1.0}}})", kT2);
  EXPECT_FALSE(v2.delta.has_value());
}

TEST(ShadowDelta, ArraysAreComparedWhole) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":[1,2,3],"b":[1,2]}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"a":[1,2],"b":[1,2]}}})", kT2);
  ASSERT_TRUE(v2.delta.has_value());
  EXPECT_EQ(parse(*v2.delta), parse(R"({
    "version": 2, "timestamp": 1700000100, "state": {"a": [1, 2]},
    "metadata": {"a": [{"timestamp": 1700000100}, {"timestamp": 1700000100}]}})"));
}

TEST(ShadowDelta, DesiredObjectAgainstReportedValueIsCopiedWhole) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"cfg":"none"}}})", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"cfg":{"a":1,"b":{"c":2}}}}})", kT2);
  ASSERT_TRUE(v2.delta.has_value());
  EXPECT_EQ(parse(*v2.delta)["state"], parse(R"({"cfg":{"a":1,"b":{"c":2}}})"));
  EXPECT_EQ(parse(*v2.delta)["metadata"], parse(R"({"cfg":{"a":{"timestamp":1700000100},
                                                    "b":{"c":{"timestamp":1700000100}}}})"));
}

TEST(ShadowDelta, FieldDeletedFromReportedButStillDesiredIsInTheDelta) {
  auto v1 = must_update(nullptr, R"({"state":{"desired":{"a":1},"reported":{"a":1}}})", kT1);
  EXPECT_FALSE(v1.delta.has_value());
  auto v2 = must_update(&v1.document, R"({"state":{"reported":{"a":null}}})", kT2);
  EXPECT_EQ(v2.document.delta(), parse(R"({"a":1})"));
}

// ---- errors --------------------------------------------------------------------------

TEST(ShadowErrors, InvalidJson) {
  json expected = parse(R"({"code":400,"message":"Invalid JSON","timestamp":1700000000})");
  for (std::string_view payload :
       {R"({"state":)", "", "not json", "[1,2]", R"("state")", "42", R"({"state":{}} trailing)"}) {
    EXPECT_EQ(rejected(nullptr, payload, kT1), expected) << payload;
  }
}

TEST(ShadowErrors, MissingState) {
  EXPECT_EQ(rejected(nullptr, R"({"clientToken":"t","desired":{"a":1}})", kT1),
            parse(R"({"code":400,"message":"Missing required node: state",
                      "timestamp":1700000000,"clientToken":"t"})"));
}

TEST(ShadowErrors, StateNotAnObject) {
  for (std::string_view state : {"\"on\"", "[]", "1", "true"}) {
    EXPECT_EQ(rejected(nullptr, R"({"state":)" + std::string(state) + "}", kT1),
              parse(R"({"code":400,"message":"State node must be an object",
                        "timestamp":1700000000})"))
        << state;
  }
}

TEST(ShadowErrors, DesiredNotAnObject) {
  for (std::string_view desired : {"\"x\"", "[1]", "0", "false"}) {
    EXPECT_EQ(rejected(nullptr, R"({"state":{"desired":)" + std::string(desired) + "}}", kT1),
              parse(R"({"code":400,"message":"Desired node must be an object",
                        "timestamp":1700000000})"))
        << desired;
  }
}

TEST(ShadowErrors, ReportedNotAnObject) {
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":5},"clientToken":"r"})", kT1),
            parse(R"({"code":400,"message":"Reported node must be an object",
                      "timestamp":1700000000,"clientToken":"r"})"));
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":["on"]}})", kT1)["message"],
            "Reported node must be an object");
}

TEST(ShadowErrors, UnknownNodeInState) {
  json expected = parse(R"({"code":400,"message":"State contains an invalid node",
                            "timestamp":1700000000})");
  EXPECT_EQ(rejected(nullptr, R"({"state":{"delta":{"a":1}}})", kT1), expected);
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":{"a":1},"foo":1}})", kT1), expected);
}

TEST(ShadowErrors, NullInsideAnArrayIsAnInvalidNode) {
  json expected = parse(R"({"code":400,"message":"State contains an invalid node",
                            "timestamp":1700000000})");
  EXPECT_EQ(rejected(nullptr, R"({"state":{"desired":{"colors":[null,"RED"]}}})", kT1), expected);
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":{"a":[{"b":null}]}}})", kT1), expected);
}

TEST(ShadowErrors, NestingDeeperThanSixLevels) {
  json expected = parse(R"({"code":400,
    "message":"JSON contains too many levels of nesting; maximum is 6",
    "timestamp":1700000000,"clientToken":"deep"})");
  // Six keys from the section to the value: the deepest accepted.
  must_update(nullptr, R"({"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}}})", kT1);
  must_update(nullptr, R"({"state":{"reported":{"a":[[[[[1]]]]]}}})", kT1);
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":{"a":{"b":{"c":{"d":{"e":{"f":{"g":1}}}}}}}},
                                  "clientToken":"deep"})",
                     kT1),
            expected);
  EXPECT_EQ(rejected(nullptr, R"({"state":{"desired":{"a":[[[[[[1]]]]]]}},
                                  "clientToken":"deep"})",
                     kT1),
            expected);
}

TEST(ShadowErrors, PayloadOverTheMessageLimit) {
  std::string payload = R"({"state":{"reported":{"a":")" +
                        std::string(kMaxShadowPayloadBytes, 'x') + R"("}},"clientToken":"t"})";
  EXPECT_EQ(rejected(nullptr, payload, kT1),
            parse(R"({"code":413,"message":"The payload exceeds the maximum size allowed",
                      "timestamp":1700000000})"));
}

TEST(ShadowErrors, RequestStateOverEightKilobytes) {
  // desired+reported text is {"b":"<n x>"}: n + 8 bytes.
  std::string fits = R"({"state":{"reported":{"b":")" + std::string(8184, 'x') + "\"}}}";
  auto ok = must_update(nullptr, fits, kT1);
  EXPECT_EQ(ok.document.state_size(), kMaxShadowStateBytes);
  std::string over =
      R"({"state":{"reported":{"b":")" + std::string(8185, 'x') + R"("}},"clientToken":"big"})";
  EXPECT_EQ(rejected(nullptr, over, kT1),
            parse(R"({"code":413,"message":"The payload exceeds the maximum size allowed",
                      "timestamp":1700000000,"clientToken":"big"})"));
}

TEST(ShadowErrors, ResultingStateOverEightKilobytes) {
  std::string chunk(3000, 'y');
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":")" + chunk + "\"}}}", kT1);
  auto v2 = must_update(&v1.document, R"({"state":{"desired":{"b":")" + chunk + "\"}}}", kT1);
  EXPECT_EQ(rejected(&v2.document, R"({"state":{"reported":{"c":")" + chunk + "\"}}}", kT2),
            parse(R"({"code":413,"message":"The payload exceeds the maximum size allowed",
                      "timestamp":1700000100})"));
  // Deleting while adding keeps it under the limit.
  auto v3 =
      must_update(&v2.document, R"({"state":{"reported":{"a":null,"c":")" + chunk + "\"}}}", kT2);
  EXPECT_EQ(v3.document.reported(), json({{"c", chunk}}));
}

TEST(ShadowErrors, PayloadThatIsNotUtf8) {
  json expected = parse(R"({"code":415,
    "message":"Unsupported documented encoding; supported encoding is UTF-8",
    "timestamp":1700000000})");
  for (std::string_view bad :
       {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xf4\x90\x80\x80", "\x80"}) {
    std::string payload =
        R"({"state":{"reported":{"a":")" + std::string(bad) + R"("}},"clientToken":"t"})";
    EXPECT_EQ(rejected(nullptr, payload, kT1), expected);
  }
}

TEST(ShadowErrors, LoneSurrogateEscapeIsInvalidJson) {
  EXPECT_EQ(rejected(nullptr, R"({"state":{"reported":{"a":"\ud800"}}})", kT1)["message"],
            "Invalid JSON");
}

TEST(ShadowErrors, GetAndDeleteOfAnAbsentShadowAre404) {
  json expected = parse(R"({"code":404,"message":"No shadow exists with name: 'dag-1'",
                            "timestamp":1700000000,"clientToken":"g"})");
  auto got = get("dag-1", nullptr, R"({"clientToken":"g"})", kT1);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(parse(render_rejected(got.error(), kT1)), expected);
  auto removed = remove("dag-1", nullptr, R"({"clientToken":"g"})", kT1);
  ASSERT_FALSE(removed.has_value());
  EXPECT_EQ(parse(render_rejected(removed.error(), kT1)), expected);
  auto plain = get("dag-1", nullptr, "", kT1);
  ASSERT_FALSE(plain.has_value());
  EXPECT_EQ(parse(render_rejected(plain.error(), kT1)),
            parse(R"({"code":404,"message":"No shadow exists with name: 'dag-1'",
                      "timestamp":1700000000})"));
}

TEST(ShadowErrors, TooManyRequestsAndInternalErrors) {
  EXPECT_EQ(parse(render_rejected(too_many_requests("t"), kT1)),
            parse(R"({"code":429,"message":"Too many requests","timestamp":1700000000,
                      "clientToken":"t"})"));
  EXPECT_EQ(parse(render_rejected(make_error(ShadowErrc::internal), kT1)),
            parse(R"({"code":500,"message":"Internal service failure","timestamp":1700000000})"));
}

TEST(ShadowErrors, EveryCodeMapsToItsStatusAndMessage) {
  struct Row {
    ShadowErrc errc;
    int status;
    std::string_view message;
  };
  const Row rows[] = {
      {ShadowErrc::invalid_json, 400, "Invalid JSON"},
      {ShadowErrc::missing_state, 400, "Missing required node: state"},
      {ShadowErrc::state_not_object, 400, "State node must be an object"},
      {ShadowErrc::desired_not_object, 400, "Desired node must be an object"},
      {ShadowErrc::reported_not_object, 400, "Reported node must be an object"},
      {ShadowErrc::invalid_version, 400, "Invalid version"},
      {ShadowErrc::invalid_client_token, 400, "Invalid clientToken"},
      {ShadowErrc::too_deep, 400, "JSON contains too many levels of nesting; maximum is 6"},
      {ShadowErrc::invalid_state_node, 400, "State contains an invalid node"},
      {ShadowErrc::not_found, 404, "No shadow exists with name"},
      {ShadowErrc::version_conflict, 409, "Version conflict"},
      {ShadowErrc::payload_too_large, 413, "The payload exceeds the maximum size allowed"},
      {ShadowErrc::unsupported_encoding, 415,
       "Unsupported documented encoding; supported encoding is UTF-8"},
      {ShadowErrc::too_many_requests, 429, "Too many requests"},
      {ShadowErrc::internal, 500, "Internal service failure"},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(http_status(row.errc), row.status) << row.message;
    EXPECT_EQ(default_message(row.errc), row.message);
    ShadowError error = make_error(row.errc, "tok", "thing-9");
    EXPECT_EQ(error.code, row.status);
    EXPECT_EQ(error.client_token, "tok");
  }
  EXPECT_EQ(make_error(ShadowErrc::not_found, std::nullopt, "thing-9").message,
            "No shadow exists with name: 'thing-9'");
}

TEST(ShadowErrors, RejectedUpdateLeavesNothingBehind) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"a":1}}})", kT1);
  (void)rejected(&v1.document, R"({"state":{"reported":{"a":[null]}}})", kT2);
  EXPECT_EQ(v1.document.reported(), parse(R"({"a":1})"));
  EXPECT_EQ(v1.document.version(), 1u);
}

TEST(ShadowErrors, HostileNestingNeverCrashes) {
  std::string deep_outside =
      R"({"state":{},"junk":)" + std::string(40000, '[') + std::string(40000, ']') + "}";
  EXPECT_TRUE(update(nullptr, deep_outside, kT1).has_value());
  std::string deep_inside =
      R"({"state":{"reported":{"a":)" + std::string(40000, '[') + std::string(40000, ']') + "}}}";
  EXPECT_EQ(rejected(nullptr, deep_inside, kT1)["code"], 400);
  EXPECT_EQ(rejected(nullptr, std::string(60000, '{'), kT1)["message"], "Invalid JSON");
}

// ---- get and delete ------------------------------------------------------------------

ShadowDocument desired_and_reported() {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"color":"green","engine":"ON"}}})", kT1);
  return must_update(&v1.document, R"({"state":{"desired":{"color":"red"}}})", kT2).document;
}

TEST(ShadowGet, ReturnsStateDeltaMetadataVersionAndToken) {
  ShadowDocument doc = desired_and_reported();
  EXPECT_EQ(get_json(doc, kT3, R"({"clientToken":"g-1"})"), parse(R"({
    "state": {"desired": {"color": "red"},
              "reported": {"color": "green", "engine": "ON"},
              "delta": {"color": "red"}},
    "metadata": {"desired": {"color": {"timestamp": 1700000100}},
                 "reported": {"color": {"timestamp": 1700000000},
                              "engine": {"timestamp": 1700000000}}},
    "version": 2, "timestamp": 1700000200, "clientToken": "g-1"})"));
}

TEST(ShadowGet, PayloadOtherThanAClientTokenIsIgnored) {
  ShadowDocument doc = desired_and_reported();
  const std::string too_long = R"({"clientToken":")" + std::string(65, 'l') + "\"}";
  for (std::string_view payload :
       {std::string_view(""), std::string_view("not json"), std::string_view("\xff\xfe"),
        std::string_view(R"({"clientToken":7})"), std::string_view(too_long),
        std::string_view("[]")}) {
    json reply = get_json(doc, kT3, payload);
    EXPECT_FALSE(reply.contains("clientToken")) << payload;
    EXPECT_EQ(reply["version"], 2);
  }
}

TEST(ShadowDelete, DeletesKeepsTheVersionAndEchoesTheToken) {
  ShadowDocument doc = desired_and_reported();
  auto removed = remove("dag-1", &doc, R"({"clientToken":"d"})", kT3);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(parse(removed->accepted),
            parse(R"({"version":2,"timestamp":1700000200,"clientToken":"d"})"));
  EXPECT_FALSE(removed->document.exists());
  EXPECT_EQ(removed->document.version(), 2u);
  EXPECT_TRUE(removed->document.reported().is_null());
  EXPECT_TRUE(removed->document.desired().is_null());
  EXPECT_FALSE(get("dag-1", &removed->document, "", kT3).has_value());
  auto again = remove("dag-1", &removed->document, "", kT3);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, 404);
}

TEST(ShadowDelete, RecreatedShadowContinuesTheVersion) {
  ShadowDocument doc = desired_and_reported();
  auto removed = remove("dag-1", &doc, "", kT3);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(parse(removed->accepted), parse(R"({"version":2,"timestamp":1700000200})"));
  auto conflict = update(&removed->document, R"({"state":{},"version":0})", kT3);
  ASSERT_FALSE(conflict.has_value());
  EXPECT_EQ(conflict.error().code, 409);
  auto v3 = must_update(&removed->document, R"({"state":{"reported":{"a":1}},"version":2})", kT3);
  EXPECT_EQ(v3.document.version(), 3u);
  EXPECT_EQ(parse(v3.documents), parse(R"({
    "previous": null,
    "current": {"state": {"reported": {"a": 1}},
                "metadata": {"reported": {"a": {"timestamp": 1700000200}}},
                "version": 3},
    "timestamp": 1700000200})"));
  EXPECT_TRUE(v3.document.desired().is_null());  // nothing of the deleted shadow survives
}

// ---- storage form --------------------------------------------------------------------

TEST(ShadowStorage, RoundTripsStateMetadataVersionAndExistence) {
  auto v1 = must_update(nullptr, R"({"state":{"reported":{"timestamp":5,"list":[1,{"x":true}],
                                                           "deep":{"k":"v"}},
                                               "desired":{"mode":"eco"}}})",
                        kT1);
  std::string text = shadow_to_json(v1.document);
  EXPECT_EQ(parse(text), parse(R"({
    "exists": true, "version": 1,
    "state": {"desired": {"mode": "eco"},
              "reported": {"timestamp": 5, "list": [1, {"x": true}], "deep": {"k": "v"}}},
    "metadata": {"desired": {"mode": {"timestamp": 1700000000}},
                 "reported": {"timestamp": {"timestamp": 1700000000},
                              "list": [{"timestamp": 1700000000},
                                       {"x": {"timestamp": 1700000000}}],
                              "deep": {"k": {"timestamp": 1700000000}}}}})"));
  auto back = shadow_from_json(text);
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_TRUE(back->exists());
  EXPECT_EQ(back->version(), 1u);
  EXPECT_EQ(back->desired(), v1.document.desired());
  EXPECT_EQ(back->reported(), v1.document.reported());
  EXPECT_EQ(back->metadata(), v1.document.metadata());
  EXPECT_EQ(shadow_to_json(*back), text);
  // A restored document behaves like the original.
  auto v2 = must_update(&*back, R"({"state":{"reported":{"timestamp":6}}})", kT2);
  EXPECT_EQ(v2.document.timestamp_of("/reported/timestamp"), kT2);
  EXPECT_EQ(v2.document.timestamp_of("/reported/list/1/x"), kT1);
}

TEST(ShadowStorage, RoundTripsATombstone) {
  ShadowDocument doc = desired_and_reported();
  auto removed = remove("dag-1", &doc, "", kT3);
  ASSERT_TRUE(removed.has_value());
  std::string text = shadow_to_json(removed->document);
  EXPECT_EQ(parse(text), parse(R"({"exists":false,"version":2,"state":{},"metadata":{}})"));
  auto back = shadow_from_json(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_FALSE(back->exists());
  EXPECT_EQ(back->version(), 2u);
}

TEST(ShadowStorage, RejectsWhatShadowToJsonCouldNotHaveWritten) {
  for (std::string_view text : {
           "",
           "nope",
           "[]",
           R"({"version":1,"state":{},"metadata":{}})",
           R"({"exists":true,"version":-1,"state":{},"metadata":{}})",
           R"({"exists":true,"version":1,"state":{"delta":{"a":1}},"metadata":{"delta":{}}})",
           R"({"exists":true,"version":1,"state":{"reported":{"a":1}},"metadata":{}})",
           R"({"exists":true,"version":1,"state":{"reported":{"a":1}},
               "metadata":{"reported":{"a":{"timestamp":"x"}}}})",
           R"({"exists":true,"version":1,"state":{"reported":{"a":[1,2]}},
               "metadata":{"reported":{"a":[{"timestamp":1}]}}})",
           R"({"exists":true,"version":1,"state":{"reported":{}},"metadata":{"reported":{}}})",
           R"({"exists":true,"version":1,"state":{"reported":{"a":[null]}},
               "metadata":{"reported":{"a":[{"timestamp":1}]}}})",
           R"({"exists":false,"version":1,"state":{"reported":{"a":1}},
               "metadata":{"reported":{"a":{"timestamp":1}}}})",
       }) {
    auto result = shadow_from_json(text);
    EXPECT_FALSE(result.has_value()) << text;
    if (!result) {
      EXPECT_EQ(result.error().code, Errc::parse);
    }
  }
}

TEST(ShadowDocumentTest, TimestampOfWalksAJsonPointer) {
  auto r = must_update(nullptr, R"({"state":{"reported":{"a/b":1,"m~n":2,"arr":[3,4]}}})", kT1);
  EXPECT_EQ(r.document.timestamp_of("/reported/a~1b"), kT1);
  EXPECT_EQ(r.document.timestamp_of("/reported/m~0n"), kT1);
  EXPECT_EQ(r.document.timestamp_of("/reported/arr/1"), kT1);
  EXPECT_EQ(r.document.timestamp_of("/reported/arr/2"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("/reported/arr/x"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("/reported/arr"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("/reported/zzz"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("/desired/a~1b"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("/reported/bad~2"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of("reported"), std::nullopt);
  EXPECT_EQ(r.document.timestamp_of(""), std::nullopt);
}

TEST(ShadowDocumentTest, DefaultIsAbsentAtVersionZero) {
  ShadowDocument doc;
  EXPECT_FALSE(doc.exists());
  EXPECT_EQ(doc.version(), 0u);
  EXPECT_TRUE(doc.desired().is_null());
  EXPECT_TRUE(doc.reported().is_null());
  EXPECT_EQ(doc.metadata(), json::object());
  EXPECT_TRUE(doc.delta().is_null());
  EXPECT_EQ(doc.state_size(), 0u);
}

TEST(Utf8, AcceptsWellFormedAndRejectsMalformedSequences) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
  EXPECT_FALSE(is_valid_utf8("\x80"));              // lone continuation byte
  EXPECT_FALSE(is_valid_utf8("\xc0\x80"));          // overlong NUL
  EXPECT_FALSE(is_valid_utf8("\xe0\x80\xaf"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // UTF-16 surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xc3("));             // bad continuation
  EXPECT_FALSE(is_valid_utf8("\xf8\x88\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
}

}  // namespace
}  // namespace dag::protocol
