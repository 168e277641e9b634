// Outbox: the device's durable queue of state reports.
//
// A transition is appended and fsync'd before it is published, and removed only when the
// cloud's /accepted for it arrives, so no power event is lost to a network outage, a
// reboot or a crash. Entries keep the seq and body they were created with; after a restart
// they are published again in order, unchanged (the cloud dedupes by (device, seq)).
//
// On disk: one append-only log file of framed records
//   [u32 length][u32 crc32c][u8 type][payload]   (little-endian; length counts type+payload)
// types: BASE (seq counter and coalesced count, written at the head of a compacted file),
// ENTRY (u64 seq + body), ACK (u64 seq). A record whose length runs past the end of the
// file or whose CRC fails is a torn write (power cut mid-append): it and anything after it
// are dropped and the file is truncated, never misread. The file is rewritten (temp file,
// fsync, rename, fsync of the directory) when every entry is acknowledged or when
// acknowledged records dominate.
//
// Bounded: at `capacity` pending entries the oldest tenth is coalesced away (counted in
// coalesced_total(), which the agent reports); the newest entries, and so the latest
// state, are never dropped.
//
// Blocking: open(), append(), ack() do file I/O and fsync. Thread-safety: none; one owner.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag::edge {

struct OutboxEntry {
  std::uint64_t seq{0};
  std::string body;
};

class Outbox {
 public:
  static constexpr std::size_t kDefaultCapacity = 10'000;

  /// Opens (creating if needed) `dir/outbox.log`, replaying it and dropping a torn tail.
  /// Errors: Errc::io (cannot create/read/truncate), Errc::invalid_argument (capacity < 10).
  static Result<Outbox> open(const std::filesystem::path& dir,
                             std::size_t capacity = kDefaultCapacity);

  /// An outbox that never touches a disk: the same queue, seq counter (continuing after
  /// `last_seq`), capacity and coalescing, without durability. For the fleet simulator
  /// (dag-sim runs thousands of agents in one process) and tests. path() is empty.
  /// Errors: Errc::invalid_argument (capacity < 10).
  static Result<Outbox> in_memory(std::size_t capacity = kDefaultCapacity,
                                  std::uint64_t last_seq = 0);

  Outbox(Outbox&& other) noexcept;
  Outbox& operator=(Outbox&& other) noexcept;
  Outbox(const Outbox&) = delete;
  Outbox& operator=(const Outbox&) = delete;
  ~Outbox();

  /// The seq the next append must use (last seq + 1; survives restarts and compaction).
  [[nodiscard]] std::uint64_t next_seq() const { return last_seq_ + 1; }
  [[nodiscard]] std::uint64_t last_seq() const { return last_seq_; }

  /// Appends an entry durably (fdatasync before returning). `seq` must equal next_seq().
  /// Errors: Errc::invalid_argument (wrong seq), Errc::io (write or sync failed; the entry
  /// is then not pending and the file is restored to its previous length).
  Result<void> append(std::uint64_t seq, std::string_view body);

  /// Marks the entry with `seq` delivered. Unknown seqs (already acknowledged, coalesced)
  /// are ignored: acks may arrive twice. Errors: Errc::io.
  Result<void> ack(std::uint64_t seq);

  /// Pending entries, oldest first.
  [[nodiscard]] const std::deque<OutboxEntry>& pending() const { return pending_; }
  /// Entries dropped by coalescing since the device was set up.
  [[nodiscard]] std::uint64_t coalesced_total() const { return coalesced_total_; }
  /// Bytes dropped from a torn tail when the file was opened (0 normally).
  [[nodiscard]] std::uint64_t torn_bytes_dropped() const { return torn_bytes_; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  Outbox(std::filesystem::path path, std::size_t capacity);
  Result<void> replay();
  Result<void> write_record(std::uint8_t type, std::string_view payload, bool sync);
  Result<void> rewrite();
  void rollback_tail() noexcept;

  std::filesystem::path path_;
  std::size_t capacity_;
  int fd_{-1};
  std::uint64_t file_size_{0};
  std::uint64_t last_seq_{0};
  std::uint64_t coalesced_total_{0};
  std::uint64_t torn_bytes_{0};
  std::uint64_t acked_records_{0};
  std::deque<OutboxEntry> pending_;
  bool memory_{false};  // in_memory(): no file, every write succeeds at once
};

/// CRC-32C (Castagnoli) of `data`, exposed for tests.
std::uint32_t crc32c(std::string_view data) noexcept;

}  // namespace dag::edge
