#include "dag/edge/debounce.hpp"

namespace dag::edge {

void Debouncer::input(bool level, SteadyTime t, std::int64_t unix_ms) {
  if (pending_ && pending_->level == level) return;  // same level again: the run goes on
  if (!pending_ && stable_ == level) return;         // nothing changed
  if (pending_ && stable_ == level) {                // bounced back before the window ended
    pending_.reset();
    return;
  }
  pending_ = Pending{level, t, unix_ms};
}

std::optional<LevelChange> Debouncer::poll(SteadyTime now) {
  if (!pending_ || now - pending_->since < window_) return std::nullopt;
  stable_ = pending_->level;
  LevelChange change{pending_->level, pending_->since_unix_ms};
  pending_.reset();
  return change;
}

std::optional<Debouncer::SteadyTime> Debouncer::deadline() const {
  if (!pending_) return std::nullopt;
  return pending_->since + window_;
}

}  // namespace dag::edge
