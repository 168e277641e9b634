#include "dag/mqtt/tls.hpp"

#include <arpa/inet.h>
#include <mosquitto.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "dag/common/pki.hpp"

namespace dag::mqtt {

Result<void> verify_broker(SSL_CTX* ctx, const std::string& host) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
  in6_addr addr{};
  const bool is_ip =
      inet_pton(AF_INET, host.c_str(), &addr) == 1 || inet_pton(AF_INET6, host.c_str(), &addr) == 1;
  if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
             : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0)) != 1) {
    return fail(Errc::invalid_argument, "broker host " + host + ": " + pki::drain_openssl_errors());
  }
  return {};
}

SSL* handshake_of(mosquitto* mosq) {
  auto* ssl = static_cast<SSL*>(mosquitto_ssl_get(mosq));
  return ssl != nullptr && SSL_is_init_finished(ssl) == 0 ? ssl : nullptr;
}

}  // namespace dag::mqtt
