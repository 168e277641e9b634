// Free loopback ports for test servers.
#pragma once

#include <cstdint>

#include "dag/common/result.hpp"

namespace dag::test {

/// A TCP port on 127.0.0.1 that was free a moment ago: binds port 0, reads the port the
/// kernel chose, closes. Another process may take it before the caller binds it, so a
/// caller that can should retry with a new port on "address in use" (MosquittoBroker
/// does). Blocking: a few syscalls. Thread-safe. Errors: Errc::io.
Result<std::uint16_t> free_loopback_port();

}  // namespace dag::test
