// The REST API's errors: one enum, mapped to HTTP statuses and to the `{code, message}`
// JSON body in one place (error.cpp), and the mapping of the store's errors onto it.
//
// Thread-safety: values and pure functions.
#pragma once

#include <string>
#include <string_view>

#include "dag/common/result.hpp"
#include "dag/store/error.hpp"

namespace dag::api {

/// Every error the API answers with (docs/api.md, "Conventions").
enum class ApiErrc {
  bad_request,             ///< 400: malformed JSON, a missing or mistyped field, out of range
  unauthorized,            ///< 401: no token, or one that does not verify
  forbidden,               ///< 403: wrong username or password
  not_found,               ///< 404: no such route or resource, or not the caller's
  method_not_allowed,      ///< 405: the route exists, the method does not
  conflict,                ///< 409: exists already, or not possible in this state
  payload_too_large,       ///< 413: body over the limit
  unsupported_media_type,  ///< 415: a body that is not JSON
  rate_limited,            ///< 429: too many attempts
  internal,                ///< 500: the store failed (details only in the log)
  unavailable,             ///< 503: not ready
};

struct ApiError {
  ApiErrc code{ApiErrc::internal};
  std::string message;
};

template <class T>
using ApiResult = Expected<T, ApiError>;

/// The machine code of the JSON body, e.g. "not_found".
std::string_view to_string(ApiErrc code) noexcept;
/// The HTTP status of an error code.
int http_status(ApiErrc code) noexcept;
/// `{"code": ..., "message": ...}`.
std::string error_body(const ApiError& error);

inline Unexpected<ApiError> fail(ApiErrc code, std::string message) {
  return Unexpected<ApiError>{ApiError{code, std::move(message)}};
}

/// A store error as the API answers it: not_found → 404, conflict → 409, invalid_argument
/// → 400 (the store's message names the field), anything else → 500 with a generic
/// message (the caller logs the store's).
ApiError from_store(const store::StoreError& error);

}  // namespace dag::api
