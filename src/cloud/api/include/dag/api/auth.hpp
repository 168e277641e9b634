// Bearer tokens and login throttling for the REST API.
//
// Tokens are JWTs signed with HS256 (libjwt) carrying `sub` (the account id), `iat` and
// `exp`. verify() accepts nothing else: the header's alg must be HS256 exactly (so
// `alg: none` and algorithm confusion are refused), the signature must match, and `sub`
// and an unexpired `exp` must be present.
//
// Thread-safety: TokenService is immutable after construction (any thread); LoginLimiter
// locks internally. Nothing blocks except on its own mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dag/api/error.hpp"
#include "dag/shadow/rate_limiter.hpp"

namespace dag::api {

struct IssuedToken {
  std::string token;
  std::int64_t expires_at_ms{0};
};

class TokenService {
 public:
  /// `secret`: the HMAC key (at least 32 bytes is wise; dagd makes a random one when the
  /// configuration has none). `ttl`: lifetime of a token.
  TokenService(std::string secret, std::chrono::seconds ttl);

  /// Errors: internal (libjwt failed: out of memory).
  [[nodiscard]] ApiResult<IssuedToken> issue(std::string_view account_id,
                                             std::int64_t now_ms) const;
  /// The account id of a valid token. Errors: unauthorized (with a message that says which
  /// check failed; it names no secret). Thread-safe.
  [[nodiscard]] ApiResult<std::string> verify(std::string_view token, std::int64_t now_ms) const;

 private:
  std::string secret_;
  std::chrono::seconds ttl_;
  // Tokens that verified, with their subject and expiry: the same string verifies the same
  // way until it expires, and a dashboard sends one token many times (the signature check
  // and libjwt's JSON parse were an eighth of a cached device list's cost). Only valid
  // tokens enter, so a flood of forgeries cannot fill it; cleared when full.
  struct Verified {
    std::string subject;
    std::int64_t expires_ms{0};
  };
  static constexpr std::size_t kMemoMax = 4096;
  mutable std::mutex memo_mutex_;
  mutable std::unordered_map<std::string, Verified> memo_;
};

/// Login attempts per username and per client address (token buckets). Both must allow an
/// attempt; a refused attempt costs nothing and tells how long to wait.
class LoginLimiter {
 public:
  struct Limits {
    double per_user_per_minute{5};
    double per_user_burst{5};
    double per_address_per_minute{30};
    double per_address_burst{30};
  };
  explicit LoginLimiter(Limits limits);

  /// True when this attempt may proceed (it is counted); false: 429.
  bool allow(std::string_view username, std::string_view address,
             std::chrono::steady_clock::time_point now);
  /// Seconds to suggest in Retry-After.
  [[nodiscard]] int retry_after_s() const noexcept;

 private:
  Limits limits_;
  std::mutex mutex_;
  shadow::RateLimiter users_;
  shadow::RateLimiter addresses_;
};

}  // namespace dag::api
