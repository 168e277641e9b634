#include "dag/broker/mosquitto_conf.hpp"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "rendered_lines.hpp"

namespace dag::broker {
namespace {

BrokerConfig minimal() {
  BrokerConfig c;
  c.host = "127.0.0.1";
  c.port = 8883;
  c.cafile = "/etc/dag/ca.crt";
  c.certfile = "/etc/dag/broker.crt";
  c.keyfile = "/etc/dag/broker.key";
  c.acl_file = "/etc/dag/acl";
  return c;
}

using rendered::has;
const auto& settings = rendered::lines;

bool has_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.rfind(prefix, 0) == 0; });
}

TEST(MosquittoConfTest, TlsListenerBindsIdentityToCertificate) {
  auto text = render_mosquitto_conf(minimal());
  ASSERT_TRUE(text) << text.error().message;
  const auto s = settings(*text);
  for (const char* line :
       {"listener 8883 127.0.0.1", "tls_version tlsv1.2", "cafile /etc/dag/ca.crt",
        "certfile /etc/dag/broker.crt", "keyfile /etc/dag/broker.key", "require_certificate true",
        "use_identity_as_username true", "use_username_as_clientid true", "allow_anonymous false",
        "per_listener_settings false", "acl_file /etc/dag/acl"}) {
    EXPECT_TRUE(has(s, line)) << "missing: " << line << "\n" << *text;
  }
  // The listener's own settings must follow its `listener` line.
  const auto listener = std::find(s.begin(), s.end(), "listener 8883 127.0.0.1");
  const auto require = std::find(s.begin(), s.end(), "require_certificate true");
  EXPECT_LT(listener, require);
}

TEST(MosquittoConfTest, OptionalPartsAreOffByDefault) {
  auto text = render_mosquitto_conf(minimal());
  ASSERT_TRUE(text);
  const auto s = settings(*text);
  EXPECT_FALSE(has_prefix(s, "crlfile"));
  EXPECT_FALSE(has_prefix(s, "plugin"));
  EXPECT_FALSE(has_prefix(s, "password_file"));
  EXPECT_FALSE(has_prefix(s, "pid_file"));
  EXPECT_EQ(std::count_if(s.begin(), s.end(),
                          [](const std::string& l) { return l.rfind("listener ", 0) == 0; }),
            1);
  EXPECT_FALSE(has(s, "allow_anonymous true"));
}

TEST(MosquittoConfTest, DefaultsSuitProduction) {
  auto text = render_mosquitto_conf(minimal());
  ASSERT_TRUE(text);
  const auto s = settings(*text);
  EXPECT_TRUE(has(s, "user mosquitto"));
  EXPECT_TRUE(has(s, "persistence true"));
  EXPECT_TRUE(has(s, "persistence_location /var/lib/mosquitto/"));
  EXPECT_TRUE(has(s, "autosave_interval 300"));
  EXPECT_TRUE(has(s, "log_dest stderr"));
  EXPECT_TRUE(has(s, "log_type error"));
  EXPECT_TRUE(has(s, "log_type information"));
  EXPECT_FALSE(has(s, "log_type all"));
  EXPECT_TRUE(has(s, "connection_messages true"));
}

TEST(MosquittoConfTest, EverySettingHasAReasonOrBelongsToAGroup) {
  auto text = render_mosquitto_conf(minimal());
  ASSERT_TRUE(text);
  for (const char* reasoned : {"use_username_as_clientid true", "require_certificate true",
                               "allow_anonymous false", "user mosquitto"}) {
    const auto pos = text->find(std::string{"\n"} + reasoned);
    ASSERT_NE(pos, std::string::npos) << reasoned;
    const auto prev_line_start = text->rfind('\n', pos - 1);
    EXPECT_EQ(text->at(prev_line_start + 1), '#') << reasoned << " has no comment above it";
  }
}

TEST(MosquittoConfTest, RendersOptionalParts) {
  auto c = minimal();
  c.host.clear();
  c.crlfile = "/etc/dag/crl.pem";
  c.tls_min_version = "tlsv1.3";
  c.user = "dag";
  c.persistence_location = "/var/lib/dag";
  c.persistent_client_expiration = "90d";
  c.log_types = {"all"};
  c.log_dests = {"stderr", "file /var/log/dag/mosquitto.log"};
  c.pid_file = "/run/dag/mosquitto.pid";
  c.plugin = Plugin{"/usr/lib/dag/presence.so", {{"topic_prefix", "dags"}}};
  c.service_listener = ServiceListener{"127.0.0.1", 8884};
  c.plain_listener = PlainListener{"127.0.0.1", 1883};
  c.password_file = "/etc/dag/passwd";
  auto text = render_mosquitto_conf(c);
  ASSERT_TRUE(text) << text.error().message;
  const auto s = settings(*text);
  for (const char* line :
       {"listener 8883", "crlfile /etc/dag/crl.pem", "tls_version tlsv1.3", "user dag",
        "persistence_location /var/lib/dag/", "persistent_client_expiration 90d", "log_type all",
        "log_dest file /var/log/dag/mosquitto.log", "pid_file /run/dag/mosquitto.pid",
        "plugin /usr/lib/dag/presence.so", "plugin_opt_topic_prefix dags",
        "listener 1883 127.0.0.1", "password_file /etc/dag/passwd", "listener 8884 127.0.0.1",
        "max_queued_messages 1000000"}) {
    EXPECT_TRUE(has(s, line)) << "missing: " << line << "\n" << *text;
  }
  // The service and plain listeners also pin client ids to usernames, and the service
  // listener has the same certificate rules as the device listener.
  EXPECT_EQ(std::count(s.begin(), s.end(), "use_username_as_clientid true"), 3);
  EXPECT_EQ(std::count(s.begin(), s.end(), "require_certificate true"), 2);
  EXPECT_EQ(std::count(s.begin(), s.end(), "crlfile /etc/dag/crl.pem"), 2);
}

TEST(MosquittoConfTest, EmptyUserLeavesMosquittosDefault) {
  auto c = minimal();
  c.user.clear();
  c.persistence = false;
  auto text = render_mosquitto_conf(c);
  ASSERT_TRUE(text);
  const auto s = settings(*text);
  EXPECT_FALSE(has_prefix(s, "user "));
  EXPECT_TRUE(has(s, "persistence false"));
  EXPECT_FALSE(has_prefix(s, "persistence_location"));
}

TEST(MosquittoConfTest, RefusesValuesThatWouldInjectSettings) {
  auto c = minimal();
  c.cafile = "/etc/dag/ca.crt\nallow_anonymous true";
  EXPECT_EQ(render_mosquitto_conf(c).error().code, Errc::config);
  c = minimal();
  c.plugin = Plugin{"/p.so", {{"key", "v\nallow_anonymous true"}}};
  EXPECT_EQ(render_mosquitto_conf(c).error().code, Errc::config);
  c = minimal();
  c.user = "root\rx";
  EXPECT_EQ(render_mosquitto_conf(c).error().code, Errc::config);
}

TEST(MosquittoConfTest, RefusesUnsafeOrBrokenConfigurations) {
  auto relative = minimal();
  relative.keyfile = "broker.key";
  EXPECT_EQ(render_mosquitto_conf(relative).error().code, Errc::config);
  auto missing = minimal();
  missing.certfile.clear();
  EXPECT_EQ(render_mosquitto_conf(missing).error().code, Errc::config);
  auto port0 = minimal();
  port0.port = 0;
  EXPECT_EQ(render_mosquitto_conf(port0).error().code, Errc::config);
  auto old_tls = minimal();
  old_tls.tls_min_version = "tlsv1.1";
  EXPECT_EQ(render_mosquitto_conf(old_tls).error().code, Errc::config);
  auto public_plain = minimal();
  public_plain.plain_listener = PlainListener{"0.0.0.0", 1883};
  EXPECT_EQ(render_mosquitto_conf(public_plain).error().code, Errc::config);
  auto same_port = minimal();
  same_port.plain_listener = PlainListener{"127.0.0.1", 8883};
  EXPECT_EQ(render_mosquitto_conf(same_port).error().code, Errc::config);
  auto public_service = minimal();
  public_service.service_listener = ServiceListener{"0.0.0.0", 8884};
  EXPECT_EQ(render_mosquitto_conf(public_service).error().code, Errc::config);
  auto service_same_port = minimal();
  service_same_port.service_listener = ServiceListener{"127.0.0.1", 8883};
  EXPECT_EQ(render_mosquitto_conf(service_same_port).error().code, Errc::config);
  auto bad_log = minimal();
  bad_log.log_types = {"verbose"};
  EXPECT_EQ(render_mosquitto_conf(bad_log).error().code, Errc::config);
  auto bad_dest = minimal();
  bad_dest.log_dests = {"file"};
  EXPECT_EQ(render_mosquitto_conf(bad_dest).error().code, Errc::config);
}

}  // namespace
}  // namespace dag::broker
