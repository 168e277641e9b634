// Debouncer: turns raw power-line levels into stable transitions.
//
// The UPS hat's line chatters for a few milliseconds when mains flickers; a level counts
// only once it has held for the whole window (default 200 ms, as the original app). The
// transition is stamped with the time of the edge that started the stable run, not the
// time the window expired, so observedAt says when the power actually went.
//
// Pure: time comes in as arguments. Thread-safety: none; one owner.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace dag::edge {

struct LevelChange {
  bool level{false};           ///< true = mains present
  std::int64_t at_unix_ms{0};  ///< wall time of the edge that started the stable run
};

class Debouncer {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  explicit Debouncer(std::chrono::milliseconds window) : window_(window) {}

  /// A raw level sample or edge at steady time `t` (wall time `unix_ms`).
  void input(bool level, SteadyTime t, std::int64_t unix_ms);
  /// Commits and returns a level that has held for the window by `now`; at most once per
  /// transition. The first stable level after construction is returned too.
  std::optional<LevelChange> poll(SteadyTime now);
  /// When poll() should next be called; nullopt when nothing is pending.
  [[nodiscard]] std::optional<SteadyTime> deadline() const;
  /// The last committed level.
  [[nodiscard]] std::optional<bool> stable() const { return stable_; }
  void set_window(std::chrono::milliseconds window) { window_ = window; }
  [[nodiscard]] std::chrono::milliseconds window() const { return window_; }

 private:
  std::chrono::milliseconds window_;
  std::optional<bool> stable_;
  struct Pending {
    bool level;
    SteadyTime since;
    std::int64_t since_unix_ms;
  };
  std::optional<Pending> pending_;
};

}  // namespace dag::edge
