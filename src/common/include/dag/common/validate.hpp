// Checks of values people type (e-mail addresses, names), shared by dagctl and the API so
// that one rule applies wherever a value is entered.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dag::validate {

/// nullopt when `address` is a plausible e-mail address, else the reason. Deliberately
/// simple (RFC 5321 is far wider): ASCII local@domain, at most 254 bytes, a local part of
/// 1..64 printable characters without spaces, quotes, angle brackets or commas, and a
/// domain of dot-separated labels of letters, digits and hyphens with at least one dot.
/// Mail that still bounces shows up as a failed target.
std::optional<std::string> email_error(std::string_view address);

/// nullopt when `name` is fit as a display name (dag or account name): valid UTF-8,
/// 1..max_chars characters (code points), no control characters, not only spaces.
std::optional<std::string> display_name_error(std::string_view name, std::size_t max_chars);

/// nullopt when `url` is fit as a webhook or ntfy address, else the reason: an absolute
/// http:// or https:// URL (scheme case-insensitive) with a host (a name of letters,
/// digits, '-', '_' and '.', an IPv4 address or a bracketed IPv6 address) and an optional
/// port 1..65535; no user name or password in it (secrets go in the target's secret); at
/// most 512 bytes of printable ASCII (no spaces or control characters; international
/// domain names in their xn-- form).
std::optional<std::string> url_error(std::string_view url);

}  // namespace dag::validate
