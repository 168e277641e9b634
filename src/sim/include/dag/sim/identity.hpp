// Where dag-sim's devices get their identities: each simulated dag has its own client
// certificate and key (CN = device id, as the broker's ACL requires), like a real one.
//
//   load_bundles   directories written by `dagctl device add --format dir --out DIR/<name>`
//                  (cert.pem, key.pem, ca.pem): devices that dagctl provisioned for real.
//   mint           certificates signed in memory by the deployment's CA (--ca-cert,
//                  --ca-key), for benchmarks and tests: nothing is written to disk.
//   provision      registers minted devices in dagd's database (accounts of 1..10 dags),
//                  so that dagd accepts their reports.
//
// Blocking: file and database I/O; minting is CPU-bound (about a millisecond a device,
// spread over `threads`). Thread-safety: free functions, no shared state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
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
};

/// Makes sure every id exists in the dagd database at `db` (created and migrated if
/// missing): ids are grouped in order into accounts of `account_size` (1..10), named
/// `<prefix>acct-<n>`, that nobody can log in to. Devices that exist already are kept
/// as they are (with their history). Commits in chunks of 500 devices.
/// Errors: invalid_argument (account_size), io/unavailable for the database (message
/// carries the store's), conflict when an id belongs to another account.
Result<ProvisionResult> provision(const std::filesystem::path& db,
                                  const std::vector<std::string>& ids, std::string_view prefix,
                                  int account_size, std::int64_t now_ms);

}  // namespace dag::sim
