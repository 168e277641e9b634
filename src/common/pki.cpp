#include "dag/common/pki.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <utility>

#include "dag/common/errno_text.hpp"

namespace dag::pki {

std::string drain_openssl_errors() {
  std::string out;
  for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out;
}

namespace {

// ---- RAII over OpenSSL handles -------------------------------------------------------

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
template <class T, auto Free>
using Owned = std::unique_ptr<T, Deleter<Free>>;

using BioPtr = Owned<BIO, BIO_free_all>;
using BnPtr = Owned<BIGNUM, BN_free>;
using PkeyPtr = Owned<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtxPtr = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using X509Ptr = Owned<X509, X509_free>;
using ReqPtr = Owned<X509_REQ, X509_REQ_free>;
using CrlPtr = Owned<X509_CRL, X509_CRL_free>;
using NamePtr = Owned<X509_NAME, X509_NAME_free>;
using ExtPtr = Owned<X509_EXTENSION, X509_EXTENSION_free>;
using Asn1IntPtr = Owned<ASN1_INTEGER, ASN1_INTEGER_free>;
using Asn1TimePtr = Owned<ASN1_TIME, ASN1_TIME_free>;
using RevokedPtr = Owned<X509_REVOKED, X509_REVOKED_free>;
using StorePtr = Owned<X509_STORE, X509_STORE_free>;
using StoreCtxPtr = Owned<X509_STORE_CTX, X509_STORE_CTX_free>;
using NamesPtr = Owned<GENERAL_NAMES, GENERAL_NAMES_free>;

// ---- errors ---------------------------------------------------------------------------

Unexpected<Error> ossl_fail(Errc code, std::string_view what) {
  std::string queue = drain_openssl_errors();
  if (queue.empty()) return fail(code, std::string{what});
  return fail(code, fmt::format("{}: {}", what, queue));
}

Unexpected<Error> crypto_fail(std::string_view what) {
  return ossl_fail(Errc::crypto, what);
}

// ---- PEM <-> objects ------------------------------------------------------------------

Result<BioPtr> read_bio(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(INT32_MAX)) {
    return fail(Errc::invalid_argument, "PEM text too large");
  }
  BioPtr bio{BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))};
  if (!bio) return crypto_fail("BIO_new_mem_buf");
  return bio;
}

Result<std::string> bio_to_string(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &data);  // what BIO_get_mem_data expands to
  if (len < 0 || (len > 0 && data == nullptr)) return crypto_fail("reading memory BIO");
  return std::string(data, static_cast<std::size_t>(len));
}

template <class WriteFn>
Result<std::string> to_pem(WriteFn&& write) {
  BioPtr bio{BIO_new(BIO_s_mem())};
  if (!bio) return crypto_fail("BIO_new");
  if (write(bio.get()) != 1) return crypto_fail("PEM write");
  return bio_to_string(bio.get());
}

// One PEM reader for every object type: `read` is OpenSSL's PEM_read_bio_<TYPE>.
template <class Ptr, class ReadFn>
Result<Ptr> parse_pem(std::string_view pem, ReadFn read, const char* what) {
  auto bio = read_bio(pem);
  if (!bio) return Unexpected<Error>{bio.error()};
  Ptr object{read(bio->get(), nullptr, nullptr, nullptr)};
  if (!object) return ossl_fail(Errc::parse, std::string(what) + " PEM does not parse");
  return object;
}

Result<PkeyPtr> parse_key(std::string_view pem) {
  return parse_pem<PkeyPtr>(pem, PEM_read_bio_PrivateKey, "private key");
}
Result<X509Ptr> parse_cert(std::string_view pem) {
  return parse_pem<X509Ptr>(pem, PEM_read_bio_X509, "certificate");
}
Result<ReqPtr> parse_csr(std::string_view pem) {
  return parse_pem<ReqPtr>(pem, PEM_read_bio_X509_REQ, "CSR");
}
Result<CrlPtr> parse_crl(std::string_view pem) {
  return parse_pem<CrlPtr>(pem, PEM_read_bio_X509_CRL, "CRL");
}

Result<std::string> key_to_pem(EVP_PKEY* key) {
  // PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted.
  return to_pem([key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

Result<std::string> cert_to_pem(X509* cert) {
  return to_pem([cert](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
}

// ---- small helpers --------------------------------------------------------------------

Result<PkeyPtr> new_p256_key() {
  PkeyCtxPtr ctx{EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr)};
  if (!ctx) return crypto_fail("EVP_PKEY_CTX_new_from_name(EC)");
  if (EVP_PKEY_keygen_init(ctx.get()) <= 0) return crypto_fail("EVP_PKEY_keygen_init");
  if (EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) {
    return crypto_fail("EVP_PKEY_CTX_set_group_name(P-256)");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) <= 0) return crypto_fail("EVP_PKEY_generate");
  return PkeyPtr{raw};
}

std::string bn_to_hex(const BIGNUM* bn) {
  char* hex = BN_bn2hex(bn);
  if (hex == nullptr) return {};
  std::string out{hex};
  OPENSSL_free(hex);
  // BN_bn2hex omits the leading zero of a single-digit value; keep whole bytes like
  // `openssl x509 -serial` does.
  if (out.size() % 2 == 1) out.insert(out.begin(), '0');
  return out;
}

std::string serial_hex_of(const X509* cert) {
  BnPtr bn{ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)};
  return bn ? bn_to_hex(bn.get()) : std::string{};
}

// RFC 5280 wants positive serials of at most 20 octets; 128 random bits make collisions
// irrelevant and let the CA keep no counter.
Result<Asn1IntPtr> random_serial(std::string* hex_out) {
  BnPtr bn{BN_new()};
  if (!bn) return crypto_fail("BN_new");
  do {
    if (BN_rand(bn.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
      return crypto_fail("BN_rand");
    }
  } while (BN_is_zero(bn.get()));
  Asn1IntPtr serial{BN_to_ASN1_INTEGER(bn.get(), nullptr)};
  if (!serial) return crypto_fail("BN_to_ASN1_INTEGER");
  if (hex_out != nullptr) *hex_out = bn_to_hex(bn.get());
  return serial;
}

// Accepts "0A:1B", "0a1b", "A1B" and turns it into an ASN1_INTEGER.
Result<Asn1IntPtr> parse_serial(std::string_view text) {
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) return fail(Errc::invalid_argument, fmt::format("serial '{}' is not hex", text));
    digits += c;
  }
  if (digits.empty() || digits.size() > 40) {
    return fail(Errc::invalid_argument, fmt::format("serial '{}' has a bad length", text));
  }
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, digits.c_str()) == 0) return crypto_fail("BN_hex2bn");
  BnPtr bn{raw};
  Asn1IntPtr serial{BN_to_ASN1_INTEGER(bn.get(), nullptr)};
  if (!serial) return crypto_fail("BN_to_ASN1_INTEGER");
  return serial;
}

Result<void> check_validity(const Validity& v) {
  if (v.lifetime.count() <= 0) return fail(Errc::invalid_argument, "validity must be positive");
  if (v.backdate.count() < 0) return fail(Errc::invalid_argument, "backdate must be >= 0");
  return ok();
}

// Sets `t` to base + offset without overflowing ASN1_TIME_adj's int day/second arguments.
bool set_time(ASN1_TIME* t, std::time_t base, Duration offset) {
  constexpr std::int64_t kDay = 86'400;
  const std::int64_t secs = offset.count();
  return ASN1_TIME_adj(t, base, static_cast<int>(secs / kDay), static_cast<long>(secs % kDay)) !=
         nullptr;
}

Result<void> set_validity(X509* cert, const Validity& v) {
  const std::time_t not_before = std::time(nullptr) - v.backdate.count();
  if (!set_time(X509_getm_notBefore(cert), not_before, Duration{0}) ||
      !set_time(X509_getm_notAfter(cert), not_before, v.lifetime)) {
    return crypto_fail("setting certificate validity");
  }
  return ok();
}

Result<NamePtr> make_name(std::string_view cn, std::string_view org) {
  NamePtr name{X509_NAME_new()};
  if (!name) return crypto_fail("X509_NAME_new");
  auto add = [&](const char* field, std::string_view value) {
    const std::string v{value};
    return X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(v.c_str()), -1, -1,
                                      0) == 1;
  };
  if (!org.empty() && !add("O", org)) return crypto_fail("adding O to name");
  if (!add("CN", cn)) return crypto_fail("adding CN to name");
  return name;
}

// All common names in a name (a CSR may carry several; mosquitto takes the first, so
// we refuse ambiguity instead of guessing).
std::vector<std::string> common_names(const X509_NAME* name) {
  std::vector<std::string> out;
  for (int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) continue;
    out.emplace_back(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
  }
  return out;
}

std::string first_cn(const X509_NAME* name) {
  auto cns = common_names(name);
  return cns.empty() ? std::string{} : cns.front();
}

Result<void> add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  ExtPtr ext{X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str())};
  if (!ext) return crypto_fail(fmt::format("extension {}={}", OBJ_nid2sn(nid), value));
  if (X509_add_ext(cert, ext.get(), -1) != 1) return crypto_fail("X509_add_ext");
  return ok();
}

struct Issuer {
  X509* cert;     // nullptr when self-signing
  EVP_PKEY* key;  // signs
};

struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
};

Result<LoadedCa> load_ca(const CertificateAuthority& ca) {
  auto cert = parse_cert(ca.cert_pem);
  if (!cert) return Unexpected<Error>{cert.error()};
  auto key = parse_key(ca.key_pem);
  if (!key) return Unexpected<Error>{key.error()};
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return ossl_fail(Errc::invalid_argument, "CA key does not match the CA certificate");
  }
  if ((X509_get_extension_flags(cert->get()) & EXFLAG_CA) == 0) {
    return fail(Errc::invalid_argument, "CA certificate is not a CA (basicConstraints)");
  }
  return LoadedCa{std::move(*cert), std::move(*key)};
}

// Builds and signs one certificate. `extensions` are (nid, value) in the order they must
// be added: the subject key identifier before the authority key identifier, because a
// self-signed certificate's AKI is taken from its own SKI.
Result<X509Ptr> build_cert(const Issuer& issuer, EVP_PKEY* subject_key, const X509_NAME* subject,
                           const Validity& validity,
                           const std::vector<std::pair<int, std::string>>& extensions,
                           std::string* serial_hex) {
  if (auto v = check_validity(validity); !v) return Unexpected<Error>{v.error()};
  X509Ptr cert{X509_new()};
  if (!cert) return crypto_fail("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return crypto_fail("X509_set_version");
  auto serial = random_serial(serial_hex);
  if (!serial) return Unexpected<Error>{serial.error()};
  if (X509_set_serialNumber(cert.get(), serial->get()) != 1) {
    return crypto_fail("X509_set_serialNumber");
  }
  if (auto v = set_validity(cert.get(), validity); !v) return Unexpected<Error>{v.error()};
  if (X509_set_subject_name(cert.get(), subject) != 1) return crypto_fail("set subject");
  const X509_NAME* issuer_name =
      issuer.cert != nullptr ? X509_get_subject_name(issuer.cert) : subject;
  if (X509_set_issuer_name(cert.get(), issuer_name) != 1) return crypto_fail("set issuer");
  if (X509_set_pubkey(cert.get(), subject_key) != 1) return crypto_fail("X509_set_pubkey");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer.cert != nullptr ? issuer.cert : cert.get(), cert.get(), nullptr,
                 nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    if (auto r = add_ext(cert.get(), &ctx, nid, value); !r) return Unexpected<Error>{r.error()};
  }
  if (X509_sign(cert.get(), issuer.key, EVP_sha256()) <= 0) return crypto_fail("X509_sign");
  return cert;
}

std::vector<std::pair<int, std::string>> leaf_extensions(Usage usage, std::string san) {
  std::vector<std::pair<int, std::string>> ext{
      {NID_basic_constraints, "critical,CA:FALSE"},
      // ECDSA keys only sign in TLS 1.2/1.3 (ECDHE), so digitalSignature is all they need.
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, usage == Usage::server ? "serverAuth" : "clientAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  if (!san.empty()) ext.emplace_back(NID_subject_alt_name, std::move(san));
  return ext;
}

bool is_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  return std::ranges::all_of(name, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '*';
  });
}

bool is_ip_literal(const std::string& ip) {
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, ip.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, ip.c_str(), buf.data()) == 1;
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Result<void> check_csr_key(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC") == 1) return ok();
  if (EVP_PKEY_is_a(key, "RSA") == 1 && EVP_PKEY_get_bits(key) >= 2048) return ok();
  return fail(Errc::invalid_argument, "CSR key must be EC or RSA >= 2048 bits");
}

}  // namespace

bool is_valid_identity(std::string_view identity) noexcept {
  if (identity.empty() || identity.size() > 128) return false;
  if (identity.front() == '.' || identity.front() == '-') return false;
  return std::ranges::all_of(identity, [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
}

Result<std::string> generate_key() {
  ERR_clear_error();
  auto key = new_p256_key();
  if (!key) return Unexpected<Error>{key.error()};
  return key_to_pem(key->get());
}

Result<std::string> public_key_of(std::string_view key_pem) {
  ERR_clear_error();
  auto key = parse_key(key_pem);
  if (!key) return Unexpected<Error>{key.error()};
  EVP_PKEY* k = key->get();
  return to_pem([k](BIO* bio) { return PEM_write_bio_PUBKEY(bio, k); });
}

Result<CertificateAuthority> create_ca(const CaOptions& options) {
  ERR_clear_error();
  if (options.common_name.empty()) return fail(Errc::invalid_argument, "CA needs a common name");
  auto key = new_p256_key();
  if (!key) return Unexpected<Error>{key.error()};
  auto name = make_name(options.common_name, options.organization);
  if (!name) return Unexpected<Error>{name.error()};
  // pathlen:0 because this CA signs leaves only; an intermediate it signed by mistake
  // could otherwise mint device identities.
  const std::vector<std::pair<int, std::string>> ext{
      {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
      {NID_key_usage, "critical,keyCertSign,cRLSign"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  auto cert = build_cert(Issuer{nullptr, key->get()}, key->get(), name->get(), options.validity,
                         ext, nullptr);
  if (!cert) return Unexpected<Error>{cert.error()};
  auto cert_pem = cert_to_pem(cert->get());
  if (!cert_pem) return Unexpected<Error>{cert_pem.error()};
  auto key_pem = key_to_pem(key->get());
  if (!key_pem) return Unexpected<Error>{key_pem.error()};
  return CertificateAuthority{std::move(*cert_pem), std::move(*key_pem)};
}

namespace {

// A fresh P-256 key and a leaf certificate for it, signed by the CA, both as PEM.
Result<IssuedCertificate> issue_with_new_key(
    const CertificateAuthority& ca, std::string_view common_name, const Validity& validity,
    const std::vector<std::pair<int, std::string>>& extensions) {
  auto loaded = load_ca(ca);
  if (!loaded) return Unexpected<Error>{loaded.error()};
  auto key = new_p256_key();
  if (!key) return Unexpected<Error>{key.error()};
  auto name = make_name(common_name, "");
  if (!name) return Unexpected<Error>{name.error()};
  IssuedCertificate out;
  auto cert = build_cert(Issuer{loaded->cert.get(), loaded->key.get()}, key->get(), name->get(),
                         validity, extensions, &out.serial_hex);
  if (!cert) return Unexpected<Error>{cert.error()};
  auto cert_pem = cert_to_pem(cert->get());
  if (!cert_pem) return Unexpected<Error>{cert_pem.error()};
  auto key_pem = key_to_pem(key->get());
  if (!key_pem) return Unexpected<Error>{key_pem.error()};
  out.cert_pem = std::move(*cert_pem);
  out.key_pem = std::move(*key_pem);
  return out;
}

}  // namespace

Result<IssuedCertificate> issue_server_certificate(const CertificateAuthority& ca,
                                                   const ServerOptions& options) {
  ERR_clear_error();
  if (options.dns_names.empty() && options.ip_addresses.empty()) {
    return fail(Errc::invalid_argument, "a server certificate needs at least one DNS name or IP");
  }
  std::string san;
  for (const auto& dns : options.dns_names) {
    if (!is_dns_name(dns))
      return fail(Errc::invalid_argument, fmt::format("bad DNS name '{}'", dns));
    san += (san.empty() ? "DNS:" : ",DNS:") + dns;
  }
  for (const auto& ip : options.ip_addresses) {
    if (!is_ip_literal(ip)) return fail(Errc::invalid_argument, fmt::format("bad IP '{}'", ip));
    san += (san.empty() ? "IP:" : ",IP:") + ip;
  }
  return issue_with_new_key(ca, options.common_name, options.validity,
                            leaf_extensions(Usage::server, san));
}

Result<IssuedCertificate> issue_client_certificate(const CertificateAuthority& ca,
                                                   std::string_view identity,
                                                   const Validity& validity) {
  ERR_clear_error();
  if (!is_valid_identity(identity)) {
    return fail(Errc::invalid_argument, fmt::format("'{}' is not a valid identity", identity));
  }
  return issue_with_new_key(ca, identity, validity, leaf_extensions(Usage::client, ""));
}

Result<std::string> create_csr(std::string_view key_pem, std::string_view identity) {
  ERR_clear_error();
  if (!is_valid_identity(identity)) {
    return fail(Errc::invalid_argument, fmt::format("'{}' is not a valid identity", identity));
  }
  auto key = parse_key(key_pem);
  if (!key) return Unexpected<Error>{key.error()};
  auto name = make_name(identity, "");
  if (!name) return Unexpected<Error>{name.error()};
  ReqPtr req{X509_REQ_new()};
  if (!req) return crypto_fail("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
      X509_REQ_set_subject_name(req.get(), name->get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1) {
    return crypto_fail("building CSR");
  }
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) return crypto_fail("X509_REQ_sign");
  X509_REQ* r = req.get();
  return to_pem([r](BIO* bio) { return PEM_write_bio_X509_REQ(bio, r); });
}

Result<std::string> csr_identity(std::string_view csr_pem) {
  ERR_clear_error();
  auto req = parse_csr(csr_pem);
  if (!req) return Unexpected<Error>{req.error()};
  auto cns = common_names(X509_REQ_get_subject_name(req->get()));
  if (cns.size() != 1) return fail(Errc::invalid_argument, "CSR must carry exactly one CN");
  return cns.front();
}

Result<IssuedCertificate> sign_csr(const CertificateAuthority& ca, std::string_view csr_pem,
                                   const SignOptions& options) {
  ERR_clear_error();
  auto req = parse_csr(csr_pem);
  if (!req) return Unexpected<Error>{req.error()};
  EVP_PKEY* csr_key = X509_REQ_get0_pubkey(req->get());
  if (csr_key == nullptr) return crypto_fail("CSR has no public key");
  // Proof of possession: the requester signed the CSR with the private key.
  if (X509_REQ_verify(req->get(), csr_key) != 1) {
    return crypto_fail("CSR signature does not verify");
  }
  if (auto k = check_csr_key(csr_key); !k) return Unexpected<Error>{k.error()};
  auto cns = common_names(X509_REQ_get_subject_name(req->get()));
  if (cns.size() != 1) return fail(Errc::invalid_argument, "CSR must carry exactly one CN");
  const std::string& identity = cns.front();
  if (options.usage == Usage::client && !is_valid_identity(identity)) {
    return fail(Errc::invalid_argument,
                fmt::format("CSR CN '{}' is not a valid identity", identity));
  }
  if (options.usage == Usage::server && !is_dns_name(identity)) {
    return fail(Errc::invalid_argument, fmt::format("CSR CN '{}' is not a host name", identity));
  }
  if (options.expected_identity && *options.expected_identity != identity) {
    return fail(Errc::invalid_argument, fmt::format("CSR is for '{}', expected '{}'", identity,
                                                    *options.expected_identity));
  }
  auto loaded = load_ca(ca);
  if (!loaded) return Unexpected<Error>{loaded.error()};
  // A fresh subject with only the CN: whatever else the requester put in is not vouched for.
  auto name = make_name(identity, "");
  if (!name) return Unexpected<Error>{name.error()};
  const std::string san = options.usage == Usage::server ? "DNS:" + identity : std::string{};
  IssuedCertificate out;
  auto cert = build_cert(Issuer{loaded->cert.get(), loaded->key.get()}, csr_key, name->get(),
                         options.validity, leaf_extensions(options.usage, san), &out.serial_hex);
  if (!cert) return Unexpected<Error>{cert.error()};
  auto cert_pem = cert_to_pem(cert->get());
  if (!cert_pem) return Unexpected<Error>{cert_pem.error()};
  out.cert_pem = std::move(*cert_pem);
  return out;
}

Result<std::string> create_crl(const CertificateAuthority& ca, const CrlOptions& options) {
  ERR_clear_error();
  if (options.validity.count() <= 0) {
    return fail(Errc::invalid_argument, "CRL validity must be positive");
  }
  auto loaded = load_ca(ca);
  if (!loaded) return Unexpected<Error>{loaded.error()};
  CrlPtr crl{X509_CRL_new()};
  if (!crl) return crypto_fail("X509_CRL_new");
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1) {
    return crypto_fail("X509_CRL_set_version");
  }
  if (X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(loaded->cert.get())) != 1) {
    return crypto_fail("X509_CRL_set_issuer_name");
  }
  // lastUpdate in the future would make OpenSSL reject every client
  // (X509_V_ERR_CRL_NOT_YET_VALID) on a broker whose clock lags ours.
  const std::time_t last = std::time(nullptr) - kDefaultBackdate.count();
  Asn1TimePtr last_update{ASN1_TIME_new()};
  Asn1TimePtr next_update{ASN1_TIME_new()};
  if (!last_update || !next_update || !set_time(last_update.get(), last, Duration{0}) ||
      !set_time(next_update.get(), last, options.validity) ||
      X509_CRL_set1_lastUpdate(crl.get(), last_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1) {
    return crypto_fail("setting CRL dates");
  }
  for (const auto& text : options.revoked_serials) {
    auto serial = parse_serial(text);
    if (!serial) return Unexpected<Error>{serial.error()};
    RevokedPtr revoked{X509_REVOKED_new()};
    if (!revoked || X509_REVOKED_set_serialNumber(revoked.get(), serial->get()) != 1 ||
        X509_REVOKED_set_revocationDate(revoked.get(), last_update.get()) != 1) {
      return crypto_fail("building revoked entry");
    }
    if (X509_CRL_add0_revoked(crl.get(), revoked.get()) != 1) {
      return crypto_fail("X509_CRL_add0_revoked");
    }
    (void)revoked.release();  // owned by the CRL now
  }
  if (X509_CRL_sort(crl.get()) != 1) return crypto_fail("X509_CRL_sort");

  Asn1IntPtr number{ASN1_INTEGER_new()};
  if (!number || ASN1_INTEGER_set_uint64(number.get(), options.crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return crypto_fail("adding CRL number");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, loaded->cert.get(), nullptr, nullptr, crl.get(), 0);
  ExtPtr aki{X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always")};
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) {
    return crypto_fail("adding CRL authority key identifier");
  }
  if (X509_CRL_sign(crl.get(), loaded->key.get(), EVP_sha256()) <= 0) {
    return crypto_fail("X509_CRL_sign");
  }
  X509_CRL* c = crl.get();
  return to_pem([c](BIO* bio) { return PEM_write_bio_X509_CRL(bio, c); });
}

Result<CertificateInfo> inspect_certificate(std::string_view cert_pem) {
  ERR_clear_error();
  auto cert = parse_cert(cert_pem);
  if (!cert) return Unexpected<Error>{cert.error()};
  X509* x = cert->get();
  CertificateInfo info;
  info.subject_cn = first_cn(X509_get_subject_name(x));
  info.issuer_cn = first_cn(X509_get_issuer_name(x));
  info.serial_hex = serial_hex_of(x);
  info.not_before = to_time_point(X509_get0_notBefore(x));
  info.not_after = to_time_point(X509_get0_notAfter(x));
  info.is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
  NamesPtr names{
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr))};
  if (names) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_STRING* s = gn->d.dNSName;
        info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                    static_cast<std::size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = gn->d.iPAddress;
        std::array<char, INET6_ADDRSTRLEN> buf{};
        const int len = ASN1_STRING_length(s);
        const int family = len == 4 ? AF_INET : (len == 16 ? AF_INET6 : -1);
        if (family != -1 &&
            inet_ntop(family, ASN1_STRING_get0_data(s), buf.data(), buf.size()) != nullptr) {
          info.ip_addresses.emplace_back(buf.data());
        }
      }
    }
  }
  drain_openssl_errors();  // X509_get_ext_d2i leaves an entry when there is no SAN
  return info;
}

Result<void> verify_certificate(std::string_view ca_cert_pem, std::string_view cert_pem,
                                std::optional<std::string_view> crl_pem) {
  ERR_clear_error();
  auto ca = parse_cert(ca_cert_pem);
  if (!ca) return Unexpected<Error>{ca.error()};
  auto cert = parse_cert(cert_pem);
  if (!cert) return Unexpected<Error>{cert.error()};
  StorePtr store{X509_STORE_new()};
  if (!store || X509_STORE_add_cert(store.get(), ca->get()) != 1) {
    return crypto_fail("building trust store");
  }
  if (crl_pem) {
    auto crl = parse_crl(*crl_pem);
    if (!crl) return Unexpected<Error>{crl.error()};
    if (X509_STORE_add_crl(store.get(), crl->get()) != 1 ||
        X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK) != 1) {
      return crypto_fail("adding CRL to trust store");
    }
  }
  StoreCtxPtr ctx{X509_STORE_CTX_new()};
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return crypto_fail("X509_STORE_CTX_init");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    drain_openssl_errors();
    return fail(Errc::crypto,
                fmt::format("certificate does not verify: {}", X509_verify_cert_error_string(err)));
  }
  return ok();
}

Result<bool> key_matches_certificate(std::string_view key_pem, std::string_view cert_pem) {
  ERR_clear_error();
  auto key = parse_key(key_pem);
  if (!key) return Unexpected<Error>{key.error()};
  auto cert = parse_cert(cert_pem);
  if (!cert) return Unexpected<Error>{cert.error()};
  const bool match = X509_check_private_key(cert->get(), key->get()) == 1;
  drain_openssl_errors();  // a mismatch is an answer, not an error
  return match;
}

Result<void> write_pem_file(const std::filesystem::path& path, std::string_view pem,
                            std::filesystem::perms perms) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  std::string tmp = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  // mkstemp creates the file 0600, so a key never exists with wider permissions.
  const int fd = mkstemp(tmp.data());
  if (fd < 0) {
    return fail(Errc::io, fmt::format("creating {}: {}", tmp, errno_text(errno)));
  }
  auto cleanup = [&](std::string what) {
    const int saved = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(Errc::io, fmt::format("{} {}: {}", what, path.string(), errno_text(saved)));
  };
  if (::fchmod(fd, static_cast<mode_t>(perms)) != 0) return cleanup("chmod");
  std::size_t done = 0;
  while (done < pem.size()) {
    const ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup("writing");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup("syncing");
  if (::close(fd) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::io, fmt::format("closing {}: {}", path.string(), errno_text(saved)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(tmp.c_str());
    return fail(Errc::io, fmt::format("renaming to {}: {}", path.string(), errno_text(saved)));
  }
  return ok();
}

Result<std::string> read_pem_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const Errc code = errno == ENOENT ? Errc::not_found : Errc::io;
    return fail(code, fmt::format("opening {}: {}", path.string(), errno_text(errno)));
  }
  // PEM files are a few KiB; refusing big ones keeps a wrong path from eating memory.
  constexpr std::size_t kMaxSize = 1U << 20U;
  std::string out;
  std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      return fail(Errc::io, fmt::format("reading {}: {}", path.string(), errno_text(saved)));
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<std::size_t>(n));
    if (out.size() > kMaxSize) {
      ::close(fd);
      return fail(Errc::io, fmt::format("{} is larger than 1 MiB", path.string()));
    }
  }
  ::close(fd);
  return out;
}

}  // namespace dag::pki
