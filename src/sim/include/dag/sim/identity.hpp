// Where dag-sim's devices get their identities: each simulated dag has its own client
// certificate and key (CN = device id, as the broker's ACL requires), like a real one.
//
//   load_bundles   directories written by `dagctl device add --format dir --out DIR/<name>`
//                  (cert.pem, key.pem, ca.pem): devices that dagctl provisioned for real.
//   mint           certificates signed in memory by the deployment's CA (--ca-cert,
//                  --ca-key), for benchmarks and tests: nothing is written to disk.
//   provision      registers minted devices in dagd's database (accounts of 1..10 dags,
//                  optionally with a verified owner e-mail), so that dagd accepts their
//                  reports and mails their owners.
//
// Blocking: file and database I/O; minting is CPU-bound (about a millisecond a device,
// spread over `threads`). Thread-safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dag/common/pki.hpp"
#include "dag/common/result.hpp"

namespace dag::sim {

struct Identity {
  std::string id;  ///< the certificate's CN
  std::string cert_pem;
  std::string key_pem;
};

struct Credentials {
  std::string broker_ca_pem;  ///< what the broker's certificate must chain to
  std::vector<Identity> devices;
};

/// Reads up to `limit` bundles (the subdirectories of `dir` that hold cert.pem and key.pem,
/// in name order); the device id is each certificate's CN, and the first bundle's ca.pem
/// becomes broker_ca_pem. Errors: not_found (no such directory, no bundle), parse (a
/// certificate that does not parse), invalid_argument (a key that is not the
/// certificate's, two bundles with one CN), io.
Result<Credentials> load_bundles(const std::filesystem::path& dir, std::size_t limit);

/// Device ids for a minted fleet: prefix + index, zero-padded to 6 digits ("sim-000042").
std::string device_id(std::string_view prefix, std::size_t index);

/// `count` new identities (EC P-256 keys, certificates of `ca`), in index order.
/// Errors: invalid_argument (prefix makes invalid ids), crypto.
Result<std::vector<Identity>> mint(const pki::CertificateAuthority& ca, std::string_view prefix,
                                   std::size_t count, unsigned threads);

struct ProvisionResult {
  std::size_t accounts_created{0};
  std::size_t devices_created{0};
  std::size_t devices_existing{0};
  std::size_t targets_created{0};
};

struct ProvisionOptions {
  /// Accounts are named `<prefix>acct-<n>` (n = the account's index, 6 digits).
  std::string prefix{"sim-"};
  /// Each account's size is drawn uniformly from [min_account_size, max_account_size]
  /// (1..10) with `seed`; equal bounds give every account that size (the last one may be
  /// smaller).
  int min_account_size{1};
  int max_account_size{1};
  std::uint64_t seed{1};
  /// When set, each account gets a verified e-mail target `<username>@<domain>`, so that
  /// dagd mails its owner (a storm then measures the notifications too).
  std::string owner_email_domain{};
  std::int64_t now_ms{0};
};

/// The accounts' sizes for `count` dags (summing to `count`), as provision() groups them.
/// Errors: invalid_argument (bounds outside 1..10, min > max).
Result<std::vector<std::size_t>> account_sizes(std::size_t count, int min_size, int max_size,
                                               std::uint64_t seed);

/// "5" or "1-10": the bounds of --account-size. Errors: invalid_argument.
Result<std::pair<int, int>> parse_account_size(std::string_view text);

/// Makes sure every id exists in the dagd database at `db` (created and migrated if
/// missing): ids are grouped in order into accounts (sizes by account_sizes()) that
/// nobody can log in to, each with its owner e-mail target when asked. Devices, accounts
/// and targets that exist already are kept as they are (devices with their history).
/// Commits in chunks of about 500 devices.
/// Errors: invalid_argument (sizes, a domain that makes invalid addresses, an id that
/// belongs to another account: the same ids grouped with another seed or size),
/// io/unavailable for the database (message carries the store's).
Result<ProvisionResult> provision(const std::filesystem::path& db,
                                  const std::vector<std::string>& ids,
                                  const ProvisionOptions& options);

}  // namespace dag::sim
