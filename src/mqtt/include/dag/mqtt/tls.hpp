// TLS client contexts for broker connections, shared by dag::mqtt::Client and dag-sim.
//
// libmosquitto checks the broker's name only on contexts it made itself; we make our own
// (to load certificates from memory in dag-sim, and for read-ahead in Client), so the
// name check is set up here.
//
// Thread-safety: reentrant. Blocking: no I/O. Errors: Errc::invalid_argument for a host
// OpenSSL cannot check against, with OpenSSL's error queue in the message.
#pragma once

#include <string>

#include "dag/common/result.hpp"

using SSL_CTX = struct ssl_ctx_st;

namespace dag::mqtt {

/// Makes `ctx` accept only TLS 1.2 or later and only a broker whose certificate chains to
/// the context's trust store and names `host` (a DNS name, or an IPv4/IPv6 address matched
/// against the certificate's IP SANs).
Result<void> verify_broker(SSL_CTX* ctx, const std::string& host);

}  // namespace dag::mqtt
