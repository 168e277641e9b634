// The API's pure helpers: error mapping, time and integer parsing, routes, tokens, login
// throttling, SSE framing. (Handlers are exercised over HTTP in api_integration_test.)
#include "dag/api/api.hpp"

#include <gtest/gtest.h>
#include <jwt.h>
#include <nlohmann/json.hpp>

#include <chrono>

#include "dag/api/auth.hpp"
#include "dag/api/error.hpp"
#include "dag/api/json_io.hpp"

namespace dag::api {
namespace {

using namespace std::chrono_literals;

TEST(ApiError, EveryCodeHasAStatusAndAJsonBody) {
  EXPECT_EQ(http_status(ApiErrc::not_found), 404);
  EXPECT_EQ(http_status(ApiErrc::rate_limited), 429);
  EXPECT_EQ(http_status(ApiErrc::unsupported_media_type), 415);
  const auto body = nlohmann::json::parse(error_body({ApiErrc::conflict, "taken \xff"}));
  EXPECT_EQ(body["code"], "conflict");
  EXPECT_TRUE(body["message"].is_string());  // invalid UTF-8 replaced, not thrown
  EXPECT_EQ(from_store({store::StoreErrc::busy, "secret detail"}).code, ApiErrc::internal);
  EXPECT_EQ(from_store({store::StoreErrc::busy, "secret detail"}).message.find("secret"),
            std::string::npos);
  EXPECT_EQ(from_store({store::StoreErrc::not_found, "x"}).code, ApiErrc::not_found);
}

TEST(ApiParse, TimesInRfc3339OrEpochMilliseconds) {
  EXPECT_EQ(*parse_time("0", "t"), 0);
  EXPECT_EQ(*parse_time("1700000000123", "t"), 1'700'000'000'123);
  EXPECT_EQ(*parse_time("1970-01-01T00:00:00Z", "t"), 0);
  EXPECT_EQ(*parse_time("2026-11-27T05:00:00.5Z", "t"), 1'795'755'600'500);
  EXPECT_EQ(*parse_time("2026-11-27T06:00:00+01:00", "t"), 1'795'755'600'000);
  EXPECT_EQ(*parse_time("2026-11-27t05:00:00.123456z", "t"), 1'795'755'600'123);
  for (const char* bad :
       {"", "yesterday", "2026-11-27", "2026-02-30T00:00:00Z", "2026-11-27T25:00:00Z",
        "2026-11-27T05:00:00", "2026-11-27T05:00:00.Z", "-5", "1e9", "99999999999999999999"}) {
    EXPECT_FALSE(parse_time(bad, "t")) << bad;
  }
  EXPECT_EQ(parse_time("x", "since").error().message.substr(0, 6), "since:");
}

TEST(ApiParse, IntegersInRange) {
  EXPECT_EQ(*parse_int("5", "n", 1, 10), 5);
  EXPECT_FALSE(parse_int("0", "n", 1, 10));
  EXPECT_FALSE(parse_int("11", "n", 1, 10));
  EXPECT_FALSE(parse_int("5x", "n", 1, 10));
  EXPECT_FALSE(parse_int("", "n", 1, 10));
  EXPECT_FALSE(parse_int("+5", "n", 1, 10));
}

TEST(ApiRoutes, TemplatesNotPathsAreTheMetricLabels) {
  EXPECT_EQ(Api::route_of("/v1/devices/abc"), "/v1/devices/{deviceId}");
  EXPECT_EQ(Api::route_of("/v1/devices/abc/events"), "/v1/devices/{deviceId}/events");
  EXPECT_EQ(Api::route_of("/v1/devices/abc/battery"), "/v1/devices/{deviceId}/battery");
  EXPECT_EQ(Api::route_of("/v1/accounts/a/targets/b/test"),
            "/v1/accounts/{accountId}/targets/{targetId}/test");
  EXPECT_EQ(Api::route_of("/v1/auth"), "/v1/auth");
  EXPECT_EQ(Api::route_of("/v1/devices//events"), "");
  EXPECT_EQ(Api::route_of("/nothing"), "");
  EXPECT_EQ(Api::route_of(""), "");
}

TEST(ApiTokens, IssuedTokensVerifyUntilTheyExpire) {
  TokenService tokens("a-secret-of-some-length-a-secret", 7200s);
  const std::int64_t now = 1'800'000'000'000;
  auto t = tokens.issue("acc-1", now);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->expires_at_ms, now + 7'200'000);
  EXPECT_EQ(*tokens.verify(t->token, now), "acc-1");
  EXPECT_EQ(*tokens.verify(t->token, now + 7'199'000), "acc-1");
  EXPECT_EQ(tokens.verify(t->token, now + 7'200'000).error().code, ApiErrc::unauthorized);
  TokenService other("another-secret-of-some-length-xx", 7200s);
  EXPECT_FALSE(other.verify(t->token, now));
  EXPECT_FALSE(tokens.verify("", now));
  EXPECT_FALSE(tokens.verify(std::string(5000, 'a'), now));
}

TEST(ApiTokens, RememberedTokensStillExpireAndForgeriesAreNeverRemembered) {
  TokenService tokens("a-secret-of-some-length-a-secret", 7200s);
  const std::int64_t now = 1'800'000'000'000;
  auto first = tokens.issue("acc-0", now);
  ASSERT_TRUE(first);
  ASSERT_TRUE(tokens.verify(first->token, now));
  // More valid tokens than are remembered: all verify, the first one too.
  for (int i = 1; i < 5000; ++i) {
    auto t = tokens.issue("acc-" + std::to_string(i), now + i);
    ASSERT_TRUE(t);
    ASSERT_EQ(*tokens.verify(t->token, now + i), "acc-" + std::to_string(i));
  }
  EXPECT_EQ(*tokens.verify(first->token, now + 5000), "acc-0");
  // One character of the signature changed, after the real one was remembered.
  std::string forged = first->token;
  char& c = forged[forged.size() - 5];  // inside the signature, away from its padding bits
  c = c == 'A' ? 'B' : 'A';
  EXPECT_FALSE(tokens.verify(forged, now));
  EXPECT_FALSE(tokens.verify(first->token, now + 7'200'000));
}

TEST(ApiTokens, AlgNoneIsRefused) {
  TokenService tokens("a-secret-of-some-length-a-secret", 7200s);
  jwt_t* jwt = nullptr;
  ASSERT_EQ(jwt_new(&jwt), 0);
  jwt_add_grant(jwt, "sub", "acc-1");
  jwt_add_grant_int(jwt, "exp", 4'000'000'000L);
  char* text = jwt_encode_str(jwt);  // alg none by default
  ASSERT_NE(text, nullptr);
  const std::string token(text);
  std::free(text);  // NOLINT
  jwt_free(jwt);
  EXPECT_EQ(tokens.verify(token, 1'800'000'000'000).error().code, ApiErrc::unauthorized);
}

TEST(ApiLogin, LimitedPerUserAndPerAddress) {
  LoginLimiter limiter({.per_user_per_minute = 2,
                        .per_user_burst = 2,
                        .per_address_per_minute = 3,
                        .per_address_burst = 3});
  const auto t = std::chrono::steady_clock::time_point{} + 1h;
  EXPECT_TRUE(limiter.allow("alice", "10.0.0.1", t));
  EXPECT_TRUE(limiter.allow("alice", "10.0.0.2", t));
  EXPECT_FALSE(limiter.allow("alice", "10.0.0.3", t));  // per user
  EXPECT_TRUE(limiter.allow("bob", "10.0.0.1", t));
  EXPECT_TRUE(limiter.allow("carol", "10.0.0.1", t));
  EXPECT_FALSE(limiter.allow("dave", "10.0.0.1", t));        // per address
  EXPECT_TRUE(limiter.allow("alice", "10.0.0.9", t + 31s));  // refilled
  EXPECT_EQ(limiter.retry_after_s(), 30);
}

TEST(ApiStream, EventsAreFramedOnOneDataLine) {
  EXPECT_EQ(format_sse({7, "device", R"({"a":1})"}), "id: 7\nevent: device\ndata: {\"a\":1}\n\n");
}

TEST(ApiJson, DeviceShapeOfANewDevice) {
  store::Device d;
  d.id = "dag-1";
  d.name = "Attic";
  d.provisioned_at_ms = 0;
  const auto j = device_json(d);
  EXPECT_EQ(j["deviceId"], "dag-1");
  EXPECT_TRUE(j["state"]["power"].is_null());
  EXPECT_TRUE(j["userState"]["state"].is_null());
  EXPECT_EQ(j["provisionedAt"], "1970-01-01T00:00:00.000Z");
  d.state.battery_json = "not json";
  EXPECT_TRUE(device_json(d)["battery"].is_null());
}

TEST(ApiJson, BatteryReadingsSayNullForWhatWasNotReported) {
  const auto full = battery_reading_json({"dag-1", 1'000, 87.5, 4.05, 312, true});
  EXPECT_EQ(full, (nlohmann::json{{"at", "1970-01-01T00:00:01.000Z"},
                                  {"percent", 87.5},
                                  {"volts", 4.05},
                                  {"minutesLeft", 312},
                                  {"onBattery", true}}));
  const auto bare = battery_reading_json({"dag-1", 0, 50.0});
  EXPECT_EQ(bare["percent"], 50.0);
  EXPECT_TRUE(bare["volts"].is_null());
  EXPECT_TRUE(bare["minutesLeft"].is_null());
  EXPECT_TRUE(bare["onBattery"].is_null());
}

}  // namespace
}  // namespace dag::api
