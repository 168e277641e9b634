// Battery: the UPS hat's fuel gauge and the runtime estimate built on it.
//
// BatteryGauge is an interface so the agent runs with the real MAX17040 on I2C, a
// simulated gauge (driven through the sim control socket) or none at all.
// Blocking: Max17040Gauge::read() does two small I2C transfers (< 1 ms). Thread-safety:
// gauges and the estimator are used by the agent's single thread.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "dag/common/result.hpp"

namespace dag::edge {

struct BatteryReading {
  double percent{0};  ///< state of charge, 0..100
  double volts{0};    ///< cell voltage
};

class BatteryGauge {
 public:
  virtual ~BatteryGauge() = default;
  /// Errors: Errc::io when the device does not answer; Errc::unavailable for "none".
  virtual Result<BatteryReading> read() = 0;
};

/// MAX17040/17041 fuel gauge (UPS-Lite: bus /dev/i2c-1, address 0x36).
/// VCELL (0x02): 12 bits in the upper bits of a big-endian word, 1.25 mV per step.
/// SOC (0x04): high byte whole percent, low byte 1/256 percent.
class Max17040Gauge final : public BatteryGauge {
 public:
  Max17040Gauge(std::string device, int address) : device_(std::move(device)), address_(address) {}
  Result<BatteryReading> read() override;
  /// Register decoding, exposed for tests.
  static double volts_from_vcell(std::uint16_t raw) { return (raw >> 4U) * 1.25 / 1000.0; }
  static double percent_from_soc(std::uint16_t raw) { return (raw >> 8U) + (raw & 0xFFU) / 256.0; }

 private:
  std::string device_;
  int address_;
};

/// A gauge whose value is set from outside (the sim control socket, tests).
class SimGauge final : public BatteryGauge {
 public:
  Result<BatteryReading> read() override { return reading_; }
  void set(BatteryReading r) { reading_ = r; }

 private:
  BatteryReading reading_{100.0, 4.15};
};

/// For hats without a gauge.
class NoGauge final : public BatteryGauge {
 public:
  Result<BatteryReading> read() override { return fail(Errc::unavailable, "no battery gauge"); }
};

/// Minutes of runtime left, from the discharge slope while on battery (least squares over
/// the samples since mains was lost, at most the last 30). Unknown until two samples span
/// at least a minute and the charge is falling.
class RuntimeEstimator {
 public:
  void on_mains(bool present);
  void sample(std::int64_t unix_ms, double percent);
  [[nodiscard]] std::optional<int> minutes_left() const;

 private:
  bool on_battery_{false};
  std::deque<std::pair<std::int64_t, double>> samples_;
};

}  // namespace dag::edge
