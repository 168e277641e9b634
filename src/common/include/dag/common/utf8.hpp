// UTF-8 decoding shared by the validators and the template expander.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace dag::utf8 {

/// Decodes the well-formed UTF-8 sequence at s[i] into `code_point` and returns its length
/// (1..4); 0 when it is malformed (truncated, overlong, a surrogate, above U+10FFFF).
/// Precondition: i < s.size().
std::size_t decode(std::string_view s, std::size_t i, char32_t& code_point) noexcept;

}  // namespace dag::utf8
