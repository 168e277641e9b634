// Logging: one interface over spdlog with key=value fields.
//
//   dag::log::info("shadow.accepted", {{"device", id}, {"version", v}});
//   -> 2026-11-26T22:41:36.123Z info shadow.accepted device=dag-1 version=7
//
// Values containing spaces, quotes or '=' are quoted. Wrap secrets in dag::log::Secret so
// they never reach a log line. Thread-safety: every function may be called from any thread
// (spdlog's _mt sinks). Logging to stderr blocks only as long as the write(2).
#pragma once

#include <fmt/format.h>

#include <initializer_list>
#include <string>
#include <string_view>

namespace dag::log {

enum class Level { trace, debug, info, warn, error, off };

/// Parses "trace|debug|info|warn|error|off"; nullopt-like false on anything else.
bool parse_level(std::string_view text, Level& out) noexcept;

/// A value that must never be printed (keys, passwords, tokens). Logs as "***".
struct Secret {
  std::string_view value;
};

/// One key=value pair. Any fmt-formattable value is accepted.
struct Field {
  template <class V>
  Field(std::string_view k, const V& v) : key(k), value(fmt::format("{}", v)) {}  // NOLINT
  Field(std::string_view k, Secret /*unused*/) : key(k), value("***") {}          // NOLINT
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}      // NOLINT
  std::string_view key;
  std::string value;
};
using Fields = std::initializer_list<Field>;

/// Sets the process-wide level (default info). Call at start-up, before threads.
void set_level(Level level);
Level level() noexcept;

/// Renders "event k=v k2=\"v 2\"" (exposed for tests and for callers that embed log lines).
std::string render(std::string_view event, Fields fields);

void log(Level level, std::string_view event, Fields fields = {});
inline void trace(std::string_view event, Fields fields = {}) {
  log(Level::trace, event, fields);
}
inline void debug(std::string_view event, Fields fields = {}) {
  log(Level::debug, event, fields);
}
inline void info(std::string_view event, Fields fields = {}) {
  log(Level::info, event, fields);
}
inline void warn(std::string_view event, Fields fields = {}) {
  log(Level::warn, event, fields);
}
inline void error(std::string_view event, Fields fields = {}) {
  log(Level::error, event, fields);
}

}  // namespace dag::log
