// The dag-edge process: wiring of real descriptors, sockets and threads around the Agent.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "dag/common/files.hpp"
#include "dag/common/result.hpp"
#include "dag/edge/agent.hpp"
#include "dag/edge/settings.hpp"

namespace dag::edge {

/// Writes the CA, certificate and key PEMs to state_dir/tls (mode 0600, atomically), for
/// libmosquitto which reads files. Errors: Errc::io.
Result<void> materialise_tls(const EdgeSettings& settings, TlsFiles& out);

/// Runs the agent until SIGTERM/SIGINT. Blocks. Returns the process exit code.
int run_agent(const EdgeSettings& settings, const AgentInfo& info);

/// The agent's control socket (status; on/off/toggle/battery with the simulated line).
std::filesystem::path control_socket_path(const std::filesystem::path& state_dir);

/// Sends one command to a running agent and returns its answer.
/// Errors: Errc::unavailable (not running), Errc::timeout, Errc::io.
Result<std::string> control_request(const std::filesystem::path& state_dir,
                                    std::string_view command,
                                    std::chrono::milliseconds timeout = std::chrono::seconds{2});

}  // namespace dag::edge
