// Handlers of the account routes: login, the account (with its e-mail list, as the
// original had it), password, preferences, the account's devices, the verification link.
#include <memory>
#include <set>
#include <string>

#include "dag/api/api.hpp"
#include "dag/api/json_io.hpp"
#include "dag/common/encoding.hpp"
#include "dag/common/log.hpp"
#include "dag/common/password.hpp"
#include "dag/common/validate.hpp"

#include "respond.hpp"
#include "route.hpp"

namespace dag::api {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxEmails = 20;

// A store result as an answer (see store_failure).
template <class T>
ApiResult<T> checked(store::StoreResult<T> r, std::string_view what) {
  if (!r) return Unexpected<ApiError>{store_failure(r.error(), what)};
  if constexpr (std::is_void_v<T>) {
    return {};
  } else {
    return std::move(r).value();
  }
}

ApiResult<std::string> string_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string()) {
    return fail(ApiErrc::bad_request, std::string(key) + ": a string is required");
  }
  return it->get<std::string>();
}

json emails_of(const std::vector<store::NotificationTarget>& targets) {
  auto out = json::array();
  for (const auto& t : targets) {
    if (t.kind == store::TargetKind::email) out.push_back(t.address);
  }
  return out;
}

}  // namespace

ApiResult<Response> Api::login(const Request& r, const Params& /*p*/) {
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  auto username = string_field(*body, "username");
  if (!username) return Unexpected<ApiError>{username.error()};
  auto secret = string_field(*body, "password");
  if (!secret) return Unexpected<ApiError>{secret.error()};
  if (username->size() > 256 || secret->size() > password::kMaxPasswordBytes) {
    return fail(ApiErrc::bad_request, "username or password too long");
  }
  if (!limiter_.allow(*username, client_address(r), clock_.steady())) {
    log::warn("api.login_throttled", {{"address", client_address(r)}});
    return fail(ApiErrc::rate_limited, "too many login attempts; try again later");
  }
  auto account = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.find_account_by_username(*username);
  });
  if (!account && account.error().code != store::StoreErrc::not_found) {
    return Unexpected<ApiError>{checked(std::move(account), "login").error()};
  }
  // An unknown user costs one argon2id verification too, so that timing tells nothing.
  const bool known = static_cast<bool>(account);
  const bool ok = password::verify(known ? account->password_hash : dummy_hash_, *secret) && known;
  if (!ok) {
    log::info("api.login_failed", {{"address", client_address(r)}});
    return fail(ApiErrc::forbidden, "wrong username or password");
  }
  auto token = tokens_.issue(account->id, now_ms());
  if (!token) return Unexpected<ApiError>{token.error()};
  log::info("api.login", {{"account", account->id}});
  return json_response({{"token", token->token},
                        {"accountId", account->id},
                        {"expiresAt", time_json(token->expires_at_ms)}});
}

ApiResult<Response> Api::get_account(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto targets =
      checked(store::transact(store_, store::TxMode::read_only,
                              [&](store::Transaction& tx) { return tx.list_targets(account->id); }),
              "list_targets");
  if (!targets) return Unexpected<ApiError>{targets.error()};
  return json_response(account_json(*account, emails_of(*targets)));
}

ApiResult<Response> Api::patch_account(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  std::optional<std::set<std::string>> wanted;
  if (auto it = body->find("emails"); it != body->end()) {
    if (!it->is_array()) return fail(ApiErrc::bad_request, "emails: expected an array");
    if (it->size() > kMaxEmails) {
      return fail(ApiErrc::bad_request, "emails: at most " + std::to_string(kMaxEmails));
    }
    wanted.emplace();
    for (const auto& e : *it) {
      if (!e.is_string()) return fail(ApiErrc::bad_request, "emails: expected strings");
      const auto& address = e.get_ref<const std::string&>();
      if (auto why = validate::email_error(address)) {
        return fail(ApiErrc::bad_request, "emails: " + *why);
      }
      wanted->insert(address);
    }
  }
  const auto now = now_ms();
  bool added = false;
  auto targets =
      checked(store::transact(store_, store::TxMode::read_write,
                              [&](store::Transaction& tx)
                                  -> store::StoreResult<std::vector<store::NotificationTarget>> {
                                added = false;
                                auto current = tx.list_targets(account->id);
                                if (!current || !wanted) return current;
                                std::set<std::string> have;
                                for (const auto& t : *current) {
                                  if (t.kind != store::TargetKind::email) continue;
                                  have.insert(t.address);
                                  if (!wanted->contains(t.address)) {
                                    if (auto rm = tx.remove_target(t.id); !rm) {
                                      return Unexpected<store::StoreError>{rm.error()};
                                    }
                                  }
                                }
                                for (const auto& address : *wanted) {
                                  if (have.contains(address)) continue;
                                  store::NewTarget nt;
                                  nt.account_id = account->id;
                                  nt.kind = store::TargetKind::email;
                                  nt.address = address;
                                  nt.created_at_ms = now;
                                  if (auto add = tx.add_target(nt); !add)
                                    return Unexpected<store::StoreError>{add.error()};
                                  added = true;
                                }
                                return tx.list_targets(account->id);
                              }),
              "patch_account");
  if (!targets) return Unexpected<ApiError>{targets.error()};
  if (added && hooks_.wake_notifier) hooks_.wake_notifier();
  return json_response(account_json(*account, emails_of(*targets)));
}

ApiResult<Response> Api::change_password(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  auto current = string_field(*body, "currentPassword");
  if (!current) return Unexpected<ApiError>{current.error()};
  auto next = string_field(*body, "newPassword");
  if (!next) return Unexpected<ApiError>{next.error()};
  if (next->size() < password::kMinPasswordBytes || next->size() > password::kMaxPasswordBytes) {
    return fail(ApiErrc::bad_request, "newPassword: 8 to 1024 bytes");
  }
  if (!limiter_.allow(account->username, client_address(r), clock_.steady())) {
    return fail(ApiErrc::rate_limited, "too many attempts; try again later");
  }
  if (!password::verify(account->password_hash, *current)) {
    return fail(ApiErrc::forbidden, "the current password is wrong");
  }
  auto hashed = password::hash(*next);
  if (!hashed) return fail(ApiErrc::bad_request, "newPassword: " + hashed.error().message);
  auto stored = checked(store::transact(store_, store::TxMode::read_write,
                                        [&](store::Transaction& tx) {
                                          return tx.set_password_hash(account->id, *hashed);
                                        }),
                        "set_password_hash");
  if (!stored) return Unexpected<ApiError>{stored.error()};
  log::info("api.password_changed", {{"account", account->id}});
  return no_content();
}

ApiResult<Response> Api::get_preferences(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  return json_response(preferences_json(account->settings));
}

ApiResult<Response> Api::patch_preferences(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  {
    // Validate before the transaction: a bad field changes nothing.
    auto probe = account->settings;
    if (auto ok = apply_preferences(*body, probe); !ok) return Unexpected<ApiError>{ok.error()};
  }
  auto settings = checked(
      store::transact(store_, store::TxMode::read_write,
                      [&](store::Transaction& tx) -> store::StoreResult<store::AccountSettings> {
                        // Read again inside: a concurrent PATCH of other fields is kept.
                        auto fresh = tx.get_account(account->id);
                        if (!fresh) return Unexpected<store::StoreError>{fresh.error()};
                        auto s = fresh->settings;
                        (void)apply_preferences(*body, s);
                        if (auto u = tx.update_account_settings(account->id, s); !u) {
                          return Unexpected<store::StoreError>{u.error()};
                        }
                        return s;
                      }),
      "update_account_settings");
  if (!settings) return Unexpected<ApiError>{settings.error()};
  return json_response(preferences_json(*settings));
}

namespace {

// A dashboard's poll should not evict everybody else's lists: a few hundred accounts'.
constexpr std::size_t kListCacheBytes = std::size_t{16} * 1024 * 1024;

}  // namespace

std::shared_ptr<const std::string> Api::cached_list(const std::string& account_id,
                                                    std::uint64_t marker) {
  std::lock_guard lock{lists_mutex_};
  auto it = lists_.find(account_id);
  if (it == lists_.end() || it->second.marker != marker) return nullptr;
  return it->second.body;
}

void Api::cache_list(const std::string& account_id, std::uint64_t marker, std::string body) {
  auto shared = std::make_shared<const std::string>(std::move(body));
  std::lock_guard lock{lists_mutex_};
  if (lists_bytes_ + shared->size() > kListCacheBytes) {
    // Whatever is older than the newest marker is stale anyway; start over.
    lists_.clear();
    lists_bytes_ = 0;
  }
  auto& slot = lists_[account_id];
  if (slot.body) lists_bytes_ -= slot.body->size();
  lists_bytes_ += shared->size();
  slot = CachedList{marker, std::move(shared)};
}

ApiResult<Response> Api::list_devices(const Request& r, const Params& p) {
  auto subject = authenticate(r, false);
  if (!subject) return Unexpected<ApiError>{subject.error()};
  // Taken before the reads below: a commit after it makes the next marker differ, so an
  // entry is never older than its marker says.
  const auto marker = store_.change_marker();
  if (marker) {
    if (auto body = cached_list(*subject, *marker)) {
      // Nothing was committed since the entry was read: the account still exists.
      if (*subject != p.get("accountId")) return fail(ApiErrc::not_found, "not found");
      Response out;
      out.body = *body;
      return out;
    }
  }
  auto account = account_of(*subject, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto devices =
      checked(store::transact(store_, store::TxMode::read_only,
                              [&](store::Transaction& tx) { return tx.list_devices(account->id); }),
              "list_devices");
  if (!devices) return Unexpected<ApiError>{devices.error()};
  Response out;
  out.body = devices_text(*devices);
  if (marker) cache_list(account->id, *marker, out.body);
  return out;
}

namespace {

Response html_page(int status, std::string_view title, std::string_view text) {
  Response out;
  out.status = status;
  out.content_type = "text/html; charset=utf-8";
  out.body =
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width\"><title>";
  out.body += title;
  out.body += " · detectordag</title></head><body><h1>";
  out.body += title;
  out.body += "</h1><p>";
  out.body += text;
  out.body += "</p></body></html>";
  out.headers.emplace_back("Cache-Control", "no-store");
  out.headers.emplace_back("Referrer-Policy", "no-referrer");  // the token is in the URL
  return out;
}

}  // namespace

ApiResult<Response> Api::verify_link(const Request& r, const Params& /*p*/) {
  const auto token = r.param("token").value_or("");
  if (token.empty() || token.size() > 256) {
    return html_page(404, "Link invalid or expired",
                     "This verification link is not valid (any more). Ask for a new one on "
                     "the settings page of your dashboard.");
  }
  auto consumed = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
    return tx.consume_verification(sha256_hex(token), now_ms());
  });
  if (!consumed) {
    if (consumed.error().code != store::StoreErrc::not_found) {
      log::error("api.store_failed",
                 {{"operation", "consume_verification"}, {"error", consumed.error().message}});
      return html_page(500, "Something went wrong", "Please try the link again later.");
    }
    return html_page(404, "Link invalid or expired",
                     "This verification link is not valid (any more). Ask for a new one on "
                     "the settings page of your dashboard.");
  }
  log::info("api.address_verified", {{"target", *consumed}});
  return html_page(200, "Address verified",
                   "Thank you: this address will now be told when your dags lose or regain "
                   "power.");
}

}  // namespace dag::api
