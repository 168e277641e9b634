// Encodings for mail and HTTP headers and bodies: RFC 2047 encoded-words, quoted-printable
// (RFC 2045), header folding (RFC 5322), mailboxes, and the escapes used by templates.
//
// Thread-safety: pure functions. Nothing blocks or throws (except std::bad_alloc).
#pragma once

#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag::notify::mime {

/// True when `text` can stand as is in an unstructured header: printable ASCII and spaces
/// only, and no "=?" (which a reader would take for an encoded-word).
bool is_plain_header_text(std::string_view text);

/// RFC 2047 "B" encoded-words in UTF-8 ("=?UTF-8?B?...?="), each at most 75 characters and
/// never splitting a UTF-8 sequence (bytes that are not valid UTF-8 are carried as they
/// are), joined by `separator`: "\r\n " folds a mail header, " " keeps an HTTP header on
/// one line (decoders drop the white space between adjacent encoded-words).
std::string encode_words(std::string_view text, std::string_view separator);

/// `text` for an HTTP header value: as is when plain (above), else encoded-words joined
/// by spaces (ntfy decodes them).
std::string http_header_text(std::string_view text);

/// A complete unstructured header field, "Name: value\r\n": plain values are folded at
/// spaces so that lines stay within 78 characters where the words allow; others (non-ASCII,
/// control characters, "=?", a word too long to fold, a long run of spaces) become folded
/// encoded-words. Lines never exceed 998 characters. The
/// result never contains a bare CR or LF, so a value cannot add a header.
std::string unstructured_header(std::string_view name, std::string_view value);

/// Quoted-printable body (RFC 2045 §6.7) of UTF-8 text: line breaks ("\n" or "\r\n")
/// become CRLF; encoded lines are at most 76 characters (soft breaks "=" as needed); '=',
/// bytes outside printable ASCII, a lone CR, white space at a line end and a '.' that
/// would start a line are encoded. Ends with CRLF.
std::string quoted_printable(std::string_view text);

/// An address with an optional display name.
struct Mailbox {
  std::string display_name;  ///< UTF-8; empty: none
  std::string address;       ///< local@domain, checked by dag::validate::email_error
};

/// Parses "Name <local@domain>", "\"Name\" <local@domain>" or "local@domain".
/// Errors: Errc::invalid_argument when the text contains a control character (CR, LF,
/// NUL, ...), the angle brackets are unbalanced, or the address is not plausible.
Result<Mailbox> parse_mailbox(std::string_view text);

/// The mailbox for a From/To header: "local@domain", "Name <local@domain>",
/// "\"Name, Inc.\" <local@domain>" (specials quoted) or "=?UTF-8?B?...?= <local@domain>".
std::string format_mailbox(const Mailbox& mailbox);

/// The domain of an address ("" when there is no '@').
std::string_view domain_of(std::string_view address);

/// JSON string contents without the quotes (invalid UTF-8 is replaced by U+FFFD).
std::string json_escape(std::string_view text);
/// application/x-www-form-urlencoded: unreserved characters stay, ' ' becomes '+',
/// every other byte %XX.
std::string form_encode(std::string_view text);
/// Lower-case hex of `bytes`.
std::string hex(std::string_view bytes);

}  // namespace dag::notify::mime
