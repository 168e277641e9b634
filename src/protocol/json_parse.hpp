// A strict RFC 8259 JSON parser producing nlohmann::json, private to dag::protocol.
//
// Why not nlohmann::json::parse: parsing the request is the largest single cost of a
// shadow update, and nlohmann's lexer reads through an input-adapter one character at a
// time. This parser scans with pointers, builds the same values (integers as int64 when
// negative, uint64 otherwise, double when fractional or out of integer range; the last
// of duplicate keys wins) and keeps its own stack, so nesting depth cannot exhaust the
// call stack. fuzz/ checks it against nlohmann::json::parse.
//
// It does not check UTF-8: callers validate the whole input first (is_valid_utf8).
// Differences from nlohmann: a number too large for a double ("1e999") is rejected
// instead of becoming infinity.
//
// Thread-safety: reentrant. Never throws (apart from std::bad_alloc).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace dag::protocol::detail {

/// Where the members of a top-level object were found in the text, so that a caller can
/// echo a member verbatim instead of serializing it again.
struct MemberSpan {
  std::string_view key;    ///< the decoded key (points into the parsed value)
  std::string_view text;   ///< the member's value exactly as written
  std::size_t whitespace;  ///< insignificant whitespace bytes inside `text`
};

struct ParseInfo {
  std::vector<MemberSpan> members;  ///< top-level object members, in text order
  bool duplicate_keys = false;      ///< some object, at any depth, repeated a key
};

/// The value of `text`, or std::nullopt when it is not exactly one JSON value (with
/// optional surrounding whitespace). When `info` is given it is filled in; its keys point
/// into the returned value, so they live as long as it does and it is not modified.
std::optional<nlohmann::json> parse_json(std::string_view text, ParseInfo* info = nullptr);

}  // namespace dag::protocol::detail
