#include "dag/notify/mime.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <vector>

#include "dag/common/encoding.hpp"
#include "dag/common/validate.hpp"

namespace dag::notify::mime {
namespace {

constexpr std::string_view kHex = "0123456789ABCDEF";
constexpr std::string_view kLowerHex = "0123456789abcdef";

// Length of the UTF-8 sequence starting at s[i]; 1 for a byte that does not start a
// complete, well-formed sequence (it is then carried alone).
std::size_t sequence_length(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  std::size_t n = 1;
  if (b >= 0xC2 && b <= 0xDF) {
    n = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    n = 3;
  } else if (b >= 0xF0 && b <= 0xF4) {
    n = 4;
  }
  if (i + n > s.size()) return 1;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  return n;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool is_atext(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view{"!#$%&'*+-/=?^_`{|}~"}.find(c) != std::string_view::npos;
}

void append_escaped(std::string& out, unsigned char byte) {
  out += '=';
  out += kHex[byte >> 4];
  out += kHex[byte & 0x0F];
}

// Folding white space between words, as in "Subject: a\r\n b".
constexpr std::string_view kFold = "\r\n ";
constexpr std::size_t kLineGoal = 78;
constexpr std::size_t kLongestWord = 900;     // well within the 998-octet line limit
constexpr std::size_t kLongestSpaceRun = 40;  // spaces never fold, so runs are bounded too

}  // namespace

bool is_plain_header_text(std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7E) return false;
  }
  return text.find("=?") == std::string_view::npos;
}

std::string encode_words(std::string_view text, std::string_view separator) {
  // 45 bytes make 60 base64 characters: "=?UTF-8?B?" + 60 + "?=" = 72 <= 75.
  constexpr std::size_t kChunk = 45;
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = i;
    while (end < text.size()) {
      const std::size_t n = sequence_length(text, end);
      if (end + n - i > kChunk) break;
      end += n;
    }
    if (!out.empty()) out += separator;
    out += "=?UTF-8?B?";
    out += base64_encode(text.substr(i, end - i));
    out += "?=";
    i = end;
  }
  return out;
}

std::string http_header_text(std::string_view text) {
  return is_plain_header_text(text) ? std::string{text} : encode_words(text, " ");
}

std::string unstructured_header(std::string_view name, std::string_view value) {
  std::string out{name};
  out += ": ";
  bool plain = is_plain_header_text(value);
  std::vector<std::string_view> words;
  if (plain && value.find(std::string(kLongestSpaceRun + 1, ' ')) != std::string_view::npos) {
    plain = false;
  }
  if (plain) {
    std::size_t start = 0;
    for (;;) {
      const auto space = value.find(' ', start);
      words.push_back(value.substr(start, space - start));
      if (words.back().size() > kLongestWord) plain = false;
      if (space == std::string_view::npos) break;
      start = space + 1;
    }
  }
  if (!plain) {
    out += encode_words(value, kFold);
    out += "\r\n";
    return out;
  }
  std::size_t line = out.size();  // length of the current physical line
  for (std::size_t i = 0; i < words.size(); ++i) {
    const auto word = words[i];
    if (i == 0) {
      out += word;
      line += word.size();
    } else if (!word.empty() && line + 1 + word.size() > kLineGoal && line > name.size() + 2) {
      out += kFold;
      out += word;
      line = 1 + word.size();
    } else {
      out += ' ';
      out += word;
      line += 1 + word.size();
    }
  }
  out += "\r\n";
  return out;
}

std::string quoted_printable(std::string_view text) {
  constexpr std::size_t kMax = 75;  // plus the soft break's '=' makes 76
  std::string out;
  out.reserve(text.size() + text.size() / 4 + 8);
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto nl = text.find('\n', pos);
    const bool last = nl == std::string_view::npos;
    if (last) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r' && !last) line.remove_suffix(1);
    if (last && line.empty() && pos > 0) break;  // the text ended with a line break
    std::string current;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const auto u = static_cast<unsigned char>(line[i]);
      const bool at_end = i + 1 == line.size();
      std::string token;
      const bool inner_blank = (u == ' ' || u == '\t') && !at_end;
      if (inner_blank || (u >= 33 && u <= 126 && u != '=')) {
        token = static_cast<char>(u);
      } else {
        append_escaped(token, u);
      }
      if (current.size() + token.size() > kMax) {
        out += current;
        out += "=\r\n";
        current.clear();
      }
      // A '.' opening a line could be taken for SMTP's end of data by a careless relay.
      if (current.empty() && token == ".") token = "=2E";
      current += token;
    }
    out += current;
    out += "\r\n";
    if (last) break;
    pos = nl + 1;
  }
  return out;
}

Result<Mailbox> parse_mailbox(std::string_view text) {
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      return fail(Errc::invalid_argument, "the mailbox contains a control character");
    }
  }
  text = trim(text);
  Mailbox box;
  const auto lt = text.rfind('<');
  if (lt == std::string_view::npos) {
    if (text.find('>') != std::string_view::npos) {
      return fail(Errc::invalid_argument, "the mailbox has a '>' without '<'");
    }
    box.address = std::string{text};
  } else {
    const auto gt = text.find('>', lt);
    if (gt == std::string_view::npos || gt + 1 != text.size()) {
      return fail(Errc::invalid_argument, "the mailbox must end with <address>");
    }
    box.address = std::string{trim(text.substr(lt + 1, gt - lt - 1))};
    std::string_view name = trim(text.substr(0, lt));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
      for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '\\' && i + 1 < name.size()) ++i;
        box.display_name += name[i];
      }
    } else {
      box.display_name = std::string{name};
    }
  }
  if (auto why = validate::email_error(box.address)) {
    return fail(Errc::invalid_argument, "the mailbox's address: " + *why);
  }
  return box;
}

std::string format_mailbox(const Mailbox& mailbox) {
  if (mailbox.display_name.empty()) return mailbox.address;
  std::string out;
  const std::string_view name = mailbox.display_name;
  if (!is_plain_header_text(name)) {
    out = encode_words(name, kFold);
  } else {
    bool atoms = true;
    for (const char c : name) atoms = atoms && (c == ' ' || is_atext(c));
    if (atoms) {
      out = name;
    } else {
      out = "\"";
      for (const char c : name) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    }
  }
  out += " <";
  out += mailbox.address;
  out += '>';
  return out;
}

std::string_view domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view{} : address.substr(at + 1);
}

std::string json_escape(std::string_view text) {
  const std::string quoted = nlohmann::json(std::string{text})
                                 .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

std::string form_encode(std::string_view text) {
  std::string out;
  out.reserve(text.size() * 3);
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0x0F];
    }
  }
  return out;
}

std::string hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto u = static_cast<unsigned char>(c);
    out += kLowerHex[u >> 4];
    out += kLowerHex[u & 0x0F];
  }
  return out;
}

}  // namespace dag::notify::mime
