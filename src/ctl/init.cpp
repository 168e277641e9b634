#include <arpa/inet.h>
#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <array>

#include "dag/broker/acl.hpp"
#include "dag/broker/mosquitto_conf.hpp"
#include "dag/common/encoding.hpp"
#include "dag/common/files.hpp"
#include "dag/common/pki.hpp"
#include "dag/ctl/ctl.hpp"
#include "dag/store/sqlite.hpp"

#include "internal.hpp"

namespace dag::ctl {
namespace {

namespace fs = std::filesystem;
using pki::kOwnerOnly;
using pki::kSharedReadable;

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool is_dns_name(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (const char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

// TOML basic string: the values we write are paths and names, but escape anyway.
std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Result<void> make_dir(const fs::path& dir, fs::perms perms) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) fs::permissions(dir, perms, ec);
  if (ec) return fail(Errc::io, "cannot create " + dir.string() + ": " + ec.message());
  return ok();
}

// When run as root, the broker (which drops to broker_user) must be able to read its key.
Result<void> give_to(const fs::path& path, const std::string& user) {
  if (::geteuid() != 0 || user.empty() || user == "root") return ok();
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 4096> buf{};
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return ok();  // no such user here: mosquitto will say so
  }
  if (::chown(path.c_str(), pw.pw_uid, pw.pw_gid) != 0) {
    return fail(Errc::io, "cannot chown " + path.string() + " to " + user);
  }
  return ok();
}

// Everything a deployment consists of, made in memory before any file is written.
struct Material {
  Deployment deployment;
  pki::CertificateAuthority ca;
  pki::IssuedCertificate server;
  pki::IssuedCertificate dagd;
  pki::IssuedCertificate ctl;
  std::string crl;
  std::string mosquitto_conf;
  std::string acl;
  std::string dagd_toml;
};

Result<Material> make_material(const InitOptions& o, const Paths& p);

}  // namespace

Result<std::string> init(const InitOptions& o) {
  const Paths p(fs::absolute(o.dir));
  if (fs::exists(p.deployment) && !o.force) {
    return fail(Errc::invalid_argument,
                p.root.string() +
                    " already holds a deployment; --force replaces it (a new CA: every device "
                    "must be provisioned again)");
  }
  if (o.device_port == 0 || o.service_port == 0 || o.device_port == o.service_port) {
    return fail(Errc::invalid_argument, "the device and service ports must differ and not be 0");
  }
  auto made = make_material(o, p);
  if (!made) return Unexpected<Error>{made.error()};
  const Material& m = *made;
  const Deployment& deployment = m.deployment;

  // Now the files. Public material is world-readable; keys are owner-only, except the
  // broker's, which its (possibly different) user must read.
  for (const auto& [dir, perms] :
       {std::pair{p.root, fs::perms(0755)}, std::pair{p.ca_dir, fs::perms(0755)},
        std::pair{p.broker_dir, fs::perms(0750)}, std::pair{p.persistence_dir, fs::perms(0750)},
        std::pair{p.dagd_dir, fs::perms(0700)}, std::pair{p.ctl_dir, fs::perms(0700)}}) {
    if (auto r = make_dir(dir, perms); !r) return Unexpected<Error>{r.error()};
  }
  const std::pair<fs::path, std::pair<const std::string*, fs::perms>> files[] = {
      {p.ca_cert, {&m.ca.cert_pem, kSharedReadable}},
      {p.ca_key, {&m.ca.key_pem, kOwnerOnly}},
      {p.crl, {&m.crl, kSharedReadable}},
      {p.server_cert, {&m.server.cert_pem, kSharedReadable}},
      {p.server_key, {&m.server.key_pem, kOwnerOnly}},
      {p.mosquitto_conf, {&m.mosquitto_conf, kSharedReadable}},
      {p.acl, {&m.acl, kSharedReadable}},
      {p.dagd_cert, {&m.dagd.cert_pem, kSharedReadable}},
      {p.dagd_key, {&m.dagd.key_pem, kOwnerOnly}},
      {p.dagd_toml, {&m.dagd_toml, kOwnerOnly}},
      {p.ctl_cert, {&m.ctl.cert_pem, kSharedReadable}},
      {p.ctl_key, {&m.ctl.key_pem, kOwnerOnly}},
  };
  for (const auto& [path, what] : files) {
    if (auto r = pki::write_pem_file(path, *what.first, what.second); !r) {
      return Unexpected<Error>{r.error()};
    }
  }
  for (const auto& path : {p.broker_dir, p.persistence_dir, p.server_key}) {
    if (auto r = give_to(path, o.broker_user); !r) return Unexpected<Error>{r.error()};
  }
  if (o.force) {
    // A new CA makes every old device certificate worthless; start the store afresh too.
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(p.database.string() + suffix, ec);
  }
  auto store = open_store(p);
  if (!store) return Unexpected<Error>{store.error()};
  if (auto r = save_deployment(p, deployment); !r) return Unexpected<Error>{r.error()};

  return fmt::format(
      "Deployment created in {root}.\n\n"
      "Next steps:\n"
      "  1. Start the broker:   mosquitto -c {conf}\n"
      "  2. Start dagd:         dagd -c {dagd}\n"
      "  3. Add an account:     dagctl --dir {root} account add --username alice --email "
      "alice@example.com\n"
      "  4. Add a dag:          dagctl --dir {root} device add --account alice --name Home "
      "--format env > home.env\n"
      "     then run it:        env $(cat home.env) dag-edge run\n"
      "Devices connect to {host}:{port} (TLS with their certificate).\n",
      fmt::arg("root", p.root.string()), fmt::arg("conf", p.mosquitto_conf.string()),
      fmt::arg("dagd", p.dagd_toml.string()), fmt::arg("host", deployment.hosts.front()),
      fmt::arg("port", o.device_port));
}

namespace {

Result<Material> make_material(const InitOptions& o, const Paths& p) {
  pki::ServerOptions server;
  Deployment deployment{{}, o.device_port, o.service_port};
  for (const auto& host : o.hosts) {
    if (is_ip_literal(host)) {
      server.ip_addresses.push_back(host);
    } else if (is_dns_name(host)) {
      server.dns_names.push_back(host);
    } else {
      return fail(Errc::invalid_argument,
                  "'" + host + "' is neither a host name nor an IP address");
    }
    deployment.hosts.push_back(host);
  }
  if (deployment.hosts.empty()) deployment.hosts.emplace_back("localhost");
  server.common_name = deployment.hosts.front();

  // Everything is made in memory first: a failure leaves no half a deployment behind.
  auto ca = pki::create_ca();
  if (!ca) return Unexpected<Error>{ca.error()};
  auto server_cert = pki::issue_server_certificate(*ca, server);
  if (!server_cert) return Unexpected<Error>{server_cert.error()};
  auto dagd_cert = pki::issue_client_certificate(*ca, kDagdIdentity);
  if (!dagd_cert) return Unexpected<Error>{dagd_cert.error()};
  auto ctl_cert = pki::issue_client_certificate(*ca, kCtlIdentity);
  if (!ctl_cert) return Unexpected<Error>{ctl_cert.error()};
  auto crl = pki::create_crl(*ca, {});
  if (!crl) return Unexpected<Error>{crl.error()};

  broker::BrokerConfig bc;
  bc.port = o.device_port;
  bc.cafile = p.ca_cert;
  bc.certfile = p.server_cert;
  bc.keyfile = p.server_key;
  bc.crlfile = p.crl;
  bc.acl_file = p.acl;
  bc.user = o.broker_user;
  bc.persistence = true;
  bc.persistence_location = p.persistence_dir;
  bc.persistent_client_expiration = "90d";
  bc.pid_file = p.pid_file;
  bc.service_listener = broker::ServiceListener{"127.0.0.1", o.service_port};
  if (!o.plugin.empty()) {
    bc.plugin =
        broker::Plugin{fs::absolute(o.plugin),
                       {{"ignore_usernames", std::string(kDagdIdentity) + "," + kCtlIdentity}}};
  }
  auto conf = broker::render_mosquitto_conf(bc);
  if (!conf) return Unexpected<Error>{conf.error()};
  auto acl = broker::render_acl({{kDagdIdentity, kCtlIdentity}});
  if (!acl) return Unexpected<Error>{acl.error()};

  auto secret = random_bytes(32);
  if (!secret) return Unexpected<Error>{secret.error()};
  const std::string dagd_toml = fmt::format(
      "# dagd configuration written by `dagctl init`. Every key: `dagd --print-config`.\n\n"
      "[dagd]\nstate_dir = {}\n\n"
      "[database]\npath = {}\n\n"
      "[mqtt]\n# The broker's loopback service listener.\nhost = \"127.0.0.1\"\nport = {}\n"
      "client_id = \"{}\"\nca = {}\ncert = {}\nkey = {}\n\n"
      "[api]\n# Signs login tokens; keep it secret, keep it stable (changing it logs everyone "
      "out).\n"
      "jwt_secret = \"{}\"\n\n"
      "# Notifications (e-mail) go through an SMTP server; fill in and uncomment:\n"
      "# [smtp]\n# url = \"smtp://mail.example.com:587\"\n# from = \"detectordag "
      "<dag@example.com>\"\n# username = \"\"\n# password = \"\"\n",
      toml_string(p.dagd_dir.string()), toml_string(p.database.string()), o.service_port,
      kDagdIdentity, toml_string(p.ca_cert.string()), toml_string(p.dagd_cert.string()),
      toml_string(p.dagd_key.string()), base64_encode(*secret));

  return Material{std::move(deployment), *std::move(ca),       *std::move(server_cert),
                  *std::move(dagd_cert), *std::move(ctl_cert), *std::move(crl),
                  *std::move(conf),      *std::move(acl),      dagd_toml};
}

}  // namespace

Result<std::unique_ptr<store::Store>> open_store(const Paths& paths) {
  auto s = store::open_sqlite(paths.database);
  if (!s) {
    const bool bad_input = s.error().code == store::StoreErrc::incompatible;
    return fail(bad_input ? Errc::config : Errc::io,
                "database " + paths.database.string() + ": " + s.error().message);
  }
  return std::move(s).value();
}

}  // namespace dag::ctl
