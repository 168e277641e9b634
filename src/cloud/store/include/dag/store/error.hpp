// The store layer's errors: one enum for every backend (SQLite now, PostgreSQL later).
//
// Each backend maps its own result codes to StoreErrc in exactly one function (for SQLite:
// sqlite/error_map.cpp), so callers never see a backend's codes and can decide what to do
// from the enum alone: retry (busy), answer 404 (not_found), 409 (conflict), 400
// (invalid_argument), or give up and report the store unhealthy (corrupt, io, incompatible,
// internal).
//
// Thread-safety: value types, no shared state.
#pragma once

#include <string>
#include <utility>

#include "dag/common/result.hpp"

namespace dag::store {

enum class StoreErrc {
  /// The row named by an id does not exist, or a row it refers to does not (an unknown
  /// account for a new device, an unknown device for an event: a foreign key).
  not_found,
  /// A unique key is taken (username, (device, seq) of a power event, a target's address)
  /// or an optimistic-concurrency check failed (shadow revision, intent already finished).
  conflict,
  /// A value is out of range or malformed (empty name, negative grace, bad JSON, a write
  /// in a read-only transaction). Nothing was written.
  invalid_argument,
  /// The database is locked by another writer for longer than the busy timeout, or (on
  /// backends with optimistic isolation) the transaction lost a serialization race.
  /// Retryable: run the whole transaction again.
  busy,
  /// The database file is damaged or is not a database.
  corrupt,
  /// The operating system refused a read, write, open or sync (disk full, permissions).
  io,
  /// The database was written by a newer program (an unknown schema migration) or its
  /// applied migrations differ from the ones built in. Never retried; needs an upgrade.
  incompatible,
  /// A broken invariant or an unexpected backend answer; a bug of ours.
  internal,
};

/// Stable lower-case name ("not_found", "conflict", ...), for logs and JSON bodies.
const char* to_string(StoreErrc code) noexcept;

/// A store error: a code to act on and a message for humans (names the operation and
/// carries the backend's own text).
struct StoreError {
  StoreErrc code{StoreErrc::internal};
  std::string message{};
};

/// The result type of every store operation.
template <class T>
using StoreResult = Expected<T, StoreError>;

/// Shorthand for `Unexpected<StoreError>{{code, message}}`.
inline Unexpected<StoreError> fail(StoreErrc code, std::string message) {
  return Unexpected<StoreError>{StoreError{code, std::move(message)}};
}

/// True for errors after which the transaction stays usable: the failed operation wrote
/// nothing and the others stand (not_found, conflict, invalid_argument). Any other error
/// ends the transaction: further operations and commit() return it again.
constexpr bool leaves_transaction_usable(StoreErrc code) noexcept {
  return code == StoreErrc::not_found || code == StoreErrc::conflict ||
         code == StoreErrc::invalid_argument;
}

}  // namespace dag::store
