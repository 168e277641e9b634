#include "dag/common/result.hpp"

namespace dag {

const char* to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::io: return "io";
    case Errc::parse: return "parse";
    case Errc::config: return "config";
    case Errc::crypto: return "crypto";
    case Errc::timeout: return "timeout";
    case Errc::unavailable: return "unavailable";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

}  // namespace dag
