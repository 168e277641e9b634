#include "dag/common/validate.hpp"

#include <cstdint>

#include "dag/common/utf8.hpp"

namespace dag::validate {
namespace {

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

std::optional<std::string> email_error(std::string_view address) {
  if (address.empty()) return "the address is empty";
  if (address.size() > 254) return "the address is longer than 254 characters";
  const auto at = address.rfind('@');
  if (at == std::string_view::npos) return "the address has no '@'";
  const auto local = address.substr(0, at);
  const auto domain = address.substr(at + 1);
  if (local.empty() || local.size() > 64) return "the part before '@' must have 1..64 characters";
  for (const char c : local) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '"' || c == '<' || c == '>' || c == ',' || c == '@' ||
        c == '(' || c == ')' || c == ';' || c == '\\' || c == '[' || c == ']') {
      return "the part before '@' contains a character that is not allowed";
    }
  }
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos) {
    return "the part before '@' has a misplaced '.'";
  }
  if (domain.find('.') == std::string_view::npos) return "the domain has no '.'";
  std::size_t start = 0;
  while (start <= domain.size()) {
    auto end = domain.find('.', start);
    if (end == std::string_view::npos) end = domain.size();
    const auto label = domain.substr(start, end - start);
    if (label.empty() || label.size() > 63) return "the domain has an empty or too long label";
    if (label.front() == '-' || label.back() == '-')
      return "a domain label starts or ends with '-'";
    for (const char c : label) {
      if (!is_label_char(c)) return "the domain contains a character that is not allowed";
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> display_name_error(std::string_view name, std::size_t max_chars) {
  std::size_t chars = 0;
  bool visible = false;
  for (std::size_t i = 0; i < name.size();) {
    char32_t cp = 0;
    const auto n = utf8::decode(name, i, cp);
    if (n == 0) return "the name is not valid UTF-8";
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return "the name contains a control character";
    if (cp != ' ') visible = true;
    ++chars;
    i += n;
  }
  if (chars == 0 || !visible) return "the name is empty";
  if (chars > max_chars) {
    return "the name is longer than " + std::to_string(max_chars) + " characters";
  }
  return std::nullopt;
}

}  // namespace dag::validate

namespace dag::validate {

std::optional<std::string> url_error(std::string_view url) {
  if (url.empty()) return "the URL is empty";
  if (url.size() > 512) return "the URL is longer than 512 characters";
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
      return "the URL contains a space, a control character or a non-ASCII character";
    }
  }
  const auto colon = url.find("://");
  if (colon == std::string_view::npos) return "the URL must start with http:// or https://";
  std::string scheme{url.substr(0, colon)};
  for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (scheme != "http" && scheme != "https") return "the URL must start with http:// or https://";
  const auto rest = url.substr(colon + 3);
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string_view::npos) {
    return "the URL must not contain a user name or password";
  }
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return "the URL's IPv6 address lacks its ']'";
    const auto inside = host.substr(1, close - 1);
    if (inside.empty() ||
        inside.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return "the URL's IPv6 address is malformed";
    }
    const auto after = host.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "the URL's host is malformed";
      port = after.substr(1);
      if (port.empty()) return "the URL's port is empty";
    }
    host = host.substr(0, close + 1);
  } else {
    const auto p = host.find(':');
    if (p != std::string_view::npos) {
      port = host.substr(p + 1);
      host = host.substr(0, p);
      if (port.empty()) return "the URL's port is empty";
    }
    if (host.empty()) return "the URL has no host";
    if (host.size() > 253) return "the URL's host is longer than 253 characters";
    for (const char c : host) {
      if (!is_label_char(c) && c != '.' && c != '_') {
        return "the URL's host contains a character that is not allowed";
      }
    }
    if (host.front() == '.' || host.find("..") != std::string_view::npos) {
      return "the URL's host has a misplaced '.'";
    }
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos) {
      return "the URL's port is not a number";
    }
    const int n = std::stoi(std::string{port});
    if (n < 1 || n > 65535) return "the URL's port is out of range (1..65535)";
  }
  return std::nullopt;
}

}  // namespace dag::validate
