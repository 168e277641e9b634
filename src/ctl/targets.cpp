// Notification targets and account preferences (dag/ctl/ctl.hpp).
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "dag/ctl/ctl.hpp"
#include "dag/notify/render.hpp"
#include "dag/notify/target_check.hpp"

#include "internal.hpp"

namespace dag::ctl {

namespace {

// The account (by username) inside a store transaction: not_found names it.
store::StoreResult<store::Account> account_in(store::Transaction& tx, const std::string& username) {
  auto a = tx.find_account_by_username(username);
  if (!a && a.error().code == store::StoreErrc::not_found) {
    return store::fail(store::StoreErrc::not_found, "no account '" + username + "'");
  }
  return a;
}

// One of the account's targets: another account's target is "no such target" too.
store::StoreResult<store::NotificationTarget> owned_target(store::Transaction& tx,
                                                           const std::string& username,
                                                           const std::string& target_id) {
  auto a = account_in(tx, username);
  if (!a) return Unexpected<store::StoreError>{a.error()};
  auto targets = tx.list_targets(a->id);
  if (!targets) return Unexpected<store::StoreError>{targets.error()};
  for (auto& t : *targets) {
    if (t.id == target_id) return std::move(t);
  }
  return store::fail(store::StoreErrc::not_found,
                     "no such target '" + target_id + "' of account '" + username + "'");
}

nlohmann::json optional_json(const std::optional<std::int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// ---- settings keys ----

using Setter = Result<void> (*)(store::AccountSettings&, const std::string&, const nlohmann::json&);

Result<int> int_in(const std::string& key, const nlohmann::json& v, int low, int high) {
  if (!v.is_number_integer() || v.get<std::int64_t>() < low || v.get<std::int64_t>() > high) {
    return fail(Errc::invalid_argument,
                fmt::format("{}: must be a whole number {}..{}", key, low, high));
  }
  return static_cast<int>(v.get<std::int64_t>());
}

Result<bool> bool_of(const std::string& key, const nlohmann::json& v) {
  if (!v.is_boolean()) return fail(Errc::invalid_argument, key + ": must be true or false");
  return v.get<bool>();
}

template <int store::AccountSettings::*Member, int High>
Result<void> set_int(store::AccountSettings& s, const std::string& key, const nlohmann::json& v) {
  auto n = int_in(key, v, 0, High);
  if (!n) return Unexpected<Error>{n.error()};
  s.*Member = *n;
  return ok();
}

template <bool store::AccountSettings::*Member>
Result<void> set_bool(store::AccountSettings& s, const std::string& key, const nlohmann::json& v) {
  auto b = bool_of(key, v);
  if (!b) return Unexpected<Error>{b.error()};
  s.*Member = *b;
  return ok();
}

Result<void> set_time_zone(store::AccountSettings& s, const std::string& key,
                           const nlohmann::json& v) {
  if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 64 ||
      !notify::is_known_time_zone(v.get<std::string>())) {
    return fail(Errc::invalid_argument,
                key + ": must be an IANA time zone name such as Europe/Oslo or UTC");
  }
  s.time_zone = v.get<std::string>();
  return ok();
}

struct SettingKey {
  const char* name;
  Setter set;
};

using S = store::AccountSettings;
constexpr std::array<SettingKey, 9> kSettingKeys{{
    {"powerOffGraceS", &set_int<&S::power_off_grace_s, store::kMaxGraceSeconds>},
    {"disconnectGraceS", &set_int<&S::disconnect_grace_s, store::kMaxGraceSeconds>},
    {"lowBatteryPercent", &set_int<&S::low_battery_percent, 100>},
    {"timeZone", &set_time_zone},
    {"notifyPowerLost", &set_bool<&S::notify_power_lost>},
    {"notifyPowerBack", &set_bool<&S::notify_power_back>},
    {"notifyContactLost", &set_bool<&S::notify_contact_lost>},
    {"notifyDagBack", &set_bool<&S::notify_dag_back>},
    {"notifyBatteryLow", &set_bool<&S::notify_battery_low>},
}};

const SettingKey* find_setting(const std::string& key) {
  for (const auto& k : kSettingKeys) {
    if (key == k.name) return &k;
  }
  return nullptr;
}

std::string setting_names() {
  std::string names;
  for (const auto& k : kSettingKeys) names += (names.empty() ? "" : ", ") + std::string(k.name);
  return names;
}

}  // namespace

// ---- targets ----------------------------------------------------------------------------

Result<store::NotificationTarget> add_target(store::Store& store, const NewTargetOptions& options,
                                             std::int64_t now_ms) {
  // Only an e-mail address has someone to ask.
  const store::NewTarget wanted{.kind = options.kind,
                                .address = options.address,
                                .verified = options.kind != store::TargetKind::email,
                                .secret = options.secret,
                                .created_at_ms = now_ms,
                                .body_template = options.body_template,
                                .content_type = options.content_type};
  if (auto why = notify::new_target_error(wanted)) return fail(Errc::invalid_argument, *why);
  auto r = store::transact(
      store, store::TxMode::read_write,
      [&](store::Transaction& tx) -> store::StoreResult<store::NotificationTarget> {
        auto a = account_in(tx, options.account);
        if (!a) return Unexpected<store::StoreError>{a.error()};
        auto row = wanted;
        row.account_id = a->id;
        auto t = tx.add_target(row);
        if (!t && t.error().code == store::StoreErrc::conflict) {
          return store::fail(
              store::StoreErrc::conflict,
              fmt::format("account '{}' has the {} target '{}' already", options.account,
                          store::to_string(options.kind), options.address));
        }
        return t;
      });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return std::move(r).value();
}

Result<std::vector<store::NotificationTarget>> list_targets(store::Store& store,
                                                            const std::string& account) {
  auto r = store::transact(
      store, store::TxMode::read_only,
      [&](store::Transaction& tx) -> store::StoreResult<std::vector<store::NotificationTarget>> {
        auto a = account_in(tx, account);
        if (!a) return Unexpected<store::StoreError>{a.error()};
        return tx.list_targets(a->id);
      });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return std::move(r).value();
}

nlohmann::json target_json(const store::NotificationTarget& t) {
  nlohmann::json j{{"id", t.id},
                   {"kind", store::to_string(t.kind)},
                   {"address", t.address},
                   {"verified", t.verified},
                   {"secret", t.secret ? "set" : "none"},
                   {"createdAt", t.created_at_ms},
                   {"failureCount", t.failure_count},
                   {"lastError", t.last_error ? nlohmann::json(*t.last_error) : nullptr},
                   {"lastErrorAt", optional_json(t.last_error_at_ms)},
                   {"lastSuccessAt", optional_json(t.last_success_at_ms)}};
  if (t.kind == store::TargetKind::email) {
    j["verificationSentAt"] = optional_json(t.verification_sent_at_ms);
  }
  if (t.body_template) j["bodyTemplate"] = *t.body_template;
  if (t.content_type) j["contentType"] = *t.content_type;
  return j;
}

Result<void> remove_target(store::Store& store, const std::string& account,
                           const std::string& target_id) {
  auto r = store::transact(store, store::TxMode::read_write,
                           [&](store::Transaction& tx) -> store::StoreResult<void> {
                             auto t = owned_target(tx, account, target_id);
                             if (!t) return Unexpected<store::StoreError>{t.error()};
                             return tx.remove_target(t->id);
                           });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return ok();
}

Result<void> resend_verification(store::Store& store, const std::string& account,
                                 const std::string& target_id, std::int64_t now_ms) {
  std::optional<std::int64_t> sent_at;
  auto r = store::transact(
      store, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<bool> {
        auto t = owned_target(tx, account, target_id);
        if (!t) return Unexpected<store::StoreError>{t.error()};
        if (t->kind != store::TargetKind::email) {
          return store::fail(store::StoreErrc::invalid_argument,
                             "only e-mail targets are verified by mail");
        }
        if (t->verified) {
          return store::fail(store::StoreErrc::invalid_argument,
                             "'" + t->address + "' is verified already");
        }
        sent_at = t->verification_sent_at_ms;
        return tx.request_verification(t->id, now_ms, kVerificationResendIntervalMs);
      });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  if (!*r) {
    const std::int64_t wait_ms =
        sent_at ? *sent_at + kVerificationResendIntervalMs - now_ms : kVerificationResendIntervalMs;
    return fail(Errc::invalid_argument,
                fmt::format("a verification mail went out less than {} s ago; try again in {} s",
                            kVerificationResendIntervalMs / 1000,
                            std::max<std::int64_t>(1, (wait_ms + 999) / 1000)));
  }
  return ok();
}

// ---- preferences ------------------------------------------------------------------------

Result<store::AccountSettings> get_settings(store::Store& store, const std::string& username) {
  auto r = store::transact(store, store::TxMode::read_only,
                           [&](store::Transaction& tx) { return account_in(tx, username); });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return r->settings;
}

nlohmann::json settings_json(const store::AccountSettings& s) {
  return {{"powerOffGraceS", s.power_off_grace_s},      {"disconnectGraceS", s.disconnect_grace_s},
          {"lowBatteryPercent", s.low_battery_percent}, {"timeZone", s.time_zone},
          {"notifyPowerLost", s.notify_power_lost},     {"notifyPowerBack", s.notify_power_back},
          {"notifyContactLost", s.notify_contact_lost}, {"notifyDagBack", s.notify_dag_back},
          {"notifyBatteryLow", s.notify_battery_low}};
}

Result<store::AccountSettings> set_settings(store::Store& store, const std::string& username,
                                            const std::map<std::string, nlohmann::json>& changes) {
  if (changes.empty()) return fail(Errc::invalid_argument, "nothing to set");
  // Checked before the transaction: every change on a copy of the defaults finds the
  // first bad key without touching the store.
  store::AccountSettings probe;
  for (const auto& [key, value] : changes) {
    const auto* k = find_setting(key);
    if (k == nullptr) {
      return fail(Errc::invalid_argument,
                  "unknown setting '" + key + "' (known: " + setting_names() + ")");
    }
    if (auto r = k->set(probe, key, value); !r) return Unexpected<Error>{r.error()};
  }
  auto r =
      store::transact(store, store::TxMode::read_write,
                      [&](store::Transaction& tx) -> store::StoreResult<store::AccountSettings> {
                        auto a = account_in(tx, username);
                        if (!a) return Unexpected<store::StoreError>{a.error()};
                        store::AccountSettings s = a->settings;
                        for (const auto& [key, value] : changes) {
                          (void)find_setting(key)->set(s, key, value);  // checked above
                        }
                        if (auto u = tx.update_account_settings(a->id, s); !u) {
                          return Unexpected<store::StoreError>{u.error()};
                        }
                        return s;
                      });
  if (!r) return Unexpected<Error>{from_store(r.error())};
  return std::move(r).value();
}

}  // namespace dag::ctl
