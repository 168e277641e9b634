// PowerSource: where the agent learns whether mains power is present.
//
// Two implementations: the UPS hat's GPIO line through libgpiod (kernel edge events, so
// no polling), and a simulated line for development, tests, the demo and the fleet
// simulator, driven through the agent's control socket.
//
// The agent polls fd() for readability and then calls drain(); read() gives the current
// level for the periodic safety-net re-read. Thread-safety: one owner (the agent thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dag/common/event_fd.hpp"
#include "dag/common/result.hpp"

namespace dag::edge {

struct LineEvent {
  bool level{false};  ///< true = mains present (after active-low inversion)
};

class PowerSource {
 public:
  virtual ~PowerSource() = default;
  /// A descriptor that becomes readable when edges are waiting; -1 when there is none.
  [[nodiscard]] virtual int fd() const = 0;
  /// Reads every waiting edge. Does not block. Errors: Errc::io.
  virtual Result<std::vector<LineEvent>> drain() = 0;
  /// The line's level now. Errors: Errc::io.
  virtual Result<bool> read() = 0;
  /// "gpiod chip0:4" or "sim": for logs and `dag-edge status`.
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// A libgpiod line (v1 API) with both-edge events. `chip` is a name ("gpiochip0"), a path
/// or a number; `active_low` inverts the level (UPS-Lite: high = mains, so false).
/// Errors: Errc::not_found (no chip or line), Errc::io (line busy, permission).
Result<std::unique_ptr<PowerSource>> open_gpiod_line(const std::string& chip, unsigned line,
                                                     bool active_low);

/// A line whose level is set by set_level() (from the control socket). Starts at `initial`.
class SimLine final : public PowerSource {
 public:
  explicit SimLine(bool initial) : level_(initial) {}
  [[nodiscard]] int fd() const override { return wake_.fd(); }
  Result<std::vector<LineEvent>> drain() override;
  Result<bool> read() override { return level_; }
  [[nodiscard]] std::string describe() const override { return "sim"; }
  /// Changes the level and queues an edge as a real line would.
  void set_level(bool level);
  void toggle() { set_level(!level_); }

 private:
  EventFd wake_;
  bool level_;
  std::vector<LineEvent> queued_;
};

}  // namespace dag::edge
