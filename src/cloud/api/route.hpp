// Route matching for dag::api::Api (private): path templates with `{name}` segments.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dag/api/api.hpp"

namespace dag::api {

enum class Body {
  none,  ///< a body, if any, is ignored
  json,  ///< the body must be application/json
};

struct Api::Params {
  std::vector<std::pair<std::string_view, std::string>> values;
  /// The segment that matched `{name}` ("" when there is none).
  [[nodiscard]] std::string get(std::string_view name) const {
    for (const auto& [k, v] : values) {
      if (k == name) return v;
    }
    return {};
  }
};

struct Api::Route {
  std::string_view method;
  std::string_view pattern;
  Handler handler;
  Body body{Body::none};
};

/// The non-empty segments of a path ("/v1/a/" → {"v1", "a"}); a path with an empty inner
/// segment ("/v1//a") keeps it, so that it matches nothing.
std::vector<std::string_view> split_path(std::string_view path);

/// -1 when `segments` do not match `pattern`; else the number of literal segments (the
/// most literal match wins), with the `{name}` segments in `params`.
int match(std::string_view pattern, const std::vector<std::string_view>& segments,
          Api::Params& params);

}  // namespace dag::api
