// Answers shared by the handlers (private to dag::api).
#pragma once

#include <nlohmann/json.hpp>

#include <string_view>

#include "dag/api/error.hpp"
#include "dag/api/http.hpp"
#include "dag/api/json_io.hpp"
#include "dag/common/log.hpp"

namespace dag::api {

inline Response json_response(const nlohmann::json& body, int status = 200) {
  Response r;
  r.status = status;
  r.body = dump(body);
  return r;
}

inline Response no_content() {
  Response r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

/// A store error as the answer; failures of the database itself are logged here (with
/// the store's message, which the client never sees).
inline ApiError store_failure(const store::StoreError& e, std::string_view what) {
  if (e.code != store::StoreErrc::not_found && e.code != store::StoreErrc::invalid_argument &&
      e.code != store::StoreErrc::conflict) {
    log::error("api.store_failed", {{"operation", what}, {"error", e.message}});
  }
  return from_store(e);
}

}  // namespace dag::api
