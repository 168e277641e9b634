// Handlers of the notification-target routes: list, add, delete, test, and asking for
// another verification mail.
#include "dag/api/api.hpp"
#include "dag/api/json_io.hpp"
#include "dag/common/log.hpp"
#include "dag/notify/target_check.hpp"

#include "respond.hpp"
#include "route.hpp"

namespace dag::api {

using nlohmann::json;

namespace {

ApiResult<std::optional<std::string>> optional_string(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) return fail(ApiErrc::bad_request, std::string(key) + ": expected a string");
  return std::optional<std::string>{it->get<std::string>()};
}

}  // namespace

ApiResult<store::NotificationTarget> Api::own_target(const store::Account& account,
                                                     std::string_view target_id) {
  auto targets = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_targets(account.id);
  });
  if (!targets) return Unexpected<ApiError>{store_failure(targets.error(), "list_targets")};
  for (auto& t : *targets) {
    if (t.id == target_id) return std::move(t);
  }
  return fail(ApiErrc::not_found, "not found");
}

ApiResult<Response> Api::list_targets(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto targets = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_targets(account->id);
  });
  if (!targets) return Unexpected<ApiError>{store_failure(targets.error(), "list_targets")};
  auto arr = json::array();
  for (const auto& t : *targets) arr.push_back(target_json(t));
  Response out;
  out.body = dump(arr);
  return out;
}

ApiResult<Response> Api::add_target(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto body = parse_object(r.body);
  if (!body) return Unexpected<ApiError>{body.error()};
  store::NewTarget nt;
  nt.account_id = account->id;
  auto kind_it = body->find("kind");
  if (kind_it == body->end() || !kind_it->is_string()) {
    return fail(ApiErrc::bad_request, "kind: one of email, webhook, ntfy is required");
  }
  auto kind = store::parse_target_kind(kind_it->get_ref<const std::string&>());
  if (!kind) return fail(ApiErrc::bad_request, "kind: one of email, webhook, ntfy is required");
  nt.kind = *kind;
  auto address = body->find("address");
  if (address == body->end() || !address->is_string()) {
    return fail(ApiErrc::bad_request, "address: a string is required");
  }
  nt.address = address->get<std::string>();
  auto secret = optional_string(*body, "secret");
  auto tmpl = optional_string(*body, "bodyTemplate");
  auto type = optional_string(*body, "contentType");
  for (const auto* field : {&secret, &tmpl, &type}) {
    if (!*field) return Unexpected<ApiError>{field->error()};
  }
  nt.secret = std::move(*secret);
  nt.body_template = std::move(*tmpl);
  nt.content_type = std::move(*type);
  // Only an e-mail address has someone to ask; a URL was typed by its owner.
  nt.verified = nt.kind != store::TargetKind::email;
  nt.created_at_ms = now_ms();
  if (auto why = notify::new_target_error(nt)) return fail(ApiErrc::bad_request, *why);
  auto added = store::transact(store_, store::TxMode::read_write,
                               [&](store::Transaction& tx) { return tx.add_target(nt); });
  if (!added) {
    if (added.error().code == store::StoreErrc::conflict) {
      return fail(ApiErrc::conflict, "the account has this target already");
    }
    return Unexpected<ApiError>{store_failure(added.error(), "add_target")};
  }
  if (nt.kind == store::TargetKind::email && hooks_.wake_notifier) hooks_.wake_notifier();
  log::info("api.target_added", {{"account", account->id}, {"target", added->id}});
  Response out;
  out.status = 201;
  out.body = dump(target_json(*added));
  out.headers.emplace_back("Location", "/v1/accounts/" + account->id + "/targets/" + added->id);
  return out;
}

ApiResult<Response> Api::delete_target(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto target = own_target(*account, p.get("targetId"));
  if (!target) return Unexpected<ApiError>{target.error()};
  auto removed = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
    return tx.remove_target(target->id);
  });
  if (!removed) return Unexpected<ApiError>{store_failure(removed.error(), "remove_target")};
  log::info("api.target_removed", {{"account", account->id}, {"target", target->id}});
  return no_content();
}

ApiResult<Response> Api::test_target(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto target = own_target(*account, p.get("targetId"));
  if (!target) return Unexpected<ApiError>{target.error()};
  if (!target->verified) {
    // Else the API would mail anybody's address on request.
    return fail(ApiErrc::conflict, "the address is not verified yet");
  }
  notify::Channel* channel = nullptr;
  switch (target->kind) {
    case store::TargetKind::email: channel = hooks_.test_channels.email; break;
    case store::TargetKind::webhook: channel = hooks_.test_channels.webhook; break;
    case store::TargetKind::ntfy: channel = hooks_.test_channels.ntfy; break;
  }
  json result = {{"delivered", false}, {"error", nullptr}};
  if (channel == nullptr) {
    result["error"] = "this kind of target is not configured on the server";
  } else {
    notify::Notice notice;
    notice.account_id = account->id;
    notice.account_name = account->username;
    notice.time_zone = account->settings.time_zone;
    notice.dashboard_url = options_.public_url;
    notice.idempotency_key = "test-" + target->id + "-" + std::to_string(now_ms());
    notify::Item item;
    item.device_id = "test";
    item.device_name = "Test notification";
    item.transition = store::Transition::power_back;
    item.user_state = protocol::UserState::on;
    item.observed_at_ms = now_ms();
    item.extra = {{"test", true}};
    notice.items.push_back(std::move(item));
    std::lock_guard lock(test_mutex_);
    auto delivered = channel->deliver(*target, notice);
    if (delivered) {
      result["delivered"] = true;
    } else {
      result["error"] = delivered.error().reason;
    }
  }
  log::info("api.target_tested",
            {{"target", target->id}, {"delivered", result["delivered"].get<bool>()}});
  Response out;
  out.body = dump(result);
  return out;
}

ApiResult<Response> Api::resend_verification(const Request& r, const Params& p) {
  auto account = own_account(r, p.get("accountId"));
  if (!account) return Unexpected<ApiError>{account.error()};
  auto target = own_target(*account, p.get("targetId"));
  if (!target) return Unexpected<ApiError>{target.error()};
  if (target->kind != store::TargetKind::email) {
    return fail(ApiErrc::conflict, "only e-mail targets are verified");
  }
  auto requested = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
    return tx.request_verification(target->id, now_ms(), options_.verify_resend_interval_ms);
  });
  if (!requested) {
    return Unexpected<ApiError>{store_failure(requested.error(), "request_verification")};
  }
  if (*requested && hooks_.wake_notifier) hooks_.wake_notifier();
  Response out;
  out.status = 202;
  out.body = dump({{"requested", *requested}});
  return out;
}

}  // namespace dag::api
