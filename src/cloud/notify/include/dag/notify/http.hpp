// What the HTTP channels (webhook, ntfy) share: their options and how an HTTP answer maps
// to a delivery outcome.
//
// Thread-safety: value types and pure functions.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "dag/notify/channel.hpp"

namespace dag::notify {

struct HttpOptions {
  /// Bound for DNS + TCP (+ TLS) connection set-up.
  std::chrono::milliseconds connect_timeout{5000};
  /// Bound for the whole request, connection included.
  std::chrono::milliseconds timeout{10000};
  /// PEM file of CA certificates that verify https servers; default: the system's store.
  /// Server certificates and host names are always verified.
  std::optional<std::string> ca_file{};
  /// Targets are entered by account owners, so by default a request may connect only to
  /// public addresses: loopback, private (RFC 1918, fc00::/7), link-local (cloud metadata
  /// endpoints), CGNAT, multicast and reserved addresses are refused (checked on the
  /// resolved address of every connection, so DNS tricks do not get around it) and the
  /// delivery fails permanently. A self-hosted deployment that posts to its own network
  /// (Home Assistant, a LAN ntfy) sets this.
  bool allow_private_addresses{false};
  /// Proxy URL for every request ("http://proxy:3128"); "" connects directly. Proxy
  /// variables of the environment are ignored either way. Through a proxy the address
  /// check above applies to the proxy, so the proxy must do its own filtering.
  std::string proxy{};
  std::string user_agent{"detectordag"};
};

/// The outcome of an HTTP answer: 2xx delivered; 408, 429 and 5xx (and 1xx/3xx, which we
/// neither expect nor follow) transient; any other 4xx permanent. The reason names the
/// status and the start of the body (printable ASCII, at most 200 characters).
Delivery classify_http_status(long status, std::string_view body_head);

}  // namespace dag::notify
