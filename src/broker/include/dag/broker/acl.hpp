// The broker's access control list: AWS IoT's per-thing shadow policy, for mosquitto.
//
// Devices get `pattern` lines where %u (the certificate CN) stands for their own thing
// name, so a device may publish only its own shadow update/get/delete and presence, and
// receive only its own shadow replies and status requests. Service identities (dagd, dagctl)
// get every topic, including `$aws/#` (a `#` grant never covers topics starting with '$'),
// and may publish the presence plugin's commands (`$CONTROL/dag-presence/#`).
//
// Device and service identities share one namespace (both are certificate CNs): never
// issue a device certificate whose CN is a service identity.
//
// Blocking: none. Thread-safety: reentrant.
#pragma once

#include <string>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::broker {

struct AclConfig {
  /// Usernames (certificate CNs) allowed to read and write everything and to send the
  /// presence plugin's commands, e.g. {"dagd", "dagctl"}.
  std::vector<std::string> service_identities{"dagd"};
};

/// Renders the acl_file text, each line preceded by a comment giving its reason.
/// Errors: Errc::config when a service identity is not a valid identity
/// (dag::pki::is_valid_identity) or appears twice.
Result<std::string> render_acl(const AclConfig& config);

}  // namespace dag::broker
