// The API's view of HTTP: a request and a response as plain values, so that routing and
// handlers (dag/api/api.hpp) run without a server in unit tests and under the fuzzer; the
// server (dag/api/server.hpp) converts from and to cpp-httplib's types.
//
// Thread-safety: values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dag::api {

struct Request {
  std::string method;                                       ///< upper case
  std::string path;                                         ///< percent-decoded, without the query
  std::map<std::string, std::string, std::less<>> query;    ///< decoded; the first of repeats
  std::map<std::string, std::string, std::less<>> headers;  ///< names in lower case
  std::string body;
  std::string remote_addr;  ///< the TCP peer

  /// The header's value, or nullopt. `name` in lower case.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const;
  [[nodiscard]] std::optional<std::string_view> param(std::string_view name) const;
};

inline constexpr std::string_view kJson = "application/json; charset=utf-8";

struct Response {
  int status{200};
  std::string content_type{kJson};  ///< empty: no body (204)
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// The route template that answered ("/v1/devices/{deviceId}"), or "" for none: the
  /// label of the request metrics, never the concrete path.
  std::string route;
};

}  // namespace dag::api
