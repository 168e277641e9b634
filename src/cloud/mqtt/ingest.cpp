#include "dag/ingest/ingest.hpp"

#include <algorithm>

#include "dag/common/log.hpp"
#include "dag/protocol/topics.hpp"

namespace dag::ingest {

std::vector<std::string> subscriptions(std::string_view share_group) {
  std::vector<std::string> out;
  for (const auto filter : protocol::kCloudSubscriptions) {
    if (share_group.empty()) {
      out.emplace_back(filter);
    } else {
      out.push_back("$share/" + std::string(share_group) + "/" + std::string(filter));
    }
  }
  return out;
}

Ingest::Ingest(shadow::Service& service, const Clock& clock, IngestOptions options,
               shadow::Metrics& metrics, Publisher& publisher)
    : service_(service),
      clock_(clock),
      options_(std::move(options)),
      metrics_(metrics),
      publisher_(publisher) {
  options_.max_batch = std::max<std::size_t>(options_.max_batch, 1);
  options_.max_queue = std::max(options_.max_queue, options_.max_batch);
}

void Ingest::on_connected(bool session_present) {
  log::info("mqtt.connected", {{"session_present", session_present}});
}

void Ingest::on_subscribed() {
  subscribed_ = true;
  log::info("mqtt.subscribed", {});
}

void Ingest::on_disconnected(const std::string& reason) {
  subscribed_ = false;
  log::warn("mqtt.disconnected", {{"reason", reason}});
}

void Ingest::on_message(mqtt::Message message) {
  shadow::Inbound in{std::move(message.topic), std::move(message.payload), message.retain,
                     clock_.unix_ms()};
  std::unique_lock lock(mutex_);
  has_room_.wait(lock, [&] { return queue_.size() < options_.max_queue || closed_; });
  queue_.push_back(std::move(in));
  if (queue_.size() == 1) has_work_.notify_one();
}

std::size_t Ingest::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

std::size_t Ingest::backlog() const {
  std::lock_guard lock(mutex_);
  return queue_.size() + processing_.load(std::memory_order_relaxed);
}

void Ingest::stop() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  has_work_.notify_all();
}

void Ingest::run() {
  std::int64_t next_timer_ms = 0;  // look at once: timers may have come due while we were down
  std::vector<shadow::Inbound> batch;
  batch.reserve(options_.max_batch);
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      const auto ready = [&] { return !queue_.empty() || stopping_; };
      const std::int64_t now = clock_.unix_ms();
      if (!ready() && next_timer_ms > now) {
        has_work_.wait_for(lock, std::chrono::milliseconds(next_timer_ms - now), ready);
      }
      const std::size_t n = std::min(queue_.size(), options_.max_batch);
      const bool was_full = queue_.size() >= options_.max_queue;
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      processing_.store(n, std::memory_order_relaxed);  // under the lock: backlog() sees both
      if (was_full && n > 0) has_room_.notify_all();
      if (batch.empty() && stopping_) {
        closed_ = true;
        has_room_.notify_all();
        return;
      }
    }
    const auto intents_before = metrics_.intents.load(std::memory_order_relaxed);
    if (!batch.empty()) {
      publish(service_.process(batch));
      batch.clear();
      processing_.store(0, std::memory_order_relaxed);
    }
    if (auto hint = service_.take_scheduled_hint()) next_timer_ms = std::min(next_timer_ms, *hint);
    if (clock_.unix_ms() >= next_timer_ms) next_timer_ms = run_timers();
    const auto made = metrics_.intents.load(std::memory_order_relaxed) - intents_before;
    if (options_.on_intents && made > 0) options_.on_intents(made);
  }
}

void Ingest::drain() {
  std::vector<shadow::Inbound> rest;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    rest.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    has_room_.notify_all();
  }
  for (std::size_t i = 0; i < rest.size(); i += options_.max_batch) {
    const auto n = std::min(options_.max_batch, rest.size() - i);
    const auto out = service_.process(std::span(rest).subspan(i, n));
    publish_failed_ += out.size();
  }
  if (!rest.empty()) log::info("ingest.drained", {{"messages", rest.size()}});
}

void Ingest::publish(const std::vector<shadow::Outbound>& out) {
  for (const auto& m : out) {
    if (auto r = publisher_.publish(m.topic, m.payload, options_.qos, false); !r) {
      ++publish_failed_;
      log::debug("ingest.publish_failed", {{"topic", m.topic}, {"error", r.error().message}});
    }
  }
}

std::int64_t Ingest::run_timers() {
  const std::int64_t retry = clock_.unix_ms() + 1000;
  // A few rounds at most, then queued messages get their turn; an empty round means
  // nothing else is due.
  constexpr int kRounds = 10;
  for (int i = 0; i < kRounds; ++i) {
    auto round = service_.fire_due_timers();
    if (!round) {
      log::error("timers.failed", {{"error", round.error().message}});
      return retry;
    }
    publish(round->outbound);
    if (round->fired == 0) break;
    if (i + 1 == kRounds) return clock_.unix_ms();
  }
  const std::int64_t poll = clock_.unix_ms() + options_.timer_poll.count();
  auto next = service_.next_timer_due_ms();
  if (!next) {
    log::error("timers.failed", {{"error", next.error().message}});
    return retry;
  }
  return *next ? std::min(**next, poll) : poll;
}

}  // namespace dag::ingest
