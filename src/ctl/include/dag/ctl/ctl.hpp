// dagctl's commands as functions over a deployment directory and its store, so that tests
// call them directly and main.cpp stays a thin command-line layer.
//
// Errors: dag::Errc. Bad input (an unknown account, a malformed address, a taken name, a
// CSR that does not verify) is invalid_argument, not_found, parse, config or crypto, which
// main maps to exit code 2; a failing environment (disk, store, broker) is io, unavailable,
// timeout or internal: exit code 1.
// Nothing is half-written: store changes are one transaction; files are written to a
// temporary name and renamed.
// Blocking: disk, store, and for revocation the broker (bounded by a few seconds).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dag/common/result.hpp"
#include "dag/ctl/deployment.hpp"
#include "dag/store/store.hpp"

namespace dag::ctl {

/// Exit code for an error (0 is success): 2 for bad input, 1 otherwise.
int exit_code(const Error& error) noexcept;

// ---- init -------------------------------------------------------------------------------

struct InitOptions {
  std::filesystem::path dir;
  /// Extra names devices use to reach the broker (DNS names or IP literals); localhost
  /// and 127.0.0.1 are always in the broker certificate.
  std::vector<std::string> hosts;
  bool force{false};  ///< replace an existing deployment (a new CA: every device re-provisioned)
  std::uint16_t device_port{8883};
  std::uint16_t service_port{8884};
  /// mosquitto's `user` (it drops to it when started as root); empty: mosquitto's default.
  std::string broker_user{"mosquitto"};
  /// The presence plugin (dag_presence.so); empty: no plugin line.
  std::filesystem::path plugin;
};

/// Creates the deployment (see deployment.hpp) and returns the next steps, for humans.
/// Errors: invalid_argument (exists without force, a bad host name, ports), io, crypto.
Result<std::string> init(const InitOptions& options);

/// Opens (creating and migrating) the deployment's database.
Result<std::unique_ptr<store::Store>> open_store(const Paths& paths);

// ---- accounts ---------------------------------------------------------------------------

/// Errors: invalid_argument (username 1..128 printable characters without spaces, taken;
/// password too short or long; a malformed e-mail address).
Result<store::Account> add_account(store::Store& store, const std::string& username,
                                   const std::string& password,
                                   const std::vector<std::string>& emails, std::int64_t now_ms);
/// Errors: not_found (no such account), invalid_argument (password).
Result<void> set_password(store::Store& store, const std::string& username,
                          const std::string& password);
Result<std::vector<store::Account>> list_accounts(store::Store& store);
/// Removes the account, its devices (their certificates revoked first, see
/// revoke_device) and everything of theirs. Returns how many devices went.
Result<int> remove_account(const Paths& paths, store::Store& store, const std::string& username,
                           std::int64_t now_ms, std::vector<std::string>& notes);

// ---- notification targets ---------------------------------------------------------------

struct NewTargetOptions {
  std::string account{};  ///< username
  store::TargetKind kind{store::TargetKind::email};
  std::string address{};  ///< an e-mail address, or the webhook's / ntfy topic's URL
  /// Webhooks: the HMAC key signing bodies; ntfy: the access token. Not for e-mail.
  std::optional<std::string> secret{};
  /// Webhooks only: a body template (dag/notify/template.hpp) and its Content-Type
  /// (without one: text/plain). A content type needs a template.
  std::optional<std::string> body_template{};
  std::optional<std::string> content_type{};
};

/// Adds a target. E-mail targets start unverified (dagd mails them a verification link);
/// webhooks and ntfy topics are verified at once (the owner typed the URL, there is no
/// one to ask). Errors: not_found (account), invalid_argument (a malformed address, URL,
/// template or content type; an option the kind does not take; the account has this
/// address already).
Result<store::NotificationTarget> add_target(store::Store& store, const NewTargetOptions& options,
                                             std::int64_t now_ms);

/// The account's targets, oldest first. Errors: not_found (account).
Result<std::vector<store::NotificationTarget>> list_targets(store::Store& store,
                                                            const std::string& account);

/// A target as JSON for `target list --json`: id, kind, address, verified, health
/// (failureCount, lastError, lastErrorAt, lastSuccessAt) and "secret": "set"/"none"
/// (never the secret itself).
nlohmann::json target_json(const store::NotificationTarget& target);

/// Removes one of the account's targets. Errors: not_found (no account, or no such target
/// of this account: another account's target is not revealed).
Result<void> remove_target(store::Store& store, const std::string& account,
                           const std::string& target_id);

/// Shortest time between two verification mails to one address.
inline constexpr std::int64_t kVerificationResendIntervalMs = 60'000;

/// Asks dagd's worker to mail the target a new verification link. Errors: not_found (as
/// remove_target), invalid_argument (not an e-mail target, verified already, or the last
/// mail went less than kVerificationResendIntervalMs ago: the message says how long to
/// wait).
Result<void> resend_verification(store::Store& store, const std::string& account,
                                 const std::string& target_id, std::int64_t now_ms);

// ---- account preferences ----------------------------------------------------------------

/// The account's settings. Errors: not_found.
Result<store::AccountSettings> get_settings(store::Store& store, const std::string& username);

/// The settings as JSON with the keys `account set` takes: powerOffGraceS,
/// disconnectGraceS, lowBatteryPercent, timeZone, notifyPowerLost, notifyPowerBack,
/// notifyContactLost, notifyDagBack, notifyBatteryLow.
nlohmann::json settings_json(const store::AccountSettings& settings);

/// Changes some settings in one transaction and returns them all. Keys as in
/// settings_json; grace periods 0..604800 s, lowBatteryPercent 0..100, timeZone an IANA
/// name known to the tz database, notify* true/false. Errors: not_found (account),
/// invalid_argument naming the key and the rule (nothing is changed).
Result<store::AccountSettings> set_settings(store::Store& store, const std::string& username,
                                            const std::map<std::string, nlohmann::json>& changes);

// ---- devices ----------------------------------------------------------------------------

struct NewDeviceOptions {
  std::string account;  ///< username
  std::string name;
  /// A CSR from `dag-edge keygen`: its CN is the device id and the key stays on the dag.
  std::optional<std::string> csr_pem;
  /// Device certificates outlive the hardware by default: an expired certificate is an
  /// outage nobody notices until power fails.
  int validity_days{3650};
};

struct ProvisionedDevice {
  store::Device device;
  std::string cert_pem;
  std::string key_pem;  ///< empty when a CSR was given
  std::string ca_pem;
};

/// Registers a device with a new UUID (or the CSR's CN), its certificate, and the fleet
/// and account configuration as desired state. Errors: not_found (account),
/// invalid_argument (name, id taken), crypto/parse (CSR).
Result<ProvisionedDevice> add_device(const Paths& paths, store::Store& store,
                                     const NewDeviceOptions& options, std::int64_t now_ms);

/// The original fleet manager's environment: AWS_THING_NAME, AWS_ENDPOINT, AWS_PORT and
/// base64 PEMs in AWS_ROOT_CERT, AWS_THING_CERT, AWS_THING_KEY (the last only when the key
/// was made here). dag-edge reads them as they are.
std::string env_bundle(const Deployment& deployment, const ProvisionedDevice& device);

/// A directory for the dag: ca.pem, cert.pem, key.pem (when made here) and dag-edge.toml
/// pointing at them as `device_dir/<file>` (where the files will live on the dag).
/// Errors: invalid_argument (out exists and is not empty), io.
Result<void> write_dir_bundle(const std::filesystem::path& out,
                              const std::filesystem::path& device_dir, const Deployment& deployment,
                              const ProvisionedDevice& device);

/// All devices, or one account's. Errors: not_found (account).
Result<std::vector<store::Device>> list_devices(store::Store& store,
                                                const std::optional<std::string>& account);

/// Revokes every certificate of the device and marks it revoked (dagd then refuses its
/// messages), rewrites the CRL, asks the broker to reload it (SIGHUP to the pid in
/// broker/mosquitto.pid) and to drop the device's live connection (a command to the
/// presence plugin over the service listener). With `remove`, also deletes the device and
/// its history. What could not be done on the broker's side (not running) goes to
/// `notes`; the revocation itself stands. Errors: not_found, io, crypto.
Result<void> revoke_device(const Paths& paths, store::Store& store, const std::string& device_id,
                           bool remove, std::int64_t now_ms, std::vector<std::string>& notes);

// ---- fleet configuration ----------------------------------------------------------------

/// Checks one dag-edge tunable (docs/protocol.md "Configuration through the shadow").
/// Errors: invalid_argument naming the key and the rule.
Result<void> check_tunable(const std::string& key, const nlohmann::json& value);

/// Parses `key=value`: the value is JSON when it parses as JSON, else a string
/// (`logLevel=debug`). Errors: invalid_argument.
Result<std::pair<std::string, nlohmann::json>> parse_assignment(const std::string& text);

/// Sets (value) or removes (null) keys at one scope, then writes every affected device's
/// effective configuration (fleet < account < device) into its desired state. Returns the
/// number of devices whose desired state changed. Errors: not_found (account/device),
/// invalid_argument (a tunable).
Result<int> set_config(store::Store& store, store::ConfigScope scope, const std::string& scope_ref,
                       const std::map<std::string, nlohmann::json>& changes, std::int64_t now_ms);

/// The entries of one scope; for a device also `effective` and the scope each key comes
/// from. Errors: not_found.
Result<nlohmann::json> get_config(store::Store& store, store::ConfigScope scope,
                                  const std::string& scope_ref);

}  // namespace dag::ctl
