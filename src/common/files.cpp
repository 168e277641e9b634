#include "dag/common/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "dag/common/errno_text.hpp"

namespace dag {

Result<void> write_private_file(const std::filesystem::path& path, std::string_view data) {
  const auto tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::io, "cannot write " + tmp + ": " + errno_text());
  std::size_t done = 0;
  bool good = true;
  while (good && done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    good = n > 0;
    if (good) done += static_cast<std::size_t>(n);
  }
  good = good && ::fsync(fd) == 0;
  ::close(fd);
  if (!good || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const auto why = errno_text();
    ::unlink(tmp.c_str());
    return fail(Errc::io, "cannot write " + path.string() + ": " + why);
  }
  return ok();
}

Result<TlsFiles> write_tls_files(const std::filesystem::path& dir, std::string_view ca_pem,
                                 std::string_view cert_pem, std::string_view key_pem) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Errc::io, "cannot create " + dir.string() + ": " + ec.message());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  if (ec) return fail(Errc::io, "cannot restrict " + dir.string() + ": " + ec.message());
  TlsFiles out{dir / "ca.pem", dir / "cert.pem", dir / "key.pem"};
  for (const auto& [path, pem] :
       {std::pair{out.ca, ca_pem}, std::pair{out.cert, cert_pem}, std::pair{out.key, key_pem}}) {
    if (auto r = write_private_file(path, pem); !r) return Unexpected<Error>{r.error()};
  }
  return out;
}

}  // namespace dag
