// A schema migration built into the library (see embed_migrations.cmake).
// Thread-safety: immutable static data.
#pragma once

#include <span>
#include <string_view>

namespace dag::store::detail {

struct Migration {
  int number;                 ///< 1, 2, 3, ... (the NNNN of NNNN_name.sql)
  std::string_view name;      ///< the name part of the file name
  std::string_view checksum;  ///< SHA-256 of the file, hex: an applied file must not change
  std::string_view sql;       ///< the file's text, run as one script
};

/// The SQLite migrations, in order.
std::span<const Migration> sqlite_migrations();

}  // namespace dag::store::detail
