// Base64 and UUIDs.
// Thread-safety: all functions are reentrant. None blocks (new_uuid reads OpenSSL's
// already-seeded DRBG).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag {

/// Standard base64 (RFC 4648 §4) with padding, no line breaks.
std::string base64_encode(std::span<const std::uint8_t> bytes);
std::string base64_encode(std::string_view text);

/// Decodes standard base64. Whitespace and line breaks anywhere are ignored (PEMs pasted
/// into environment variables often carry them); missing padding is accepted.
/// Errors: Errc::parse for any other character or a truncated final group.
Result<std::string> base64_decode(std::string_view text);

/// Lower-case hex of the SHA-256 of `data` (libsodium). Stored instead of secrets that are
/// only ever compared (one-time tokens).
std::string sha256_hex(std::string_view data);

/// URL-safe base64 (RFC 4648 §5) without padding: tokens in links.
std::string base64url_encode(std::string_view bytes);

/// `n` bytes from OpenSSL's CSPRNG (secrets, tokens, salts).
/// Errors: Errc::crypto when the RNG fails.
Result<std::string> random_bytes(std::size_t n);

/// A random (version 4, RFC 9562) UUID in lower-case canonical form, from OpenSSL's CSPRNG.
/// Errors: Errc::crypto when the RNG fails (never seen in practice; not ignored).
Result<std::string> new_uuid();

/// True for a canonical lower- or upper-case UUID string (8-4-4-4-12 hex digits).
bool is_uuid(std::string_view text) noexcept;

}  // namespace dag
