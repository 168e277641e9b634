#include "dag/edge/battery.hpp"

#include <fcntl.h>
#include <linux/i2c-dev.h>
#include <linux/i2c.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "dag/common/errno_text.hpp"

namespace dag::edge {
namespace {

// One combined write-register/read-word transaction, so no other bus user can slip between.
Result<std::uint16_t> read_word(int fd, int address, std::uint8_t reg) {
  std::uint8_t out = reg;
  std::uint8_t in[2] = {0, 0};
  i2c_msg msgs[2] = {
      {static_cast<std::uint16_t>(address), 0, 1, &out},
      {static_cast<std::uint16_t>(address), I2C_M_RD, 2, in},
  };
  i2c_rdwr_ioctl_data xfer{msgs, 2};
  if (::ioctl(fd, I2C_RDWR, &xfer) < 0) {
    return fail(Errc::io, std::string("i2c read: ") + errno_text());
  }
  return static_cast<std::uint16_t>((in[0] << 8U) | in[1]);  // the gauge is big-endian
}

}  // namespace

Result<BatteryReading> Max17040Gauge::read() {
  const int fd = ::open(device_.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(Errc::io, "cannot open " + device_ + ": " + errno_text());
  auto vcell = read_word(fd, address_, 0x02);
  auto soc = vcell ? read_word(fd, address_, 0x04) : Result<std::uint16_t>(std::uint16_t{0});
  ::close(fd);
  if (!vcell) return Unexpected{vcell.error()};
  if (!soc) return Unexpected{soc.error()};
  // The gauge may report slightly over 100 % on a full charge.
  return BatteryReading{std::min(100.0, percent_from_soc(*soc)), volts_from_vcell(*vcell)};
}

void RuntimeEstimator::on_mains(bool present) {
  if (present || !on_battery_) samples_.clear();
  on_battery_ = !present;
}

void RuntimeEstimator::sample(std::int64_t unix_ms, double percent) {
  if (!on_battery_) return;
  samples_.emplace_back(unix_ms, percent);
  while (samples_.size() > 30) samples_.pop_front();
}

std::optional<int> RuntimeEstimator::minutes_left() const {
  if (!on_battery_ || samples_.size() < 2) return std::nullopt;
  if (samples_.back().first - samples_.front().first < 60'000) return std::nullopt;
  // Least squares of percent against minutes since the first sample.
  const double t0 = static_cast<double>(samples_.front().first);
  double sx = 0;
  double sy = 0;
  double sxx = 0;
  double sxy = 0;
  for (const auto& [t, p] : samples_) {
    const double x = (static_cast<double>(t) - t0) / 60'000.0;
    sx += x;
    sy += p;
    sxx += x * x;
    sxy += x * p;
  }
  const auto n = static_cast<double>(samples_.size());
  const double denom = n * sxx - sx * sx;
  if (denom <= 0) return std::nullopt;
  const double slope = (n * sxy - sx * sy) / denom;  // percent per minute
  if (slope >= -1e-6) return std::nullopt;           // not discharging
  const double left = samples_.back().second / -slope;
  return static_cast<int>(std::lround(std::min(left, 100'000.0)));
}

}  // namespace dag::edge
