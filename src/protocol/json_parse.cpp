#include "json_parse.hpp"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

namespace dag::protocol::detail {

namespace {

using nlohmann::json;

class Parser {
 public:
  Parser(const char* begin, const char* end, ParseInfo* info) : p_(begin), end_(end), info_(info) {}

  bool parse(json& out) {
    json* target = &out;
    // Containers still open, innermost last. Pointers stay valid: an object's members
    // live in map nodes, and an array only grows after its last element is complete.
    std::vector<json*> open;
    while (true) {
      // A value goes into *target.
      skip_ws();
      if (p_ == end_) return false;
      if (open.size() == 1 && member_key_ != nullptr) {
        member_start_ = p_;
        member_ws_ = ws_;
      }
      switch (*p_) {
        case '{':
          ++p_;
          *target = json::object();
          skip_ws();
          if (p_ != end_ && *p_ == '}') {
            ++p_;
            break;
          }
          open.push_back(target);
          target = next_member(*target, open.size() == 1);
          if (target == nullptr) return false;
          continue;
        case '[':
          ++p_;
          *target = json::array();
          skip_ws();
          if (p_ != end_ && *p_ == ']') {
            ++p_;
            break;
          }
          open.push_back(target);
          target = &target->get_ref<json::array_t&>().emplace_back();
          continue;
        case '"': {
          std::string text;
          if (!string(text)) return false;
          *target = std::move(text);
          break;
        }
        case 't':
          if (!literal("true")) return false;
          *target = true;
          break;
        case 'f':
          if (!literal("false")) return false;
          *target = false;
          break;
        case 'n':
          if (!literal("null")) return false;
          *target = nullptr;
          break;
        default:
          if (!number(*target)) return false;
      }

      // The value is complete: close containers until one continues.
      while (true) {
        if (open.size() == 1 && member_start_ != nullptr) {
          if (info_ != nullptr) {
            info_->members.push_back(MemberSpan{
                *member_key_,
                std::string_view(member_start_, static_cast<std::size_t>(p_ - member_start_)),
                ws_ - member_ws_});
          }
          member_start_ = nullptr;
          member_key_ = nullptr;
        }
        skip_ws();
        if (open.empty()) return p_ == end_;
        if (p_ == end_) return false;
        json& container = *open.back();
        char c = *p_++;
        if (c == ',') {
          if (container.is_object()) {
            skip_ws();
            target = next_member(container, open.size() == 1);
            if (target == nullptr) return false;
          } else {
            target = &container.get_ref<json::array_t&>().emplace_back();
          }
          break;
        }
        if (c != (container.is_object() ? '}' : ']')) return false;
        open.pop_back();
      }
    }
  }

 private:
  void skip_ws() {
    const char* from = p_;
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
    ws_ += static_cast<std::size_t>(p_ - from);
  }

  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // `"key":` of the next member; returns where its value goes (the last duplicate wins).
  // `top` tells that the object is the top-level one, whose member spans are recorded.
  json* next_member(json& object, bool top) {
    if (p_ == end_ || *p_ != '"') return nullptr;
    std::string key;
    if (!string(key)) return nullptr;
    skip_ws();
    if (p_ == end_ || *p_ != ':') return nullptr;
    ++p_;
    // Keys usually arrive sorted (serializers such as nlohmann's write them so): hinting
    // the end makes those insertions constant time.
    auto& members = object.get_ref<json::object_t&>();
    const std::size_t before = members.size();
    auto it = members.try_emplace(members.end(), std::move(key));
    if (members.size() == before) {
      it->second = nullptr;
      if (info_ != nullptr) info_->duplicate_keys = true;
    }
    if (top) member_key_ = &it->first;
    return &it->second;
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(std::uint32_t& out) {
    if (end_ - p_ < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int digit = hex(*p_++);
      if (digit < 0) return false;
      out = (out << 4) | static_cast<std::uint32_t>(digit);
    }
    return true;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  // At the opening quote. Appends the decoded string.
  bool string(std::string& out) {
    ++p_;
    while (true) {
      const char* run = p_;
      while (p_ != end_ && *p_ != '"' && *p_ != '\\' && static_cast<unsigned char>(*p_) >= 0x20) {
        ++p_;
      }
      out.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) return false;
      char c = *p_++;
      if (c == '"') return true;
      if (c != '\\') return false;  // a raw control character
      if (p_ == end_) return false;
      switch (*p_++) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            std::uint32_t low = 0;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
            p_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool number(json& out) {
    const char* start = p_;
    bool negative = false;
    if (*p_ == '-') {
      negative = true;
      ++p_;
    }
    if (p_ == end_ || !digit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    bool integral = true;
    if (p_ != end_ && *p_ == '.') {
      integral = false;
      ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      integral = false;
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !digit(*p_)) return false;
      while (p_ != end_ && digit(*p_)) ++p_;
    }
    if (integral) {
      if (negative) {
        std::int64_t value = 0;
        auto result = std::from_chars(start, p_, value);
        if (result.ec == std::errc{} && result.ptr == p_) {
          out = value;
          return true;
        }
      } else {
        std::uint64_t value = 0;
        auto result = std::from_chars(start, p_, value);
        if (result.ec == std::errc{} && result.ptr == p_) {
          out = value;
          return true;
        }
      }
      // Out of integer range: a double, as nlohmann does.
    }
    double value = 0;
    auto result = std::from_chars(start, p_, value);
    if (result.ec == std::errc::result_out_of_range) {
      // Underflow is fine (a tiny number or zero); overflow has no JSON value.
      std::string copy(start, p_);
      value = std::strtod(copy.c_str(), nullptr);
      if (!std::isfinite(value)) return false;
    } else if (result.ec != std::errc{} || result.ptr != p_) {
      return false;
    }
    out = value;
    return true;
  }

  const char* p_;
  const char* end_;
  ParseInfo* info_;
  std::size_t ws_ = 0;                       // whitespace bytes skipped so far
  const std::string* member_key_ = nullptr;  // top-level member being parsed
  const char* member_start_ = nullptr;       // where its value starts
  std::size_t member_ws_ = 0;                // ws_ at that point
};

}  // namespace

std::optional<nlohmann::json> parse_json(std::string_view text, ParseInfo* info) {
  nlohmann::json out;
  Parser parser(text.data(), text.data() + text.size(), info);
  if (!parser.parse(out)) return std::nullopt;
  return out;
}

}  // namespace dag::protocol::detail
