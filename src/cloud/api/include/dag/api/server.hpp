// The REST API on HTTP(S): cpp-httplib serving dag::api::Api, the event streams
// (Server-Sent Events from the EventHub), request metrics, and the dashboard's static
// files with a single-page-app fallback.
//
// Threads: a pool that grows on demand up to `threads + max_streams` (an open event
// stream holds its thread while it waits on the hub); threads that exist stay until
// stop(). More than max_streams open streams: 503.
//
// Thread-safety: start() and stop() from one thread; everything else happens on the
// server's threads. Blocking: start() binds and returns; stop() waits for the threads (a
// stream notices within its keepalive interval, or at once when the hub is closed first).
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "dag/api/api.hpp"
#include "dag/api/hub.hpp"
#include "dag/api/metrics.hpp"
#include "dag/common/result.hpp"

namespace dag::api {

struct ServerOptions {
  std::string host{"127.0.0.1"};
  int port{8080};  ///< 0: an ephemeral port (start() returns it)
  /// PEM files; both set: HTTPS. Otherwise plain HTTP (behind a reverse proxy).
  std::string tls_cert_file;
  std::string tls_key_file;
  /// The built dashboard; empty: no static files (paths outside the API are 404).
  std::filesystem::path web_root;
  int threads{8};         ///< threads kept for ordinary requests
  int max_streams{2000};  ///< concurrent event streams
  std::chrono::milliseconds keepalive{15'000};
  std::size_t max_body{std::size_t{64} * 1024};
  std::chrono::seconds read_timeout{10};
};

class Server {
 public:
  /// `metrics` may be null. Every reference must outlive the server.
  Server(Api& api, EventHub& hub, ApiMetrics* metrics, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  Server(Server&&) = delete;
  Server& operator=(Server&&) = delete;

  /// Binds and starts serving on a thread of its own. Returns the bound port.
  /// Errors: Errc::io (cannot bind), Errc::crypto (TLS files unusable).
  Result<int> start();
  /// Stops listening, ends the streams and joins every thread. Idempotent.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dag::api
