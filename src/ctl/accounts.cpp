#include "dag/common/password.hpp"
#include "dag/common/validate.hpp"
#include "dag/ctl/ctl.hpp"

#include "internal.hpp"

namespace dag::ctl {

// Store errors as dagctl errors: what the operator can fix is bad input.
Error from_store(const store::StoreError& e) {
  switch (e.code) {
    case store::StoreErrc::not_found: return {Errc::not_found, e.message};
    case store::StoreErrc::conflict:
    case store::StoreErrc::invalid_argument: return {Errc::invalid_argument, e.message};
    case store::StoreErrc::busy: return {Errc::unavailable, e.message};
    case store::StoreErrc::incompatible: return {Errc::config, e.message};
    default: return {Errc::io, e.message};
  }
}

int exit_code(const Error& error) noexcept {
  switch (error.code) {
    case Errc::invalid_argument:
    case Errc::not_found:
    case Errc::parse:
    case Errc::config:
    case Errc::crypto: return 2;
    default: return 1;
  }
}

namespace {

std::optional<std::string> username_error(const std::string& u) {
  if (u.empty() || u.size() > 128) return "the username must have 1..128 characters";
  for (const char c : u) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b == 0x7F) return "the username must not contain spaces or control characters";
  }
  return std::nullopt;
}

}  // namespace

Result<store::Account> find_account(store::Transaction& tx, const std::string& username) {
  auto a = tx.find_account_by_username(username);
  if (!a) {
    if (a.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found, "no account '" + username + "'");
    }
    return Unexpected<Error>{from_store(a.error())};
  }
  return std::move(a).value();
}

Result<store::Account> add_account(store::Store& store, const std::string& username,
                                   const std::string& password,
                                   const std::vector<std::string>& emails, std::int64_t now_ms) {
  if (auto why = username_error(username)) return fail(Errc::invalid_argument, *why);
  for (const auto& e : emails) {
    if (auto why = validate::email_error(e)) {
      return fail(Errc::invalid_argument, "'" + e + "': " + *why);
    }
  }
  auto hashed = password::hash(password);
  if (!hashed) return Unexpected<Error>{hashed.error()};
  auto r = store::transact(
      store, store::TxMode::read_write,
      [&](store::Transaction& tx) -> store::StoreResult<store::Account> {
        if (auto taken = tx.find_account_by_username(username); taken) {
          return store::fail(store::StoreErrc::conflict,
                             "the username '" + username + "' is taken");
        }
        auto a = tx.create_account(username, *hashed, now_ms);
        if (!a) return a;
        for (const auto& e : emails) {
          auto t = tx.add_target({a->id, store::TargetKind::email, e, false, std::nullopt, now_ms});
          if (!t) return Unexpected<store::StoreError>{t.error()};
        }
        return a;
      });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return std::move(r).value();
}

Result<void> set_password(store::Store& store, const std::string& username,
                          const std::string& password) {
  auto hashed = password::hash(password);
  if (!hashed) return Unexpected<Error>{hashed.error()};
  Error error{};
  auto r = store::transact(store, store::TxMode::read_write,
                           [&](store::Transaction& tx) -> store::StoreResult<void> {
                             auto a = tx.find_account_by_username(username);
                             if (!a) return Unexpected<store::StoreError>{a.error()};
                             return tx.set_password_hash(a->id, *hashed);
                           });
  if (!r) {
    if (r.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found, "no account '" + username + "'");
    }
    return Unexpected<Error>{from_store(r.error())};
  }
  return ok();
}

Result<std::vector<store::Account>> list_accounts(store::Store& store) {
  auto r = store::transact(store, store::TxMode::read_only,
                           [](store::Transaction& tx) { return tx.list_accounts(); });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return std::move(r).value();
}

Result<int> remove_account(const Paths& paths, store::Store& store, const std::string& username,
                           std::int64_t now_ms, std::vector<std::string>& notes) {
  std::vector<store::Device> devices;
  {
    auto tx = store.begin(store::TxMode::read_only);
    if (!tx) return Unexpected<Error>{from_store(tx.error())};
    auto a = find_account(**tx, username);
    if (!a) return Unexpected<Error>{a.error()};
    auto d = (*tx)->list_devices(a->id);
    if (!d) return Unexpected<Error>{from_store(d.error())};
    devices = std::move(d).value();
  }
  // Certificates first: a removed account's dags must not keep talking to the broker.
  for (const auto& d : devices) {
    if (auto r = revoke_device(paths, store, d.id, /*remove=*/false, now_ms, notes); !r)
      return Unexpected<Error>{r.error()};
  }
  auto r = store::transact(store, store::TxMode::read_write,
                           [&](store::Transaction& tx) -> store::StoreResult<void> {
                             auto a = tx.find_account_by_username(username);
                             if (!a) return Unexpected<store::StoreError>{a.error()};
                             return tx.delete_account(a->id);
                           });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return static_cast<int>(devices.size());
}

}  // namespace dag::ctl
