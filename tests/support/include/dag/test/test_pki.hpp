// TestPki: a throwaway certificate authority for integration tests, built with dag::pki.
//
// Makes, in its own TempDir: the CA, a broker certificate for localhost / 127.0.0.1, an
// empty CRL, and on demand client certificates (EC P-256, CN = identity). Files are
// written readable by everyone (0644, directory 0755) so a broker that dropped privileges
// to another user can still read them; they are test keys and die with the directory.
//
// Thread-safety: not thread-safe (tests create certificates from the test thread).
// Errors: the constructor and client()/untrusted_client() throw std::runtime_error when
// dag::pki or the file system fails: that is a broken environment, not a test outcome.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "dag/common/pki.hpp"
#include "dag/common/result.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::test {

struct ClientCert {
  std::string identity;
  std::filesystem::path cert;
  std::filesystem::path key;
  std::string serial_hex;
};

class TestPki {
 public:
  /// `leaf_validity` applies to the broker and client certificates.
  explicit TestPki(pki::Validity leaf_validity = {std::chrono::hours{24}, pki::kDefaultBackdate});

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  [[nodiscard]] const std::filesystem::path& ca_file() const { return ca_file_; }
  [[nodiscard]] const std::filesystem::path& server_cert_file() const { return server_cert_; }
  [[nodiscard]] const std::filesystem::path& server_key_file() const { return server_key_; }
  [[nodiscard]] const std::filesystem::path& crl_file() const { return crl_file_; }
  [[nodiscard]] const pki::CertificateAuthority& ca() const { return ca_; }

  /// The certificate of `identity`, issued on first use (the same files afterwards).
  const ClientCert& client(const std::string& identity);

  /// A certificate for `identity` from a second CA that the broker does not trust.
  const ClientCert& untrusted_client(const std::string& identity);

  /// Adds these identities' serials to the revoked set and rewrites crl_file() (atomic
  /// rename, so a broker reloading meanwhile reads the old or the new list). A broker sees
  /// it after SIGHUP. Errors: Errc::not_found for an identity never issued; dag::pki errors.
  Result<void> revoke(const std::vector<std::string>& identities);

 private:
  const ClientCert& issue(const pki::CertificateAuthority& ca, const std::string& identity,
                          const std::string& file_prefix, std::map<std::string, ClientCert>& into);

  TempDir dir_;
  pki::Validity leaf_validity_;
  pki::CertificateAuthority ca_;
  std::filesystem::path ca_file_;
  std::filesystem::path server_cert_;
  std::filesystem::path server_key_;
  std::filesystem::path crl_file_;
  std::map<std::string, ClientCert> clients_;
  std::unique_ptr<pki::CertificateAuthority> untrusted_ca_;
  std::map<std::string, ClientCert> untrusted_clients_;
  std::set<std::string> revoked_serials_;
  std::uint64_t crl_number_{1};
};

}  // namespace dag::test
