#include "dag/edge/outbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

#include "dag/common/errno_text.hpp"

namespace dag::edge {
namespace {

constexpr std::uint8_t kBase = 1;
constexpr std::uint8_t kEntry = 2;
constexpr std::uint8_t kAck = 3;
constexpr std::size_t kHeader = 8;               // length + crc
constexpr std::uint32_t kMaxRecord = 1U << 20U;  // a body is a few hundred bytes; 1 MiB is corrupt

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1U) != 0 ? 0x82F63B78U ^ (c >> 1U) : c >> 1U;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8U * i)) & 0xFFU));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8U * i)) & 0xFFU));
}
std::uint64_t get_le(std::string_view in, std::size_t bytes) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8U * i);
  }
  return v;
}

std::string frame(std::uint8_t type, std::string_view payload) {
  std::string body;
  body.reserve(1 + payload.size());
  body.push_back(static_cast<char>(type));
  body.append(payload);
  std::string rec;
  rec.reserve(kHeader + body.size());
  put_u32(rec, static_cast<std::uint32_t>(body.size()));
  put_u32(rec, crc32c(body));
  rec.append(body);
  return rec;
}

std::string seq_payload(std::uint64_t seq, std::string_view rest = {}) {
  std::string p;
  p.reserve(8 + rest.size());
  put_u64(p, seq);
  p.append(rest);
  return p;
}

Result<void> write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io, std::string("outbox write: ") + errno_text());
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok();
}

Result<void> sync_dir(const std::filesystem::path& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(Errc::io, std::string("outbox dir open: ") + errno_text());
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return fail(Errc::io, std::string("outbox dir fsync: ") + errno_text());
  return ok();
}

}  // namespace

std::uint32_t crc32c(std::string_view data) noexcept {
  std::uint32_t c = 0xFFFFFFFFU;
  for (char ch : data) c = kCrcTable[(c ^ static_cast<unsigned char>(ch)) & 0xFFU] ^ (c >> 8U);
  return c ^ 0xFFFFFFFFU;
}

Outbox::Outbox(std::filesystem::path path, std::size_t capacity)
    : path_(std::move(path)), capacity_(capacity) {}

Outbox::Outbox(Outbox&& other) noexcept
    : path_(std::move(other.path_)),
      capacity_(other.capacity_),
      fd_(std::exchange(other.fd_, -1)),
      file_size_(other.file_size_),
      last_seq_(other.last_seq_),
      coalesced_total_(other.coalesced_total_),
      torn_bytes_(other.torn_bytes_),
      acked_records_(other.acked_records_),
      pending_(std::move(other.pending_)),
      memory_(other.memory_) {}

Outbox& Outbox::operator=(Outbox&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(other.path_);
    capacity_ = other.capacity_;
    fd_ = std::exchange(other.fd_, -1);
    file_size_ = other.file_size_;
    last_seq_ = other.last_seq_;
    coalesced_total_ = other.coalesced_total_;
    torn_bytes_ = other.torn_bytes_;
    acked_records_ = other.acked_records_;
    pending_ = std::move(other.pending_);
    memory_ = other.memory_;
  }
  return *this;
}

Outbox::~Outbox() {
  if (fd_ >= 0) ::close(fd_);
}

Result<Outbox> Outbox::open(const std::filesystem::path& dir, std::size_t capacity) {
  if (capacity < 10) return fail(Errc::invalid_argument, "outbox capacity must be at least 10");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Errc::io, "outbox: cannot create " + dir.string() + ": " + ec.message());
  Outbox box(dir / "outbox.log", capacity);
  box.fd_ = ::open(box.path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (box.fd_ < 0) {
    return fail(Errc::io, "outbox: cannot open " + box.path_.string() + ": " + errno_text());
  }
  if (auto r = box.replay(); !r) return Unexpected{r.error()};
  return box;
}

Result<Outbox> Outbox::in_memory(std::size_t capacity, std::uint64_t last_seq) {
  if (capacity < 10) return fail(Errc::invalid_argument, "outbox capacity must be at least 10");
  Outbox box({}, capacity);
  box.memory_ = true;
  box.last_seq_ = last_seq;
  return box;
}

Result<void> Outbox::replay() {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return fail(Errc::io, std::string("outbox stat: ") + errno_text());
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd_, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(Errc::io, std::string("outbox read: ") + errno_text());
    got += static_cast<std::size_t>(n);
  }

  std::size_t pos = 0;
  std::string_view all(data);
  while (pos + kHeader <= all.size()) {
    const auto len = static_cast<std::uint32_t>(get_le(all.substr(pos), 4));
    const auto crc = static_cast<std::uint32_t>(get_le(all.substr(pos + 4), 4));
    if (len == 0 || len > kMaxRecord || pos + kHeader + len > all.size()) break;
    const std::string_view body = all.substr(pos + kHeader, len);
    if (crc32c(body) != crc) break;
    const auto type = static_cast<std::uint8_t>(body[0]);
    const std::string_view payload = body.substr(1);
    if (type == kBase && payload.size() == 16) {
      last_seq_ = std::max(last_seq_, get_le(payload, 8));
      coalesced_total_ = get_le(payload.substr(8), 8);
    } else if (type == kEntry && payload.size() >= 8) {
      const std::uint64_t seq = get_le(payload, 8);
      last_seq_ = std::max(last_seq_, seq);
      pending_.push_back({seq, std::string(payload.substr(8))});
    } else if (type == kAck && payload.size() == 8) {
      const std::uint64_t seq = get_le(payload, 8);
      std::erase_if(pending_, [seq](const OutboxEntry& e) { return e.seq == seq; });
      ++acked_records_;
    } else {
      break;  // a record we cannot interpret is treated like a torn one
    }
    pos += kHeader + len;
  }

  file_size_ = pos;
  if (pos != all.size()) {
    torn_bytes_ = all.size() - pos;
    if (::ftruncate(fd_, static_cast<off_t>(pos)) != 0 || ::fdatasync(fd_) != 0) {
      return fail(Errc::io, std::string("outbox truncate: ") + errno_text());
    }
  }
  if (::lseek(fd_, static_cast<off_t>(file_size_), SEEK_SET) < 0) {
    return fail(Errc::io, std::string("outbox seek: ") + errno_text());
  }
  // A fresh file needs its BASE so that the seq counter survives later compactions.
  if (file_size_ == 0) return rewrite();
  return ok();
}

Result<void> Outbox::write_record(std::uint8_t type, std::string_view payload, bool sync) {
  if (memory_) return ok();
  const std::string rec = frame(type, payload);
  if (auto r = write_all(fd_, rec); !r) {
    rollback_tail();
    return r;
  }
  if (sync && ::fdatasync(fd_) != 0) {
    const std::string why = errno_text();
    rollback_tail();
    return fail(Errc::io, "outbox fdatasync: " + why);
  }
  file_size_ += rec.size();
  return ok();
}

// NOLINTNEXTLINE(readability-make-member-function-const): it changes the file
void Outbox::rollback_tail() noexcept {
  // Leave no half record behind: the next open would drop it anyway, but appends after it
  // would be lost with it. If even this fails the disk is gone and open() will cope.
  if (::ftruncate(fd_, static_cast<off_t>(file_size_)) != 0) return;
  if (::lseek(fd_, static_cast<off_t>(file_size_), SEEK_SET) < 0) return;
}

Result<void> Outbox::append(std::uint64_t seq, std::string_view body) {
  if (seq != next_seq()) {
    return fail(Errc::invalid_argument, "outbox: seq " + std::to_string(seq) +
                                            " is not the next (" + std::to_string(next_seq()) +
                                            ")");
  }
  if (pending_.size() >= capacity_) {
    const std::size_t drop = std::max<std::size_t>(1, capacity_ / 10);
    for (std::size_t i = 0; i < drop; ++i) pending_.pop_front();
    coalesced_total_ += drop;
    last_seq_ = seq;  // the rewrite's BASE must already cover the seq being appended
    if (auto r = rewrite(); !r) {
      last_seq_ = seq - 1;
      return r;
    }
  }
  if (auto r = write_record(kEntry, seq_payload(seq, body), true); !r) return r;
  last_seq_ = seq;
  pending_.push_back({seq, std::string(body)});
  return ok();
}

Result<void> Outbox::ack(std::uint64_t seq) {
  const auto it = std::find_if(pending_.begin(), pending_.end(),
                               [seq](const OutboxEntry& e) { return e.seq == seq; });
  if (it == pending_.end()) return ok();
  pending_.erase(it);
  ++acked_records_;
  // Nothing left, or mostly acknowledged history: start a fresh file.
  if (pending_.empty() || acked_records_ > 1000) return rewrite();
  // The ack need not be synced: if it is lost, the entry is sent again and deduped by seq.
  return write_record(kAck, seq_payload(seq), false);
}

Result<void> Outbox::rewrite() {
  if (memory_) {
    acked_records_ = 0;
    return ok();
  }
  const std::filesystem::path tmp = path_.string() + ".tmp";
  const int tfd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (tfd < 0) return fail(Errc::io, std::string("outbox rewrite: ") + errno_text());
  std::string data;
  std::string base;
  put_u64(base, last_seq_);
  put_u64(base, coalesced_total_);
  data += frame(kBase, base);
  for (const auto& e : pending_) data += frame(kEntry, seq_payload(e.seq, e.body));
  auto w = write_all(tfd, data);
  if (w && ::fsync(tfd) != 0) w = fail(Errc::io, std::string("outbox fsync: ") + errno_text());
  ::close(tfd);
  if (!w) {
    ::unlink(tmp.c_str());
    return w;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return fail(Errc::io, std::string("outbox rename: ") + errno_text());
  }
  if (auto r = sync_dir(path_.parent_path()); !r) return r;
  const int nfd = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  if (nfd < 0) return fail(Errc::io, std::string("outbox reopen: ") + errno_text());
  ::close(fd_);
  fd_ = nfd;
  file_size_ = data.size();
  acked_records_ = 0;
  if (::lseek(fd_, static_cast<off_t>(file_size_), SEEK_SET) < 0) {
    return fail(Errc::io, std::string("outbox seek: ") + errno_text());
  }
  return ok();
}

}  // namespace dag::edge
