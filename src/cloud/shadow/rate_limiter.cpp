#include "dag/shadow/rate_limiter.hpp"

#include <algorithm>

namespace dag::shadow {

RateLimiter::RateLimiter(double rate_per_s, double burst, std::size_t max_keys)
    : rate_(rate_per_s),
      burst_(std::max(burst, 1.0)),
      max_keys_(std::max<std::size_t>(max_keys, 1)) {}

bool RateLimiter::allow(std::string_view key, Time now) {
  if (rate_ <= 0) return true;
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_keys_) {
      sweep(now);
      if (buckets_.size() >= max_keys_) return true;
    }
    buckets_.emplace(std::string(key), Bucket{burst_ - 1, now});
    return true;
  }
  auto& b = it->second;
  const double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) {
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.updated = now;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void RateLimiter::sweep(Time now) {
  std::erase_if(buckets_, [&](const auto& entry) {
    const double elapsed = std::chrono::duration<double>(now - entry.second.updated).count();
    return entry.second.tokens + elapsed * rate_ >= burst_;
  });
}

}  // namespace dag::shadow
