// Per-device request rate limit (AWS IoT: 20 shadow requests per second per thing).
//
// A token bucket per key: `burst` requests at once, refilled at `rate_per_s`. A replica
// limits only what it sees; with N replicas sharing a subscription a device may get up to
// N times the rate, which is the point of the limit anyway (no single dag can flood one
// dagd).
//
// Memory: one small entry per active key. When more than `max_keys` are tracked, entries
// whose bucket has refilled completely (idle keys) are dropped; if that frees nothing
// (more than max_keys keys all busy at once) the request is allowed rather than refused,
// since every key is a device the broker has already authenticated.
//
// Thread-safety: not thread-safe; one thread (dagd's ingest worker) calls it.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace dag::shadow {

class RateLimiter {
 public:
  using Time = std::chrono::steady_clock::time_point;

  /// rate_per_s <= 0 disables the limit (allow() is always true).
  RateLimiter(double rate_per_s, double burst, std::size_t max_keys = 200'000);

  /// Takes one token from `key`'s bucket at time `now`; false when it is empty.
  bool allow(std::string_view key, Time now);

  [[nodiscard]] std::size_t tracked_keys() const noexcept { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens;
    Time updated;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  void sweep(Time now);

  double rate_;
  double burst_;
  std::size_t max_keys_;
  std::unordered_map<std::string, Bucket, Hash, std::equal_to<>> buckets_;
};

}  // namespace dag::shadow
