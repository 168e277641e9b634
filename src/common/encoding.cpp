#include "dag/common/encoding.hpp"

#include <openssl/rand.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace dag {

std::string base64_encode(std::span<const std::uint8_t> bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // libsodium counts the terminating NUL
  return out;
}

std::string base64_encode(std::string_view text) {
  return base64_encode(std::span<const std::uint8_t>{
      reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

Result<std::string> base64_decode(std::string_view text) {
  // libsodium's strict variant rejects missing padding; normalise whitespace and padding
  // first so that both "YQ==" and "YQ" decode.
  std::string clean;
  clean.reserve(text.size() + 2);
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) == 0) clean.push_back(c);
  }
  while (!clean.empty() && clean.back() == '=') clean.pop_back();
  if (clean.size() % 4 == 1) return fail(Errc::parse, "base64: truncated final group");
  while (clean.size() % 4 != 0) clean.push_back('=');

  std::string out(clean.size() / 4 * 3, '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), clean.data(),
                        clean.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != clean.data() + clean.size()) {
    return fail(Errc::parse, "base64: invalid character or padding");
  }
  out.resize(len);
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, crypto_hash_sha256_BYTES> digest{};
  crypto_hash_sha256(digest.data(), reinterpret_cast<const unsigned char*>(data.data()),  // NOLINT
                     data.size());
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (const unsigned char b : digest) {
    out.push_back(hex[b >> 4U]);
    out.push_back(hex[b & 0x0FU]);
  }
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  std::string out = base64_encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

Result<std::string> random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),  // NOLINT
                          static_cast<int>(n)) != 1) {
    return fail(Errc::crypto, "RAND_bytes failed");
  }
  return out;
}

Result<std::string> new_uuid() {
  auto raw = random_bytes(16);
  if (!raw) return raw;
  std::array<unsigned char, 16> b{};
  std::copy(raw->begin(), raw->end(), b.begin());
  b[6] = static_cast<unsigned char>((b[6] & 0x0FU) | 0x40U);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3FU) | 0x80U);  // RFC variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[b[i] >> 4U]);
    out.push_back(hex[b[i] & 0x0FU]);
  }
  return out;
}

bool is_uuid(std::string_view text) noexcept {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : std::isxdigit(static_cast<unsigned char>(text[i])) == 0)
      return false;
  }
  return true;
}

}  // namespace dag
