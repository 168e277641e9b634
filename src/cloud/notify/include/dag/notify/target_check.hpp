// The checks of a new notification target, shared by dagctl and the REST API so that one
// rule applies wherever a target is entered.
//
// Thread-safety: pure function.
#pragma once

#include <optional>
#include <string>

#include "dag/store/records.hpp"

namespace dag::notify {

/// Longest secret (webhook HMAC key, ntfy token) and body template, in bytes (store limits).
inline constexpr std::size_t kMaxSecretBytes = 512;
inline constexpr std::size_t kMaxBodyTemplateBytes = 4096;

/// nullopt when `target` may be added, else the reason: the address must be an e-mail
/// address (email) or an http(s) URL (webhook, ntfy, dag/common/validate.hpp); e-mail
/// takes no secret, others a secret of 1..512 bytes; only webhooks take a body template
/// (a valid template of at most 4096 bytes) and a content type (which needs a template).
std::optional<std::string> new_target_error(const store::NewTarget& target);

}  // namespace dag::notify
