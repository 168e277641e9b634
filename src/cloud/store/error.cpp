#include "dag/store/error.hpp"

namespace dag::store {

const char* to_string(StoreErrc code) noexcept {
  switch (code) {
    case StoreErrc::not_found: return "not_found";
    case StoreErrc::conflict: return "conflict";
    case StoreErrc::invalid_argument: return "invalid_argument";
    case StoreErrc::busy: return "busy";
    case StoreErrc::corrupt: return "corrupt";
    case StoreErrc::io: return "io";
    case StoreErrc::incompatible: return "incompatible";
    case StoreErrc::internal: return "internal";
  }
  return "unknown";
}

}  // namespace dag::store
