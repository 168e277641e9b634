#include "dag/test/test_pki.hpp"

#include <stdexcept>
#include <system_error>
#include <utility>

namespace dag::test {
namespace {

template <class T>
T must(Result<T>&& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().message);
  return std::move(r).value();
}

void must_ok(const Result<void>& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().message);
}

void write(const std::filesystem::path& path, const std::string& pem) {
  must_ok(pki::write_pem_file(path, pem, pki::kSharedReadable), "writing " + path.string());
}

}  // namespace

TestPki::TestPki(pki::Validity leaf_validity) : dir_("dag-pki"), leaf_validity_(leaf_validity) {
  // mkdtemp's 0700 would stop a broker that runs as another user from reaching the files.
  std::error_code ec;
  std::filesystem::permissions(
      dir_.path(),
      std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
          std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
          std::filesystem::perms::others_exec,
      ec);
  if (ec) throw std::runtime_error("chmod " + dir_.path().string() + ": " + ec.message());

  pki::CaOptions ca_options;
  ca_options.common_name = "detectordag test CA";
  ca_ = must(pki::create_ca(ca_options), "create_ca");
  ca_file_ = dir_ / "ca.crt";
  write(ca_file_, ca_.cert_pem);
  must_ok(pki::write_pem_file(dir_ / "ca.key", ca_.key_pem, pki::kOwnerOnly), "writing ca.key");

  pki::ServerOptions server;  // localhost + 127.0.0.1
  server.validity = leaf_validity_;
  auto issued = must(pki::issue_server_certificate(ca_, server), "issue_server_certificate");
  server_cert_ = dir_ / "broker.crt";
  server_key_ = dir_ / "broker.key";
  write(server_cert_, issued.cert_pem);
  write(server_key_, issued.key_pem);

  crl_file_ = dir_ / "crl.pem";
  write(crl_file_, must(pki::create_crl(ca_, {}), "create_crl"));
}

const ClientCert& TestPki::issue(const pki::CertificateAuthority& ca, const std::string& identity,
                                 const std::string& file_prefix,
                                 std::map<std::string, ClientCert>& into) {
  if (auto it = into.find(identity); it != into.end()) return it->second;
  auto issued = must(pki::issue_client_certificate(ca, identity, leaf_validity_),
                     "issue_client_certificate " + identity);
  ClientCert c{identity, dir_ / (file_prefix + identity + ".crt"),
               dir_ / (file_prefix + identity + ".key"), issued.serial_hex};
  write(c.cert, issued.cert_pem);
  write(c.key, issued.key_pem);
  return into.emplace(identity, std::move(c)).first->second;
}

const ClientCert& TestPki::client(const std::string& identity) {
  return issue(ca_, identity, "client-", clients_);
}

const ClientCert& TestPki::untrusted_client(const std::string& identity) {
  if (!untrusted_ca_) {
    pki::CaOptions options;
    options.common_name = "untrusted test CA";
    untrusted_ca_ = std::make_unique<pki::CertificateAuthority>(
        must(pki::create_ca(options), "create_ca (untrusted)"));
  }
  return issue(*untrusted_ca_, identity, "untrusted-", untrusted_clients_);
}

Result<void> TestPki::revoke(const std::vector<std::string>& identities) {
  for (const auto& id : identities) {
    auto it = clients_.find(id);
    if (it == clients_.end()) return fail(Errc::not_found, "no certificate issued for " + id);
    revoked_serials_.insert(it->second.serial_hex);
  }
  pki::CrlOptions options;
  options.revoked_serials.assign(revoked_serials_.begin(), revoked_serials_.end());
  options.crl_number = ++crl_number_;
  auto crl = pki::create_crl(ca_, options);
  if (!crl) return Unexpected<Error>{crl.error()};
  return pki::write_pem_file(crl_file_, *crl, pki::kSharedReadable);
}

}  // namespace dag::test
