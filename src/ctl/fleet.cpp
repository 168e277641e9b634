#include "dag/ctl/ctl.hpp"
#include "dag/edge/settings.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/shadow/desired.hpp"

#include "internal.hpp"

namespace dag::ctl {
namespace {

using nlohmann::json;

json entries_object(const std::vector<store::ConfigEntry>& entries) {
  json out = json::object();
  for (const auto& e : entries) out[e.key] = json::parse(e.value_json, nullptr, false);
  return out;
}

// The id a scope reference names: "" for the fleet, an account id for a username, the
// device id itself. Errors: not_found.
store::StoreResult<std::string> scope_id(store::Transaction& tx, store::ConfigScope scope,
                                         const std::string& ref) {
  switch (scope) {
    case store::ConfigScope::fleet: return std::string();
    case store::ConfigScope::account: {
      auto a = tx.find_account_by_username(ref);
      if (!a) return Unexpected<store::StoreError>{a.error()};
      return a->id;
    }
    case store::ConfigScope::device: {
      auto d = tx.get_device(ref);
      if (!d) return Unexpected<store::StoreError>{d.error()};
      return d->id;
    }
  }
  return std::string();
}

}  // namespace

Result<void> check_tunable(const std::string& key, const json& value) {
  const auto outcome = edge::apply_delta(edge::Tunables{}, json{{key, value}});
  if (auto it = outcome.rejected.find(key); it != outcome.rejected.end()) {
    return fail(Errc::invalid_argument, key + ": " + it->second);
  }
  return ok();
}

Result<std::pair<std::string, json>> parse_assignment(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    return fail(Errc::invalid_argument, "'" + text + "' is not key=value");
  }
  const std::string key = text.substr(0, eq);
  const std::string raw = text.substr(eq + 1);
  auto value = json::parse(raw, nullptr, false);
  if (value.is_discarded()) value = raw;  // logLevel=debug
  return std::pair{key, std::move(value)};
}

store::StoreResult<Effective> effective_config(store::Transaction& tx,
                                               const store::Device& device) {
  Effective out;
  const std::pair<store::ConfigScope, std::string> layers[] = {
      {store::ConfigScope::fleet, ""},
      {store::ConfigScope::account, device.account_id},
      {store::ConfigScope::device, device.id}};
  for (const auto& [scope, id] : layers) {
    auto entries = tx.list_config_entries(scope, id);
    if (!entries) return Unexpected<store::StoreError>{entries.error()};
    for (const auto& e : *entries) {
      out.config[e.key] = json::parse(e.value_json, nullptr, false);
      out.origin[e.key] = std::string(store::to_string(scope));
    }
  }
  return out;
}

store::StoreResult<bool> push_config(store::Transaction& tx, const store::Device& device,
                                     std::int64_t now_ms) {
  auto effective = effective_config(tx, device);
  if (!effective) return Unexpected<store::StoreError>{effective.error()};
  json current = json::object();
  auto stored = tx.get_shadow(device.id);
  if (!stored) return Unexpected<store::StoreError>{stored.error()};
  if (*stored) {
    if (auto doc = protocol::shadow_from_json((*stored)->document); doc && doc->exists()) {
      const auto& desired = doc->desired();
      if (desired.is_object()) {
        if (auto it = desired.find("config"); it != desired.end() && it->is_object()) current = *it;
      }
    }
  }
  json patch = json::object();
  for (const auto& [key, value] : effective->config.items()) {
    if (!current.contains(key) || current[key] != value) patch[key] = value;
  }
  for (const auto& [key, value] : current.items()) {
    if (!effective->config.contains(key)) patch[key] = nullptr;  // no longer configured
  }
  if (patch.empty()) return false;
  if (auto r = shadow::write_desired(tx, device.id, json{{"config", patch}}, now_ms); !r) {
    return Unexpected<store::StoreError>{r.error()};
  }
  return true;
}

Result<int> set_config(store::Store& store, store::ConfigScope scope, const std::string& ref,
                       const std::map<std::string, json>& changes, std::int64_t now_ms) {
  for (const auto& [key, value] : changes) {
    if (value.is_null()) continue;
    if (auto r = check_tunable(key, value); !r) return Unexpected<Error>{r.error()};
  }
  auto changed = store::transact(
      store, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<int> {
        auto id = scope_id(tx, scope, ref);
        if (!id) return Unexpected<store::StoreError>{id.error()};
        for (const auto& [key, value] : changes) {
          if (value.is_null()) {
            if (auto r = tx.remove_config_entry(scope, *id, key); !r) {
              return Unexpected<store::StoreError>{r.error()};
            }
          } else if (auto r = tx.set_config_entry({scope, *id, key, value.dump(), now_ms}); !r) {
            return Unexpected<store::StoreError>{r.error()};
          }
        }
        // Every device the scope covers gets its effective configuration as desired state.
        std::vector<store::Device> devices;
        if (scope == store::ConfigScope::device) {
          auto d = tx.get_device(*id);
          if (!d) return Unexpected<store::StoreError>{d.error()};
          devices.push_back(*std::move(d));
        } else {
          auto accounts = tx.list_accounts();
          if (!accounts) return Unexpected<store::StoreError>{accounts.error()};
          for (const auto& a : *accounts) {
            if (scope == store::ConfigScope::account && a.id != *id) continue;
            auto d = tx.list_devices(a.id);
            if (!d) return Unexpected<store::StoreError>{d.error()};
            devices.insert(devices.end(), d->begin(), d->end());
          }
        }
        int n = 0;
        for (const auto& d : devices) {
          if (d.revoked) continue;
          auto pushed = push_config(tx, d, now_ms);
          if (!pushed) return Unexpected<store::StoreError>{pushed.error()};
          n += *pushed ? 1 : 0;
        }
        return n;
      });
  if (!changed) {
    if (changed.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found,
                  std::string("no ") + std::string(store::to_string(scope)) + " '" + ref + "'");
    }
    return Unexpected<Error>{from_store(changed.error())};
  }
  return *changed;
}

Result<json> get_config(store::Store& store, store::ConfigScope scope, const std::string& ref) {
  auto r = store::transact(
      store, store::TxMode::read_only, [&](store::Transaction& tx) -> store::StoreResult<json> {
        auto id = scope_id(tx, scope, ref);
        if (!id) return Unexpected<store::StoreError>{id.error()};
        auto entries = tx.list_config_entries(scope, *id);
        if (!entries) return Unexpected<store::StoreError>{entries.error()};
        json out = {{"scope", store::to_string(scope)}, {"entries", entries_object(*entries)}};
        if (scope == store::ConfigScope::device) {
          auto d = tx.get_device(*id);
          if (!d) return Unexpected<store::StoreError>{d.error()};
          auto effective = effective_config(tx, *d);
          if (!effective) return Unexpected<store::StoreError>{effective.error()};
          out["effective"] = effective->config;
          out["origin"] = effective->origin;
        }
        return out;
      });
  if (!r) {
    if (r.error().code == store::StoreErrc::not_found) {
      return fail(Errc::not_found,
                  std::string("no ") + std::string(store::to_string(scope)) + " '" + ref + "'");
    }
    return Unexpected<Error>{from_store(r.error())};
  }
  return std::move(r).value();
}

}  // namespace dag::ctl
