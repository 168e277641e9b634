// The one place where SQLite result codes become StoreErrc.
// Thread-safety: pure function.
#pragma once

#include <string_view>

#include "dag/store/error.hpp"

namespace dag::store::detail {

/// Maps an (extended) SQLite result code to a StoreError whose message is
/// "<context>: <detail>" (detail: sqlite3_errmsg of the connection, or sqlite3_errstr).
StoreError sqlite_error(int code, std::string_view context, std::string_view detail);

}  // namespace dag::store::detail
