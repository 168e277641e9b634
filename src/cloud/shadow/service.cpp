#include "dag/shadow/service.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>
#include <utility>
#include <variant>

#include "dag/common/encoding.hpp"
#include "dag/common/log.hpp"
#include "dag/presence/presence.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/rules/rules.hpp"
#include "dag/shadow/desired.hpp"

namespace dag::shadow {
namespace {

using protocol::ShadowOp;
using protocol::ShadowReply;
using store::StoreErrc;
using store::StoreResult;

std::size_t reject_index(int code) noexcept {
  const auto* it = std::find(kRejectCodes.begin(), kRejectCodes.end(), code);
  return it == kRejectCodes.end() ? kRejectCodes.size() - 1  // unknown codes count as 500
                                  : static_cast<std::size_t>(it - kRejectCodes.begin());
}

std::int64_t to_seconds(std::int64_t ms) {
  return ms / 1000;
}

}  // namespace

void Metrics::count_reject(int code) noexcept {
  rejected[reject_index(code)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t Metrics::rejects(int code) const noexcept {
  return rejected[reject_index(code)].load(std::memory_order_relaxed);
}

// One message, classified before the transaction.
struct Service::Work {
  const Inbound* in{nullptr};
  std::variant<protocol::ShadowRequestTopic, presence::News> what;
  bool rate_limited{false};  ///< answered 429 in its turn, without touching the store
};

// What one transaction attempt produced; published and counted only after it committed.
struct Service::Pass {
  std::vector<Outbound> out;
  std::array<std::uint64_t, kRejectCodes.size()> rejects{};
  std::uint64_t updates{0};
  std::uint64_t gets{0};
  std::uint64_t deletes{0};
  std::uint64_t presence_applied{0};
  std::uint64_t presence_dropped{0};
  std::uint64_t events{0};
  std::uint64_t duplicates{0};
  std::uint64_t intents{0};
  std::uint64_t timers_fired{0};
  std::optional<std::int64_t> hint;
  /// Accounts read in this transaction (a batch touches few), and shadows written in it:
  /// both only become the service's cache once the transaction committed.
  std::map<std::string, store::Account, std::less<>> accounts;
  /// The accounts' notification targets, read once per transaction (a storm brings many
  /// devices of one account in one batch); only intents need them.
  std::map<std::string, std::vector<store::NotificationTarget>, std::less<>> targets;
  std::unordered_map<std::string, CachedShadow> shadows;
  /// Devices whose derived state this transaction changed, as they are after it.
  std::vector<store::Device> changed;
  /// Battery readings recorded in this transaction: device -> at_ms; and the devices
  /// whose old readings it deleted.
  std::unordered_map<std::string, std::int64_t> batteries;
  std::unordered_map<std::string, std::int64_t> pruned;

  void reject(std::string_view thing, ShadowOp op, const protocol::ShadowError& error,
              std::int64_t now_s) {
    out.push_back({protocol::shadow_topic(thing, op, ShadowReply::rejected),
                   protocol::render_rejected(error, now_s)});
    ++rejects[reject_index(error.code)];
  }
  void reply(std::string_view thing, ShadowOp op, ShadowReply kind, std::string payload) {
    out.push_back({protocol::shadow_topic(thing, op, kind), std::move(payload)});
  }
};

namespace {

// Writes what the rules decided, in the caller's transaction.
StoreResult<void> apply_decision(store::Transaction& tx, const rules::Context& ctx,
                                 const rules::Decision& d, auto& pass) {
  const std::string& device_id = ctx.device.id;
  if (d.state_changed) {
    // ctx.device was read in this transaction: what is stored, so unchanged columns can be
    // left alone.
    if (auto r = tx.change_device_state(device_id, ctx.device.state, d.state); !r) return r;
    auto changed = ctx.device;
    changed.state = d.state;
    pass.changed.push_back(std::move(changed));
  }
  for (const auto& event : d.events) {
    auto r = tx.append_event(event);
    if (!r) {
      // A resent report: (device, seq) is already in the history.
      if (r.error().code != StoreErrc::conflict) return Unexpected<store::StoreError>{r.error()};
      ++pass.duplicates;
      continue;
    }
    ++pass.events;
  }
  if (!d.intents.empty()) {
    // One row per verified target, so that each is delivered and retried on its own; a row
    // without a target when nobody verified is there to tell (the history of it stays).
    const auto& account_id = d.intents.front().account_id;
    auto known = pass.targets.find(account_id);
    if (known == pass.targets.end()) {
      auto listed = tx.list_targets(account_id);
      if (!listed) return Unexpected<store::StoreError>{listed.error()};
      known = pass.targets.emplace(account_id, *std::move(listed)).first;
    }
    const auto& targets = known->second;
    for (const auto& intent : d.intents) {
      bool any = false;
      for (const auto& t : targets) {
        if (!t.verified) continue;
        auto row = intent;
        row.target_id = t.id;
        if (auto r = tx.enqueue_intent(row); !r) return Unexpected<store::StoreError>{r.error()};
        any = true;
      }
      if (!any) {
        if (auto r = tx.enqueue_intent(intent); !r) return Unexpected<store::StoreError>{r.error()};
      }
      ++pass.intents;
    }
  }
  for (const auto& change : d.timers) {
    if (change.op == rules::TimerChange::Op::schedule) {
      if (auto r = tx.schedule_timer(change.timer); !r) {
        return Unexpected<store::StoreError>{r.error()};
      }
      pass.hint = std::min(pass.hint.value_or(change.timer.due_at_ms), change.timer.due_at_ms);
    } else if (auto r = tx.cancel_timer(change.timer.device_id, change.timer.kind); !r) {
      return Unexpected<store::StoreError>{r.error()};
    }
  }
  if (d.request_status) pass.out.push_back({protocol::status_request_topic(device_id), ""});
  return {};
}

// A report's battery as a reading at now_ms, or nullopt when it carries no value worth a
// point. The shadow engine accepted whatever the device sent, so values the store would
// refuse (out of range, not finite) are left out rather than failing the transaction.
std::optional<store::BatteryReading> reading_of(const rules::Report& report,
                                                const std::string& device_id,
                                                const store::DeviceState& after,
                                                std::int64_t now_ms) {
  const auto in_range = [](std::optional<double> v) -> std::optional<double> {
    if (v && std::isfinite(*v) && *v >= 0 && *v <= 100) return v;
    return std::nullopt;
  };
  store::BatteryReading r;
  r.device_id = device_id;
  r.at_ms = now_ms;
  r.percent = in_range(report.battery_percent);
  r.volts = in_range(report.battery_volts);
  r.minutes_left = report.battery_minutes_left;
  if (!r.percent && !r.volts && !r.minutes_left) return std::nullopt;
  if (after.power) r.on_battery = *after.power == protocol::Power::off;
  return r;
}

// The device's context for the rules; not_found when its account vanished (a bug).
StoreResult<rules::Context> context_of(store::Transaction& tx, store::Device device,
                                       std::int64_t now_ms, auto& pass) {
  auto it = pass.accounts.find(device.account_id);
  if (it == pass.accounts.end()) {
    auto account = tx.get_account(device.account_id);
    if (!account) {
      if (account.error().code == StoreErrc::not_found) {
        return store::fail(StoreErrc::internal, "device " + device.id + " has no account");
      }
      return Unexpected<store::StoreError>{account.error()};
    }
    it = pass.accounts.emplace(device.account_id, *std::move(account)).first;
  }
  return rules::Context{std::move(device), it->second.id, it->second.settings, now_ms};
}

}  // namespace

Service::Service(store::Store& store, const Clock& clock, ServiceOptions options, Metrics& metrics)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      metrics_(metrics),
      limiter_(options_.rate_per_s, options_.rate_burst),
      started_ms_(clock_.unix_ms()) {}

std::vector<Outbound> Service::process(std::span<const Inbound> batch) {
  std::vector<Outbound> out;
  std::vector<Work> work;
  work.reserve(batch.size());
  metrics_.messages.fetch_add(batch.size(), std::memory_order_relaxed);

  for (const auto& in : batch) {
    auto topic = protocol::parse_topic(in.topic);
    if (!topic) {
      metrics_.ignored.fetch_add(1, std::memory_order_relaxed);
      log::debug("ingest.ignored", {{"topic", in.topic}});
      continue;
    }
    if (auto* req = std::get_if<protocol::ShadowRequestTopic>(&*topic)) {
      const bool limited = !limiter_.allow(req->thing, clock_.steady());
      work.push_back({&in, std::move(*req), limited});
      continue;
    }
    Result<presence::News> news = fail(Errc::parse, "not a presence topic");
    if (auto* p = std::get_if<protocol::PresenceTopic>(&*topic)) {
      news = presence::from_presence(*p, in.payload, in.retained);
    } else if (auto* l = std::get_if<protocol::LifecycleTopic>(&*topic)) {
      news = presence::from_lifecycle(*l, in.payload);
    } else {
      metrics_.ignored.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!news) {
      metrics_.presence_dropped.fetch_add(1, std::memory_order_relaxed);
      log::warn("presence.malformed", {{"topic", in.topic}, {"error", news.error().message}});
      continue;
    }
    work.push_back({&in, *std::move(news)});
  }
  if (work.empty()) return out;

  Pass pass;
  auto whole = store::transact(store_, store::TxMode::read_write,
                               [&](store::Transaction& tx) -> StoreResult<void> {
                                 pass = Pass{};
                                 for (const auto& w : work) {
                                   if (auto r = apply(tx, w, pass); !r) return r;
                                 }
                                 return {};
                               });
  if (whole) {
    metrics_.batches.fetch_add(1, std::memory_order_relaxed);
    commit_pass(pass, out);
    return out;
  }

  // Redo message by message, so that what the store refuses stays with its own message.
  metrics_.batch_fallbacks.fetch_add(1, std::memory_order_relaxed);
  log::warn("ingest.batch_failed", {{"messages", work.size()},
                                    {"error", whole.error().message},
                                    {"code", store::to_string(whole.error().code)}});
  for (const auto& w : work) {
    Pass one;
    auto r = store::transact(store_, store::TxMode::read_write,
                             [&](store::Transaction& tx) -> StoreResult<void> {
                               one = Pass{};
                               return apply(tx, w, one);
                             });
    if (r) {
      commit_pass(one, out);
      continue;
    }
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    metrics_.database_ok.store(false, std::memory_order_relaxed);
    log::error("ingest.store_failed", {{"topic", w.in->topic},
                                       {"code", store::to_string(r.error().code)},
                                       {"error", r.error().message}});
    if (const auto* req = std::get_if<protocol::ShadowRequestTopic>(&w.what)) {
      Pass failed;
      failed.reject(req->thing, req->op,
                    protocol::make_error(protocol::ShadowErrc::internal,
                                         protocol::client_token_of(w.in->payload)),
                    to_seconds(w.in->received_ms));
      // Not a committed pass, but only the reply and its counter are in it.
      for (std::size_t i = 0; i < failed.rejects.size(); ++i) {
        metrics_.rejected[i].fetch_add(failed.rejects[i], std::memory_order_relaxed);
      }
      out.insert(out.end(), failed.out.begin(), failed.out.end());
    }
  }
  return out;
}

void Service::commit_pass(Pass& pass, std::vector<Outbound>& out) {
  auto add = [](std::atomic<std::uint64_t>& counter, std::uint64_t n) {
    if (n != 0) counter.fetch_add(n, std::memory_order_relaxed);
  };
  for (std::size_t i = 0; i < pass.rejects.size(); ++i) add(metrics_.rejected[i], pass.rejects[i]);
  add(metrics_.updates_accepted, pass.updates);
  if (pass.updates != 0) {
    metrics_.last_update_commit_ms.store(clock_.unix_ms(), std::memory_order_relaxed);
  }
  add(metrics_.gets_accepted, pass.gets);
  add(metrics_.deletes_accepted, pass.deletes);
  add(metrics_.presence_applied, pass.presence_applied);
  add(metrics_.presence_dropped, pass.presence_dropped);
  add(metrics_.events, pass.events);
  add(metrics_.duplicate_events, pass.duplicates);
  add(metrics_.intents, pass.intents);
  add(metrics_.timers_fired, pass.timers_fired);
  metrics_.database_ok.store(true, std::memory_order_relaxed);
  if (shadow_cache_.size() + pass.shadows.size() > kShadowCacheMax) shadow_cache_.clear();
  for (auto& [thing, shadow] : pass.shadows) {
    shadow_cache_.insert_or_assign(thing, std::move(shadow));
  }
  if (pass.hint) scheduled_hint_ = std::min(scheduled_hint_.value_or(*pass.hint), *pass.hint);
  if (!pass.batteries.empty()) {
    if (battery_recorded_ms_.size() + pass.batteries.size() > kBatteryBookMax) {
      battery_recorded_ms_.clear();
    }
    for (auto& [device_id, at_ms] : pass.batteries) {
      battery_recorded_ms_.insert_or_assign(device_id, at_ms);
    }
  }
  if (!pass.pruned.empty()) {
    // A clear only means some devices prune again a day after now rather than sooner.
    if (battery_pruned_ms_.size() + pass.pruned.size() > kBatteryBookMax) {
      battery_pruned_ms_.clear();
    }
    for (auto& [device_id, at_ms] : pass.pruned) {
      battery_pruned_ms_.insert_or_assign(device_id, at_ms);
    }
  }
  if (options_.on_device_changed) {
    for (const auto& device : pass.changed) options_.on_device_changed(device);
  }
  if (out.empty()) {
    out = std::move(pass.out);
  } else {
    out.insert(out.end(), std::make_move_iterator(pass.out.begin()),
               std::make_move_iterator(pass.out.end()));
  }
}

const Service::CachedShadow* Service::cached_shadow(const std::string& thing,
                                                    const Pass& pass) const {
  // Written earlier in this transaction: what the store holds.
  if (auto it = pass.shadows.find(thing); it != pass.shadows.end()) return &it->second;
  // Only a guess: the store tells whether it is still what it holds (another replica, or
  // dagctl, may have written since).
  auto it = shadow_cache_.find(thing);
  return it != shadow_cache_.end() ? &it->second : nullptr;
}

StoreResult<void> Service::apply(store::Transaction& tx, const Work& work, Pass& pass) {
  if (work.rate_limited) {
    const auto& req = std::get<protocol::ShadowRequestTopic>(work.what);
    pass.reject(req.thing, req.op,
                protocol::too_many_requests(protocol::client_token_of(work.in->payload)),
                to_seconds(work.in->received_ms));
    return {};
  }
  if (std::holds_alternative<protocol::ShadowRequestTopic>(work.what)) {
    return apply_shadow(tx, work, pass);
  }
  return apply_presence(tx, work, pass);
}

StoreResult<void> Service::apply_shadow(store::Transaction& tx, const Work& work, Pass& pass) {
  const auto& req = std::get<protocol::ShadowRequestTopic>(work.what);
  const auto& in = *work.in;
  const std::int64_t now_s = to_seconds(in.received_ms);
  const auto& thing = req.thing;

  // One read for the device and its shadow; the document only comes along when the
  // cached parse is not of the stored one (another replica or dagctl wrote since).
  const CachedShadow* known = cached_shadow(thing, pass);
  auto found = tx.get_device_with_shadow(thing, known != nullptr ? &known->stored : nullptr);
  if (!found && found.error().code != StoreErrc::not_found) {
    return Unexpected<store::StoreError>{found.error()};
  }
  if (!found || found->device.revoked) {
    // Unknown and revoked look the same from outside: no shadow service for it.
    pass.reject(thing, req.op,
                protocol::make_error(protocol::ShadowErrc::not_found,
                                     protocol::client_token_of(in.payload), thing),
                now_s);
    return {};
  }

  std::optional<protocol::ShadowDocument> current;
  std::int64_t revision = 0;
  std::optional<std::string> text = std::move(found->shadow_document);
  if (found->shadow_revision) {
    revision = *found->shadow_revision;
    if (!text) {
      if (known != nullptr && known->stored.revision == revision) {
        current = known->document;
      } else {  // only a store that ignores `known` gets here
        auto stored = tx.get_shadow(thing);
        if (!stored) return Unexpected<store::StoreError>{stored.error()};
        if (!*stored || (*stored)->revision != revision) {
          return store::fail(StoreErrc::internal, "shadow of " + thing + " changed in a read");
        }
        text = std::move((*stored)->document);
      }
    }
  }
  if (text && !current) {
    auto doc = protocol::shadow_from_json(*text);
    if (!doc) {
      // Only a bug or a hand-edited database gets here; the device hears 500 and the row
      // stays as it is for a human to look at.
      log::error("shadow.unreadable", {{"device", thing}, {"error", doc.error().message}});
      pass.reject(thing, req.op,
                  protocol::make_error(protocol::ShadowErrc::internal,
                                       protocol::client_token_of(in.payload)),
                  now_s);
      return {};
    }
    current = *std::move(doc);
  }
  const protocol::ShadowDocument* cur = current ? &*current : nullptr;

  switch (req.op) {
    case ShadowOp::update: {
      auto result = protocol::update(cur, in.payload, now_s);
      if (!result) {
        pass.reject(thing, req.op, result.error(), now_s);
        return {};
      }
      auto stored_text = protocol::shadow_to_json(result->document);
      auto put = tx.put_shadow(thing, stored_text, revision);
      if (!put) return Unexpected<store::StoreError>{put.error()};
      pass.shadows.insert_or_assign(
          thing, CachedShadow{{std::move(stored_text), *put}, std::move(result->document)});
      if (result->reported_patch.is_object()) {
        // Reported state comes from the device: contact, and maybe a power change.
        auto ctx = context_of(tx, std::move(found->device), in.received_ms, pass);
        if (!ctx) return Unexpected<store::StoreError>{ctx.error()};
        const auto report = rules::parse_report(result->reported_patch);
        auto decision = rules::on_report(*ctx, report);
        if (auto r = apply_decision(tx, *ctx, decision, pass); !r) return r;
        // The thinning is decided first: a report that records nothing costs no more.
        if (report.battery_json && (decision.state.power != ctx->device.state.power ||
                                    battery_due(thing, in.received_ms, pass))) {
          if (auto reading = reading_of(report, thing, decision.state, in.received_ms)) {
            if (auto r = record_battery(tx, *reading, pass); !r) return r;
          }
        }
      }
      ++pass.updates;
      pass.reply(thing, req.op, ShadowReply::accepted, std::move(result->accepted));
      if (result->delta) pass.reply(thing, req.op, ShadowReply::delta, std::move(*result->delta));
      pass.reply(thing, req.op, ShadowReply::documents, std::move(result->documents));
      return {};
    }
    case ShadowOp::get: {
      auto result = protocol::get(thing, cur, in.payload, now_s);
      // A dag asks for its shadow after every connect: that is contact too.
      auto ctx = context_of(tx, std::move(found->device), in.received_ms, pass);
      if (!ctx) return Unexpected<store::StoreError>{ctx.error()};
      if (auto r = apply_decision(tx, *ctx, rules::on_connected(*ctx), pass); !r) return r;
      if (!result) {
        pass.reject(thing, req.op, result.error(), now_s);
      } else {
        ++pass.gets;
        pass.reply(thing, req.op, ShadowReply::accepted, *std::move(result));
      }
      return {};
    }
    case ShadowOp::remove: {
      // Not counted as contact: an operator may delete a shadow on a dag's behalf.
      auto result = protocol::remove(thing, cur, in.payload, now_s);
      if (!result) {
        pass.reject(thing, req.op, result.error(), now_s);
        return {};
      }
      auto stored_text = protocol::shadow_to_json(result->document);
      auto put = tx.put_shadow(thing, stored_text, revision);
      if (!put) return Unexpected<store::StoreError>{put.error()};
      pass.shadows.insert_or_assign(
          thing, CachedShadow{{std::move(stored_text), *put}, std::move(result->document)});
      ++pass.deletes;
      pass.reply(thing, req.op, ShadowReply::accepted, std::move(result->accepted));
      return {};
    }
  }
  return {};
}

bool Service::battery_due(const std::string& device_id, std::int64_t now_ms,
                          const Pass& pass) const {
  // Thinning in memory, so that a report which records nothing costs no statement.
  std::optional<std::int64_t> last;
  if (auto it = pass.batteries.find(device_id); it != pass.batteries.end()) {
    last = it->second;
  } else if (auto known = battery_recorded_ms_.find(device_id);
             known != battery_recorded_ms_.end()) {
    last = known->second;
  }
  // A clock that went back records at once rather than waiting to catch up.
  return !last || now_ms < *last || now_ms - *last >= options_.battery_interval_ms;
}

bool Service::battery_prune_due(const std::string& device_id, std::int64_t now_ms,
                                const Pass& pass) const {
  std::int64_t last = started_ms_;
  if (auto it = pass.pruned.find(device_id); it != pass.pruned.end()) {
    last = it->second;
  } else if (auto known = battery_pruned_ms_.find(device_id); known != battery_pruned_ms_.end()) {
    last = known->second;
  }
  return now_ms < last || now_ms - last >= options_.battery_prune_every_ms;
}

StoreResult<void> Service::record_battery(store::Transaction& tx,
                                          const store::BatteryReading& reading, Pass& pass) const {
  const bool prune = battery_prune_due(reading.device_id, reading.at_ms, pass);
  std::optional<std::int64_t> cutoff;
  if (prune) cutoff = reading.at_ms - options_.battery_retention_ms;
  if (auto r = tx.record_battery(reading, cutoff); !r) return r;
  pass.batteries.insert_or_assign(reading.device_id, reading.at_ms);
  if (prune) pass.pruned.insert_or_assign(reading.device_id, reading.at_ms);
  return {};
}

StoreResult<void> Service::apply_presence(store::Transaction& tx, const Work& work, Pass& pass) {
  const auto& news = std::get<presence::News>(work.what);
  auto device = tx.get_device(news.device_id);
  if (!device) {
    if (device.error().code != StoreErrc::not_found) {
      return Unexpected<store::StoreError>{device.error()};
    }
    ++pass.presence_dropped;  // e.g. the lifecycle events of other services' clients
    return {};
  }
  const auto& state = device->state;
  const bool stale = !presence::is_news(news, state.last_lifecycle_version);
  // A retained birth says what was last known; if we know the dag is connected, it adds
  // nothing (and must not count as a sign of life now).
  const bool known = news.retained && news.connection == protocol::Connection::connected &&
                     state.connection == protocol::Connection::connected;
  if (device->revoked || stale || known) {
    ++pass.presence_dropped;
    return {};
  }
  const auto order = news.order;
  auto ctx = context_of(tx, *std::move(device), work.in->received_ms, pass);
  if (!ctx) return Unexpected<store::StoreError>{ctx.error()};
  rules::Decision decision;
  if (news.connection == protocol::Connection::connected) {
    decision = rules::on_connected(*ctx);
  } else {
    auto marker = new_uuid();
    if (!marker) return store::fail(StoreErrc::internal, marker.error().message);
    decision = rules::on_disconnected(*ctx, *marker);
  }
  if (order) {
    decision.state.last_lifecycle_version = order;
    decision.state_changed = true;
  }
  ++pass.presence_applied;
  return apply_decision(tx, *ctx, decision, pass);
}

namespace {

// The delta of desired state written by the operator (dag/shadow/desired.hpp).
StoreResult<void> delta_of(store::Transaction& tx, const std::string& device_id,
                           std::int64_t now_ms, auto& pass) {
  auto stored = tx.get_shadow(device_id);
  if (!stored) return Unexpected<store::StoreError>{stored.error()};
  if (!*stored) return {};
  auto doc = protocol::shadow_from_json((*stored)->document);
  if (!doc) {
    log::error("shadow.unreadable", {{"device", device_id}, {"error", doc.error().message}});
    return {};
  }
  if (auto delta = protocol::render_delta(*doc, to_seconds(now_ms))) {
    pass.out.push_back({protocol::shadow_topic(device_id, ShadowOp::update, ShadowReply::delta),
                        std::move(*delta)});
  }
  return {};
}

}  // namespace

StoreResult<TimerRound> Service::fire_due_timers() {
  const std::int64_t now_ms = clock_.unix_ms();
  Pass pass;
  auto fired = store::transact(
      store_, store::TxMode::read_write, [&](store::Transaction& tx) -> StoreResult<int> {
        pass = Pass{};
        auto due = tx.claim_due_timers(now_ms, options_.timer_batch, options_.owner,
                                       options_.timer_lease_ms);
        if (!due) return Unexpected<store::StoreError>{due.error()};
        for (const auto& t : *due) {
          if (t.timer.kind == kShadowDeltaTimer) {
            if (auto r = delta_of(tx, t.timer.device_id, now_ms, pass); !r) {
              return Unexpected<store::StoreError>{r.error()};
            }
            if (auto r = tx.complete_timer(t.id); !r && r.error().code != StoreErrc::not_found) {
              return Unexpected<store::StoreError>{r.error()};
            }
            ++pass.timers_fired;
            continue;
          }
          auto device = tx.get_device(t.timer.device_id);
          if (device && !device->revoked) {
            auto ctx = context_of(tx, *std::move(device), now_ms, pass);
            if (!ctx) return Unexpected<store::StoreError>{ctx.error()};
            auto decision = rules::on_timer(*ctx, t.timer);
            if (auto r = apply_decision(tx, *ctx, decision, pass); !r) {
              return Unexpected<store::StoreError>{r.error()};
            }
          } else if (!device && device.error().code != StoreErrc::not_found) {
            return Unexpected<store::StoreError>{device.error()};
          }
          if (auto r = tx.complete_timer(t.id); !r && r.error().code != StoreErrc::not_found) {
            return Unexpected<store::StoreError>{r.error()};
          }
          ++pass.timers_fired;
        }
        return static_cast<int>(due->size());
      });
  if (!fired) {
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    metrics_.database_ok.store(false, std::memory_order_relaxed);
    return Unexpected<store::StoreError>{fired.error()};
  }
  TimerRound round;
  round.fired = *fired;
  commit_pass(pass, round.outbound);
  return round;
}

StoreResult<std::optional<std::int64_t>> Service::next_timer_due_ms() {
  return store::transact(store_, store::TxMode::read_only,
                         [](store::Transaction& tx) { return tx.next_timer_due_ms(); });
}

std::optional<std::int64_t> Service::take_scheduled_hint() noexcept {
  return std::exchange(scheduled_hint_, std::nullopt);
}

}  // namespace dag::shadow
