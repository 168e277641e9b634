#include "dag/common/password.hpp"

#include <sodium.h>

#include <string>

namespace dag::password {
namespace {

bool ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

}  // namespace

Result<std::string> hash(std::string_view password) {
  if (password.size() < kMinPasswordBytes) {
    return fail(Errc::invalid_argument,
                "password must have at least " + std::to_string(kMinPasswordBytes) + " characters");
  }
  if (password.size() > kMaxPasswordBytes) {
    return fail(Errc::invalid_argument,
                "password must have at most " + std::to_string(kMaxPasswordBytes) + " bytes");
  }
  if (!ready()) return fail(Errc::internal, "libsodium failed to initialise");
  std::string out(crypto_pwhash_STRBYTES, '\0');
  if (crypto_pwhash_str_alg(out.data(), password.data(), password.size(),
                            crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
                            crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return fail(Errc::internal, "argon2id: out of memory");
  }
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

bool verify(std::string_view stored, std::string_view password) {
  if (!ready() || stored.empty() || stored.size() >= crypto_pwhash_STRBYTES ||
      password.size() > kMaxPasswordBytes) {
    return false;
  }
  const std::string s(stored);  // NUL-terminated for libsodium
  return crypto_pwhash_str_verify(s.c_str(), password.data(), password.size()) == 0;
}

bool needs_rehash(std::string_view stored) {
  if (!ready() || stored.size() >= crypto_pwhash_STRBYTES) return true;
  const std::string s(stored);
  return crypto_pwhash_str_needs_rehash(s.c_str(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
}

}  // namespace dag::password
