#include "dag/protocol/shadow.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "json_parse.hpp"

namespace dag::protocol {

using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Errors: the single mapping from ShadowErrc to AWS code and message.

namespace {

struct ErrcInfo {
  int status;
  std::string_view message;
};

constexpr ErrcInfo info(ShadowErrc errc) noexcept {
  switch (errc) {
    case ShadowErrc::invalid_json: return {400, "Invalid JSON"};
    case ShadowErrc::missing_state: return {400, "Missing required node: state"};
    case ShadowErrc::state_not_object: return {400, "State node must be an object"};
    case ShadowErrc::desired_not_object: return {400, "Desired node must be an object"};
    case ShadowErrc::reported_not_object: return {400, "Reported node must be an object"};
    case ShadowErrc::invalid_version: return {400, "Invalid version"};
    case ShadowErrc::invalid_client_token: return {400, "Invalid clientToken"};
    case ShadowErrc::too_deep:
      return {400, "JSON contains too many levels of nesting; maximum is 6"};
    case ShadowErrc::invalid_state_node: return {400, "State contains an invalid node"};
    case ShadowErrc::not_found: return {404, "No shadow exists with name"};
    case ShadowErrc::version_conflict: return {409, "Version conflict"};
    case ShadowErrc::payload_too_large:
      return {413, "The payload exceeds the maximum size allowed"};
    case ShadowErrc::unsupported_encoding:
      return {415, "Unsupported documented encoding; supported encoding is UTF-8"};
    case ShadowErrc::too_many_requests: return {429, "Too many requests"};
    case ShadowErrc::internal: return {500, "Internal service failure"};
  }
  return {500, "Internal service failure"};
}

}  // namespace

int http_status(ShadowErrc errc) noexcept {
  return info(errc).status;
}

std::string_view default_message(ShadowErrc errc) noexcept {
  return info(errc).message;
}

ShadowError make_error(ShadowErrc errc, std::optional<std::string> client_token,
                       std::string_view thing) {
  ShadowError error;
  error.errc = errc;
  error.code = http_status(errc);
  error.message = std::string(default_message(errc));
  if (errc == ShadowErrc::not_found) {
    error.message.append(": '").append(thing).append("'");
  }
  error.client_token = std::move(client_token);
  return error;
}

ShadowError too_many_requests(std::optional<std::string> client_token) {
  return make_error(ShadowErrc::too_many_requests, std::move(client_token));
}

// ---------------------------------------------------------------------------------------
// UTF-8

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    // Payloads are mostly ASCII: skip eight such bytes at a time.
    while (end - p >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, p, sizeof word);
      if ((word & 0x8080808080808080ULL) != 0) break;
      p += 8;
    }
    if (p == end) break;
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    std::size_t extra = 0;
    std::uint32_t min = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, min = 0x80, cp = c & 0x1Fu;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, min = 0x800, cp = c & 0x0Fu;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, min = 0x10000, cp = c & 0x07u;
    } else {
      return false;  // continuation byte first, or 0xF8..0xFF
    }
    if (static_cast<std::size_t>(end - p) <= extra) return false;
    for (std::size_t i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Writing JSON text directly, so that replies are assembled without building trees.

namespace {

// Appends compact JSON to one string. Written by hand rather than with nlohmann's
// serializer because replies are assembled from cached pieces and this writer is on the
// hot path of every update: it appends runs of plain characters at once and never
// throws. Strings are copied byte for byte; every string reaching it was validated as
// UTF-8 on the way in.
// The containers under a json value. Hot loops iterate these directly: nlohmann's own
// iterators dispatch on the value type at every step.
const json::object_t& members(const json& v) {
  return v.get_ref<const json::object_t&>();
}
json::object_t& members(json& v) {
  return v.get_ref<json::object_t&>();
}
const json::array_t& elements(const json& v) {
  return v.get_ref<const json::array_t&>();
}

constexpr std::array<bool, 256> kNeedsEscape = [] {
  std::array<bool, 256> table{};
  for (std::size_t c = 0; c < 0x20; ++c) table[c] = true;
  table['"'] = true;
  table['\\'] = true;
  return table;
}();

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  Writer& raw(std::string_view text) {
    out_.append(text);
    return *this;
  }
  Writer& value(const json& v) {
    switch (v.type()) {
      case json::value_t::object: {
        out_.push_back('{');
        bool first = true;
        for (const auto& [key, child] : members(v)) {
          if (!first) out_.push_back(',');
          first = false;
          string(key);
          out_.push_back(':');
          value(child);
        }
        out_.push_back('}');
        break;
      }
      case json::value_t::array: {
        out_.push_back('[');
        bool first = true;
        for (const auto& element : elements(v)) {
          if (!first) out_.push_back(',');
          first = false;
          value(element);
        }
        out_.push_back(']');
        break;
      }
      case json::value_t::string: string(v.get_ref<const std::string&>()); break;
      case json::value_t::boolean: out_.append(v.get<bool>() ? "true" : "false"); break;
      case json::value_t::number_integer: integer(v.get<std::int64_t>()); break;
      case json::value_t::number_unsigned: integer(v.get<std::uint64_t>()); break;
      case json::value_t::number_float: floating(v.get<double>()); break;
      default:  // null, and the binary/discarded kinds that parsing never produces
        out_.append("null");
    }
    return *this;
  }
  Writer& string(std::string_view s) {
    // Most strings are short keys with nothing to escape: one append.
    if (s.size() <= 62) {
      std::array<char, 64> buf;
      bool plain = true;
      for (char ch : s) plain = plain && !kNeedsEscape[static_cast<unsigned char>(ch)];
      if (plain) {
        buf[0] = '"';
        std::copy(s.begin(), s.end(), buf.begin() + 1);
        buf[s.size() + 1] = '"';
        out_.append(buf.data(), s.size() + 2);
        return *this;
      }
    }
    out_.push_back('"');
    std::size_t run = 0;  // start of the pending run of characters needing no escape
    for (std::size_t i = 0; i < s.size(); ++i) {
      auto c = static_cast<unsigned char>(s[i]);
      if (!kNeedsEscape[c]) continue;
      out_.append(s.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"': out_.append("\\\""); break;
        case '\\': out_.append("\\\\"); break;
        case '\b': out_.append("\\b"); break;
        case '\f': out_.append("\\f"); break;
        case '\n': out_.append("\\n"); break;
        case '\r': out_.append("\\r"); break;
        case '\t': out_.append("\\t"); break;
        default: {
          static constexpr char kHex[] = "0123456789abcdef";
          const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
          out_.append(escape, sizeof escape);
        }
      }
    }
    out_.append(s.data() + run, s.size() - run);
    out_.push_back('"');
    return *this;
  }
  template <class Int>
  Writer& integer(Int n) {
    std::array<char, 24> buf{};
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), n);
    (void)ec;  // 24 bytes hold any 64-bit integer
    out_.append(buf.data(), end);
    return *this;
  }
  // Shortest text that reads back as the same double, kept a float on the way back
  // (".0" added to integral values) as nlohmann does.
  Writer& floating(double d) {
    if (!std::isfinite(d)) {
      out_.append("null");
      return *this;
    }
    std::array<char, 32> buf{};
    auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
    (void)ec;  // 32 bytes hold the shortest form of any double
    std::string_view text(buf.data(), static_cast<std::size_t>(end - buf.data()));
    out_.append(text);
    if (text.find_first_of(".eE") == std::string_view::npos) out_.append(".0");
    return *this;
  }
  // `{"timestamp":T}`. A section's leaves mostly share a few timestamps, so the text of
  // the last one is kept and reused.
  Writer& stamp(std::int64_t t) {
    if (t != stamp_time_ || stamp_text_.empty()) {
      stamp_text_.clear();
      Writer(stamp_text_).raw("{\"timestamp\":").integer(t).raw("}");
      stamp_time_ = t;
    }
    out_.append(stamp_text_);
    return *this;
  }
  // `"clientToken":"..."` preceded by a comma, when there is a token.
  Writer& client_token(const std::optional<std::string>& token) {
    if (token) raw(",\"clientToken\":").string(*token);
    return *this;
  }

 private:
  std::string& out_;
  std::int64_t stamp_time_ = 0;
  std::string stamp_text_;
};

// Metadata is kept compact: a tree mirroring the state whose leaves are the epoch-second
// timestamps themselves (arrays mirror element by element). On the wire every leaf
// becomes {"timestamp":T}, as AWS publishes it.
void write_metadata(Writer& w, const json& meta) {
  switch (meta.type()) {
    case json::value_t::object: {
      w.raw("{");
      bool first = true;
      for (const auto& [key, child] : members(meta)) {
        if (!first) w.raw(",");
        first = false;
        w.string(key).raw(":");
        write_metadata(w, child);
      }
      w.raw("}");
      break;
    }
    case json::value_t::array: {
      w.raw("[");
      bool first = true;
      for (const auto& child : elements(meta)) {
        if (!first) w.raw(",");
        first = false;
        write_metadata(w, child);
      }
      w.raw("]");
      break;
    }
    default: w.stamp(meta.is_number_integer() ? meta.get<std::int64_t>() : 0);
  }
}

// Metadata of a request's state, straight from the request: every leaf, including a
// null that deletes a field, gets {"timestamp":now}.
void write_request_metadata(Writer& w, const json& value, std::string_view stamp) {
  if (value.is_object()) {
    w.raw("{");
    bool first = true;
    for (const auto& [key, child] : members(value)) {
      if (!first) w.raw(",");
      first = false;
      w.string(key).raw(":");
      write_request_metadata(w, child, stamp);
    }
    w.raw("}");
  } else if (value.is_array()) {
    w.raw("[");
    bool first = true;
    for (const auto& child : elements(value)) {
      if (!first) w.raw(",");
      first = false;
      write_request_metadata(w, child, stamp);
    }
    w.raw("]");
  } else {
    w.raw(stamp);
  }
}

json metadata_for(const json& value, std::int64_t now) {
  if (value.is_array()) {
    json meta = json::array();
    meta.get_ref<json::array_t&>().reserve(value.size());
    for (const auto& element : elements(value)) meta.push_back(metadata_for(element, now));
    return meta;
  }
  if (value.is_object()) {  // only inside arrays; objects at field level are merged
    json meta = json::object();
    auto& out = members(meta);
    for (const auto& [key, child] : members(value)) out.emplace(key, metadata_for(child, now));
    return meta;
  }
  json leaf = now;  // not `return {now}`: braces would make a one-element array
  return leaf;
}

// AWS form ({"timestamp":T} leaves) of a compact metadata tree.
json expand_metadata(const json& meta) {
  if (meta.is_object()) {
    json out = json::object();
    for (const auto& [key, child] : meta.items()) out[key] = expand_metadata(child);
    return out;
  }
  if (meta.is_array()) {
    json out = json::array();
    for (const auto& child : meta) out.push_back(expand_metadata(child));
    return out;
  }
  return json{{"timestamp", meta}};
}

}  // namespace

std::string render_rejected(const ShadowError& error, std::int64_t now) {
  std::string out;
  out.reserve(96 + error.message.size());
  Writer w(out);
  w.raw("{\"code\":").integer(error.code).raw(",\"message\":").string(error.message);
  w.raw(",\"timestamp\":").integer(now).client_token(error.client_token).raw("}");
  return out;
}

// ---------------------------------------------------------------------------------------
// ShadowDocument

struct ShadowDocument::Section {
  json state;              // non-empty object
  json meta;               // compact metadata mirroring `state`
  std::string state_text;  // compact JSON of `state`
  std::string meta_text;   // AWS-form JSON of `meta`
};

namespace {

const json& null_json() {
  static const json kNull;
  return kNull;
}

// `like` (may be null) is the section this one replaces: its text sizes are a good
// guess for the new ones, saving the string from growing step by step.
std::shared_ptr<const ShadowDocument::Section> make_section(
    json state, json meta, const ShadowDocument::Section* like = nullptr) {
  if (!state.is_object() || state.empty()) return nullptr;
  auto section = std::make_shared<ShadowDocument::Section>();
  section->state = std::move(state);
  section->meta = std::move(meta);
  section->state_text.reserve(like != nullptr ? like->state_text.size() + 64 : 256);
  section->meta_text.reserve(like != nullptr ? like->meta_text.size() + 128 : 512);
  {
    Writer w(section->state_text);
    w.value(section->state);
  }
  Writer w(section->meta_text);
  write_metadata(w, section->meta);
  return section;
}

// Compares desired against reported; fills `delta`/`delta_meta` with what differs.
// Both desired and desired_meta are objects mirroring each other; reported may be null.
void compute_delta(const json& desired, const json& desired_meta, const json* reported, json& delta,
                   json& delta_meta) {
  const json::object_t* theirs_all =
      reported != nullptr && reported->is_object() ? &members(*reported) : nullptr;
  static const json::object_t kNoMetadata;
  const json::object_t& metas = desired_meta.is_object() ? members(desired_meta) : kNoMetadata;
  for (const auto& [key, mine] : members(desired)) {
    const json* theirs = nullptr;
    if (theirs_all != nullptr) {
      auto found = theirs_all->find(key);
      if (found != theirs_all->end()) theirs = &found->second;
    }
    auto meta_it = metas.find(key);
    const json& meta = meta_it != metas.end() ? meta_it->second : null_json();
    if (theirs != nullptr && mine.is_object() && theirs->is_object()) {
      json sub = json::object();
      json sub_meta = json::object();
      compute_delta(mine, meta, theirs, sub, sub_meta);
      if (!sub.empty()) {
        members(delta).emplace(key, std::move(sub));
        members(delta_meta).emplace(key, std::move(sub_meta));
      }
    } else if (theirs == nullptr || *theirs != mine) {
      members(delta).emplace(key, mine);
      members(delta_meta).emplace(key, meta);
    }
  }
}

void write_sections(Writer& w, const ShadowDocument::Section* desired,
                    const ShadowDocument::Section* reported, bool metadata) {
  w.raw("{");
  if (desired != nullptr) {
    w.raw("\"desired\":").raw(metadata ? desired->meta_text : desired->state_text);
  }
  if (reported != nullptr) {
    if (desired != nullptr) w.raw(",");
    w.raw("\"reported\":").raw(metadata ? reported->meta_text : reported->state_text);
  }
  w.raw("}");
}

}  // namespace

ShadowDocument::ShadowDocument() = default;

bool ShadowDocument::exists() const noexcept {
  return exists_;
}

std::uint64_t ShadowDocument::version() const noexcept {
  return version_;
}

const json& ShadowDocument::desired() const noexcept {
  return desired_ ? desired_->state : null_json();
}

const json& ShadowDocument::reported() const noexcept {
  return reported_ ? reported_->state : null_json();
}

json ShadowDocument::metadata() const {
  json out = json::object();
  if (desired_) out["desired"] = expand_metadata(desired_->meta);
  if (reported_) out["reported"] = expand_metadata(reported_->meta);
  return out;
}

std::optional<std::int64_t> ShadowDocument::timestamp_of(std::string_view path) const {
  // A JSON pointer walked by hand so that a malformed one cannot throw.
  auto next_token = [&path]() -> std::optional<std::string> {
    if (path.empty() || path.front() != '/') return std::nullopt;
    path.remove_prefix(1);
    std::size_t slash = path.find('/');
    std::string_view raw = path.substr(0, slash);
    path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '~') {
        if (i + 1 >= raw.size() || (raw[i + 1] != '0' && raw[i + 1] != '1')) return std::nullopt;
        token.push_back(raw[i + 1] == '0' ? '~' : '/');
        ++i;
      } else {
        token.push_back(raw[i]);
      }
    }
    return token;
  };
  auto section_name = next_token();
  if (!section_name) return std::nullopt;
  const Section* section = *section_name == "desired"    ? desired_.get()
                           : *section_name == "reported" ? reported_.get()
                                                         : nullptr;
  if (section == nullptr) return std::nullopt;
  const json* node = &section->meta;
  while (!path.empty()) {
    auto token = next_token();
    if (!token) return std::nullopt;
    if (node->is_object()) {
      auto it = node->find(*token);
      if (it == node->end()) return std::nullopt;
      node = &*it;
    } else if (node->is_array()) {
      std::size_t index = 0;
      const char* first = token->data();
      const char* last = first + token->size();
      auto [end, ec] = std::from_chars(first, last, index);
      if (ec != std::errc{} || end != last || first == last || index >= node->size()) {
        return std::nullopt;
      }
      node = &(*node)[index];
    } else {
      return std::nullopt;
    }
  }
  if (!node->is_number_integer()) return std::nullopt;
  return node->get<std::int64_t>();
}

json ShadowDocument::delta() const {
  if (!desired_) return nullptr;
  json delta = json::object();
  json delta_meta = json::object();
  compute_delta(desired_->state, desired_->meta, reported_ ? &reported_->state : nullptr, delta,
                delta_meta);
  if (delta.empty()) return nullptr;
  return delta;
}

std::size_t ShadowDocument::state_size() const noexcept {
  return (desired_ ? desired_->state_text.size() : 0) +
         (reported_ ? reported_->state_text.size() : 0);
}

// ---------------------------------------------------------------------------------------
// The engine

namespace {

// What a request said about its clientToken.
struct Token {
  std::optional<std::string> value;
  bool invalid = false;
};

Token read_client_token(const json& request) {
  Token token;
  auto it = request.find("clientToken");
  if (it == request.end()) return token;
  if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxClientTokenBytes) {
    token.invalid = true;
    return token;
  }
  token.value = it->get<std::string>();
  return token;
}

}  // namespace

std::optional<std::string> client_token_of(std::string_view payload) {
  if (payload.empty() || payload.size() > kMaxShadowPayloadBytes || !is_valid_utf8(payload)) {
    return std::nullopt;
  }
  auto request = detail::parse_json(payload);
  if (!request || !request->is_object()) return std::nullopt;
  Token token = read_client_token(*request);
  return token.invalid ? std::nullopt : std::move(token.value);
}

namespace {

// Checks one request section: depth of paths and nulls inside arrays. `depth` is the
// number of keys/indices from the section to `value`. Recursion stops at the limit, so
// hostile nesting cannot exhaust the stack.
std::optional<ShadowErrc> check_value(const json& value, int depth, bool in_array) {
  if (value.is_null() && in_array) return ShadowErrc::invalid_state_node;
  if (!value.is_object() && !value.is_array()) return std::nullopt;
  if (value.empty()) return std::nullopt;
  if (depth + 1 > kMaxShadowDepth) return ShadowErrc::too_deep;
  if (value.is_array()) {
    for (const auto& child : elements(value)) {
      if (auto err = check_value(child, depth + 1, true)) return err;
    }
  } else {
    for (const auto& [key, child] : members(value)) {
      if (auto err = check_value(child, depth + 1, in_array)) return err;
    }
  }
  return std::nullopt;
}

// Merges `patch` (an object) into `state`/`meta` (objects mirroring each other).
void merge(json& state, json& meta, const json& patch, std::int64_t now) {
  json::object_t& values = members(state);
  json::object_t& stamps = members(meta);
  for (const auto& [key, change] : members(patch)) {
    if (change.is_null()) {
      values.erase(key);
      stamps.erase(key);
    } else if (change.is_object()) {
      json& child = values[key];
      json& child_meta = stamps[key];
      if (!child.is_object() || !child_meta.is_object()) {
        // A new field, or a value replaced by an object.
        child = json::object();
        child_meta = json::object();
      }
      merge(child, child_meta, change, now);
      if (child.empty()) {  // an object emptied (or created empty) is not kept
        values.erase(key);
        stamps.erase(key);
      }
    } else {
      values[key] = change;
      stamps[key] = metadata_for(change, now);
    }
  }
}

enum class SectionChange { untouched, cleared, patched };

struct Request {
  json body;
  Token token;
  std::optional<std::uint64_t> version;
  bool cleared = false;  // `"state": null`
  // The state exactly as the payload wrote it, when it can be echoed as is (no repeated
  // keys); empty otherwise. Points into the payload.
  std::string_view state_text;
  std::size_t state_whitespace = 0;
  SectionChange desired = SectionChange::untouched;
  SectionChange reported = SectionChange::untouched;
};

ShadowError fail_with(ShadowErrc errc, const Token& token) {
  return make_error(errc, token.value);
}

SectionChange classify(const json& state, const char* name, ShadowErrc not_object,
                       std::optional<ShadowErrc>& error) {
  auto it = state.find(name);
  if (it == state.end()) return SectionChange::untouched;
  if (it->is_null()) return SectionChange::cleared;
  if (!it->is_object()) {
    error = not_object;
    return SectionChange::untouched;
  }
  if (auto err = check_value(*it, 0, false)) error = err;
  return SectionChange::patched;
}

// Validates an update request in AWS's order: size, encoding, JSON, clientToken,
// version, state shape, depth.
Expected<Request, ShadowError> parse_update(std::string_view payload) {
  Request req;
  if (payload.size() > kMaxShadowPayloadBytes) {
    return Unexpected{make_error(ShadowErrc::payload_too_large)};
  }
  if (!is_valid_utf8(payload)) return Unexpected{make_error(ShadowErrc::unsupported_encoding)};
  detail::ParseInfo info;
  auto body = detail::parse_json(payload, &info);
  if (!body || !body->is_object()) return Unexpected{make_error(ShadowErrc::invalid_json)};
  req.body = std::move(*body);
  if (!info.duplicate_keys) {
    for (const auto& member : info.members) {
      if (member.key == "state") {
        req.state_text = member.text;
        req.state_whitespace = member.whitespace;
      }
    }
  }

  req.token = read_client_token(req.body);
  if (req.token.invalid) return Unexpected{make_error(ShadowErrc::invalid_client_token)};

  if (auto it = req.body.find("version"); it != req.body.end()) {
    if (!it->is_number_unsigned()) {
      return Unexpected{fail_with(ShadowErrc::invalid_version, req.token)};
    }
    req.version = it->get<std::uint64_t>();
  }

  auto state = req.body.find("state");
  if (state == req.body.end()) return Unexpected{fail_with(ShadowErrc::missing_state, req.token)};
  if (state->is_null()) {
    req.cleared = true;
    req.desired = SectionChange::cleared;
    req.reported = SectionChange::cleared;
    return req;
  }
  if (!state->is_object()) {
    return Unexpected{fail_with(ShadowErrc::state_not_object, req.token)};
  }
  for (auto it = state->begin(); it != state->end(); ++it) {
    if (it.key() != "desired" && it.key() != "reported") {
      return Unexpected{fail_with(ShadowErrc::invalid_state_node, req.token)};
    }
  }
  std::optional<ShadowErrc> error;
  req.desired = classify(*state, "desired", ShadowErrc::desired_not_object, error);
  if (!error) req.reported = classify(*state, "reported", ShadowErrc::reported_not_object, error);
  if (error) return Unexpected{fail_with(*error, req.token)};
  return req;
}

// The request's state object, or nullptr when it cleared the whole state. Looked up
// rather than stored so that moving a Request can never leave a dangling pointer.
const json* request_state(const Request& req) {
  if (req.cleared) return nullptr;
  auto it = req.body.find("state");
  return it == req.body.end() ? nullptr : &*it;
}

// Bytes of the request's desired plus reported, measured as the stored document is:
// the text of `state` without insignificant whitespace, minus its envelope. The keys are
// known to be only "desired" and "reported", so the envelope is `{}`, `"desired":`,
// `"reported":` and a comma when both are present.
std::size_t request_state_size(const Request& req, std::string_view state_text,
                               std::size_t whitespace) {
  if (req.cleared) return 0;
  std::size_t envelope = 2 + whitespace;
  const bool desired = req.desired != SectionChange::untouched;
  const bool reported = req.reported != SectionChange::untouched;
  if (desired) envelope += std::string_view(R"("desired":)").size();
  if (reported) envelope += std::string_view(R"("reported":)").size();
  if (desired && reported) envelope += 1;
  return state_text.size() - envelope;
}

std::string timestamp_stamp(std::int64_t now) {
  std::string stamp;
  Writer(stamp).raw("{\"timestamp\":").integer(now).raw("}");
  return stamp;
}

}  // namespace

struct ShadowEngine {
  using SectionPtr = std::shared_ptr<const ShadowDocument::Section>;

  static const ShadowDocument::Section* desired(const ShadowDocument& d) {
    return d.desired_.get();
  }
  static const ShadowDocument::Section* reported(const ShadowDocument& d) {
    return d.reported_.get();
  }

  static SectionPtr apply(const SectionPtr& old, SectionChange change, const json* patch,
                          std::int64_t now) {
    switch (change) {
      case SectionChange::untouched: return old;
      case SectionChange::cleared: return nullptr;
      case SectionChange::patched: break;
    }
    // Copy, then merge: a section is a few dozen nodes, and copying it whole measured
    // faster than building the merge node by node from the old section and the patch.
    json state = old ? old->state : json::object();
    json meta = old ? old->meta : json::object();
    merge(state, meta, *patch, now);
    return make_section(std::move(state), std::move(meta), old.get());
  }

  // {"state":{...},"metadata":{...},"version":N}
  static void write_snapshot(Writer& w, const ShadowDocument& d) {
    w.raw("{\"state\":");
    write_sections(w, desired(d), reported(d), false);
    w.raw(",\"metadata\":");
    write_sections(w, desired(d), reported(d), true);
    w.raw(",\"version\":").integer(d.version_).raw("}");
  }

  static Expected<UpdateResult, ShadowError> update(const ShadowDocument* current,
                                                    std::string_view payload, std::int64_t now) {
    auto parsed = parse_update(payload);
    if (!parsed) return Unexpected{std::move(parsed).error()};
    const Request& req = *parsed;
    const json* req_state = request_state(req);

    // The request's own state text: echoed in /accepted and measured against the limit.
    // Echoing the payload's own text saves serializing it again.
    std::string state_buffer;
    std::string_view state_text = req.state_text;
    std::size_t state_whitespace = req.state_whitespace;
    if (req_state == nullptr) {
      state_text = R"({"desired":null,"reported":null})";
      state_whitespace = 0;
    } else if (state_text.empty()) {
      Writer(state_buffer).value(*req_state);
      state_text = state_buffer;
      state_whitespace = 0;
    }
    if (request_state_size(req, state_text, state_whitespace) > kMaxShadowStateBytes) {
      return Unexpected{fail_with(ShadowErrc::payload_too_large, req.token)};
    }

    const std::uint64_t base = current != nullptr ? current->version_ : 0;
    if (req.version && *req.version != base) {
      return Unexpected{fail_with(ShadowErrc::version_conflict, req.token)};
    }

    ShadowDocument next;
    next.exists_ = true;
    next.version_ = base + 1;
    const bool had = current != nullptr && current->exists_;
    const SectionPtr none;
    const json* desired_patch = nullptr;
    const json* reported_patch = nullptr;
    if (req_state != nullptr) {
      if (auto it = req_state->find("desired"); it != req_state->end()) desired_patch = &*it;
      if (auto it = req_state->find("reported"); it != req_state->end()) reported_patch = &*it;
    }
    next.desired_ = apply(had ? current->desired_ : none, req.desired, desired_patch, now);
    next.reported_ = apply(had ? current->reported_ : none, req.reported, reported_patch, now);
    if (next.state_size() > kMaxShadowStateBytes) {
      return Unexpected{fail_with(ShadowErrc::payload_too_large, req.token)};
    }

    UpdateResult result;
    const std::string stamp = timestamp_stamp(now);

    {  // /update/accepted
      result.accepted.reserve(state_text.size() * 2 + 96);
      Writer w(result.accepted);
      w.raw("{\"state\":").raw(state_text).raw(",\"metadata\":");
      if (req_state == nullptr) {
        w.raw("{\"desired\":").raw(stamp).raw(",\"reported\":").raw(stamp).raw("}");
      } else {
        write_request_metadata(w, *req_state, stamp);
      }
      w.raw(",\"version\":").integer(next.version_).raw(",\"timestamp\":").integer(now);
      w.client_token(req.token.value).raw("}");
    }

    // /update/delta: only when the request wrote desired state and desired still
    // differs from reported (AWS: "the request state document contains different values
    // for desired and reported states").
    if (req.desired == SectionChange::patched && next.desired_) {
      json delta = json::object();
      json delta_meta = json::object();
      compute_delta(next.desired_->state, next.desired_->meta,
                    next.reported_ ? &next.reported_->state : nullptr, delta, delta_meta);
      if (!delta.empty()) {
        std::string text;
        Writer w(text);
        w.raw("{\"version\":").integer(next.version_).raw(",\"timestamp\":").integer(now);
        w.raw(",\"state\":").value(delta).raw(",\"metadata\":");
        write_metadata(w, delta_meta);
        w.client_token(req.token.value).raw("}");
        result.delta = std::move(text);
      }
    }

    {  // /update/documents
      std::size_t size = 2 * next.state_size() + 256;
      if (had) size += 2 * current->state_size();
      result.documents.reserve(size * 2);
      Writer w(result.documents);
      w.raw("{\"previous\":");
      if (had) {
        write_snapshot(w, *current);
      } else {
        w.raw("null");
      }
      w.raw(",\"current\":");
      write_snapshot(w, next);
      w.raw(",\"timestamp\":").integer(now).client_token(req.token.value).raw("}");
    }

    if (reported_patch != nullptr && reported_patch->is_object()) {
      // The request ends here: its patch is moved out rather than copied. Found again
      // through the non-const body, so no const is cast away.
      auto& body = members(parsed->body);
      result.reported_patch =
          std::move(members(body.find("state")->second).find("reported")->second);
    }
    result.document = std::move(next);
    return result;
  }

  static Expected<std::string, ShadowError> get(std::string_view thing,
                                                const ShadowDocument* current,
                                                std::string_view payload, std::int64_t now) {
    auto token = client_token_of(payload);
    if (current == nullptr || !current->exists_) {
      return Unexpected{make_error(ShadowErrc::not_found, std::move(token), thing)};
    }
    std::string out;
    out.reserve(2 * current->state_size() + 128);
    Writer w(out);
    w.raw("{\"state\":{");
    bool first = true;
    if (current->desired_) {
      w.raw("\"desired\":").raw(current->desired_->state_text);
      first = false;
    }
    if (current->reported_) {
      if (!first) w.raw(",");
      w.raw("\"reported\":").raw(current->reported_->state_text);
    }
    if (current->desired_) {
      json delta = json::object();
      json delta_meta = json::object();
      compute_delta(current->desired_->state, current->desired_->meta,
                    current->reported_ ? &current->reported_->state : nullptr, delta, delta_meta);
      if (!delta.empty()) w.raw(",\"delta\":").value(delta);
    }
    w.raw("},\"metadata\":");
    write_sections(w, desired(*current), reported(*current), true);
    w.raw(",\"version\":").integer(current->version_).raw(",\"timestamp\":").integer(now);
    w.client_token(token).raw("}");
    return out;
  }

  static std::optional<std::string> delta_message(const ShadowDocument& current, std::int64_t now) {
    if (!current.exists_ || !current.desired_) return std::nullopt;
    json delta = json::object();
    json delta_meta = json::object();
    compute_delta(current.desired_->state, current.desired_->meta,
                  current.reported_ ? &current.reported_->state : nullptr, delta, delta_meta);
    if (delta.empty()) return std::nullopt;
    std::string text;
    Writer w(text);
    w.raw("{\"version\":").integer(current.version_).raw(",\"timestamp\":").integer(now);
    w.raw(",\"state\":").value(delta).raw(",\"metadata\":");
    write_metadata(w, delta_meta);
    w.raw("}");
    return text;
  }

  static Expected<RemoveResult, ShadowError> remove(std::string_view thing,
                                                    const ShadowDocument* current,
                                                    std::string_view payload, std::int64_t now) {
    auto token = client_token_of(payload);
    if (current == nullptr || !current->exists_) {
      return Unexpected{make_error(ShadowErrc::not_found, std::move(token), thing)};
    }
    RemoveResult result;
    result.document.version_ = current->version_;
    Writer w(result.accepted);
    w.raw("{\"version\":").integer(current->version_).raw(",\"timestamp\":").integer(now);
    w.client_token(token).raw("}");
    return result;
  }

  static std::string to_json(const ShadowDocument& d) {
    std::string out;
    Writer w(out);
    w.raw("{\"exists\":").raw(d.exists_ ? "true" : "false");
    w.raw(",\"version\":").integer(d.version_).raw(",\"state\":");
    write_sections(w, desired(d), reported(d), false);
    w.raw(",\"metadata\":");
    write_sections(w, desired(d), reported(d), true);
    w.raw("}");
    return out;
  }

  // Rebuilds compact metadata from the AWS form, guided by the state so that a state
  // key named "timestamp" cannot be mistaken for a leaf. Depth and nulls are checked
  // first (check_value), so the recursion is bounded.
  static std::optional<json> compact_metadata(const json& state, const json& meta) {
    if (state.is_object()) {
      if (!meta.is_object() || meta.size() != state.size() || state.empty()) return std::nullopt;
      json out = json::object();
      for (auto it = state.begin(); it != state.end(); ++it) {
        auto m = meta.find(it.key());
        if (m == meta.end()) return std::nullopt;
        auto child = compact_metadata(*it, *m);
        if (!child) return std::nullopt;
        out[it.key()] = std::move(*child);
      }
      return out;
    }
    if (state.is_array()) {
      if (!meta.is_array() || meta.size() != state.size()) return std::nullopt;
      json out = json::array();
      for (std::size_t i = 0; i < state.size(); ++i) {
        auto child = compact_metadata(state[i], meta[i]);
        if (!child) return std::nullopt;
        out.push_back(std::move(*child));
      }
      return out;
    }
    if (state.is_null() || !meta.is_object() || meta.size() != 1) return std::nullopt;
    auto ts = meta.find("timestamp");
    if (ts == meta.end() || !ts->is_number_integer()) return std::nullopt;
    return json(ts->get<std::int64_t>());
  }

  static Result<ShadowDocument> from_json(std::string_view text) {
    auto bad = [](const char* why) { return fail(Errc::parse, std::string("shadow: ") + why); };
    if (!is_valid_utf8(text)) return bad("not UTF-8");
    auto parsed = detail::parse_json(text);
    if (!parsed || !parsed->is_object()) return bad("not a JSON object");
    const json& doc = *parsed;
    auto exists = doc.find("exists");
    auto version = doc.find("version");
    auto state = doc.find("state");
    auto metadata = doc.find("metadata");
    if (exists == doc.end() || !exists->is_boolean()) return bad("bad exists");
    if (version == doc.end() || !version->is_number_unsigned() ||
        version->get<std::uint64_t>() >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return bad("bad version");
    }
    if (state == doc.end() || !state->is_object()) return bad("bad state");
    if (metadata == doc.end() || !metadata->is_object()) return bad("bad metadata");

    ShadowDocument out;
    out.exists_ = exists->get<bool>();
    out.version_ = version->get<std::uint64_t>();
    for (auto it = state->begin(); it != state->end(); ++it) {
      if (it.key() != "desired" && it.key() != "reported") return bad("unknown state section");
    }
    if (metadata->size() != state->size()) return bad("metadata does not mirror state");
    for (const char* name : {"desired", "reported"}) {
      auto section = state->find(name);
      if (section == state->end()) continue;
      if (!out.exists_) return bad("a deleted shadow has no state");
      if (!section->is_object() || section->empty()) return bad("bad state section");
      if (check_value(*section, 0, false)) return bad("state too deep or null in array");
      auto meta = metadata->find(name);
      if (meta == metadata->end()) return bad("metadata does not mirror state");
      auto compact = compact_metadata(*section, *meta);
      if (!compact) return bad("metadata does not mirror state");
      auto built = make_section(*section, std::move(*compact));
      (std::string_view(name) == "desired" ? out.desired_ : out.reported_) = std::move(built);
    }
    if (out.state_size() > kMaxShadowStateBytes) return bad("state too large");
    return out;
  }
};

Expected<UpdateResult, ShadowError> update(const ShadowDocument* current, std::string_view payload,
                                           std::int64_t now) {
  return ShadowEngine::update(current, payload, now);
}

Expected<std::string, ShadowError> get(std::string_view thing, const ShadowDocument* current,
                                       std::string_view payload, std::int64_t now) {
  return ShadowEngine::get(thing, current, payload, now);
}

Expected<RemoveResult, ShadowError> remove(std::string_view thing, const ShadowDocument* current,
                                           std::string_view payload, std::int64_t now) {
  return ShadowEngine::remove(thing, current, payload, now);
}

std::optional<std::string> render_delta(const ShadowDocument& document, std::int64_t now) {
  return ShadowEngine::delta_message(document, now);
}

std::string shadow_to_json(const ShadowDocument& document) {
  return ShadowEngine::to_json(document);
}

Result<ShadowDocument> shadow_from_json(std::string_view text) {
  return ShadowEngine::from_json(text);
}

}  // namespace dag::protocol
