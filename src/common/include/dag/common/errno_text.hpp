// errno as text, thread-safely (std::strerror shares one buffer between threads).
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace dag {

/// The message for `err` (default: the current errno), e.g. "No such file or directory".
inline std::string errno_text(int err = errno) {
  return std::generic_category().message(err);
}

}  // namespace dag
