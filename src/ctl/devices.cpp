#include <fmt/format.h>

#include "dag/common/encoding.hpp"
#include "dag/common/files.hpp"
#include "dag/common/pki.hpp"
#include "dag/common/validate.hpp"
#include "dag/ctl/ctl.hpp"
#include "dag/protocol/topics.hpp"

#include "internal.hpp"

namespace dag::ctl {
namespace {

namespace fs = std::filesystem;

// Longest dag name, in characters (the dashboard's limit).
constexpr std::size_t kMaxDeviceName = 64;

}  // namespace

Result<pki::CertificateAuthority> load_ca(const Paths& paths) {
  auto cert = pki::read_pem_file(paths.ca_cert);
  if (!cert) {
    return fail(Errc::not_found, "no CA at " + paths.ca_cert.string() + " (run `dagctl init`)");
  }
  auto key = pki::read_pem_file(paths.ca_key);
  if (!key) return fail(Errc::io, "cannot read the CA key " + paths.ca_key.string());
  return pki::CertificateAuthority{*std::move(cert), *std::move(key)};
}

Result<void> write_crl(const Paths& paths, store::Store& store, std::int64_t now_ms) {
  auto ca = load_ca(paths);
  if (!ca) return Unexpected<Error>{ca.error()};
  auto revoked = store::transact(store, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_revoked_certificates(now_ms);
  });
  if (!revoked) return Unexpected<Error>{from_store(revoked.error())};
  pki::CrlOptions options;
  for (const auto& c : *revoked) options.revoked_serials.push_back(c.serial_hex);
  // CRL numbers must grow; the clock does that without a counter to keep.
  options.crl_number = static_cast<std::uint64_t>(now_ms);
  auto crl = pki::create_crl(*ca, options);
  if (!crl) return Unexpected<Error>{crl.error()};
  return pki::write_pem_file(paths.crl, *crl, pki::kSharedReadable);
}

Result<ProvisionedDevice> add_device(const Paths& paths, store::Store& store,
                                     const NewDeviceOptions& o, std::int64_t now_ms) {
  if (auto why = validate::display_name_error(o.name, kMaxDeviceName)) {
    return fail(Errc::invalid_argument, "device name: " + *why);
  }
  if (o.validity_days < 1 || o.validity_days > 36500) {
    return fail(Errc::invalid_argument, "validity must be 1..36500 days");
  }
  auto ca = load_ca(paths);
  if (!ca) return Unexpected<Error>{ca.error()};
  const pki::Validity validity{std::chrono::hours{24} * o.validity_days, pki::kDefaultBackdate};

  ProvisionedDevice out;
  out.ca_pem = ca->cert_pem;
  std::string id;
  pki::IssuedCertificate issued;
  if (o.csr_pem) {
    auto cn = pki::csr_identity(*o.csr_pem);
    if (!cn) return fail(Errc::invalid_argument, "the CSR: " + cn.error().message);
    id = *cn;
    if (!protocol::is_valid_device_id(id)) {
      return fail(Errc::invalid_argument, "the CSR's CN '" + id + "' is not a valid device id");
    }
    pki::SignOptions sign;
    sign.validity = validity;
    sign.expected_identity = id;
    auto signed_cert = pki::sign_csr(*ca, *o.csr_pem, sign);
    if (!signed_cert)
      return fail(Errc::invalid_argument, "the CSR: " + signed_cert.error().message);
    issued = *std::move(signed_cert);
  } else {
    auto uuid = new_uuid();
    if (!uuid) return Unexpected<Error>{uuid.error()};
    id = *uuid;
    auto made = pki::issue_client_certificate(*ca, id, validity);
    if (!made) return Unexpected<Error>{made.error()};
    issued = *std::move(made);
  }
  if (id == kDagdIdentity || id == kCtlIdentity) {
    return fail(Errc::invalid_argument, "'" + id + "' is a service identity, not a device id");
  }
  auto info = pki::inspect_certificate(issued.cert_pem);
  if (!info) return Unexpected<Error>{info.error()};
  const auto not_after_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(info->not_after.time_since_epoch())
          .count();

  auto device = store::transact(
      store, store::TxMode::read_write,
      [&](store::Transaction& tx) -> store::StoreResult<store::Device> {
        auto account = tx.find_account_by_username(o.account);
        if (!account) return Unexpected<store::StoreError>{account.error()};
        if (auto exists = tx.get_device(id); exists) {
          return store::fail(store::StoreErrc::conflict, "a device '" + id + "' exists already");
        }
        auto d = tx.create_device({id, account->id, o.name, now_ms});
        if (!d) return d;
        if (auto c =
                tx.add_certificate({issued.serial_hex, id, now_ms, not_after_ms, std::nullopt});
            !c) {
          return Unexpected<store::StoreError>{c.error()};
        }
        // The fleet's and the account's configuration apply from the first connect.
        if (auto pushed = push_config(tx, *d, now_ms); !pushed) {
          return Unexpected<store::StoreError>{pushed.error()};
        }
        return d;
      });
  if (!device) {
    if (device.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found, "no account '" + o.account + "'");
    }
    return Unexpected<Error>{from_store(device.error())};
  }
  out.device = *std::move(device);
  out.cert_pem = std::move(issued.cert_pem);
  out.key_pem = std::move(issued.key_pem);
  return out;
}

std::string env_bundle(const Deployment& d, const ProvisionedDevice& device) {
  std::string out = fmt::format(
      "# dag \"{}\" ({}): dag-edge reads these as they are.\n"
      "AWS_THING_NAME={}\nAWS_ENDPOINT={}\nAWS_PORT={}\nAWS_ROOT_CERT={}\nAWS_THING_CERT={}\n",
      device.device.name, device.device.id, device.device.id, d.hosts.front(), d.device_port,
      base64_encode(device.ca_pem), base64_encode(device.cert_pem));
  if (device.key_pem.empty()) {
    out += "# The key stayed on the dag: set AWS_THING_KEY to the path of its key.pem.\n";
  } else {
    out += "AWS_THING_KEY=" + base64_encode(device.key_pem) + "\n";
  }
  return out;
}

Result<void> write_dir_bundle(const fs::path& out, const fs::path& device_dir, const Deployment& d,
                              const ProvisionedDevice& device) {
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    return fail(Errc::invalid_argument, out.string() + " exists and is not empty");
  }
  fs::create_directories(out, ec);
  if (!ec) fs::permissions(out, fs::perms::owner_all, ec);
  if (ec) return fail(Errc::io, "cannot create " + out.string() + ": " + ec.message());
  const auto key_path = device_dir / "key.pem";
  const std::string toml = fmt::format(
      "# dag-edge configuration for \"{}\", written by `dagctl device add`.\n"
      "# Every key: `dag-edge --print-config`.\n\n"
      "[device]\nid = \"{}\"\nstate_dir = \"/var/lib/dag-edge\"\n\n"
      "[broker]\nhost = \"{}\"\nport = {}\n\n"
      "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
      device.device.name, device.device.id, d.hosts.front(), d.device_port,
      (device_dir / "ca.pem").string(), (device_dir / "cert.pem").string(), key_path.string());
  if (auto r = pki::write_pem_file(out / "ca.pem", device.ca_pem, pki::kSharedReadable); !r)
    return r;
  if (auto r = pki::write_pem_file(out / "cert.pem", device.cert_pem, pki::kSharedReadable); !r) {
    return r;
  }
  if (!device.key_pem.empty()) {
    if (auto r = pki::write_pem_file(out / "key.pem", device.key_pem, pki::kOwnerOnly); !r)
      return r;
  }
  return write_private_file(out / "dag-edge.toml", toml);
}

Result<std::vector<store::Device>> list_devices(store::Store& store,
                                                const std::optional<std::string>& account) {
  auto tx = store.begin(store::TxMode::read_only);
  if (!tx) return Unexpected<Error>{from_store(tx.error())};
  std::vector<store::Account> accounts;
  if (account) {
    auto a = find_account(**tx, *account);
    if (!a) return Unexpected<Error>{a.error()};
    accounts.push_back(*std::move(a));
  } else {
    auto all = (*tx)->list_accounts();
    if (!all) return Unexpected<Error>{from_store(all.error())};
    accounts = std::move(all).value();
  }
  std::vector<store::Device> out;
  for (const auto& a : accounts) {
    auto d = (*tx)->list_devices(a.id);
    if (!d) return Unexpected<Error>{from_store(d.error())};
    out.insert(out.end(), d->begin(), d->end());
  }
  return out;
}

Result<void> revoke_device(const Paths& paths, store::Store& store, const std::string& device_id,
                           bool remove, std::int64_t now_ms, std::vector<std::string>& notes) {
  auto done = store::transact(store, store::TxMode::read_write,
                              [&](store::Transaction& tx) -> store::StoreResult<void> {
                                if (auto r = tx.set_device_revoked(device_id, true); !r) return r;
                                if (auto r = tx.revoke_certificates(device_id, now_ms); !r) {
                                  return Unexpected<store::StoreError>{r.error()};
                                }
                                if (remove) return tx.delete_device(device_id);
                                return {};
                              });
  if (!done) {
    if (done.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found, "no device '" + device_id + "'");
    }
    return Unexpected<Error>{from_store(done.error())};
  }
  if (auto r = write_crl(paths, store, now_ms); !r) return r;
  // The broker's side: refuse new handshakes (CRL reload), then drop the live connection.
  if (auto r = reload_broker(paths); !r) {
    notes.push_back("the broker was not told (" + r.error().message +
                    "); it applies the CRL when it starts");
    return ok();
  }
  auto deployment = load_deployment(paths);
  if (!deployment) return Unexpected<Error>{deployment.error()};
  if (auto r = kick_device(paths, *deployment, device_id); !r) {
    notes.push_back("the live connection was not dropped (" + r.error().message +
                    "); dagd refuses its messages meanwhile");
  }
  return ok();
}

}  // namespace dag::ctl
