#include "dag/notify/worker.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <functional>
#include <set>
#include <system_error>
#include <thread>
#include <vector>

#include "dag/common/encoding.hpp"
#include "dag/common/log.hpp"
#include "dag/common/thread_name.hpp"

namespace dag::notify {
namespace {

using store::StoreErrc;
using store::StoreResult;

std::chrono::milliseconds min_ms(std::chrono::milliseconds a, std::chrono::milliseconds b) {
  return a < b ? a : b;
}

// Where a round's time goes, for the log: claim and plan (delivering overlaps the next
// rounds; recording is logged on its own).
class RoundTimes {
 public:
  explicit RoundTimes(const Clock& clock) : clock_(clock) { mark(); }
  void mark() { at_.at(marks_++) = clock_.steady(); }
  void log(std::size_t claimed, std::size_t messages, std::size_t deferred,
           std::size_t in_flight) const {
    log::debug("notify.round", {{"claimed", claimed},
                                {"messages", messages},
                                {"deferred", deferred},
                                {"in_flight", in_flight},
                                {"claim_ms", ms(0)},
                                {"plan_ms", ms(1)}});
  }
  [[nodiscard]] double ms(std::size_t k) const {
    return std::chrono::duration<double, std::milli>(at_.at(k + 1) - at_.at(k)).count();
  }

 private:
  const Clock& clock_;
  std::array<Clock::SteadyTime, 3> at_{};
  std::size_t marks_{0};
};

// not_found: the target or device was deleted meanwhile; conflict: finished already.
bool ok_or_gone(const StoreResult<void>& r) {
  return r || r.error().code == StoreErrc::not_found || r.error().code == StoreErrc::conflict;
}

}  // namespace

std::chrono::milliseconds retry_delay(int attempt, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max) {
  const int shift = std::clamp(attempt - 1, 0, 30);
  const auto base = initial.count() << shift;
  return min_ms(std::chrono::milliseconds{base < 0 ? max.count() : base}, max);
}

// One message to one target: one or more intents.
struct Worker::Message {
  store::NotificationTarget target;
  std::vector<store::StoredIntent> intents;
  Notice notice;
};

// What a round does with its claimed intents.
struct Worker::Plan {
  std::vector<Message> messages;
  std::vector<std::pair<std::int64_t, std::int64_t>> defers;   // intent id, until
  std::vector<std::pair<std::int64_t, std::string>> unusable;  // intent id, reason
};

// A message on its way: queued, being delivered, or finished and not yet recorded.
struct Worker::Job {
  Message message;
  std::int64_t round_at{0};  ///< the round's time: the window counts from it
  /// What last_sent_ said of the target before this round (restored if delivery fails).
  std::optional<std::int64_t> sent_before;
  std::optional<Delivery> result;
};

struct Worker::Counts {
  std::uint64_t done{0};
  std::uint64_t retried{0};
  std::uint64_t failed{0};
};

Worker::Worker(store::Store& store, const Clock& clock, WorkerOptions options, Channels channels,
               WorkerMetrics& metrics)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      channels_(channels),
      metrics_(metrics),
      senders_wanted_(static_cast<std::size_t>(std::max(options_.concurrency, 1))) {}

Worker::~Worker() {
  {
    std::lock_guard lock(pool_mutex_);
    senders_stopping_ = true;
  }
  pool_cv_.notify_all();
  senders_.clear();  // joins: each finishes the delivery it is in
}

namespace {
// The windows of the storm rate: a short one starts a hold and keeps it; a longer one keeps
// it too, so that a pause in the storm's arrival does not end it: one slow commit on a busy
// machine, or the broker, busy with the dags' publishes, not sending for a moment. (Ending
// after 250 ms without intents once the ingest is idle was tried: in a slow storm of
// 10,000 dags the reports came in waves with longer pauses, and 208 of 1,851 accounts got
// a first alert and a follow-up.)
constexpr std::int64_t kStormShortWindowMs = 250;
constexpr std::int64_t kStormLongWindowMs = 1000;
}  // namespace

void Worker::wake(std::size_t made) {
  std::lock_guard lock(mutex_);
  if (made > 0) made_.emplace_back(clock_.unix_ms(), made);
  woken_ = true;
  cv_.notify_all();
}

std::size_t Worker::intents_made_recently(std::int64_t now, std::int64_t window_ms) {
  std::lock_guard lock(mutex_);
  while (!made_.empty() && made_.front().first <= now - kStormLongWindowMs) made_.pop_front();
  std::size_t sum = 0;
  for (const auto& entry : made_) {
    if (entry.first > now - window_ms) sum += entry.second;
  }
  return sum;
}

void Worker::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  cv_.notify_all();
}

void Worker::run() {
  for (;;) {
    next_due_.reset();
    more_due_ = false;
    turn();
    const std::int64_t due = next_turn();
    std::unique_lock lock(mutex_);
    const auto wait = std::chrono::milliseconds(std::max<std::int64_t>(0, due - clock_.unix_ms()));
    cv_.wait_for(lock, wait, [&] { return woken_ || stopping_; });
    if (stopping_) break;
    woken_ = false;
  }
  // What is on its way is finished and recorded, so that it is not sent again after the
  // leases run out.
  drain();
  record_finished();
}

std::int64_t Worker::run_once() {
  next_due_.reset();
  more_due_ = false;
  turn();
  drain();
  record_finished();
  return next_turn();
}

bool Worker::due_intents_may_grow(std::int64_t now) {
  auto grows = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.due_intents_may_grow(now);
  });
  if (!grows) {
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    return true;  // keep holding: the hold has its bound
  }
  return *grows;
}

std::int64_t Worker::next_turn() {
  const std::int64_t now = clock_.unix_ms();
  // A full claim: more are due. In run() the senders wake us when they run short instead,
  // unless this round left them short already.
  if (more_due_ && queued() < senders_wanted_) {
    return now;
  }
  const std::int64_t poll = now + options_.poll.count();
  return next_due_ ? std::min(*next_due_, poll) : poll;
}

std::optional<std::int64_t> Worker::storm_hold(std::int64_t now) {
  const std::size_t backlog = options_.ingest_backlog ? options_.ingest_backlog() : 0;
  const auto fast = [&](std::int64_t window) {
    return intents_made_recently(now, window) * 1000 >
           options_.storm_rate * static_cast<std::size_t>(window);
  };
  bool storm = backlog > options_.storm_backlog || fast(kStormShortWindowMs);
  bool all_told = false;
  // Both windows while holding: a storm that has just begun has not filled the long one.
  // When only the long one holds (the storm paused, or ended), ask the store whether any
  // account waiting for its alert can still get a cut: if none can, whatever is still on
  // its way is other accounts' news, and waiting would only delay these alerts.
  if (!storm && storm_since_ && fast(kStormLongWindowMs) && options_.storm_hold.count() > 0) {
    storm = due_intents_may_grow(now);
    all_told = !storm;
  }
  if (!storm || options_.storm_hold.count() <= 0) {
    if (storm_since_) {
      log::info("notify.storm_hold_ended",
                {{"held_ms", now - *storm_since_}, {"all_told", all_told}});
      storm_since_.reset();
    }
    return std::nullopt;
  }
  if (!storm_since_) {
    storm_since_ = now;
    metrics_.storm_holds.fetch_add(1, std::memory_order_relaxed);
    log::info(
        "notify.storm_hold",
        {{"backlog", backlog}, {"intents_250ms", intents_made_recently(now, kStormShortWindowMs)}});
  }
  const std::int64_t until = *storm_since_ + options_.storm_hold.count();
  if (now >= until) return std::nullopt;  // held long enough: deliver despite the backlog
  // The ingest wakes us only after commits that made intents, not when it caught up: look
  // again soon as well.
  constexpr std::int64_t kLookAgainMs = 50;
  return std::min(until, now + kLookAgainMs);
}

void Worker::turn() {
  const std::int64_t now = clock_.unix_ms();
  record_finished();
  // The senders have work for a while yet: claim when they run short (they wake us), so
  // that claimed intents do not wait in the queue for long.
  if (queued() < senders_wanted_) {
    if (auto until = storm_hold(now)) {
      next_due_ = *until;
    } else {
      deliver_round(now);
    }
  }
  send_verifications(now);
}

void Worker::deliver_round(std::int64_t now) {
  RoundTimes times(clock_);
  // Claim in a transaction of its own: the lease protects the intents while we deliver.
  auto claimed = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
    return tx.claim_intents(now, options_.claim_limit, options_.owner, options_.lease.count());
  });
  if (!claimed) {
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    log::error("notify.claim_failed", {{"error", claimed.error().message}});
    return;
  }
  if (claimed->empty()) return;
  // The claim may have waited for the ingest's commit (the write lock), and a storm that
  // commit showed holds this round too: rather than first alerts that the storm's next
  // reports would follow with a follow-up a window later, the intents go back.
  if (auto until = storm_hold(clock_.unix_ms())) {
    give_back(*claimed);
    next_due_ = *until;
    return;
  }
  times.mark();
  std::sort(claimed->begin(), claimed->end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });  // oldest first
  // A full claim: more are due (run() claims again once the senders run short).
  const bool full = static_cast<int>(claimed->size()) >= options_.claim_limit;

  // Group by target, oldest first.
  std::map<std::string, std::vector<store::StoredIntent>> by_target;
  std::vector<std::int64_t> no_target;
  for (auto& i : *claimed) {
    if (i.intent.target_id) {
      by_target[*i.intent.target_id].push_back(std::move(i));
    } else {
      no_target.push_back(i.id);  // nobody verified to tell: done, nothing to send
    }
  }

  // What to send now and what to hold, decided from the store's view of each target.
  Plan plan;
  auto planned = store::transact(
      store_, store::TxMode::read_only, [&](store::Transaction& tx) -> StoreResult<void> {
        plan = {};
        for (const auto& entry : by_target) {
          const std::string& target_id = entry.first;
          const auto& intents = entry.second;
          const auto& first = intents.front().intent;
          auto account = tx.get_account(first.account_id);
          if (!account) return Unexpected<store::StoreError>{account.error()};
          auto targets = tx.list_targets(first.account_id);
          if (!targets) return Unexpected<store::StoreError>{targets.error()};
          auto it = std::find_if(targets->begin(), targets->end(),
                                 [&](const auto& t) { return t.id == target_id; });
          if (it == targets->end() || !it->verified) {
            for (const auto& i : intents)
              plan.unusable.emplace_back(i.id, "the target is no longer verified");
            continue;
          }
          plan_target(*account, *it, intents, now, plan);
        }
        return {};
      });
  if (!planned) {
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    log::error("notify.plan_failed", {{"error", planned.error().message}});
    return;  // the leases run out and the intents come back
  }
  times.mark();

  const std::size_t messages = plan.messages.size();
  const std::size_t deferred = plan.defers.size();
  dispatch(std::move(plan), std::move(no_target), now);
  const std::size_t in_flight = [&] {
    std::lock_guard lock(pool_mutex_);
    return in_flight_;
  }();
  times.log(claimed->size(), messages, deferred, in_flight);
  more_due_ = full;
}

void Worker::dispatch(Plan plan, std::vector<std::int64_t> no_target, std::int64_t now) {
  for (const auto& [id, until] : plan.defers)
    next_due_ = std::min(next_due_.value_or(until), until);
  to_finish_.insert(to_finish_.end(), no_target.begin(), no_target.end());
  to_defer_.insert(to_defer_.end(), plan.defers.begin(), plan.defers.end());
  for (auto& u : plan.unusable) to_fail_.push_back(std::move(u));
  metrics_.deferred.fetch_add(plan.defers.size(), std::memory_order_relaxed);
  if (plan.messages.empty()) return;

  std::vector<std::unique_ptr<Job>> jobs;
  jobs.reserve(plan.messages.size());
  for (auto& m : plan.messages) {
    auto job = std::make_unique<Job>();
    // Sent as of this round, though still on its way: what comes for the target
    // meanwhile belongs to the follow-up, counted from this round's time.
    if (auto it = last_sent_.find(m.target.id); it != last_sent_.end()) {
      job->sent_before = it->second;
    }
    last_sent_[m.target.id] = now;
    job->message = std::move(m);
    job->round_at = now;
    jobs.push_back(std::move(job));
  }
  if (senders_.empty()) {
    for (std::size_t t = 0; t < senders_wanted_; ++t) {
      try {
        senders_.emplace_back([this] {
          set_thread_name("notify-send");
          sender_loop();
        });
      } catch (const std::system_error&) {
        break;  // fewer senders; none: delivered here
      }
    }
  }
  if (senders_.empty()) {
    for (auto& job : jobs) {
      job->result = deliver_one(job->message);
      finished_.push_back(std::move(job));
    }
    return;
  }
  {
    std::lock_guard lock(pool_mutex_);
    in_flight_ += jobs.size();
    for (auto& job : jobs) queue_.push_back(std::move(job));
  }
  pool_cv_.notify_all();
}

std::size_t Worker::queued() {
  std::lock_guard lock(pool_mutex_);
  return queue_.size();
}

void Worker::drain() {
  std::unique_lock lock(pool_mutex_);
  idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void Worker::sender_loop() {
  std::unique_lock lock(pool_mutex_);
  for (;;) {
    pool_cv_.wait(lock, [&] { return !queue_.empty() || senders_stopping_; });
    if (senders_stopping_) return;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    // Running short: the run thread claims the next round while these are delivered.
    const bool short_now = queue_.size() + 1 == senders_wanted_;
    lock.unlock();
    if (short_now) wake();
    job->result = deliver_one(job->message);
    lock.lock();
    finished_.push_back(std::move(job));
    if (--in_flight_ == 0) {
      idle_cv_.notify_all();
      lock.unlock();
      wake();  // to record what finished
      lock.lock();
    }
  }
}

void Worker::record_finished() {
  std::vector<std::unique_ptr<Job>> jobs;
  {
    std::lock_guard lock(pool_mutex_);
    jobs.swap(finished_);
  }
  if (jobs.empty() && to_finish_.empty() && to_defer_.empty() && to_fail_.empty()) return;
  const auto began = clock_.steady();
  const std::int64_t now = clock_.unix_ms();
  Counts counts;
  auto recorded = store::transact(
      store_, store::TxMode::read_write, [&](store::Transaction& tx) -> StoreResult<void> {
        counts = {};
        for (const auto id : to_finish_) {
          if (auto r = tx.mark_intent_done(id, now); !ok_or_gone(r)) return r;
          ++counts.done;
        }
        for (const auto& [id, until] : to_defer_) {
          if (auto r = tx.defer_intent(id, until); !ok_or_gone(r)) return r;
        }
        for (const auto& [id, reason] : to_fail_) {
          if (auto r = tx.mark_intent_failed(id, reason, std::nullopt, now); !ok_or_gone(r))
            return r;
          ++counts.failed;
        }
        for (const auto& job : jobs) {
          if (auto r = record_outcome(tx, *job, counts); !r) return r;
        }
        return {};
      });
  to_finish_.clear();
  to_defer_.clear();
  to_fail_.clear();
  if (!recorded) {
    // Delivered but not recorded: the leases run out and the messages go again (at least
    // once; the idempotency key lets receivers drop the copy).
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    log::error("notify.record_failed", {{"error", recorded.error().message}});
  }
  for (const auto& job : jobs) after_delivery(*job);
  if (!jobs.empty()) {
    log::debug("notify.recorded",
               {{"messages", jobs.size()},
                {"record_ms",
                 std::chrono::duration<double, std::milli>(clock_.steady() - began).count()}});
  }
  if (!recorded) return;
  metrics_.intents_done.fetch_add(counts.done, std::memory_order_relaxed);
  metrics_.retries.fetch_add(counts.retried, std::memory_order_relaxed);
  metrics_.failed.fetch_add(counts.failed, std::memory_order_relaxed);
}

void Worker::give_back(const std::vector<store::StoredIntent>& claimed) {
  auto given = store::transact(
      store_, store::TxMode::read_write, [&](store::Transaction& tx) -> StoreResult<void> {
        for (const auto& i : claimed) {
          // Due when it was, which is also what tells a first alert from a follow-up.
          if (auto r = tx.defer_intent(i.id, i.next_attempt_at_ms); !ok_or_gone(r)) return r;
        }
        return {};
      });
  if (!given) {
    // The leases run out and the intents come back, later.
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    log::error("notify.give_back_failed", {{"error", given.error().message}});
  }
}

void Worker::after_delivery(const Job& job) {
  const auto& m = job.message;
  const auto& result = *job.result;
  if (!result) {
    // Not sent after all: the target has not heard from us since before this round.
    if (auto it = last_sent_.find(m.target.id);
        it != last_sent_.end() && it->second == job.round_at) {
      if (job.sent_before) {
        it->second = *job.sent_before;
      } else {
        last_sent_.erase(it);
      }
    }
  }
  if (!result && !result.error().permanent) {
    const auto at =
        job.round_at +
        retry_delay(m.intents.front().attempts, options_.retry_initial, options_.retry_max).count();
    next_due_ = std::min(next_due_.value_or(at), at);
  }
  if (result) {
    metrics_.sent.fetch_add(1, std::memory_order_relaxed);
    log::info("notify.sent", {{"target", m.target.id},
                              {"kind", store::to_string(m.target.kind)},
                              {"items", m.notice.items.size()},
                              {"follow_up", m.notice.follow_up}});
  } else {
    log::warn("notify.failed", {{"target", m.target.id},
                                {"permanent", result.error().permanent},
                                {"reason", result.error().reason}});
  }
}

void Worker::plan_target(const store::Account& account, const store::NotificationTarget& target,
                         const std::vector<store::StoredIntent>& intents, std::int64_t now,
                         Plan& plan) const {
  // Held back for a follow-up: its next attempt was moved past its creation, and not
  // because a delivery failed (a retried first alert is still a first alert).
  const auto coalesced = [](const store::StoredIntent& i) {
    return i.next_attempt_at_ms > i.intent.created_at_ms && !i.last_error.has_value();
  };
  const auto last = last_sent_.find(target.id);
  const std::int64_t quiet_from =
      last == last_sent_.end() ? 0 : last->second + options_.coalesce_window.count();
  // Made while the target was hearing from us, though claimed only now (a backlog of
  // deliveries): part of the follow-up, not a new first alert.
  const bool made_in_window = intents.front().intent.created_at_ms < quiet_from;
  if (now < quiet_from) {
    // At most one message per target and window, follow-ups included.
    for (const auto& i : intents) plan.defers.emplace_back(i.id, quiet_from);
    return;
  }
  // Everything due goes out now, in one message: a first alert never waits, and it tells
  // all the target's news that is already here (a storm's backlog) rather than one item
  // now and the rest a window later. What comes after it waits for the follow-up.
  Message m;
  m.target = target;
  m.intents = intents;
  m.notice.account_id = account.id;
  m.notice.account_name = account.username;
  m.notice.time_zone = account.settings.time_zone;
  m.notice.dashboard_url = options_.public_url;
  // A follow-up tells what came after a message ("3 more").
  m.notice.follow_up = made_in_window || std::any_of(intents.begin(), intents.end(), coalesced);
  std::string key_material = target.id;
  for (const auto& i : m.intents) {
    const auto& in = i.intent;
    m.notice.items.push_back({in.device_id, in.device_name, in.transition, in.user_state,
                              in.observed_at_ms,
                              nlohmann::json::parse(in.payload, nullptr, false)});
    key_material += ":" + std::to_string(i.id);
  }
  m.notice.idempotency_key = sha256_hex(key_material).substr(0, 32);
  plan.messages.push_back(std::move(m));
}

StoreResult<void> Worker::record_outcome(store::Transaction& tx, const Job& job,
                                         Counts& counts) const {
  const auto& m = job.message;
  const std::int64_t now = job.round_at;
  if (*job.result) {
    for (const auto& i : m.intents) {
      if (auto r = tx.mark_intent_done(i.id, now); !ok_or_gone(r)) return r;
      ++counts.done;
    }
    if (auto r = tx.record_delivery(m.target.id, true, "", now); !ok_or_gone(r)) return r;
    return {};
  }
  const auto& error = job.result->error();
  for (const auto& i : m.intents) {
    const bool expired = now - i.intent.created_at_ms >= options_.give_up_after.count();
    std::optional<std::int64_t> retry_at;
    if (!error.permanent && !expired) {
      retry_at = now + retry_delay(i.attempts, options_.retry_initial, options_.retry_max).count();
    }
    const std::string reason =
        expired && !error.permanent ? "gave up after retrying: " + error.reason : error.reason;
    if (auto r = tx.mark_intent_failed(i.id, reason, retry_at, now); !ok_or_gone(r)) return r;
    if (retry_at) {
      ++counts.retried;
    } else {
      ++counts.failed;
    }
  }
  if (auto r = tx.record_delivery(m.target.id, false, error.reason, now); !ok_or_gone(r)) return r;
  return {};
}

Delivery Worker::deliver_one(const Message& m) const {
  Channel* channel = nullptr;
  switch (m.target.kind) {
    case store::TargetKind::email: channel = channels_.email; break;
    case store::TargetKind::webhook: channel = channels_.webhook; break;
    case store::TargetKind::ntfy: channel = channels_.ntfy; break;
  }
  if (channel == nullptr) {
    return Unexpected<DeliveryError>{
        {true, std::string(store::to_string(m.target.kind)) +
                   " notifications are not configured on this server"}};
  }
  try {
    return channel->deliver(m.target, m.notice);
  } catch (const std::exception& e) {  // out of memory, mostly: try again later
    return Unexpected<DeliveryError>{{false, std::string("delivery failed: ") + e.what()}};
  }
}

void Worker::send_verifications(std::int64_t now) {
  if (channels_.verifier == nullptr) return;
  auto pending = store::transact(store_, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.targets_needing_verification(now, 20);
  });
  if (!pending) {
    metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  for (const auto& target : *pending) {
    auto raw = random_bytes(32);
    if (!raw) continue;
    const std::string token = base64url_encode(*raw);
    const std::int64_t expires = now + options_.verification_ttl.count();
    const std::string link = options_.public_url + "/v1/verify?token=" + token;
    // Stored first: a link that was mailed always works; a crash before the mail leaves a
    // token nobody has, and the account can ask for another.
    auto stored = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
      return tx.create_verification(target.id, sha256_hex(token), now, expires);
    });
    if (!stored) {
      metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
      log::error("notify.verification_store_failed", {{"error", stored.error().message}});
      continue;
    }
    auto sent = channels_.verifier->send_verification(target.address, link, expires);
    auto recorded = store::transact(store_, store::TxMode::read_write, [&](store::Transaction& tx) {
      return tx.record_delivery(target.id, sent.has_value(), sent ? "" : sent.error().reason, now);
    });
    if (sent) {
      metrics_.verifications.fetch_add(1, std::memory_order_relaxed);
      log::info("notify.verification_sent", {{"target", target.id}});
    } else {
      log::warn("notify.verification_failed",
                {{"target", target.id}, {"reason", sent.error().reason}});
    }
    if (!recorded) metrics_.store_errors.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace dag::notify
