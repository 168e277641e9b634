// PKI: the small certificate authority behind detectordag's mutual TLS.
//
// The broker trusts one CA. Every device holds a client certificate whose CN is its
// identity (the broker turns the CN into the MQTT username, and the ACL binds topics to
// it); the broker holds a server certificate for its host name / address. A device may
// generate its own key and send only a CSR (`dag-edge keygen`), so the private key never
// leaves it. Revocation is a CRL that the broker re-reads on SIGHUP.
//
// Everything is exchanged as PEM text so that no OpenSSL type leaks into callers; keys
// are EC P-256 (PKCS#8 PEM), signatures ECDSA with SHA-256, serials 128 random bits.
//
// Blocking: key generation and signing are CPU-bound (well under a millisecond each);
// only write_pem_file/read_pem_file touch the file system.
// Thread-safety: every function is reentrant; OpenSSL 3 needs no global locking.
// Errors: Errc::crypto when OpenSSL refuses (the message carries OpenSSL's error queue),
// Errc::parse for PEM that does not parse, Errc::invalid_argument for bad identities,
// serials or validities, Errc::io / Errc::not_found for files.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::pki {

using Duration = std::chrono::seconds;

/// Production defaults. Tests pass shorter ones.
inline constexpr Duration kDefaultCaValidity = std::chrono::hours{24 * 365 * 10};
inline constexpr Duration kDefaultLeafValidity = std::chrono::hours{24 * 365 * 2};
/// A CRL past its nextUpdate makes OpenSSL (so mosquitto) refuse EVERY client
/// (X509_V_ERR_CRL_HAS_EXPIRED), which for an outage monitor is worse than a stale CRL;
/// hence a long default. Re-issue the CRL whenever a device is revoked anyway.
inline constexpr Duration kDefaultCrlValidity = std::chrono::hours{24 * 365 * 10};
/// notBefore is set this far in the past so a device whose clock lags a little still
/// accepts a freshly issued certificate.
inline constexpr Duration kDefaultBackdate = std::chrono::minutes{5};

/// File modes for write_pem_file. Private keys default to owner-only. Mosquitto started as
/// root drops to the `mosquitto` user before it reads its key, so a broker key written by
/// root must be readable by that user: kSharedReadable (or chown/chgrp it yourself).
inline constexpr std::filesystem::perms kOwnerOnly =
    std::filesystem::perms::owner_read | std::filesystem::perms::owner_write;
inline constexpr std::filesystem::perms kSharedReadable =
    kOwnerOnly | std::filesystem::perms::group_read | std::filesystem::perms::others_read;

/// OpenSSL's per-thread error queue as one message ("; "-separated, empty when none),
/// leaving it empty so that a later, unrelated failure does not report stale errors.
std::string drain_openssl_errors();

/// True when `identity` may be a certificate CN / MQTT username: 1..128 characters from
/// [A-Za-z0-9._-], not starting with '.' or '-'. The identity becomes one topic level
/// through the ACL's %u, so '/', '+', '#', '$' and whitespace must never appear in it.
bool is_valid_identity(std::string_view identity) noexcept;

/// The CA's certificate and private key (PEM).
struct CertificateAuthority {
  std::string cert_pem;
  std::string key_pem;
};

/// A certificate together with the private key it certifies (empty when the key stayed
/// with its owner, as with sign_csr).
struct IssuedCertificate {
  std::string cert_pem;
  std::string key_pem;
  std::string serial_hex;  ///< Upper-case hex, as printed by `openssl x509 -serial`.
};

struct Validity {
  Duration lifetime{kDefaultLeafValidity};
  Duration backdate{kDefaultBackdate};  ///< notBefore = now - backdate.
};

struct CaOptions {
  std::string common_name{"detectordag CA"};
  std::string organization{"detectordag"};
  Validity validity{kDefaultCaValidity, kDefaultBackdate};
};

struct ServerOptions {
  std::string common_name{"localhost"};
  std::vector<std::string> dns_names{"localhost"};
  std::vector<std::string> ip_addresses{"127.0.0.1"};  ///< IPv4 or IPv6 literals.
  Validity validity{};
};

enum class Usage {
  client,  ///< extendedKeyUsage clientAuth: devices and services (dagd).
  server,  ///< extendedKeyUsage serverAuth: the broker.
};

struct CertificateInfo {
  std::string subject_cn;
  std::string issuer_cn;
  std::string serial_hex;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  bool is_ca{false};
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

/// A new EC P-256 private key, PKCS#8 PEM (unencrypted: protect it with file modes).
Result<std::string> generate_key();

/// The public half of a private key, SubjectPublicKeyInfo PEM.
Result<std::string> public_key_of(std::string_view key_pem);

/// A new key and a self-signed CA certificate (basicConstraints CA:TRUE, pathlen 0,
/// keyCertSign + cRLSign).
Result<CertificateAuthority> create_ca(const CaOptions& options = {});

/// A new key and a broker certificate signed by `ca`, with the SANs of `options`.
/// Errors: invalid_argument when no SAN is given or an IP literal does not parse.
Result<IssuedCertificate> issue_server_certificate(const CertificateAuthority& ca,
                                                   const ServerOptions& options = {});

/// A new key and a client certificate with CN = identity, signed by `ca`.
/// Errors: invalid_argument when !is_valid_identity(identity).
Result<IssuedCertificate> issue_client_certificate(const CertificateAuthority& ca,
                                                   std::string_view identity,
                                                   const Validity& validity = {});

/// A PKCS#10 request for CN = identity, signed with `key_pem` (proves possession).
Result<std::string> create_csr(std::string_view key_pem, std::string_view identity);

struct SignOptions {
  Usage usage{Usage::client};
  Validity validity{};
  /// When set, the CSR's CN must equal it (the operator says which device they expect).
  std::optional<std::string> expected_identity;
};

/// Signs a CSR with the CA. Only the CSR's CN and public key are used: every other
/// subject field and every requested extension is ignored, the CA decides them.
/// Errors: crypto when the CSR's self-signature does not verify; invalid_argument when
/// its CN is not a valid identity or differs from expected_identity.
/// The returned key_pem is empty.
Result<IssuedCertificate> sign_csr(const CertificateAuthority& ca, std::string_view csr_pem,
                                   const SignOptions& options = {});

/// The CN in a CSR (to show the operator before signing).
Result<std::string> csr_identity(std::string_view csr_pem);

struct CrlOptions {
  /// Serials to revoke, hex as in IssuedCertificate::serial_hex (case and ':' ignored).
  std::vector<std::string> revoked_serials;
  /// Must grow with every CRL the CA publishes (RFC 5280 §5.2.3).
  std::uint64_t crl_number{1};
  Duration validity{kDefaultCrlValidity};
};

/// A CRL v2 signed by the CA. An empty list is valid (the broker needs a CRL file from
/// the start when crlfile is configured).
Result<std::string> create_crl(const CertificateAuthority& ca, const CrlOptions& options = {});

/// Parses a certificate.
Result<CertificateInfo> inspect_certificate(std::string_view cert_pem);

/// Checks that `cert_pem` chains to `ca_cert_pem`, is within its validity, and, when
/// crl_pem is given, is not revoked. Errors: crypto with OpenSSL's verify reason.
Result<void> verify_certificate(std::string_view ca_cert_pem, std::string_view cert_pem,
                                std::optional<std::string_view> crl_pem = std::nullopt);

/// True when the certificate's public key is the one of `key_pem`.
Result<bool> key_matches_certificate(std::string_view key_pem, std::string_view cert_pem);

/// Writes `pem` so that the file never exists with wider permissions than `perms`
/// (created with them, umask notwithstanding), then renames it into place atomically.
Result<void> write_pem_file(const std::filesystem::path& path, std::string_view pem,
                            std::filesystem::perms perms);

/// Reads a whole PEM file. Errors: not_found, io.
Result<std::string> read_pem_file(const std::filesystem::path& path);

}  // namespace dag::pki
