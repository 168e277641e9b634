// Private helpers of dag::test_support: thread-safe texts for errno, signals and the
// environment.
#pragma once

#include <string>

#include "dag/common/errno_text.hpp"

namespace dag::test::detail {

using dag::errno_text;

/// sigabbrev_np's name ("TERM") or the number.
std::string signal_name(int sig);

/// The environment variable's value, or `fallback` when unset or empty. Tests never modify
/// the environment while threads run, which is what makes getenv safe here.
std::string env_or(const char* name, const std::string& fallback);

}  // namespace dag::test::detail
