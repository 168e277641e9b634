// Body templates of webhook targets (SMS gateways and other services that want their own
// request body): text with {{placeholder}} fields.
//
// Placeholders (white space inside the braces is allowed: "{{ title }}"):
//   {{title}}       the notice's subject ("You've lost power! (Home)")
//   {{message}}     the short message, one line per item (dag/notify/render.hpp)
//   {{device}}      the device name; for several dags their names joined by ", "
//   {{transition}}  power_lost | power_back | contact_lost | dag_back | battery_low, or
//                   "mixed" when the items differ
//   {{state}}       the user-state title (On, Off, Was On, Was Off) of the last item
//   {{time}}        the first item's time in the account's zone ("23:41 CET, Tue 24 Nov")
//   {{dashboard}}   the dashboard URL
// Anything else, including an unknown {{name}}, is copied as it is. Values are escaped for
// the body's content type: JSON string contents for JSON types (the template supplies the
// quotes: {"text": "{{message}}"}), form encoding for application/x-www-form-urlencoded
// (text=%7B...), nothing otherwise.
//
// Thread-safety: pure functions. Nothing blocks or throws (except std::bad_alloc).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "dag/notify/channel.hpp"

namespace dag::notify {

inline constexpr std::array<std::string_view, 7> kTemplatePlaceholders{
    "title", "message", "device", "transition", "state", "time", "dashboard"};

/// Longest template accepted by template_error (bytes).
inline constexpr std::size_t kMaxTemplateBytes = 8192;

enum class TemplateEscape {
  none,  ///< values as they are (text/plain and anything unknown)
  json,  ///< JSON string contents
  form,  ///< application/x-www-form-urlencoded
};

/// The escape for a Content-Type: json for application/json, text/json and any
/// "+json" type; form for application/x-www-form-urlencoded; none otherwise. Parameters
/// (";charset=...") and case are ignored.
TemplateEscape escape_for_content_type(std::string_view content_type);

/// A template's values, in kTemplatePlaceholders order.
using TemplateValues = std::array<std::string, kTemplatePlaceholders.size()>;

/// The values of a notice (above).
TemplateValues template_values(const Notice& notice);

/// `tmpl` with every known placeholder replaced by its escaped value.
std::string expand_template(std::string_view tmpl, const TemplateValues& values,
                            TemplateEscape escape);

/// nullopt when `tmpl` is fit as a body template (where targets are entered: API, CLI),
/// else the reason: at most kMaxTemplateBytes, valid UTF-8 without control characters
/// other than tab, CR and LF, and every "{{" closed by "}}" around a known placeholder.
std::optional<std::string> template_error(std::string_view tmpl);

/// nullopt when `content_type` is fit as a webhook body's Content-Type: "type/subtype"
/// with optional parameters, printable ASCII, at most 128 bytes (no CR/LF).
std::optional<std::string> content_type_error(std::string_view content_type);

}  // namespace dag::notify
