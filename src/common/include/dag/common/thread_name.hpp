// Names the calling thread, so that `top -H`, `ps -L`, perf and gdb tell dagd's threads
// apart (ingest, MQTT network, notifier, API, checkpointer) instead of showing "dagd" for
// all of them.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace dag {

/// Sets the calling thread's name. Linux keeps at most 15 bytes: longer names are cut.
/// Never fails visibly: a name is a diagnostic aid, not something to stop for.
inline void set_thread_name(std::string_view name) noexcept {
  std::array<char, 16> buf{};
  const auto n = std::min(name.size(), buf.size() - 1);
  std::copy_n(name.data(), n, buf.data());
  (void)pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace dag
