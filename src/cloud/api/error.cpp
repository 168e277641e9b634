#include "dag/api/error.hpp"

#include <nlohmann/json.hpp>

namespace dag::api {

std::string_view to_string(ApiErrc code) noexcept {
  switch (code) {
    case ApiErrc::bad_request: return "bad_request";
    case ApiErrc::unauthorized: return "unauthorized";
    case ApiErrc::forbidden: return "forbidden";
    case ApiErrc::not_found: return "not_found";
    case ApiErrc::method_not_allowed: return "method_not_allowed";
    case ApiErrc::conflict: return "conflict";
    case ApiErrc::payload_too_large: return "payload_too_large";
    case ApiErrc::unsupported_media_type: return "unsupported_media_type";
    case ApiErrc::rate_limited: return "rate_limited";
    case ApiErrc::internal: return "internal";
    case ApiErrc::unavailable: return "unavailable";
  }
  return "internal";
}

int http_status(ApiErrc code) noexcept {
  switch (code) {
    case ApiErrc::bad_request: return 400;
    case ApiErrc::unauthorized: return 401;
    case ApiErrc::forbidden: return 403;
    case ApiErrc::not_found: return 404;
    case ApiErrc::method_not_allowed: return 405;
    case ApiErrc::conflict: return 409;
    case ApiErrc::payload_too_large: return 413;
    case ApiErrc::unsupported_media_type: return 415;
    case ApiErrc::rate_limited: return 429;
    case ApiErrc::internal: return 500;
    case ApiErrc::unavailable: return 503;
  }
  return 500;
}

std::string error_body(const ApiError& error) {
  // Messages may quote input: dump() escapes, and replaces invalid UTF-8 rather than throw.
  return nlohmann::json{{"code", to_string(error.code)}, {"message", error.message}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiError from_store(const store::StoreError& error) {
  switch (error.code) {
    case store::StoreErrc::not_found: return {ApiErrc::not_found, "not found"};
    case store::StoreErrc::conflict: return {ApiErrc::conflict, error.message};
    case store::StoreErrc::invalid_argument: return {ApiErrc::bad_request, error.message};
    default: return {ApiErrc::internal, "the database failed; see dagd's log"};
  }
}

}  // namespace dag::api
