#include "dag/notify/render.hpp"

#include <date/date.h>
#include <date/tz.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <set>
#include <vector>

#include "dag/common/validate.hpp"

namespace dag::notify {
namespace {

using store::Transition;

// 0000-01-01 is outside what anyone needs; 9999-12-31T23:59:59.999Z keeps four-digit years
// and every intermediate value well inside date's int ranges.
constexpr std::int64_t kMinMs = 0;
constexpr std::int64_t kMaxMs = 253'402'300'799'999;

constexpr std::array<std::string_view, 7> kWeekdays{"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                    "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths{"January",   "February", "March",    "April",
                                                   "May",       "June",     "July",     "August",
                                                   "September", "October",  "November", "December"};

std::string_view short_name(std::string_view name) {
  return name.substr(0, 3);
}

const date::time_zone* find_zone(std::string_view name) {
  if (name.empty() || name.size() > 64) return nullptr;
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {  // unknown zone, or no readable tz database
    return nullptr;
  }
}

struct Civil {
  int year;
  unsigned month, day, weekday;
  int hour, minute, second, millisecond;
};

Civil civil(date::sys_time<std::chrono::milliseconds> tp) {
  const auto day = date::floor<date::days>(tp);
  const date::year_month_day ymd{day};
  const date::hh_mm_ss<std::chrono::milliseconds> hms{tp - day};
  return Civil{static_cast<int>(ymd.year()),
               static_cast<unsigned>(ymd.month()),
               static_cast<unsigned>(ymd.day()),
               date::weekday{day}.c_encoding(),
               static_cast<int>(hms.hours().count()),
               static_cast<int>(hms.minutes().count()),
               static_cast<int>(hms.seconds().count()),
               static_cast<int>(hms.subseconds().count())};
}

date::sys_time<std::chrono::milliseconds> clamped(std::int64_t epoch_ms) {
  return date::sys_time<std::chrono::milliseconds>{
      std::chrono::milliseconds{std::clamp(epoch_ms, kMinMs, kMaxMs)}};
}

std::string device_label(const Item& item) {
  return item.device_name.empty() ? std::string{"Your dag"} : item.device_name;
}

std::string device_key(const Item& item) {
  return item.device_id.empty() ? "name:" + item.device_name : item.device_id;
}

/// The verb phrase of a group in a summary subject; the same for one or many dags.
std::string_view summary_verb(Transition transition) {
  switch (transition) {
    case Transition::power_lost: return "lost power";
    case Transition::power_back: return "regained power";
    case Transition::contact_lost: return "lost contact";
    case Transition::dag_back: return "came back";
    case Transition::battery_low: return "reported a low battery";
  }
  return "changed";
}

constexpr std::array<Transition, 5> kTransitionOrder{Transition::power_lost, Transition::power_back,
                                                     Transition::contact_lost, Transition::dag_back,
                                                     Transition::battery_low};

std::optional<double> battery_percent(const Item& item) {
  if (!item.extra.is_object()) return std::nullopt;
  const auto it = item.extra.find("percent");
  if (it == item.extra.end() || !it->is_number()) return std::nullopt;
  const double p = it->get<double>();
  if (!std::isfinite(p)) return std::nullopt;
  return std::clamp(p, 0.0, 100.0);
}

bool is_dashboard_link(std::string_view url) {
  return !url.empty() && !validate::url_error(url).has_value();
}

// ---- HTML pieces ------------------------------------------------------------------------

struct StateColours {
  std::string_view badge;   // badge background and the item's left border
  std::string_view border;  // lighter tint for the block background
};

StateColours colours(protocol::UserState state) {
  switch (state) {
    case protocol::UserState::on: return {"#15803d", "#f0fdf4"};
    case protocol::UserState::off: return {"#b91c1c", "#fef2f2"};
    case protocol::UserState::was_on: return {"#b45309", "#fffbeb"};
    case protocol::UserState::was_off: return {"#7c2d12", "#fff7ed"};
  }
  return {"#52525b", "#fafafa"};
}

constexpr std::string_view kFont =
    "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;";

void html_item(std::string& out, const Item& item, std::string_view zone) {
  const auto c = colours(item.user_state);
  const LocalTime t = to_local_time(item.observed_at_ms, zone);
  std::string what = what_happened(item);
  if (!what.empty()) what[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(what[0])));
  out += fmt::format(
      "<div style=\"border-left:4px solid {0};background:{1};padding:10px 14px;margin:0 0 12px;"
      "border-radius:4px;\">\n"
      "<p style=\"margin:0;font-size:17px;font-weight:bold;\">{2}</p>\n"
      "<p style=\"margin:6px 0 0;font-size:15px;\">{3} on {4}.</p>\n"
      "<p style=\"margin:8px 0 0;font-size:15px;\"><span style=\"display:inline-block;"
      "padding:2px 8px;border-radius:4px;background:{0};color:#ffffff;font-weight:bold;\">{5}"
      "</span></p>\n"
      "<p style=\"margin:6px 0 0;font-size:14px;color:#3f3f46;\">{6}</p>\n"
      "</div>\n",
      c.badge, c.border, html_escape(device_label(item)), html_escape(what),
      html_escape(format_long(t)), html_escape(protocol::title(item.user_state)),
      html_escape(protocol::explanation(item.user_state)));
}

std::string html_document(std::string_view title, std::string_view body_html,
                          std::string_view footer_html) {
  return fmt::format(
      "<!DOCTYPE html>\n"
      "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>{0}</title>\n</head>\n"
      "<body style=\"margin:0;padding:0;background:#f4f4f5;color:#18181b;{1}\">\n"
      "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" "
      "style=\"background:#f4f4f5;\"><tr><td align=\"center\" style=\"padding:24px 12px;\">\n"
      "<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" "
      "style=\"max-width:560px;background:#ffffff;border-radius:8px;\">\n"
      "<tr><td style=\"padding:24px;{1}\">\n{2}</td></tr>\n"
      "<tr><td style=\"padding:0 24px 24px;font-size:12px;color:#71717a;{1}\">{3}</td></tr>\n"
      "</table>\n</td></tr></table>\n</body>\n</html>\n",
      html_escape(title), kFont, body_html, footer_html);
}

std::string html_button(std::string_view url, std::string_view label) {
  return fmt::format(
      "<p style=\"margin:20px 0 0;\"><a href=\"{}\" style=\"display:inline-block;"
      "padding:10px 18px;background:#1d4ed8;color:#ffffff;text-decoration:none;"
      "border-radius:6px;font-weight:bold;\">{}</a></p>\n",
      html_escape(url), html_escape(label));
}

}  // namespace

// ---- time -------------------------------------------------------------------------------

bool is_known_time_zone(std::string_view zone) {
  return find_zone(zone) != nullptr;
}

LocalTime to_local_time(std::int64_t epoch_ms, std::string_view zone) {
  const auto tp = clamped(epoch_ms);
  LocalTime out;
  if (const date::time_zone* z = find_zone(zone)) {
    try {
      const auto info = z->get_info(date::floor<std::chrono::seconds>(tp));
      out.utc_offset = info.offset;
      out.abbreviation = info.abbrev;
      out.zone = std::string{zone};
    } catch (const std::exception&) {  // a zone file that cannot be read: UTC
      out = LocalTime{};
    }
  }
  const Civil c = civil(tp + out.utc_offset);
  out.year = c.year;
  out.month = c.month;
  out.day = c.day;
  out.weekday = c.weekday;
  out.hour = c.hour;
  out.minute = c.minute;
  out.second = c.second;
  return out;
}

std::string format_long(const LocalTime& t) {
  return fmt::format("{} {} {} {} at {:02}:{:02} {}", kWeekdays.at(t.weekday % 7), t.day,
                     kMonths.at((t.month + 11) % 12), t.year, t.hour, t.minute, t.abbreviation);
}

std::string format_short(const LocalTime& t) {
  return fmt::format("{:02}:{:02} {}, {} {} {}", t.hour, t.minute, t.abbreviation,
                     short_name(kWeekdays.at(t.weekday % 7)), t.day,
                     short_name(kMonths.at((t.month + 11) % 12)));
}

std::string iso8601_utc(std::int64_t epoch_ms) {
  // By hand: the API writes four of these per device in a list (its hottest path).
  const Civil c = civil(clamped(epoch_ms));
  std::string out = "0000-00-00T00:00:00.000Z";
  auto put = [&out](std::size_t at, std::size_t width, unsigned value) {
    for (std::size_t i = 0; i < width; ++i) {
      out[at + width - 1 - i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, 4, static_cast<unsigned>(c.year));  // clamped to 1970..9999
  put(5, 2, c.month);
  put(8, 2, c.day);
  put(11, 2, static_cast<unsigned>(c.hour));
  put(14, 2, static_cast<unsigned>(c.minute));
  put(17, 2, static_cast<unsigned>(c.second));
  put(20, 3, static_cast<unsigned>(c.millisecond));
  return out;
}

std::string rfc5322_date(std::int64_t epoch_ms) {
  const Civil c = civil(clamped(epoch_ms));
  return fmt::format(
      "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000", short_name(kWeekdays.at(c.weekday % 7)), c.day,
      short_name(kMonths.at((c.month + 11) % 12)), c.year, c.hour, c.minute, c.second);
}

// ---- words ------------------------------------------------------------------------------

std::string_view transition_subject(Transition transition) noexcept {
  switch (transition) {
    case Transition::power_lost: return "You've lost power!";
    case Transition::power_back: return "Your power's back!";
    case Transition::contact_lost: return "We've lost contact with your dag!";
    case Transition::dag_back: return "Your dag is back!";
    case Transition::battery_low: return "Your dag's battery is low!";
  }
  return "News from your dag";
}

std::string what_happened(const Item& item) {
  switch (item.transition) {
    case Transition::power_lost: return "the power went off";
    case Transition::power_back: return "the power came back";
    case Transition::contact_lost: return "we lost contact with it";
    case Transition::dag_back: return "it is back in contact";
    case Transition::battery_low:
      if (const auto p = battery_percent(item)) {
        return fmt::format("its battery is low ({:.0f}%)", *p);
      }
      return "its battery is low";
  }
  return "its state changed";
}

std::string item_sentence(const Item& item, std::string_view zone, bool long_time) {
  const LocalTime t = to_local_time(item.observed_at_ms, zone);
  return fmt::format("{}: {} {} {}.", device_label(item), what_happened(item),
                     long_time ? "on" : "at", long_time ? format_long(t) : format_short(t));
}

std::string notice_subject(const Notice& notice) {
  const auto& items = notice.items;
  if (items.empty()) return "News from your dags";
  if (items.size() == 1) {
    const auto& item = items.front();
    std::string s{transition_subject(item.transition)};
    if (!item.device_name.empty()) s += fmt::format(" ({})", item.device_name);
    return s;
  }
  std::set<std::string> dags;
  for (const auto& item : items) dags.insert(device_key(item));
  if (dags.size() == 1) {
    // One dag, several changes (e.g. lost power and regained it within the window): list
    // them in the order they happened, each once.
    std::vector<Transition> seen;
    std::string s = fmt::format("Updates on {}:", device_label(items.front()));
    for (const auto& item : items) {
      if (std::find(seen.begin(), seen.end(), item.transition) != seen.end()) continue;
      s += fmt::format("{} {}", seen.empty() ? "" : ",", summary_verb(item.transition));
      seen.push_back(item.transition);
    }
    return s;
  }
  const std::string_view more = notice.follow_up ? " more" : "";
  std::vector<std::pair<Transition, std::size_t>> groups;
  for (const Transition t : kTransitionOrder) {
    std::set<std::string> group;
    for (const auto& item : items) {
      if (item.transition == t) group.insert(device_key(item));
    }
    if (!group.empty()) groups.emplace_back(t, group.size());
  }
  if (groups.size() == 1) {
    return fmt::format("{}{} of your dags {}", dags.size(), more, summary_verb(groups[0].first));
  }
  std::string s = fmt::format("Updates on {}{} of your dags:", dags.size(), more);
  for (std::size_t i = 0; i < groups.size(); ++i) {
    s +=
        fmt::format("{} {} {}", i == 0 ? "" : ",", groups[i].second, summary_verb(groups[i].first));
  }
  return s;
}

std::string item_message(const Item& item, std::string_view zone) {
  return fmt::format("{} Now: {}.", item_sentence(item, zone, false),
                     protocol::title(item.user_state));
}

std::string notice_message(const Notice& notice) {
  std::string out;
  for (const auto& item : notice.items) {
    if (!out.empty()) out += '\n';
    out += item_message(item, notice.time_zone);
  }
  return out;
}

// ---- e-mail -----------------------------------------------------------------------------

RenderedEmail render_email(const Notice& notice) {
  RenderedEmail mail;
  mail.subject = notice_subject(notice);
  const bool single = notice.items.size() == 1;
  const std::string heading =
      single ? std::string{transition_subject(notice.items.front().transition)} : mail.subject;
  const std::string greeting =
      notice.account_name.empty() ? "Hello," : fmt::format("Hello {},", notice.account_name);
  const bool link = is_dashboard_link(notice.dashboard_url);
  const std::string why = fmt::format(
      "You get this message because this address receives detectordag alerts{}.",
      notice.account_name.empty() ? "" : fmt::format(" for the account {}", notice.account_name));

  // Plain text.
  std::string& text = mail.text;
  text += greeting + "\n\n" + heading + "\n\n";
  // A first alert with several items needs no introduction: its heading says it all.
  if (!single && notice.follow_up) text += "Since our last message:\n\n";
  for (const auto& item : notice.items) {
    const std::string sentence = item_sentence(item, notice.time_zone, true);
    const std::string state = fmt::format("Now: {}. {}", protocol::title(item.user_state),
                                          protocol::explanation(item.user_state));
    if (single) {
      text += fmt::format("{}\n{}\n\n", sentence, state);
    } else {
      text += fmt::format("* {}\n  {}\n\n", sentence, state);
    }
  }
  if (link) text += fmt::format("See your dags: {}\n\n", notice.dashboard_url);
  text += "-- \n" + why + "\n";

  // HTML.
  std::string body;
  body +=
      fmt::format("<p style=\"margin:0 0 16px;font-size:15px;\">{}</p>\n", html_escape(greeting));
  body += fmt::format("<h1 style=\"margin:0 0 16px;font-size:22px;line-height:1.3;\">{}</h1>\n",
                      html_escape(heading));
  if (!single && notice.follow_up) {
    body += "<p style=\"margin:0 0 12px;font-size:15px;\">Since our last message:</p>\n";
  }
  for (const auto& item : notice.items) html_item(body, item, notice.time_zone);
  if (link) body += html_button(notice.dashboard_url, "Open your dashboard");
  mail.html = html_document(mail.subject, body, html_escape(why));
  return mail;
}

RenderedEmail render_verification(std::string_view address, std::string_view link,
                                  std::int64_t expires_at_ms) {
  RenderedEmail mail;
  mail.subject = "Confirm your address for detectordag alerts";
  const std::string until = format_long(to_local_time(expires_at_ms, "UTC"));
  const std::string asked =
      fmt::format("Someone, hopefully you, asked detectordag to send power alerts to {}.", address);
  const std::string ignore =
      "If you did not ask for this, ignore this message: this address will get no alerts.";
  mail.text = fmt::format(
      "Hello,\n\n{}\n\nTo confirm this address, open this link:\n{}\n\nThe link works until "
      "{}.\n{}\n",
      asked, link, until, ignore);
  std::string body;
  body += "<p style=\"margin:0 0 16px;font-size:15px;\">Hello,</p>\n";
  body += fmt::format("<h1 style=\"margin:0 0 16px;font-size:22px;line-height:1.3;\">{}</h1>\n",
                      html_escape(mail.subject));
  body += fmt::format("<p style=\"margin:0 0 12px;font-size:15px;\">{}</p>\n", html_escape(asked));
  if (is_dashboard_link(link)) body += html_button(link, "Confirm this address");
  body += fmt::format(
      "<p style=\"margin:16px 0 0;font-size:14px;color:#3f3f46;\">Or copy this link into "
      "your browser: <span style=\"word-break:break-all;\">{}</span></p>\n",
      html_escape(link));
  body += fmt::format("<p style=\"margin:12px 0 0;font-size:14px;\">The link works until {}.</p>\n",
                      html_escape(until));
  mail.html = html_document(mail.subject, body, html_escape(ignore));
  return mail;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace dag::notify
