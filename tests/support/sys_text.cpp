#include "sys_text.hpp"

#include <array>
#include <cstdlib>
#include <cstring>

namespace dag::test::detail {

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string{"SIG"} + abbrev : std::to_string(sig);
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): see the header
  return v != nullptr && *v != '\0' ? std::string{v} : fallback;
}

}  // namespace dag::test::detail
