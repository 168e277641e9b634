#include "dag/notify/template.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "dag/common/utf8.hpp"
#include "dag/notify/mime.hpp"
#include "dag/notify/render.hpp"

namespace dag::notify {
namespace {

std::string lower(std::string_view s) {
  std::string out{s};
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

std::string_view trim(std::string_view s, std::string_view blanks = " \t") {
  const auto first = s.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(blanks);
  return s.substr(first, last - first + 1);
}

std::optional<std::size_t> placeholder_index(std::string_view name) {
  const auto* const it =
      std::find(kTemplatePlaceholders.begin(), kTemplatePlaceholders.end(), name);
  if (it == kTemplatePlaceholders.end()) return std::nullopt;
  return static_cast<std::size_t>(it - kTemplatePlaceholders.begin());
}

/// A "{{ name }}" at `open` (which points at "{{"): the placeholder's index and the
/// position after its "}}", or nullopt when it is not a known placeholder.
struct Match {
  std::size_t index;
  std::size_t end;
};
std::optional<Match> match_at(std::string_view tmpl, std::size_t open) {
  const auto close = tmpl.find("}}", open + 2);
  if (close == std::string_view::npos) return std::nullopt;
  const auto index = placeholder_index(trim(tmpl.substr(open + 2, close - open - 2)));
  if (!index) return std::nullopt;
  return Match{*index, close + 2};
}

}  // namespace

TemplateEscape escape_for_content_type(std::string_view content_type) {
  const std::string type = lower(trim(content_type.substr(0, content_type.find(';'))));
  if (type == "application/json" || type == "text/json" ||
      (type.size() > 5 && type.ends_with("+json"))) {
    return TemplateEscape::json;
  }
  if (type == "application/x-www-form-urlencoded") return TemplateEscape::form;
  return TemplateEscape::none;
}

TemplateValues template_values(const Notice& notice) {
  TemplateValues v;
  v[0] = notice_subject(notice);
  v[1] = notice_message(notice);
  std::vector<std::string> names;
  for (const auto& item : notice.items) {
    std::string name = item.device_name.empty() ? "Your dag" : item.device_name;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  v[2] = fmt::format("{}", fmt::join(names, ", "));
  if (!notice.items.empty()) {
    const auto first = notice.items.front().transition;
    const bool same = std::all_of(notice.items.begin(), notice.items.end(),
                                  [first](const Item& i) { return i.transition == first; });
    v[3] = same ? std::string{store::to_string(first)} : std::string{"mixed"};
    v[4] = std::string{protocol::title(notice.items.back().user_state)};
    v[5] = format_short(to_local_time(notice.items.front().observed_at_ms, notice.time_zone));
  }
  v[6] = notice.dashboard_url;
  return v;
}

std::string expand_template(std::string_view tmpl, const TemplateValues& values,
                            TemplateEscape escape) {
  std::string out;
  out.reserve(tmpl.size() + 256);
  std::size_t pos = 0;
  while (pos < tmpl.size()) {
    const auto open = tmpl.find("{{", pos);
    if (open == std::string_view::npos) {
      out += tmpl.substr(pos);
      break;
    }
    out += tmpl.substr(pos, open - pos);
    const auto match = match_at(tmpl, open);
    if (!match) {
      // Not a placeholder: keep one brace and look again from the next (so "{{{title}}}"
      // becomes "{" + title + "}").
      out += '{';
      pos = open + 1;
      continue;
    }
    const std::string& value = values.at(match->index);
    switch (escape) {
      case TemplateEscape::none: out += value; break;
      case TemplateEscape::json: out += mime::json_escape(value); break;
      case TemplateEscape::form: out += mime::form_encode(value); break;
    }
    pos = match->end;
  }
  return out;
}

std::optional<std::string> template_error(std::string_view tmpl) {
  if (tmpl.empty()) return "the template is empty";
  if (tmpl.size() > kMaxTemplateBytes) {
    return fmt::format("the template is longer than {} bytes", kMaxTemplateBytes);
  }
  for (std::size_t i = 0; i < tmpl.size();) {
    char32_t cp = 0;
    const auto n = utf8::decode(tmpl, i, cp);
    if (n == 0) return "the template is not valid UTF-8";
    const auto b = static_cast<unsigned char>(tmpl[i]);
    if (n == 1 && (b < 0x20 || b == 0x7F) && b != '\t' && b != '\r' && b != '\n') {
      return "the template contains a control character";
    }
    i += n;
  }
  std::size_t pos = 0;
  for (;;) {
    const auto open = tmpl.find("{{", pos);
    if (open == std::string_view::npos) return std::nullopt;
    if (const auto match = match_at(tmpl, open)) {
      pos = match->end;
      continue;
    }
    if (open + 2 < tmpl.size() && tmpl[open + 2] == '{') {  // "{{{name}}}"
      pos = open + 1;
      continue;
    }
    const auto close = tmpl.find("}}", open + 2);
    if (close == std::string_view::npos) return R"(a "{{" is not closed by "}}")";
    const auto name = tmpl.substr(open + 2, std::min<std::size_t>(close - open - 2, 40));
    return fmt::format("unknown placeholder {{{{{}}}}} (known: {})", name,
                       fmt::join(kTemplatePlaceholders, ", "));
  }
}

std::optional<std::string> content_type_error(std::string_view content_type) {
  if (content_type.empty()) return "the content type is empty";
  if (content_type.size() > 128) return "the content type is longer than 128 characters";
  for (const char c : content_type) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) return "the content type contains a character that is not allowed";
  }
  const auto type = trim(content_type.substr(0, content_type.find(';')));
  const auto slash = type.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == type.size() ||
      type.find_first_of(" \t\"(),:<>?@[\\]{}=") != std::string_view::npos ||
      type.find('/', slash + 1) != std::string_view::npos) {
    return "the content type must look like type/subtype, e.g. application/json";
  }
  return std::nullopt;
}

}  // namespace dag::notify
