#include "dag/notify/template.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace dag::notify {
namespace {

using protocol::UserState;
using store::Transition;

TemplateValues sample() {
  TemplateValues v;
  v[0] = "You've lost power! (\"Hütte\")";  // title
  v[1] = "Line 1\nLine 2 & more";           // message
  v[2] = "Hütte";                           // device
  v[3] = "power_lost";                      // transition
  v[4] = "Off";                             // state
  v[5] = "23:41 CET, Tue 24 Nov";           // time
  v[6] = "https://dags.example.com";        // dashboard
  return v;
}

TEST(Template, Expands) {
  EXPECT_EQ(expand_template("{{device}}: {{ state }} at {{time}}", sample(), TemplateEscape::none),
            "Hütte: Off at 23:41 CET, Tue 24 Nov");
  EXPECT_EQ(expand_template("{{transition}} {{dashboard}}", sample(), TemplateEscape::none),
            "power_lost https://dags.example.com");
  // Unknown placeholders and stray braces stay as they are.
  EXPECT_EQ(expand_template("{{nope}} {{ {x}} }} {{state", sample(), TemplateEscape::none),
            "{{nope}} {{ {x}} }} {{state");
  EXPECT_EQ(expand_template("{{{state}}}", sample(), TemplateEscape::none), "{Off}");
  EXPECT_EQ(expand_template("", sample(), TemplateEscape::none), "");
  EXPECT_EQ(expand_template("no fields", sample(), TemplateEscape::json), "no fields");
  // A value that looks like a placeholder is not expanded again.
  TemplateValues v = sample();
  v[2] = "{{title}}";
  EXPECT_EQ(expand_template("{{device}}", v, TemplateEscape::none), "{{title}}");
}

TEST(Template, JsonEscapesValues) {
  const auto body = expand_template(R"({"text": "{{title}}\n{{message}}", "to": "+4712345678"})",
                                    sample(), TemplateEscape::json);
  const auto j = nlohmann::json::parse(body);
  EXPECT_EQ(j["text"], "You've lost power! (\"Hütte\")\nLine 1\nLine 2 & more");
}

TEST(Template, FormEncodesValues) {
  EXPECT_EQ(expand_template("to=%2B4712345678&msg={{title}}", sample(), TemplateEscape::form),
            "to=%2B4712345678&msg=You%27ve+lost+power%21+%28%22H%C3%BCtte%22%29");
}

TEST(Template, EscapeByContentType) {
  EXPECT_EQ(escape_for_content_type("application/json"), TemplateEscape::json);
  EXPECT_EQ(escape_for_content_type("Application/JSON; charset=utf-8"), TemplateEscape::json);
  EXPECT_EQ(escape_for_content_type("application/vnd.api+json"), TemplateEscape::json);
  EXPECT_EQ(escape_for_content_type("application/x-www-form-urlencoded"), TemplateEscape::form);
  EXPECT_EQ(escape_for_content_type("text/plain"), TemplateEscape::none);
  EXPECT_EQ(escape_for_content_type(""), TemplateEscape::none);
  EXPECT_EQ(escape_for_content_type("+json"), TemplateEscape::none);
}

TEST(Template, Validation) {
  EXPECT_FALSE(template_error("{{title}}: {{ message }}\n{{dashboard}}"));
  EXPECT_FALSE(template_error("{\"a\": \"{{title}}\"}"));
  EXPECT_FALSE(template_error("{{{title}}}"));
  EXPECT_TRUE(template_error(""));
  EXPECT_TRUE(template_error("{{titel}}"));
  EXPECT_NE(template_error("{{titel}}")->find("titel"), std::string::npos);
  EXPECT_TRUE(template_error("{{title"));
  EXPECT_TRUE(template_error("\xff"));
  EXPECT_TRUE(template_error("a\x01z"));
  EXPECT_TRUE(template_error(std::string(kMaxTemplateBytes + 1, 'x')));
  EXPECT_FALSE(template_error(std::string(kMaxTemplateBytes, 'x')));

  EXPECT_FALSE(content_type_error("application/json"));
  EXPECT_FALSE(content_type_error("text/plain; charset=utf-8"));
  EXPECT_TRUE(content_type_error(""));
  EXPECT_TRUE(content_type_error("json"));
  EXPECT_TRUE(content_type_error("text/plain\r\nX-Evil: 1"));
  EXPECT_TRUE(content_type_error("a/b/c"));
}

TEST(Template, ValuesOfANotice) {
  Notice n;
  n.time_zone = "Europe/Oslo";
  n.dashboard_url = "https://dags.example.com";
  Item a;
  a.device_name = "North";
  a.transition = Transition::power_lost;
  a.user_state = UserState::off;
  a.observed_at_ms = 1'795'560'096'123;
  Item b = a;
  b.device_name = "South";
  b.transition = Transition::dag_back;
  b.user_state = UserState::on;
  n.items = {a};
  auto v = template_values(n);
  EXPECT_EQ(v[0], "You've lost power! (North)");
  EXPECT_EQ(v[2], "North");
  EXPECT_EQ(v[3], "power_lost");
  EXPECT_EQ(v[4], "Off");
  EXPECT_EQ(v[5], "23:41 CET, Tue 24 Nov");
  EXPECT_EQ(v[6], "https://dags.example.com");
  n.items = {a, b, a};
  v = template_values(n);
  EXPECT_EQ(v[2], "North, South");
  EXPECT_EQ(v[3], "mixed");
  EXPECT_EQ(v[1].find("North: the power went off"), 0U);
  EXPECT_NE(v[1].find("\nSouth: it is back in contact"), std::string::npos);
}

}  // namespace
}  // namespace dag::notify
