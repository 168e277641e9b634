// A deployment's state directory, as `dagctl init` lays it out, and its description file.
//
//   STATE/deployment.json       hosts and ports (what device bundles point at)
//   STATE/ca/ca.pem, ca.key     the deployment's CA (the key never leaves this directory)
//   STATE/ca/crl.pem            revoked device certificates (mosquitto's crlfile)
//   STATE/broker/               server.pem/.key, mosquitto.conf, acl, mosquitto.pid, data/
//   STATE/dagd/                 dagd.pem/.key (its service identity), dagd.toml, dagd.db
//   STATE/dagctl/               dagctl.pem/.key (service identity for broker commands)
//
// Thread-safety: values. Blocking: load/save read or write one small file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::ctl {

struct Paths {
  explicit Paths(std::filesystem::path state_dir);

  std::filesystem::path root;
  std::filesystem::path deployment;
  std::filesystem::path ca_dir, ca_cert, ca_key, crl;
  std::filesystem::path broker_dir, server_cert, server_key, mosquitto_conf, acl, pid_file,
      persistence_dir;
  std::filesystem::path dagd_dir, dagd_cert, dagd_key, dagd_toml, database;
  std::filesystem::path ctl_dir, ctl_cert, ctl_key;
};

/// Identities with full broker access (the ACL's service identities).
inline constexpr const char* kDagdIdentity = "dagd";
inline constexpr const char* kCtlIdentity = "dagctl";

struct Deployment {
  /// Names devices use to reach the broker; the first goes into device bundles.
  std::vector<std::string> hosts;
  std::uint16_t device_port{8883};
  std::uint16_t service_port{8884};
};

/// Reads STATE/deployment.json. Errors: Errc::not_found (no deployment: run init),
/// Errc::parse.
Result<Deployment> load_deployment(const Paths& paths);
/// Writes it atomically. Errors: Errc::io.
Result<void> save_deployment(const Paths& paths, const Deployment& deployment);

}  // namespace dag::ctl
