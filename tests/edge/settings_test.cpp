#include "dag/edge/settings.hpp"

#include <gtest/gtest.h>

#include <map>

#include "dag/common/encoding.hpp"
#include "dag/common/pki.hpp"

namespace dag::edge {
namespace {

config::Env env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& n) -> std::optional<std::string> {
    auto it = vars.find(n);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

TEST(EdgeSettings, AcceptsTheOriginalFleetVariablesWithBase64Pems) {
  auto ca = pki::create_ca();
  ASSERT_TRUE(ca);
  auto dev = pki::issue_client_certificate(*ca, "dag-7");
  ASSERT_TRUE(dev);
  auto s = load_settings(std::nullopt, env_of({{"AWS_THING_NAME", "dag-7"},
                                               {"AWS_ENDPOINT", "broker.example"},
                                               {"AWS_PORT", "8884"},
                                               {"AWS_ROOT_CERT", base64_encode(ca->cert_pem)},
                                               {"AWS_THING_CERT", base64_encode(dev->cert_pem)},
                                               {"AWS_THING_KEY", base64_encode(dev->key_pem)}}));
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->device_id, "dag-7");
  EXPECT_EQ(s->broker_host, "broker.example");
  EXPECT_EQ(s->broker_port, 8884);
  EXPECT_EQ(s->cert_pem, dev->cert_pem);
  EXPECT_EQ(s->key_pem, dev->key_pem);
  EXPECT_EQ(s->tunables.debounce_ms, 200);
  EXPECT_EQ(s->keepalive_s, 60);
}

TEST(EdgeSettings, RejectsDeviceIdsThatBreakTopics) {
  auto r = load_settings(std::nullopt, env_of({{"DAG_DEVICE_ID", "a/b"},
                                               {"DAG_TLS_CA", "-----BEGIN X-----"},
                                               {"DAG_TLS_CERT", "-----BEGIN X-----"},
                                               {"DAG_TLS_KEY", "-----BEGIN X-----"}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::config);
}

TEST(EdgeSettings, KeepAliveOutsideTheAwsRangeIsRefused) {
  auto r = load_settings(std::nullopt, env_of({{"DAG_DEVICE_ID", "a"},
                                               {"DAG_BROKER_KEEPALIVE_S", "1201"},
                                               {"DAG_TLS_CA", "-----BEGIN X-----"},
                                               {"DAG_TLS_CERT", "-----BEGIN X-----"},
                                               {"DAG_TLS_KEY", "-----BEGIN X-----"}}));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("30..1200"), std::string::npos);
}

TEST(Tunables, DeltaAppliesValidKeysAndNamesEveryRejectedOne) {
  Tunables t;
  auto out = apply_delta(t, nlohmann::json::parse(
                                R"({"debounceMs": 500, "lowBatteryPercent": 101, "logLevel": "off",
                                    "batteryPollBatteryS": "10", "extra": 1})"));
  EXPECT_TRUE(out.changed);
  EXPECT_EQ(out.applied.debounce_ms, 500);
  EXPECT_EQ(out.applied.low_battery_percent, 20);
  EXPECT_EQ(out.rejected.size(), 4U);
  EXPECT_EQ(out.rejected.at("extra"), "unknown key");
  EXPECT_EQ(out.rejected.at("batteryPollBatteryS"), "must be an integer");
  auto same = apply_delta(out.applied, nlohmann::json::parse(R"({"debounceMs": 500})"));
  EXPECT_FALSE(same.changed);
  auto bad = apply_delta(t, nlohmann::json::array());
  EXPECT_FALSE(bad.changed);
  EXPECT_EQ(bad.rejected.size(), 1U);
}

TEST(EdgeSchema, PrintedDefaultsAreValidToml) {
  const std::string text = edge_schema().commented_defaults();
  auto cfg = config::load_string(edge_schema(), text, "defaults",
                                 env_of({{"DAG_DEVICE_ID", "d"},
                                         {"DAG_TLS_CA", "-----BEGIN X-----"},
                                         {"DAG_TLS_CERT", "-----BEGIN X-----"},
                                         {"DAG_TLS_KEY", "-----BEGIN X-----"}}));
  ASSERT_TRUE(cfg) << cfg.error().message;
}

}  // namespace
}  // namespace dag::edge
