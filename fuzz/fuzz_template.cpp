// libFuzzer target for what dag::notify makes of text that account owners enter: webhook
// body templates and content types (parsed at delivery), and the header and body encoders
// that carry device and account names into mail and HTTP headers. Input:
// "<selector byte><text>". Must never crash; checks the invariants the channels rely on:
//   - a template without "{{" expands to itself, whatever the escape;
//   - an encoded header never starts a line that is not a continuation (no injection),
//     and encoded-words decode to the input;
//   - quoted-printable lines stay within 76 characters and carry no bare CR or LF;
//   - a parsed mailbox re-formats without CR or LF.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/encoding.hpp"
#include "dag/notify/mime.hpp"
#include "dag/notify/template.hpp"

namespace {

using dag::notify::TemplateEscape;
namespace mime = dag::notify::mime;

void check(bool condition) {
  if (!condition) std::abort();
}

void fuzz_template(std::string_view text) {
  (void)dag::notify::template_error(text);
  (void)dag::notify::content_type_error(text);
  (void)dag::notify::escape_for_content_type(text);
  static const dag::notify::TemplateValues values{"You've lost power! (\"Hütte\" {{title}})",
                                                  "line 1\nline 2 & more\t\x01",
                                                  "Hütte",
                                                  "power_lost",
                                                  "Off",
                                                  "23:41 CET, Tue 24 Nov",
                                                  "https://dags.example.com/?a=1&b=2"};
  for (const auto escape : {TemplateEscape::none, TemplateEscape::json, TemplateEscape::form}) {
    const std::string out = dag::notify::expand_template(text, values, escape);
    if (text.find("{{") == std::string_view::npos) check(out == text);
  }
}

// Lines of a CRLF text; a bare CR or LF anywhere fails the check.
std::vector<std::string_view> crlf_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto end = text.find("\r\n");
    check(end != std::string_view::npos);  // everything ends with CRLF
    const auto line = text.substr(0, end);
    check(line.find_first_of("\r\n") == std::string_view::npos);
    lines.push_back(line);
    text.remove_prefix(end + 2);
  }
  return lines;
}

std::string decode_words(std::string_view text) {
  std::string out;
  std::size_t pos = 0;
  while ((pos = text.find("=?UTF-8?B?", pos)) != std::string_view::npos) {
    const auto start = pos + 10;
    const auto end = text.find("?=", start);
    check(end != std::string_view::npos);
    auto decoded = dag::base64_decode(text.substr(start, end - start));
    check(decoded.has_value());
    out += *decoded;
    pos = end + 2;
  }
  return out;
}

void fuzz_header(std::string_view text) {
  const std::string header = mime::unstructured_header("Subject", text);
  const auto lines = crlf_lines(header);
  check(!lines.empty() && lines.front().starts_with("Subject: "));
  for (std::size_t i = 1; i < lines.size(); ++i) check(lines[i].starts_with(" "));
  for (const auto line : lines) check(line.size() <= 998);
  if (!mime::is_plain_header_text(text)) {
    check(decode_words(header) == text);
    const std::string http = mime::http_header_text(text);
    check(http.find_first_of("\r\n") == std::string::npos);
  }
}

void fuzz_quoted_printable(std::string_view text) {
  const std::string encoded = mime::quoted_printable(text);
  for (const auto line : crlf_lines(encoded)) {
    check(line.size() <= 76);
    check(!line.starts_with("."));
  }
}

void fuzz_mailbox(std::string_view text) {
  auto box = mime::parse_mailbox(text);
  if (!box) return;
  const std::string formatted = mime::format_mailbox(*box);
  // Line breaks only as folding ("\r\n "), never one that could start a header.
  for (std::size_t i = 0; i < formatted.size(); ++i) {
    if (formatted[i] == '\r') check(formatted.compare(i, 3, "\r\n ") == 0);
    if (formatted[i] == '\n') check(i > 0 && formatted[i - 1] == '\r');
  }
  (void)mime::domain_of(box->address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 20'000) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: fuzz_template(text); break;
    case 1: fuzz_header(text); break;
    case 2: fuzz_quoted_printable(text); break;
    case 3: fuzz_mailbox(text); break;
  }
  return 0;
}
