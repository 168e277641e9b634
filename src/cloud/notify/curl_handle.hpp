// libcurl plumbing shared by the channels (private to dag::notify).
//
// Each channel keeps a pool of easy handles (HandlePool), one per delivery in progress,
// reset before every transfer: options start from scratch each time while a handle's
// connection and DNS caches carry over, so a storm of deliveries to one host (ntfy.sh, the
// SMTP relay) reuses its connections, several at once when the worker delivers in
// parallel. A handle is used by one thread at a time.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dag/notify/channel.hpp"
#include "dag/notify/http.hpp"

namespace dag::notify::detail {

/// curl_global_init, once per process (thread-safe; never cleaned up).
void init_curl();

struct CurlDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

/// A new easy handle (after init_curl). Throws std::runtime_error when libcurl cannot make
/// one (out of memory): channels are built at start-up.
CurlPtr make_handle();

/// Easy handles for deliveries running at once: acquire() lends an idle one (or makes one)
/// until the lease ends. Idle handles (with their open connections) are kept up to
/// `max_idle`. Thread-safe.
class HandlePool {
 public:
  explicit HandlePool(std::size_t max_idle = 16) : max_idle_(max_idle) {}

  class Lease {
   public:
    Lease(HandlePool& pool, CurlPtr handle) : pool_(&pool), handle_(std::move(handle)) {}
    ~Lease() { pool_->give_back(std::move(handle_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&&) = delete;
    Lease& operator=(Lease&&) = delete;
    [[nodiscard]] CURL* get() const { return handle_.get(); }

   private:
    HandlePool* pool_;
    CurlPtr handle_;
  };

  /// Throws std::runtime_error when libcurl cannot make a handle (out of memory).
  Lease acquire();

 private:
  void give_back(CurlPtr handle) noexcept;

  std::mutex mutex_;
  std::vector<CurlPtr> idle_;
  std::size_t max_idle_;
};

/// Builds a curl_slist; nullptr for an empty list. Throws std::bad_alloc.
SlistPtr make_slist(const std::vector<std::string>& lines);

/// True for loopback, private, link-local, CGNAT, multicast, unspecified and reserved
/// addresses (IPv4, IPv6, and IPv4 mapped into or translated to IPv6).
bool is_private_address(const struct sockaddr* address, std::size_t length);

/// Feeds a string to CURLOPT_READFUNCTION.
struct ReadBuffer {
  std::string_view data;
  std::size_t offset{0};
};
std::size_t read_callback(char* buffer, std::size_t size, std::size_t count, void* user);

/// Keeps the first bytes of a response body (CURLOPT_WRITEFUNCTION), drops the rest.
struct BodyHead {
  std::string data;
  std::size_t limit{1024};
};
std::size_t write_callback(char* data, std::size_t size, std::size_t count, void* user);

struct HttpPost {
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  std::string body;
};

/// POSTs through `handle` (reset first) and maps the outcome (classify_http_status; curl
/// errors: a refused private address and malformed URLs are permanent, everything else
/// transient). Blocks up to options.timeout.
Delivery http_post(CURL* handle, const HttpOptions& options, const HttpPost& request);

/// Printable ASCII of `text` (others become '?'), cut to `limit` characters.
std::string printable(std::string_view text, std::size_t limit);

}  // namespace dag::notify::detail
