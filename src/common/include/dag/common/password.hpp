// Password hashing: argon2id through libsodium's crypto_pwhash_str (the PHC string format,
// `$argon2id$v=19$m=...,t=...,p=1$salt$hash`, salt and parameters inside), so a stored hash
// verifies even after the parameters change for new hashes.
//
// Parameters: libsodium's INTERACTIVE limits (2 passes, 64 MiB), the level it recommends
// for logins: about 0.1 s on a small server core, which is the point.
//
// Thread-safety: reentrant. Blocking: CPU and 64 MiB of memory for ~0.1 s per call.
#pragma once

#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag::password {

/// Longest password accepted (bytes); longer input is refused rather than truncated.
inline constexpr std::size_t kMaxPasswordBytes = 1024;
/// Shortest password accepted by hash() (bytes).
inline constexpr std::size_t kMinPasswordBytes = 8;

/// Errors: Errc::invalid_argument (shorter than kMinPasswordBytes or longer than
/// kMaxPasswordBytes), Errc::internal (out of memory).
Result<std::string> hash(std::string_view password);

/// True when `password` matches `stored` (a hash() string). Anything malformed is false.
bool verify(std::string_view stored, std::string_view password);

/// True when `stored` was made with other parameters than hash() uses now (rehash it at
/// the next successful login).
bool needs_rehash(std::string_view stored);

}  // namespace dag::password
