#include "dag/notify/render.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace dag::notify {
namespace {

using protocol::UserState;
using store::Transition;

constexpr std::int64_t kNov24 = 1'795'560'096'123;  // 2026-11-24T22:41:36.123Z, a Tuesday
constexpr std::int64_t kJul1 = 1'782'907'200'000;   // 2026-07-01T12:00:00Z, a Wednesday

Item item(std::string name, Transition t, UserState s, std::int64_t at = kNov24) {
  Item i;
  i.device_id = "id-" + name;
  i.device_name = std::move(name);
  i.transition = t;
  i.user_state = s;
  i.observed_at_ms = at;
  return i;
}

Notice notice(std::vector<Item> items, bool follow_up = false) {
  Notice n;
  n.account_id = "acc-1";
  n.account_name = "alice";
  n.time_zone = "Europe/Oslo";
  n.dashboard_url = "https://dags.example.com";
  n.items = std::move(items);
  n.follow_up = follow_up;
  n.idempotency_key = "key-1";
  return n;
}

TEST(Render, TimeInTheAccountsZone) {
  const auto oslo = to_local_time(kNov24, "Europe/Oslo");
  EXPECT_EQ(format_long(oslo), "Tuesday 24 November 2026 at 23:41 CET");
  EXPECT_EQ(format_short(oslo), "23:41 CET, Tue 24 Nov");
  EXPECT_EQ(oslo.zone, "Europe/Oslo");
  EXPECT_EQ(oslo.utc_offset, std::chrono::hours{1});

  EXPECT_EQ(format_long(to_local_time(kNov24, "UTC")), "Tuesday 24 November 2026 at 22:41 UTC");
  EXPECT_EQ(format_long(to_local_time(kJul1, "Europe/Oslo")),
            "Wednesday 1 July 2026 at 14:00 CEST");
  EXPECT_EQ(format_short(to_local_time(kJul1, "America/New_York")), "08:00 EDT, Wed 1 Jul");
  // Crossing midnight into the next day.
  EXPECT_EQ(format_long(to_local_time(kNov24, "Asia/Tokyo")),
            "Wednesday 25 November 2026 at 07:41 JST");
  // The spring-forward instant: 00:59:59 UTC is 01:59:59 CET, 01:00 UTC is 03:00 CEST.
  EXPECT_EQ(format_short(to_local_time(1'774'745'999'000, "Europe/Oslo")), "01:59 CET, Sun 29 Mar");
  EXPECT_EQ(format_short(to_local_time(1'774'746'000'000, "Europe/Oslo")),
            "03:00 CEST, Sun 29 Mar");
}

TEST(Render, UnknownZoneFallsBackToUtc) {
  for (const char* zone : {"Mars/Olympus_Mons", "", "../../etc/passwd", "europe/oslo"}) {
    const auto t = to_local_time(kNov24, zone);
    EXPECT_EQ(t.zone, "UTC") << zone;
    EXPECT_EQ(format_long(t), "Tuesday 24 November 2026 at 22:41 UTC") << zone;
    EXPECT_FALSE(is_known_time_zone(zone)) << zone;
  }
  EXPECT_TRUE(is_known_time_zone("Europe/Oslo"));
  EXPECT_TRUE(is_known_time_zone("UTC"));
}

TEST(Render, TimestampsInUtc) {
  EXPECT_EQ(iso8601_utc(kNov24), "2026-11-24T22:41:36.123Z");
  EXPECT_EQ(iso8601_utc(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc5322_date(kNov24), "Tue, 24 Nov 2026 22:41:36 +0000");
  // Out of range: clamped, never undefined.
  EXPECT_EQ(iso8601_utc(-5), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(iso8601_utc(INT64_MAX), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(format_short(to_local_time(INT64_MAX, "Pacific/Kiritimati")).substr(0, 5), "13:59");
}

TEST(Render, SubjectPerTransition) {
  EXPECT_EQ(transition_subject(Transition::power_lost), "You've lost power!");
  EXPECT_EQ(transition_subject(Transition::power_back), "Your power's back!");
  EXPECT_EQ(transition_subject(Transition::contact_lost), "We've lost contact with your dag!");
  EXPECT_EQ(transition_subject(Transition::dag_back), "Your dag is back!");
  EXPECT_EQ(transition_subject(Transition::battery_low), "Your dag's battery is low!");

  EXPECT_EQ(notice_subject(notice({item("Home", Transition::power_lost, UserState::off)})),
            "You've lost power! (Home)");
  EXPECT_EQ(notice_subject(notice({item("Home", Transition::dag_back, UserState::on)})),
            "Your dag is back! (Home)");
  EXPECT_EQ(notice_subject(notice({item("", Transition::power_back, UserState::on)})),
            "Your power's back!");
  // A follow-up with one item is about that dag, whether or not it was in the first alert.
  EXPECT_EQ(notice_subject(notice({item("Home", Transition::power_back, UserState::on)}, true)),
            "Your power's back! (Home)");
}

TEST(Render, FollowUpSubjects) {
  EXPECT_EQ(notice_subject(notice({item("A", Transition::power_lost, UserState::off),
                                   item("B", Transition::power_lost, UserState::off),
                                   item("C", Transition::power_lost, UserState::was_off)},
                                  true)),
            "3 more of your dags lost power");
  EXPECT_EQ(notice_subject(notice({item("A", Transition::power_lost, UserState::off),
                                   item("B", Transition::power_lost, UserState::off)})),
            "2 of your dags lost power");
  EXPECT_EQ(notice_subject(notice({item("A", Transition::power_lost, UserState::off),
                                   item("B", Transition::dag_back, UserState::on),
                                   item("C", Transition::power_lost, UserState::off),
                                   item("D", Transition::contact_lost, UserState::was_on)},
                                  true)),
            "Updates on 4 more of your dags: 2 lost power, 1 lost contact, 1 came back");
  // One dag, several changes: listed in order, each once.
  EXPECT_EQ(notice_subject(notice({item("Home", Transition::power_lost, UserState::off),
                                   item("Home", Transition::power_back, UserState::on),
                                   item("Home", Transition::power_lost, UserState::off)},
                                  true)),
            "Updates on Home: lost power, regained power");
  // The same dag twice in one group counts once.
  EXPECT_EQ(notice_subject(notice({item("A", Transition::power_lost, UserState::off),
                                   item("A", Transition::power_lost, UserState::off),
                                   item("B", Transition::power_lost, UserState::off)},
                                  true)),
            "2 more of your dags lost power");
}

TEST(Render, Sentences) {
  auto low = item("Barn", Transition::battery_low, UserState::off);
  low.extra = {{"percent", 18.4}};
  EXPECT_EQ(what_happened(low), "its battery is low (18%)");
  low.extra = nlohmann::json::object();
  EXPECT_EQ(what_happened(low), "its battery is low");
  EXPECT_EQ(
      item_sentence(item("Home", Transition::power_lost, UserState::off), "Europe/Oslo", true),
      "Home: the power went off on Tuesday 24 November 2026 at 23:41 CET.");
  EXPECT_EQ(item_message(item("Home", Transition::contact_lost, UserState::was_on), "UTC"),
            "Home: we lost contact with it at 22:41 UTC, Tue 24 Nov. Now: Was On.");
}

TEST(Render, EmailForOneItem) {
  const auto mail = render_email(notice({item("Home", Transition::power_lost, UserState::off)}));
  EXPECT_EQ(mail.subject, "You've lost power! (Home)");
  for (const auto& body : {mail.text, mail.html}) {
    EXPECT_NE(body.find("alice"), std::string::npos);
    EXPECT_NE(body.find("Home"), std::string::npos);
    EXPECT_NE(body.find("Tuesday 24 November 2026 at 23:41 CET"), std::string::npos);
    EXPECT_NE(body.find("https://dags.example.com"), std::string::npos);
    EXPECT_NE(body.find("it is running on its battery"), std::string::npos);
  }
  EXPECT_NE(mail.text.find("You've lost power!\n"), std::string::npos);
  EXPECT_NE(mail.text.find("Now: Off. Your dag is in contact and the power is off"),
            std::string::npos);
  EXPECT_NE(mail.html.find("You&#39;ve lost power!"), std::string::npos);
  EXPECT_NE(mail.html.find(">Off</span>"), std::string::npos);
  EXPECT_NE(mail.html.find("href=\"https://dags.example.com\""), std::string::npos);
}

TEST(Render, EveryUserStateHasItsTitleAndExplanation) {
  for (const auto state : protocol::kAllUserStates) {
    const auto mail = render_email(notice({item("Home", Transition::dag_back, state)}));
    EXPECT_NE(mail.text.find(
                  fmt::format("Now: {}. {}", protocol::title(state), protocol::explanation(state))),
              std::string::npos)
        << protocol::to_string(state);
  }
}

TEST(Render, FollowUpListsEveryItem) {
  std::vector<Item> items;
  for (const char* name : {"North", "South", "East", "West"}) {
    items.push_back(item(name, Transition::power_lost, UserState::off));
  }
  const auto mail = render_email(notice(items, true));
  EXPECT_EQ(mail.subject, "4 more of your dags lost power");
  for (const char* name : {"North", "South", "East", "West"}) {
    EXPECT_NE(mail.text.find(fmt::format("* {}: the power went off", name)), std::string::npos);
    EXPECT_NE(mail.html.find(fmt::format(">{}</p>", name)), std::string::npos);
  }
  EXPECT_NE(mail.text.find("Since our last message:"), std::string::npos);
}

// A first alert that found several items already due (a storm's backlog) lists them all,
// without "more" and without pointing at a previous message.
TEST(Render, AFirstAlertWithSeveralItemsListsThemAsNews) {
  std::vector<Item> items;
  for (const char* name : {"North", "South", "East"}) {
    items.push_back(item(name, Transition::power_lost, UserState::off));
  }
  const auto mail = render_email(notice(items, false));
  EXPECT_EQ(mail.subject, "3 of your dags lost power");
  for (const char* name : {"North", "South", "East"}) {
    EXPECT_NE(mail.text.find(fmt::format("* {}: the power went off", name)), std::string::npos);
  }
  EXPECT_EQ(mail.text.find("Since our last message:"), std::string::npos);
  EXPECT_EQ(mail.html.find("Since our last message:"), std::string::npos);
}

TEST(Render, HtmlEscapesEverythingUserControlled) {
  auto n = notice({item("<img src=x onerror=alert(1)>", Transition::power_lost, UserState::off)});
  n.account_name = "\"bob\" & <i>co</i>";
  n.dashboard_url = "https://dags.example.com/?a=1&b=\"2\"";
  const auto mail = render_email(n);
  EXPECT_EQ(mail.html.find("<img"), std::string::npos);
  EXPECT_EQ(mail.html.find("<i>"), std::string::npos);
  EXPECT_NE(mail.html.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(mail.html.find("&quot;bob&quot; &amp; &lt;i&gt;co&lt;/i&gt;"), std::string::npos);
  EXPECT_EQ(mail.html.find("b=\"2\""), std::string::npos);
  // Plain text stays plain.
  EXPECT_NE(mail.text.find("<img src=x onerror=alert(1)>"), std::string::npos);
  EXPECT_EQ(html_escape(R"(<a href='x'>&</a>)"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
}

TEST(Render, HtmlLoadsNothingFromOutside) {
  const auto mail = render_email(notice({item("Home", Transition::power_lost, UserState::off)}));
  for (const char* needle : {"<img", "<link", "<script", "src=", "url(", "@import", "<style"}) {
    EXPECT_EQ(mail.html.find(needle), std::string::npos) << needle;
  }
}

TEST(Render, NoDashboardLinkUnlessHttp) {
  auto n = notice({item("Home", Transition::power_lost, UserState::off)});
  n.dashboard_url = "javascript:alert(1)";
  const auto mail = render_email(n);
  EXPECT_EQ(mail.html.find("javascript:"), std::string::npos);
  EXPECT_EQ(mail.text.find("See your dags"), std::string::npos);
}

TEST(Render, Verification) {
  const auto mail =
      render_verification("alice@example.com", "https://dags.example.com/v?t=a&b", kNov24);
  EXPECT_EQ(mail.subject, "Confirm your address for detectordag alerts");
  EXPECT_NE(mail.text.find("https://dags.example.com/v?t=a&b"), std::string::npos);
  EXPECT_NE(mail.text.find("until Tuesday 24 November 2026 at 22:41 UTC"), std::string::npos);
  EXPECT_NE(mail.html.find("href=\"https://dags.example.com/v?t=a&amp;b\""), std::string::npos);
}

}  // namespace
}  // namespace dag::notify
