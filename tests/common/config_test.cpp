#include "dag/common/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "dag/common/encoding.hpp"

namespace dag::config {
namespace {

constexpr std::string_view kPem =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----";

Schema edge_like_schema() {
  Schema s("dag-edge");
  s.add({.key = "device.id",
         .type = Type::string,
         .help = "Device id",
         .required = true,
         .env_aliases = {"AWS_THING_NAME"}});
  s.add({.key = "mqtt.host",
         .type = Type::string,
         .default_value = "localhost",
         .help = "Broker host"});
  s.add({.key = "mqtt.port",
         .type = Type::integer,
         .default_value = "8883",
         .help = "Broker port",
         .min = 1,
         .max = 65535});
  s.add({.key = "mqtt.keepalive_s",
         .type = Type::integer,
         .default_value = "60",
         .help = "Keep-alive",
         .min = 30,
         .max = 1200});
  s.add({.key = "mqtt.clean", .type = Type::boolean, .default_value = "false", .help = "Clean"});
  s.add({.key = "tls.cert",
         .type = Type::pem,
         .help = "Device certificate",
         .env_aliases = {"CERT"}});
  s.add({.key = "log.level",
         .type = Type::string,
         .default_value = "info",
         .help = "Level",
         .choices = {"debug", "info", "warn"}});
  s.add({.key = "notify.emails",
         .type = Type::string_list,
         .default_value = "a@x, b@x",
         .help = "Recipients"});
  return s;
}

Env fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Config, DefaultsApplyAndRequiredKeysAreEnforced) {
  auto missing = load_string(edge_like_schema(), "", "", fake_env({}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::config);
  EXPECT_NE(missing.error().message.find("device.id"), std::string::npos);
  EXPECT_NE(missing.error().message.find("DAG_DEVICE_ID"), std::string::npos);

  auto cfg =
      load_string(edge_like_schema(), "[device]\nid = \"dag-1\"\n", "edge.toml", fake_env({}));
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->str("device.id"), "dag-1");
  EXPECT_EQ(cfg->origin("device.id"), "file edge.toml");
  EXPECT_EQ(cfg->str("mqtt.host"), "localhost");
  EXPECT_EQ(cfg->origin("mqtt.host"), "default");
  EXPECT_EQ(cfg->integer("mqtt.port"), 8883);
  EXPECT_FALSE(cfg->boolean("mqtt.clean"));
  EXPECT_FALSE(cfg->has("tls.cert"));
  EXPECT_EQ(cfg->list("notify.emails"), (std::vector<std::string>{"a@x", "b@x"}));
}

TEST(Config, EnvironmentWinsOverFileAndCanonicalNameWinsOverAlias) {
  const std::string toml = "[device]\nid = \"from-file\"\n[mqtt]\nport = 1883\n";
  auto cfg = load_string(edge_like_schema(), toml, "f.toml",
                         fake_env({{"DAG_MQTT_PORT", "8884"},
                                   {"AWS_THING_NAME", "from-alias"},
                                   {"DAG_MQTT_CLEAN", "yes"},
                                   {"DAG_NOTIFY_EMAILS", "x@y,,z@y "}}));
  ASSERT_TRUE(cfg) << cfg.error().message;
  EXPECT_EQ(cfg->integer("mqtt.port"), 8884);
  EXPECT_EQ(cfg->origin("mqtt.port"), "env DAG_MQTT_PORT");
  EXPECT_EQ(cfg->str("device.id"), "from-alias");
  EXPECT_TRUE(cfg->boolean("mqtt.clean"));
  EXPECT_EQ(cfg->list("notify.emails"), (std::vector<std::string>{"x@y", "z@y"}));

  auto both = load_string(edge_like_schema(), "", "",
                          fake_env({{"DAG_DEVICE_ID", "canonical"}, {"AWS_THING_NAME", "alias"}}));
  ASSERT_TRUE(both);
  EXPECT_EQ(both->str("device.id"), "canonical");
}

TEST(Config, RejectsOutOfRangeWrongTypeUnknownKeysAndBadChoices) {
  const auto env = fake_env({{"DAG_DEVICE_ID", "d"}});
  auto range = load_string(edge_like_schema(), "[mqtt]\nkeepalive_s = 5\n", "f", env);
  ASSERT_FALSE(range);
  EXPECT_NE(range.error().message.find("30..1200"), std::string::npos);

  auto type = load_string(edge_like_schema(), "[mqtt]\nport = \"x\"\n", "f", env);
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("must be a integer"), std::string::npos);

  auto unknown = load_string(edge_like_schema(), "[mqtt]\nhots = \"x\"\n", "f", env);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key 'mqtt.hots'"), std::string::npos);

  auto choice = load_string(edge_like_schema(), "[log]\nlevel = \"loud\"\n", "f", env);
  ASSERT_FALSE(choice);
  EXPECT_EQ(choice.error().code, Errc::config);

  auto env_int = load_string(edge_like_schema(), "", "",
                             fake_env({{"DAG_DEVICE_ID", "d"}, {"DAG_MQTT_PORT", "12ab"}}));
  ASSERT_FALSE(env_int);
  EXPECT_NE(env_int.error().message.find("env DAG_MQTT_PORT"), std::string::npos);

  auto env_bool = load_string(edge_like_schema(), "", "",
                              fake_env({{"DAG_DEVICE_ID", "d"}, {"DAG_MQTT_CLEAN", "maybe"}}));
  ASSERT_FALSE(env_bool);
}

TEST(Config, SyntaxErrorsNameTheLine) {
  auto r =
      load_string(edge_like_schema(), "[device]\nid = \"unterminated\n", "bad.toml", fake_env({}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::parse);
  EXPECT_NE(r.error().message.find("bad.toml:2"), std::string::npos) << r.error().message;
}

TEST(Config, PemAcceptedAsTextBase64OrPath) {
  const auto base = std::map<std::string, std::string>{{"DAG_DEVICE_ID", "d"}};

  auto as_text = base;
  as_text["DAG_TLS_CERT"] = std::string(kPem);
  auto a = load_string(edge_like_schema(), "", "", fake_env(as_text));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->pem("tls.cert"), std::string(kPem) + "\n");

  auto as_b64 = base;  // the original system's fleet variable, base64 with a line break
  std::string b64 = base64_encode(kPem);
  b64.insert(10, "\n");
  as_b64["CERT"] = b64;
  auto b = load_string(edge_like_schema(), "", "", fake_env(as_b64));
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_EQ(b->pem("tls.cert"), std::string(kPem) + "\n");

  char path[] = "/tmp/dag-config-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << kPem << "\n";
  auto c = load_string(edge_like_schema(), std::string("[tls]\ncert = \"") + path + "\"\n", "f",
                       fake_env(base));
  std::remove(path);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->pem("tls.cert"), std::string(kPem) + "\n");

  auto bad = base;
  bad["DAG_TLS_CERT"] = "/nonexistent/cert.pem";
  auto d = load_string(edge_like_schema(), "", "", fake_env(bad));
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::config);
  EXPECT_NE(d.error().message.find("tls.cert"), std::string::npos);
}

TEST(Config, MissingFileIsNotFound) {
  auto r = load(edge_like_schema(), std::filesystem::path("/nonexistent/dag.toml"), fake_env({}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
}

TEST(Config, CommentedDefaultsLoadBackToTheDefaults) {
  const Schema s = edge_like_schema();
  const std::string text = s.commented_defaults();
  EXPECT_NE(text.find("# Broker port"), std::string::npos);
  EXPECT_NE(text.find("env: DAG_MQTT_PORT"), std::string::npos);
  EXPECT_NE(text.find("(or AWS_THING_NAME)"), std::string::npos);
  EXPECT_NE(text.find("range 30..1200"), std::string::npos);
  auto cfg = load_string(s, text, "defaults", fake_env({{"DAG_DEVICE_ID", "d"}}));
  ASSERT_TRUE(cfg) << cfg.error().message << "\n" << text;
  EXPECT_EQ(cfg->integer("mqtt.keepalive_s"), 60);
  EXPECT_EQ(cfg->list("notify.emails"), (std::vector<std::string>{"a@x", "b@x"}));
}

TEST(Config, DuplicateKeysAreAProgrammingError) {
  Schema s("x");
  s.add({.key = "a", .help = "a"});
  EXPECT_THROW(s.add({.key = "a", .help = "again"}), std::logic_error);
}

}  // namespace
}  // namespace dag::config
