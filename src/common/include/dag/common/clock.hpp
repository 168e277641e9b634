// Clock: the one source of time, passed in so that tests can drive it.
//
// wall() is for timestamps that leave the process (shadow metadata, observedAt);
// steady() is for timeouts, debounce and backoff and never jumps.
// Thread-safety: SystemClock is stateless; FakeClock is safe to read and advance
// from several threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace dag {

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using SteadyTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  /// Calendar time. Does not block.
  [[nodiscard]] virtual WallTime wall() const = 0;
  /// Monotonic time. Does not block.
  [[nodiscard]] virtual SteadyTime steady() const = 0;

  /// Milliseconds since the Unix epoch (AWS lifecycle events, observedAt).
  [[nodiscard]] std::int64_t unix_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(wall().time_since_epoch()).count();
  }
  /// Whole seconds since the Unix epoch (AWS shadow timestamps).
  [[nodiscard]] std::int64_t unix_s() const {
    return std::chrono::duration_cast<std::chrono::seconds>(wall().time_since_epoch()).count();
  }
};

/// The operating system's clocks.
class SystemClock final : public Clock {
 public:
  [[nodiscard]] WallTime wall() const override { return std::chrono::system_clock::now(); }
  [[nodiscard]] SteadyTime steady() const override { return std::chrono::steady_clock::now(); }
};

/// A clock that only moves when told to. Both time lines advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t start_unix_ms = 1'600'000'000'000) : now_ms_(start_unix_ms) {}

  [[nodiscard]] WallTime wall() const override {
    return WallTime{std::chrono::milliseconds{now_ms_.load()}};
  }
  [[nodiscard]] SteadyTime steady() const override {
    return SteadyTime{std::chrono::milliseconds{now_ms_.load()}};
  }
  void advance(std::chrono::milliseconds by) { now_ms_ += by.count(); }
  void set_unix_ms(std::int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<std::int64_t> now_ms_;
};

}  // namespace dag
