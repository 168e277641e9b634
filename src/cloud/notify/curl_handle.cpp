#include "curl_handle.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace dag::notify::detail {
namespace {

bool is_private_v4(std::uint32_t a) {
  const std::uint32_t top = a >> 24;
  return top == 0                               // 0.0.0.0/8 "this network"
         || top == 10                           // 10.0.0.0/8
         || top == 127                          // loopback
         || (a & 0xFFC0'0000U) == 0x6440'0000U  // 100.64.0.0/10 CGNAT
         || (a & 0xFFFF'0000U) == 0xA9FE'0000U  // 169.254.0.0/16 link-local, metadata
         || (a & 0xFFF0'0000U) == 0xAC10'0000U  // 172.16.0.0/12
         || (a & 0xFFFF'FF00U) == 0xC000'0000U  // 192.0.0.0/24 protocol assignments
         || (a & 0xFFFF'0000U) == 0xC0A8'0000U  // 192.168.0.0/16
         || (a & 0xFFFE'0000U) == 0xC612'0000U  // 198.18.0.0/15 benchmarking
         || a >= 0xE000'0000U;                  // multicast, reserved, broadcast
}

std::uint32_t v4_at(const std::array<unsigned char, 16>& b, std::size_t i) {
  return (std::uint32_t{b[i]} << 24) | (std::uint32_t{b[i + 1]} << 16) |
         (std::uint32_t{b[i + 2]} << 8) | std::uint32_t{b[i + 3]};
}

struct SocketGuard {
  bool allow_private{false};
  bool refused{false};
};

curl_socket_t open_socket(void* user, curlsocktype /*purpose*/, struct curl_sockaddr* address) {
  auto* guard = static_cast<SocketGuard*>(user);
  if (!guard->allow_private && is_private_address(&address->addr, address->addrlen)) {
    guard->refused = true;
    return CURL_SOCKET_BAD;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

template <class T>
void set(CURL* handle, CURLoption option, T value) {
  // Only programming errors (an option this libcurl lacks) fail here; the transfer then
  // reports them.
  (void)curl_easy_setopt(handle, option, value);
}

}  // namespace

void init_curl() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("curl_global_init failed");
    }
  });
}

CurlPtr make_handle() {
  init_curl();
  CurlPtr handle{curl_easy_init()};
  if (!handle) throw std::runtime_error("curl_easy_init failed");
  return handle;
}

HandlePool::Lease HandlePool::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      CurlPtr handle = std::move(idle_.back());
      idle_.pop_back();
      return {*this, std::move(handle)};
    }
  }
  return {*this, make_handle()};
}

void HandlePool::give_back(CurlPtr handle) noexcept {
  if (!handle) return;
  std::lock_guard lock(mutex_);
  // Beyond max_idle the handle and its connections are closed: a burst's extra
  // connections do not stay open at the relay forever.
  if (idle_.size() < max_idle_) {
    try {
      idle_.push_back(std::move(handle));
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory: the handle is freed
    }
  }
}

SlistPtr make_slist(const std::vector<std::string>& lines) {
  SlistPtr list;
  for (const auto& line : lines) {
    curl_slist* grown = curl_slist_append(list.get(), line.c_str());
    if (grown == nullptr) throw std::bad_alloc();
    (void)list.release();  // curl_slist_append returns the same head (or a new one when empty)
    list.reset(grown);
  }
  return list;
}

bool is_private_address(const struct sockaddr* address, std::size_t length) {
  if (address == nullptr) return true;
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, address, sizeof in);
    return is_private_v4(ntohl(in.sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, address, sizeof in6);
    std::array<unsigned char, 16> b{};
    std::memcpy(b.data(), &in6.sin6_addr, b.size());
    bool zero10 = true;
    for (std::size_t i = 0; i < 10; ++i) zero10 = zero10 && b[i] == 0;
    if (zero10 && b[10] == 0xFF && b[11] == 0xFF) return is_private_v4(v4_at(b, 12));  // mapped
    if (zero10 && b[10] == 0 && b[11] == 0) {
      // ::, ::1 and the deprecated IPv4-compatible ::a.b.c.d
      return v4_at(b, 12) <= 1 || is_private_v4(v4_at(b, 12));
    }
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B) {  // 64:ff9b::/96 NAT64
      bool zero = true;
      for (std::size_t i = 4; i < 12; ++i) zero = zero && b[i] == 0;
      if (zero) return is_private_v4(v4_at(b, 12));
    }
    if ((b[0] & 0xFE) == 0xFC) return true;                  // fc00::/7 unique local
    if (b[0] == 0xFE && (b[1] & 0x80) == 0x80) return true;  // fe80::/10, fec0::/10
    if (b[0] == 0xFF) return true;                           // multicast
    return false;
  }
  return true;  // an unknown family: refuse
}

std::size_t read_callback(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto* in = static_cast<ReadBuffer*>(user);
  const std::size_t room = size * count;
  const std::size_t n = std::min(room, in->data.size() - in->offset);
  std::memcpy(buffer, in->data.data() + in->offset, n);
  in->offset += n;
  return n;
}

std::size_t write_callback(char* data, std::size_t size, std::size_t count, void* user) {
  auto* head = static_cast<BodyHead*>(user);
  const std::size_t n = size * count;
  if (head->data.size() < head->limit) {
    head->data.append(data, std::min(n, head->limit - head->data.size()));
  }
  return n;
}

std::string printable(std::string_view text, std::size_t limit) {
  std::string out;
  for (const char c : text) {
    if (out.size() >= limit) break;
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7F) ? c : (c == '\n' || c == '\r' || c == '\t' ? ' ' : '?');
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

Delivery http_post(CURL* handle, const HttpOptions& options, const HttpPost& request) {
  curl_easy_reset(handle);
  std::array<char, CURL_ERROR_SIZE> error{};
  SocketGuard guard{options.allow_private_addresses, false};
  BodyHead head;
  const SlistPtr headers = make_slist(request.headers);

  set(handle, CURLOPT_URL, request.url.c_str());
  set(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  set(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  set(handle, CURLOPT_FOLLOWLOCATION, 0L);
  set(handle, CURLOPT_POST, 1L);
  set(handle, CURLOPT_POSTFIELDS, request.body.data());
  set(handle, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  set(handle, CURLOPT_HTTPHEADER, headers.get());
  set(handle, CURLOPT_USERAGENT, options.user_agent.c_str());
  set(handle, CURLOPT_NOSIGNAL, 1L);
  set(handle, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
  set(handle, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout.count()));
  set(handle, CURLOPT_ERRORBUFFER, error.data());
  set(handle, CURLOPT_WRITEFUNCTION, &write_callback);
  set(handle, CURLOPT_WRITEDATA, static_cast<void*>(&head));
  set(handle, CURLOPT_OPENSOCKETFUNCTION, &open_socket);
  set(handle, CURLOPT_OPENSOCKETDATA, static_cast<void*>(&guard));
  set(handle, CURLOPT_PROXY, options.proxy.c_str());  // "" also ignores the environment's
  if (options.ca_file) set(handle, CURLOPT_CAINFO, options.ca_file->c_str());

  const CURLcode rc = curl_easy_perform(handle);
  if (rc != CURLE_OK) {
    if (guard.refused) {
      return Unexpected{DeliveryError{
          true,
          "the address resolves to a private, loopback or link-local network address, "
          "which this server does not post to"}};
    }
    const std::string detail = error[0] != '\0' ? std::string{error.data()} : "";
    const bool permanent = rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL;
    std::string reason = curl_easy_strerror(rc);
    if (!detail.empty()) reason += ": " + printable(detail, 200);
    return Unexpected{DeliveryError{permanent, std::move(reason)}};
  }
  long status = 0;
  (void)curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
  return classify_http_status(status, head.data);
}

}  // namespace dag::notify::detail

namespace dag::notify {

Delivery classify_http_status(long status, std::string_view body_head) {
  if (status >= 200 && status < 300) return {};
  const bool permanent = status >= 400 && status < 500 && status != 408 && status != 429;
  std::string reason = fmt::format("the endpoint answered HTTP {}", status);
  const std::string body = detail::printable(body_head, 200);
  if (!body.empty()) reason += ": " + body;
  return Unexpected{DeliveryError{permanent, std::move(reason)}};
}

}  // namespace dag::notify
