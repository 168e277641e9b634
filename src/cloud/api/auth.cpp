#include "dag/api/auth.hpp"

#include <jwt.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <memory>

namespace dag::api {
namespace {

struct JwtFree {
  void operator()(jwt_t* jwt) const noexcept { jwt_free(jwt); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

struct StrFree {
  void operator()(char* s) const noexcept { std::free(s); }  // NOLINT(cppcoreguidelines-no-malloc)
};

}  // namespace

TokenService::TokenService(std::string secret, std::chrono::seconds ttl)
    : secret_(std::move(secret)), ttl_(ttl) {}

ApiResult<IssuedToken> TokenService::issue(std::string_view account_id, std::int64_t now_ms) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) return fail(ApiErrc::internal, "jwt_new failed");
  JwtPtr jwt(raw);
  const std::int64_t now_s = now_ms / 1000;
  const std::int64_t exp_s = now_s + ttl_.count();
  const std::string sub(account_id);
  if (jwt_add_grant(jwt.get(), "sub", sub.c_str()) != 0 ||
      jwt_add_grant_int(jwt.get(), "iat", static_cast<long>(now_s)) != 0 ||
      jwt_add_grant_int(jwt.get(), "exp", static_cast<long>(exp_s)) != 0 ||
      jwt_set_alg(jwt.get(), JWT_ALG_HS256,
                  reinterpret_cast<const unsigned char*>(secret_.data()),  // NOLINT
                  static_cast<int>(secret_.size())) != 0) {
    return fail(ApiErrc::internal, "could not build a token");
  }
  std::unique_ptr<char, StrFree> encoded(jwt_encode_str(jwt.get()));
  if (!encoded) return fail(ApiErrc::internal, "could not sign a token");
  return IssuedToken{std::string(encoded.get()), exp_s * 1000};
}

ApiResult<std::string> TokenService::verify(std::string_view token, std::int64_t now_ms) const {
  // Bounded, and libjwt wants a C string.
  if (token.empty() || token.size() > 4096) return fail(ApiErrc::unauthorized, "invalid token");
  const std::string text(token);
  {
    std::lock_guard lock{memo_mutex_};
    if (auto it = memo_.find(text); it != memo_.end()) {
      if (it->second.expires_ms <= now_ms) return fail(ApiErrc::unauthorized, "token expired");
      return it->second.subject;
    }
  }
  jwt_t* raw = nullptr;
  // With a key, jwt_decode checks the signature for the algorithm the header names; the
  // algorithm itself is checked below, because the header is the attacker's.
  const int rc = jwt_decode(&raw, text.c_str(),
                            reinterpret_cast<const unsigned char*>(secret_.data()),  // NOLINT
                            static_cast<int>(secret_.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || !jwt) return fail(ApiErrc::unauthorized, "invalid token");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return fail(ApiErrc::unauthorized, "token algorithm must be HS256");
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || *sub == '\0') return fail(ApiErrc::unauthorized, "token has no subject");
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0 || exp <= 0) return fail(ApiErrc::unauthorized, "token has no expiry");
  const std::int64_t expires_ms = static_cast<std::int64_t>(exp) * 1000;
  if (expires_ms <= now_ms) return fail(ApiErrc::unauthorized, "token expired");
  std::lock_guard lock{memo_mutex_};
  if (memo_.size() >= kMemoMax) memo_.clear();
  memo_.insert_or_assign(text, Verified{sub, expires_ms});
  return std::string(sub);
}

LoginLimiter::LoginLimiter(Limits limits)
    : limits_(limits),
      users_(limits.per_user_per_minute / 60.0, limits.per_user_burst),
      addresses_(limits.per_address_per_minute / 60.0, limits.per_address_burst) {}

bool LoginLimiter::allow(std::string_view username, std::string_view address,
                         std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  // The address first: a flood from one address must not drain its victims' buckets.
  if (!addresses_.allow(address, now)) return false;
  return users_.allow(username, now);
}

int LoginLimiter::retry_after_s() const noexcept {
  const double rate = limits_.per_user_per_minute / 60.0;
  if (rate <= 0) return 60;
  return static_cast<int>(std::ceil(1.0 / rate));
}

}  // namespace dag::api
