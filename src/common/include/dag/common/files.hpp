// Small file-system helpers shared by the programs.
//
// Blocking: file I/O (including fsync). Thread-safety: independent calls on different
// paths may run concurrently.
#pragma once

#include <filesystem>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag {

/// Writes `data` to `path` so that a reader sees either the old file or the whole new one,
/// even after a crash: a temporary file beside it (mode 0600, owner only, because callers
/// write keys), fsync, rename. Errors: Errc::io (message names the path and the errno).
Result<void> write_private_file(const std::filesystem::path& path, std::string_view data);

/// The PEM files libmosquitto needs, written by write_tls_files.
struct TlsFiles {
  std::filesystem::path ca;
  std::filesystem::path cert;
  std::filesystem::path key;
};

/// Writes a CA, certificate and key (PEM text, as the config loader returns them) into
/// `dir` (created with mode 0700) as ca.pem, cert.pem and key.pem, for libraries that
/// only read files. Errors: Errc::io.
Result<TlsFiles> write_tls_files(const std::filesystem::path& dir, std::string_view ca_pem,
                                 std::string_view cert_pem, std::string_view key_pem);

}  // namespace dag
