#include "dag/sim/identity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"

namespace dag::sim {
namespace fs = std::filesystem;

Result<Credentials> load_bundles(const fs::path& dir, std::size_t limit) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return fail(Errc::not_found, "no bundle directory " + dir.string());
  std::vector<fs::path> bundles;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory() && fs::exists(entry.path() / "cert.pem") &&
        fs::exists(entry.path() / "key.pem")) {
      bundles.push_back(entry.path());
    }
  }
  if (ec) return fail(Errc::io, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(bundles.begin(), bundles.end());
  if (bundles.size() > limit) bundles.resize(limit);
  if (bundles.empty()) {
    return fail(Errc::not_found,
                "no device bundle (a directory with cert.pem and key.pem) in " + dir.string());
  }
  Credentials out;
  std::map<std::string, fs::path> seen;
  for (const auto& b : bundles) {
    auto cert = pki::read_pem_file(b / "cert.pem");
    if (!cert) return Unexpected{cert.error()};
    auto key = pki::read_pem_file(b / "key.pem");
    if (!key) return Unexpected{key.error()};
    auto info = pki::inspect_certificate(*cert);
    if (!info) return fail(Errc::parse, (b / "cert.pem").string() + ": " + info.error().message);
    auto match = pki::key_matches_certificate(*key, *cert);
    if (!match || !*match) {
      return fail(Errc::invalid_argument, (b / "key.pem").string() + " is not the key of cert.pem");
    }
    if (auto [it, fresh] = seen.emplace(info->subject_cn, b); !fresh) {
      return fail(Errc::invalid_argument, "two bundles for " + info->subject_cn + ": " +
                                              it->second.string() + " and " + b.string());
    }
    if (out.broker_ca_pem.empty() && fs::exists(b / "ca.pem")) {
      auto ca = pki::read_pem_file(b / "ca.pem");
      if (!ca) return Unexpected{ca.error()};
      out.broker_ca_pem = std::move(*ca);
    }
    out.devices.push_back({info->subject_cn, std::move(*cert), std::move(*key)});
  }
  return out;
}

std::string device_id(std::string_view prefix, std::size_t index) {
  return fmt::format("{}{:06}", prefix, index);
}

Result<std::vector<Identity>> mint(const pki::CertificateAuthority& ca, std::string_view prefix,
                                   std::size_t count, unsigned threads) {
  if (count > 0 && !pki::is_valid_identity(device_id(prefix, 0))) {
    return fail(Errc::invalid_argument,
                "id prefix '" + std::string(prefix) + "' does not make valid device ids");
  }
  std::vector<Identity> out(count);
  std::mutex mu;
  std::optional<Error> first_error;
  const unsigned n = std::max(1U, std::min<unsigned>(threads, static_cast<unsigned>(count)));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < n; ++t) {
    pool.emplace_back([&, t] {
      for (std::size_t i = t; i < count; i += n) {
        const std::string id = device_id(prefix, i);
        auto c = pki::issue_client_certificate(ca, id);
        if (!c) {
          std::lock_guard lock(mu);
          if (!first_error) first_error = c.error();
          return;
        }
        out[i] = {id, std::move(c->cert_pem), std::move(c->key_pem)};
      }
    });
  }
  for (auto& th : pool) th.join();
  if (first_error) return Unexpected{*first_error};
  return out;
}

namespace {

Error store_error(const store::StoreError& e, const std::string& what) {
  const Errc code = e.code == store::StoreErrc::conflict           ? Errc::invalid_argument
                    : e.code == store::StoreErrc::invalid_argument ? Errc::invalid_argument
                    : e.code == store::StoreErrc::busy             ? Errc::unavailable
                                                                   : Errc::io;
  return Error{code, what + ": " + e.message};
}

}  // namespace

Result<ProvisionResult> provision(const fs::path& db, const std::vector<std::string>& ids,
                                  std::string_view prefix, int account_size, std::int64_t now_ms) {
  if (account_size < 1 || account_size > 10) {
    return fail(Errc::invalid_argument, "account size must be 1..10");
  }
  auto opened = store::open_sqlite(db);
  if (!opened) return Unexpected{store_error(opened.error(), "open " + db.string())};
  store::Store& st = **opened;
  ProvisionResult result;
  constexpr std::size_t kChunk = 500;
  for (std::size_t begin = 0; begin < ids.size(); begin += kChunk) {
    const std::size_t end = std::min(ids.size(), begin + kChunk);
    ProvisionResult chunk;
    auto r = store::transact(
        st, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<bool> {
          chunk = {};
          std::string account_id;
          std::size_t account_of = SIZE_MAX;
          for (std::size_t i = begin; i < end; ++i) {
            const std::size_t group = i / static_cast<std::size_t>(account_size);
            if (group != account_of) {
              account_of = group;
              const std::string username = fmt::format("{}acct-{:06}", prefix, group);
              auto acc = tx.find_account_by_username(username);
              if (!acc && acc.error().code == store::StoreErrc::not_found) {
                // Not a password hash: nobody can log in as a simulated owner.
                acc = tx.create_account(username, "!dag-sim", now_ms);
                if (acc) ++chunk.accounts_created;
              }
              if (!acc) return Unexpected<store::StoreError>{acc.error()};
              account_id = acc->id;
            }
            auto dev = tx.get_device(ids[i]);
            if (dev) {
              if (dev->account_id != account_id) {
                return store::fail(store::StoreErrc::conflict,
                                   ids[i] + " belongs to another account");
              }
              ++chunk.devices_existing;
              continue;
            }
            if (dev.error().code != store::StoreErrc::not_found) {
              return Unexpected<store::StoreError>{dev.error()};
            }
            auto made = tx.create_device({ids[i], account_id, "sim " + ids[i], now_ms});
            if (!made) return Unexpected<store::StoreError>{made.error()};
            ++chunk.devices_created;
          }
          return true;
        });
    if (!r) return Unexpected{store_error(r.error(), "provision " + db.string())};
    result.accounts_created += chunk.accounts_created;
    result.devices_created += chunk.devices_created;
    result.devices_existing += chunk.devices_existing;
  }
  return result;
}

}  // namespace dag::sim
