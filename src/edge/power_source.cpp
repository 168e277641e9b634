#include "dag/edge/power_source.hpp"

#include <gpiod.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dag/common/errno_text.hpp"

namespace dag::edge {
namespace {

constexpr const char* kConsumer = "dag-edge";

class GpiodLine final : public PowerSource {
 public:
  GpiodLine(gpiod_chip* chip, gpiod_line* line, std::string name)
      : chip_(chip), line_(line), name_(std::move(name)) {}
  ~GpiodLine() override {
    gpiod_line_release(line_);
    gpiod_chip_close(chip_);
  }
  GpiodLine(const GpiodLine&) = delete;
  GpiodLine& operator=(const GpiodLine&) = delete;

  [[nodiscard]] int fd() const override { return gpiod_line_event_get_fd(line_); }

  Result<std::vector<LineEvent>> drain() override {
    // The kernel queues edges; read them all so that a burst of chatter is seen whole.
    // Levels come from the edge type (the active-low flag already applies to it).
    std::vector<LineEvent> out;
    gpiod_line_event events[16];
    const int n = gpiod_line_event_read_multiple(line_, events, 16);
    if (n < 0) return fail(Errc::io, std::string("gpiod event read: ") + errno_text());
    for (int i = 0; i < n; ++i) {
      out.push_back({events[i].event_type == GPIOD_LINE_EVENT_RISING_EDGE});
    }
    return out;
  }

  Result<bool> read() override {
    const int v = gpiod_line_get_value(line_);
    if (v < 0) return fail(Errc::io, std::string("gpiod read: ") + errno_text());
    return v == 1;
  }

  [[nodiscard]] std::string describe() const override { return "gpiod " + name_; }

 private:
  gpiod_chip* chip_;
  gpiod_line* line_;
  std::string name_;
};

}  // namespace

Result<std::unique_ptr<PowerSource>> open_gpiod_line(const std::string& chip, unsigned line,
                                                     bool active_low) {
  gpiod_chip* c = gpiod_chip_open_lookup(chip.c_str());
  if (c == nullptr) {
    return fail(Errc::not_found, "gpio chip '" + chip + "': " + errno_text());
  }
  gpiod_line* l = gpiod_chip_get_line(c, line);
  if (l == nullptr) {
    gpiod_chip_close(c);
    return fail(Errc::not_found, "gpio line " + std::to_string(line) + " on '" + chip + "'");
  }
  const int flags = active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0;
  if (gpiod_line_request_both_edges_events_flags(l, kConsumer, flags) != 0) {
    const std::string why = errno_text();
    gpiod_chip_close(c);
    return fail(Errc::io, "gpio line " + std::to_string(line) + " request: " + why);
  }
  return std::unique_ptr<PowerSource>(
      std::make_unique<GpiodLine>(c, l, chip + ":" + std::to_string(line)));
}

void SimLine::set_level(bool level) {
  if (level == level_) return;
  level_ = level;
  queued_.push_back({level});
  wake_.signal();
}

Result<std::vector<LineEvent>> SimLine::drain() {
  wake_.drain();
  std::vector<LineEvent> out;
  out.swap(queued_);
  return out;
}

}  // namespace dag::edge
