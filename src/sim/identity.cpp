#include "dag/sim/identity.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <optional>
#include <random>
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

// The account of group `g`, made (with its owner's target) when missing; its id.
store::StoreResult<std::string> ensure_account(store::Transaction& tx, const ProvisionOptions& o,
                                               std::size_t g, ProvisionResult& counts) {
  const std::string username = fmt::format("{}acct-{:06}", o.prefix, g);
  auto acc = tx.find_account_by_username(username);
  if (!acc && acc.error().code == store::StoreErrc::not_found) {
    // Not a password hash: nobody can log in as a simulated owner.
    acc = tx.create_account(username, "!dag-sim", o.now_ms);
    if (acc) ++counts.accounts_created;
  }
  if (!acc) return Unexpected<store::StoreError>{acc.error()};
  if (!o.owner_email_domain.empty()) {
    store::NewTarget target;
    target.account_id = acc->id;
    target.kind = store::TargetKind::email;
    target.address = username + "@" + o.owner_email_domain;
    target.verified = true;
    target.created_at_ms = o.now_ms;
    auto added = tx.add_target(target);
    if (added) {
      ++counts.targets_created;
    } else if (added.error().code != store::StoreErrc::conflict) {
      return Unexpected<store::StoreError>{added.error()};
    }
  }
  return acc->id;
}

// Registers `id` in `account_id` unless it exists (then it must be that account's).
store::StoreResult<void> ensure_device(store::Transaction& tx, const std::string& id,
                                       const std::string& account_id, std::int64_t now_ms,
                                       ProvisionResult& counts) {
  auto dev = tx.get_device(id);
  if (dev) {
    if (dev->account_id != account_id) {
      return store::fail(store::StoreErrc::conflict, id + " belongs to another account");
    }
    ++counts.devices_existing;
    return {};
  }
  if (dev.error().code != store::StoreErrc::not_found) {
    return Unexpected<store::StoreError>{dev.error()};
  }
  auto made = tx.create_device({id, account_id, "sim " + id, now_ms});
  if (!made) return Unexpected<store::StoreError>{made.error()};
  ++counts.devices_created;
  return {};
}

}  // namespace

Result<std::vector<std::size_t>> account_sizes(std::size_t count, int min_size, int max_size,
                                               std::uint64_t seed) {
  if (min_size < 1 || max_size > 10 || min_size > max_size) {
    return fail(Errc::invalid_argument, "account sizes must be 1..10, the smaller first");
  }
  // A stream of its own (not the scenario's), so that the grouping stays the same when
  // only the scenario changes.
  std::mt19937_64 rng(seed ^ 0x6163636f756e7473ULL);
  std::uniform_int_distribution<int> size(min_size, max_size);
  std::vector<std::size_t> sizes;
  for (std::size_t left = count; left > 0;) {
    const auto n = std::min(left, static_cast<std::size_t>(size(rng)));
    sizes.push_back(n);
    left -= n;
  }
  return sizes;
}

Result<std::pair<int, int>> parse_account_size(std::string_view text) {
  const auto dash = text.find('-');
  const auto number = [](std::string_view t) -> std::optional<int> {
    int v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc{} || end != t.data() + t.size()) return std::nullopt;
    return v;
  };
  const auto lo = number(text.substr(0, dash));
  const auto hi = dash == std::string_view::npos ? lo : number(text.substr(dash + 1));
  if (!lo || !hi || *lo < 1 || *hi > 10 || *lo > *hi) {
    return fail(Errc::invalid_argument,
                "account size must be N or MIN-MAX within 1..10, got '" + std::string(text) + "'");
  }
  return std::pair{*lo, *hi};
}

Result<ProvisionResult> provision(const fs::path& db, const std::vector<std::string>& ids,
                                  const ProvisionOptions& o) {
  auto sizes = account_sizes(ids.size(), o.min_account_size, o.max_account_size, o.seed);
  if (!sizes) return Unexpected{sizes.error()};
  if (!o.owner_email_domain.empty() &&
      (o.owner_email_domain.find_first_of("@ \t\r\n<>") != std::string::npos ||
       o.owner_email_domain.find('.') == std::string::npos)) {
    return fail(Errc::invalid_argument,
                "owner e-mail domain '" + o.owner_email_domain + "' is not a domain name");
  }
  auto opened = store::open_sqlite(db);
  if (!opened) return Unexpected{store_error(opened.error(), "open " + db.string())};
  store::Store& st = **opened;
  ProvisionResult result;
  constexpr std::size_t kChunk = 500;  // devices per transaction, whole accounts only
  std::size_t group = 0;
  std::size_t first = 0;
  while (group < sizes->size()) {
    // [group, group_end): the accounts of this transaction.
    std::size_t group_end = group;
    std::size_t devices = 0;
    while (group_end < sizes->size() && devices < kChunk) {
      devices += (*sizes)[group_end++];
    }
    ProvisionResult chunk;
    auto r = store::transact(
        st, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<bool> {
          chunk = {};
          std::size_t i = first;
          for (std::size_t g = group; g < group_end; ++g) {
            auto account = ensure_account(tx, o, g, chunk);
            if (!account) return Unexpected<store::StoreError>{account.error()};
            for (std::size_t end = i + (*sizes)[g]; i < end; ++i) {
              if (auto d = ensure_device(tx, ids[i], *account, o.now_ms, chunk); !d) {
                return Unexpected<store::StoreError>{d.error()};
              }
            }
          }
          return true;
        });
    if (!r) return Unexpected{store_error(r.error(), "provision " + db.string())};
    result.accounts_created += chunk.accounts_created;
    result.devices_created += chunk.devices_created;
    result.devices_existing += chunk.devices_existing;
    result.targets_created += chunk.targets_created;
    group = group_end;
    first += devices;
  }
  return result;
}

}  // namespace dag::sim
