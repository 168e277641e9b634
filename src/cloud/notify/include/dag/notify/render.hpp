// What a notice says: subjects, sentences, the plain-text and HTML bodies of an e-mail and
// the short form used by ntfy and SMS gateways. Modelled on the original system's mails
// (subject per transition, device name, time, state title and explanation, a link to the
// dashboard), with times shown in the account's time zone and coalesced follow-ups that
// list every item.
//
// Times: an IANA zone name (e.g. "Europe/Oslo") resolved in the operating system's tz
// database (/usr/share/zoneinfo, through Howard Hinnant's date library); an unknown or
// unreadable zone falls back to UTC. Dates and times are written in English, 24-hour
// clock, with the zone's abbreviation ("CET", "CEST", "UTC"; some zones only have numeric
// ones, "+03").
//
// Thread-safety: pure functions over values (the tz database is loaded once, on first
// use, thread-safely). Blocking: the first time lookup reads the tz database directory;
// afterwards nothing blocks. Errors: none; nothing here throws except std::bad_alloc.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "dag/notify/channel.hpp"

namespace dag::notify {

// ---- time -------------------------------------------------------------------------------

/// A moment as shown to an account.
struct LocalTime {
  int year{1970};
  unsigned month{1};    ///< 1..12
  unsigned day{1};      ///< 1..31
  unsigned weekday{4};  ///< 0 = Sunday .. 6 = Saturday
  int hour{0};
  int minute{0};
  int second{0};
  std::string abbreviation{"UTC"};  ///< of the zone at that moment ("CET", "CEST", "+03")
  std::string zone{"UTC"};          ///< the zone used (the requested one, or "UTC")
  std::chrono::seconds utc_offset{0};
};

/// True when `zone` names a zone of the tz database (e.g. "Europe/Oslo", "UTC").
bool is_known_time_zone(std::string_view zone);

/// `epoch_ms` in `zone` (UTC when the zone is unknown). Moments outside 1970..9999 are
/// clamped to that range.
LocalTime to_local_time(std::int64_t epoch_ms, std::string_view zone);

/// "Tuesday 24 November 2026 at 23:41 CET".
std::string format_long(const LocalTime& time);
/// "23:41 CET, Tue 24 Nov".
std::string format_short(const LocalTime& time);
/// ISO 8601 in UTC with milliseconds: "2026-11-24T22:41:36.123Z" (clamped as above).
std::string iso8601_utc(std::int64_t epoch_ms);
/// RFC 5322 date-time in UTC: "Tue, 24 Nov 2026 22:41:36 +0000" (clamped as above).
std::string rfc5322_date(std::int64_t epoch_ms);

// ---- words ------------------------------------------------------------------------------

/// The subject of a transition: "You've lost power!", "Your power's back!", "We've lost
/// contact with your dag!", "Your dag is back!", "Your dag's battery is low!".
std::string_view transition_subject(store::Transition transition) noexcept;

/// What happened, as a clause after the device name: "the power went off", "the power
/// came back", "we lost contact with it", "it is back in contact", "its battery is low"
/// (with the percentage when item.extra has "percent": "its battery is low (18%)").
std::string what_happened(const Item& item);

/// One sentence for an item: "Freezer ring: the power went off at 23:41 CET, Tue 24 Nov."
/// (short time) or with `long_time` "... went off on Tuesday 24 November 2026 at 23:41
/// CET.". A device without a name is "Your dag".
std::string item_sentence(const Item& item, std::string_view zone, bool long_time);

/// An item's short message: its sentence (short time) and state, "Freezer ring: the power
/// went off at 23:41 CET, Tue 24 Nov. Now: Off."
std::string item_message(const Item& item, std::string_view zone);

/// The subject (title) of a whole notice:
/// - one item: the transition's subject and the device name, "You've lost power! (Home)";
/// - several items of one dag: "Updates on Home: lost power, regained power";
/// - a follow-up whose items share one transition: "3 more of your dags lost power"
///   ("Another of your dags lost power" for one), counting distinct dags;
/// - a follow-up with mixed transitions: "Updates on 4 more of your dags: 2 lost power,
///   1 came back, 1 lost contact" (groups in Transition order);
/// - several items that are not a follow-up: as above without "more".
std::string notice_subject(const Notice& notice);

/// The short message of a notice (ntfy body, SMS): one item_message per line.
std::string notice_message(const Notice& notice);

// ---- e-mail -----------------------------------------------------------------------------

/// The content of an e-mail (not yet a MIME message: see dag/notify/email.hpp).
struct RenderedEmail {
  std::string subject;  ///< UTF-8, one line
  std::string text;     ///< UTF-8, '\n' line ends
  std::string html;     ///< UTF-8, a complete document with inline styles only
};

/// The alert e-mail of a notice: a greeting with the account name, the subject as a
/// heading, per item the device name, what happened and when (long time format in the
/// account's zone), the state title and its explanation, then a link to the dashboard
/// (omitted when notice.dashboard_url is not an http(s) URL) and a footer saying why the
/// reader gets this. Every user-controlled string is HTML-escaped in the HTML part; the
/// HTML loads nothing from outside (no images, fonts or stylesheets).
RenderedEmail render_email(const Notice& notice);

/// The address verification e-mail: subject "Confirm your address for detectordag
/// alerts", the link, and when it expires (UTC).
RenderedEmail render_verification(std::string_view address, std::string_view link,
                                  std::int64_t expires_at_ms);

/// Escapes & < > " ' for HTML text and attribute values.
std::string html_escape(std::string_view text);

}  // namespace dag::notify
