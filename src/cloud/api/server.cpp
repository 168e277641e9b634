#include "dag/api/server.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

#include "dag/common/log.hpp"
#include "dag/common/thread_name.hpp"

namespace dag::api {
namespace {

// httplib's ThreadPool has a fixed size, and an event stream holds its thread for as long
// as the client listens: a fixed pool would either waste threads or starve requests.
class GrowingPool final : public httplib::TaskQueue {
 public:
  explicit GrowingPool(std::size_t max_threads) : max_(max_threads) {}
  ~GrowingPool() override { GrowingPool::shutdown(); }
  GrowingPool(const GrowingPool&) = delete;
  GrowingPool& operator=(const GrowingPool&) = delete;
  GrowingPool(GrowingPool&&) = delete;
  GrowingPool& operator=(GrowingPool&&) = delete;

  void enqueue(std::function<void()> fn) override {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    jobs_.push_back(std::move(fn));
    // Idle threads already woken for earlier jobs still count as idle until they take
    // one: compare with the jobs waiting, or a second stream could wait behind the first
    // (which never ends) with no thread to serve it.
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      threads_.emplace_back([this] {
        set_thread_name("api");
        work();
      });
    } else {
      ready_.notify_one();
    }
  }

  void shutdown() override {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      threads.swap(threads_);
    }
    ready_.notify_all();
    for (auto& t : threads) t.join();
  }

 private:
  void work() {
    std::unique_lock lock(mutex_);
    for (;;) {
      ++idle_;
      ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping, nothing left
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
  }

  std::size_t max_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_{0};
  bool stopping_{false};
};

Request to_request(const httplib::Request& in) {
  Request r;
  r.method = in.method;
  r.path = in.path;
  for (const auto& [k, v] : in.params) r.query.emplace(k, v);  // emplace keeps the first
  for (const auto& [k, v] : in.headers) {
    std::string name = k;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.headers.emplace(std::move(name), v);
  }
  r.body = in.body;
  r.remote_addr = in.remote_addr;
  return r;
}

void to_response(Response&& in, httplib::Response& out) {
  out.status = in.status;
  for (auto& [k, v] : in.headers) out.set_header(k, v);
  if (!in.content_type.empty()) {
    // What set_content does, without copying the body (a device list is ~40 KB).
    out.body = std::move(in.body);
    out.headers.erase("Content-Type");
    out.set_header("Content-Type", in.content_type);
  }
}

std::string_view mime_of(const std::filesystem::path& file) {
  static const std::vector<std::pair<std::string_view, std::string_view>> kTypes{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".webmanifest", "application/manifest+json"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"},
  };
  const auto ext = file.extension().string();
  for (const auto& [e, type] : kTypes) {
    if (ext == e) return type;
  }
  return "application/octet-stream";
}

std::optional<std::string> read_file(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream buf;
  buf << in.rdbuf();
  return std::move(buf).str();
}

}  // namespace

struct Server::Impl {
  Api& api;
  EventHub& hub;
  ApiMetrics* metrics;
  ServerOptions options;
  std::unique_ptr<httplib::Server> http;
  std::thread listener;
  bool started{false};

  void serve_api(const httplib::Request& req, httplib::Response& res) {
    const auto begin = std::chrono::steady_clock::now();
    auto request = to_request(req);
    Response response;
    const bool is_stream = request.method == "GET" && request.path.size() > 7 &&
                           request.path.ends_with("/stream") &&
                           Api::route_of(request.path) == "/v1/accounts/{accountId}/stream";
    if (is_stream && start_stream(request, res)) {
      observe("/v1/accounts/{accountId}/stream", request.method, 200, begin);
      return;
    }
    response = api.handle(request);
    observe(response.route, request.method, response.status, begin);
    to_response(std::move(response), res);
  }

  void observe(std::string_view route, std::string_view method, int status,
               std::chrono::steady_clock::time_point begin) const {
    if (metrics == nullptr) return;
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - begin;
    metrics->observe_request(route.empty() ? "unmatched" : route, method, status, took.count());
  }

  // True when a stream was set up; false: let the API answer (with its error).
  bool start_stream(const Request& request, httplib::Response& res) {
    const auto segments_end = request.path.rfind('/');
    const auto prefix = std::string_view("/v1/accounts/");
    if (!request.path.starts_with(prefix) || segments_end <= prefix.size()) return false;
    const std::string account(request.path.substr(prefix.size(), segments_end - prefix.size()));
    auto start = api.open_stream(request, account);
    if (!start) return false;  // handle() answers the same error
    if (hub.streams() >= static_cast<std::size_t>(options.max_streams)) {
      res.status = 503;
      res.set_header("Retry-After", "5");
      res.set_content(error_body({ApiErrc::unavailable, "too many open streams"}),
                      std::string(kJson));
      return true;
    }
    for (auto& h : api.cors_headers(request)) res.set_header(h.first, h.second);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // nginx: do not buffer the stream
    auto state = std::make_shared<StreamState>(std::move(start).value());
    state->guard = hub.open_stream(state->start.account_id);
    const auto keepalive = options.keepalive;
    EventHub* h = &hub;
    res.set_chunked_content_provider(
        "text/event-stream",
        [state, keepalive, h](std::size_t /*offset*/, httplib::DataSink& sink) {
          return state->pump(*h, keepalive, sink);
        });
    return true;
  }

  struct StreamState {
    StreamStart start;
    std::optional<EventHub::StreamGuard> guard;
    bool sent_initial{false};

    explicit StreamState(StreamStart s) : start(std::move(s)) {}

    // One round: the initial events, then whatever the hub has, or a keepalive. False
    // ends the stream (client gone, hub closed, or the client fell too far behind).
    bool pump(EventHub& events, std::chrono::milliseconds keepalive, httplib::DataSink& sink) {
      std::string out;
      if (!sent_initial) {
        sent_initial = true;
        out = "retry: 2000\n\n";
        for (const auto& e : start.initial) out += format_sse(e);
      } else {
        if (events.closed()) return false;
        auto news = events.wait(start.account_id, start.after,
                                std::chrono::steady_clock::now() + keepalive);
        if (!news) return false;  // missed some: the client reconnects and gets a snapshot
        if (news->empty()) {
          if (events.closed()) return false;
          out = ": keepalive\n\n";
        } else {
          for (const auto& e : *news) out += format_sse(e);
          start.after = news->back().id;
        }
      }
      return sink.write(out.data(), out.size());
    }
  };

  void serve_static(const httplib::Request& req, httplib::Response& res) const {
    const auto begin = std::chrono::steady_clock::now();
    serve_file(req, res);
    observe("static", req.method, res.status, begin);
  }

  void serve_file(const httplib::Request& req, httplib::Response& res) const {
    auto not_found = [&] {
      res.status = 404;
      res.set_content(error_body({ApiErrc::not_found, "no such route"}), std::string(kJson));
    };
    if (options.web_root.empty() || req.path.empty() || req.path.front() != '/') return not_found();
    std::string_view rel(req.path);
    rel.remove_prefix(1);
    // No way out of the root: reject dot segments and backslashes outright.
    if (rel.find("..") != std::string_view::npos || rel.find('\\') != std::string_view::npos ||
        rel.find('\0') != std::string_view::npos) {
      return not_found();
    }
    std::filesystem::path file = options.web_root / (rel.empty() ? "index.html" : std::string(rel));
    auto body = read_file(file);
    bool is_index = rel.empty();
    if (!body) {
      // A client-side route ("/devices/abc") gets the app; a missing asset stays 404.
      const auto last = rel.substr(rel.rfind('/') + 1);
      if (last.find('.') != std::string_view::npos) return not_found();
      file = options.web_root / "index.html";
      body = read_file(file);
      is_index = true;
      if (!body) return not_found();
    }
    res.status = 200;
    const bool immutable = !is_index && rel.starts_with("assets/");
    res.set_header("Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
    res.set_header("X-Content-Type-Options", "nosniff");
    if (is_index)
      res.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:");
    res.set_content(*body, std::string(mime_of(file)));
  }

  static bool is_api_path(const std::string& path) {
    return path.starts_with("/v1/") || path == "/v1" || path == "/healthz" || path == "/readyz" ||
           path == "/metrics";
  }
};

Server::Server(Api& api, EventHub& hub, ApiMetrics* metrics, ServerOptions options)
    : impl_(
          std::make_unique<Impl>(Impl{api, hub, metrics, std::move(options), nullptr, {}, false})) {
}

Server::~Server() {
  stop();
}

Result<int> Server::start() {
  auto& o = impl_->options;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    auto tls =
        std::make_unique<httplib::SSLServer>(o.tls_cert_file.c_str(), o.tls_key_file.c_str());
    if (!tls->is_valid()) {
      return fail(Errc::crypto, "api: cannot use the TLS certificate or key (" + o.tls_cert_file +
                                    ", " + o.tls_key_file + ")");
    }
    impl_->http = std::move(tls);
  } else {
    impl_->http = std::make_unique<httplib::Server>();
  }
  auto& http = *impl_->http;
  const std::size_t max_threads = static_cast<std::size_t>(std::max(1, o.threads)) +
                                  static_cast<std::size_t>(std::max(0, o.max_streams));
  http.new_task_queue = [max_threads] { return new GrowingPool(max_threads); };
  // A little over the API's own limit, so that the API answers 413 with its JSON body.
  http.set_payload_max_length(o.max_body + 1);
  http.set_read_timeout(o.read_timeout);
  http.set_keep_alive_timeout(5);
  // httplib's defaults cost dearly under load: Nagle holds each answer for the client's
  // delayed ACK (~40 ms), and a keep-alive connection ends after 5 requests.
  http.set_tcp_nodelay(true);
  http.set_keep_alive_max_count(100'000);
  int listen_fd = -1;
  http.set_socket_options([&listen_fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    listen_fd = sock;
  });
  Impl* impl = impl_.get();
  auto handler = [impl](const httplib::Request& req, httplib::Response& res) {
    if (Impl::is_api_path(req.path) || req.method != "GET") {
      impl->serve_api(req, res);
    } else {
      impl->serve_static(req, res);
    }
  };
  http.Get(".*", handler);
  http.Post(".*", handler);
  http.Patch(".*", handler);
  http.Put(".*", handler);
  http.Delete(".*", handler);
  http.Options(".*", handler);
  // httplib's own errors (413 over the hard limit, 400 on a malformed request line) get a
  // JSON body too.
  http.set_error_handler([](const httplib::Request& /*req*/, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiErrc code = ApiErrc::bad_request;
    if (res.status == 413) code = ApiErrc::payload_too_large;
    if (res.status == 404) code = ApiErrc::not_found;
    if (res.status >= 500) code = ApiErrc::internal;
    res.set_content(
        error_body({code, "the HTTP request was refused (" + std::to_string(res.status) + ")"}),
        std::string(kJson));
  });
  // A bug of ours, not the client's: logged with what was thrown.
  http.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res,
         std::exception_ptr ep) {  // NOLINT(performance-unnecessary-value-param)
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {  // NOLINT(bugprone-empty-catch): reported as "unknown"
        }
        log::error("api.exception",
                   {{"method", req.method}, {"route", Api::route_of(req.path)}, {"error", what}});
        res.status = 500;
        res.set_content(error_body({ApiErrc::internal, "internal error"}), std::string(kJson));
      });
  int port = o.port;
  if (port == 0) {
    port = http.bind_to_any_port(o.host);
    if (port <= 0) return fail(Errc::io, "api: cannot bind " + o.host);
  } else if (!http.bind_to_port(o.host, port)) {
    return fail(Errc::io, "api: cannot bind " + o.host + ":" + std::to_string(port));
  }
  // Debian's httplib listens with a backlog of 5: a burst of new connections (dashboards
  // reconnecting after a restart) would overflow it and wait 1 s for a SYN retry.
  if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
  impl_->listener = std::thread([impl] {
    set_thread_name("api-listen");
    impl->http->listen_after_bind();
  });
  impl_->started = true;
  log::info("api.listening", {{"host", o.host},
                              {"port", port},
                              {"tls", !o.tls_cert_file.empty()},
                              {"web_root", o.web_root.string()}});
  return port;
}

void Server::stop() {
  if (!impl_ || !impl_->started) return;
  impl_->started = false;
  impl_->hub.close();  // wakes the streams, whose threads the pool joins
  impl_->http->stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace dag::api
