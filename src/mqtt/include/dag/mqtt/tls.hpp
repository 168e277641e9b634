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
using SSL = struct ssl_st;
struct mosquitto;

namespace dag::mqtt {

/// Makes `ctx` accept only TLS 1.2 or later and only a broker whose certificate chains to
/// the context's trust store and names `host` (a DNS name, or an IPv4/IPv6 address matched
/// against the certificate's IP SANs).
Result<void> verify_broker(SSL_CTX* ctx, const std::string& host);

/// The TLS session of a connection whose handshake is under way, else nullptr (plain TCP,
/// no connection, or the handshake is over). libmosquitto 2.0 advances a handshake only in
/// mosquitto_loop_read (mosquitto_loop_write does nothing until it is over), and
/// mosquitto_want_write says yes as soon as the CONNECT is queued: a loop of its own asks
/// OpenSSL which way the handshake waits (SSL_want_write) and drives a writable socket with
/// loop_read. Network thread of the handle only.
SSL* handshake_of(mosquitto* mosq);

}  // namespace dag::mqtt
