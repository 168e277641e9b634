// Helpers shared by dagctl's command files (not part of the library's interface).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "dag/common/pki.hpp"
#include "dag/common/result.hpp"
#include "dag/ctl/deployment.hpp"
#include "dag/store/store.hpp"

namespace dag::ctl {

/// A store error as a dagctl error (not_found/conflict/invalid_argument: bad input).
Error from_store(const store::StoreError& e);

/// The account with this username. Errors: not_found, io.
Result<store::Account> find_account(store::Transaction& tx, const std::string& username);

/// The deployment's CA (certificate and key). Errors: not_found (no deployment), io.
Result<pki::CertificateAuthority> load_ca(const Paths& paths);

/// Writes a fresh CRL of every revoked, unexpired certificate. Errors: io, crypto.
Result<void> write_crl(const Paths& paths, store::Store& store, std::int64_t now_ms);

/// SIGHUP to the broker in broker/mosquitto.pid. Errors: unavailable (not running).
Result<void> reload_broker(const Paths& paths);

/// Asks the presence plugin to drop the device's connection, over the service listener
/// with dagctl's identity. Errors: unavailable, timeout.
Result<void> kick_device(const Paths& paths, const Deployment& deployment,
                         const std::string& device_id);

/// The effective configuration of a device (fleet < account < device) and where each key
/// comes from.
struct Effective {
  nlohmann::json config = nlohmann::json::object();
  nlohmann::json origin = nlohmann::json::object();
};
store::StoreResult<Effective> effective_config(store::Transaction& tx, const store::Device& device);

/// Writes the effective configuration of `device` into its desired state (keys no longer
/// configured are removed). True when the desired state changed.
store::StoreResult<bool> push_config(store::Transaction& tx, const store::Device& device,
                                     std::int64_t now_ms);

}  // namespace dag::ctl
