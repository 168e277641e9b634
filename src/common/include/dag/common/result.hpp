// Result<T>: an expected-style return type used across detectordag.
//
// Every layer has one documented error enum; a Result carries either a value or
// an error of that layer together with a human-readable message. Exceptions are
// kept for start-up and main(); everything below returns a Result.
//
// Thread-safety: value types, no shared state.
#pragma once

#include <cassert>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace dag {

/// Errors of src/common and of programs' start-up. Other layers define their own enum
/// (see dag::protocol::ShadowErrc) and use `Expected<T, TheirError>`.
enum class Errc {
  invalid_argument,  ///< A value given by the caller or by outside input is malformed.
  not_found,         ///< A file, key or resource does not exist.
  io,                ///< The operating system refused a read, write, spawn or socket call.
  parse,             ///< Text (TOML, JSON, PEM, base64) could not be parsed.
  config,            ///< A configuration value is missing or out of range.
  crypto,            ///< OpenSSL or libsodium reported a failure.
  timeout,           ///< A bounded wait ran out.
  unavailable,       ///< A peer (broker, database, process) is not reachable right now.
  internal,          ///< A broken invariant; a bug of ours.
};

/// Stable lower-case name of an Errc, for logs and JSON bodies.
const char* to_string(Errc code) noexcept;

/// An error of the common layer: a code plus a message for humans.
struct Error {
  Errc code{Errc::internal};
  std::string message;
};

/// Wraps an error so that `return Unexpected{...}` converts into any Expected<T, E>.
template <class E>
struct Unexpected {
  E error;
};
template <class E>
Unexpected(E) -> Unexpected<E>;

/// Shorthand for `Unexpected<Error>{{code, message}}`.
inline Unexpected<Error> fail(Errc code, std::string message) {
  return Unexpected<Error>{Error{code, std::move(message)}};
}

/// Either a T or an E. `has_value()` tells which; accessing the wrong side is a bug
/// (asserted in debug builds).
template <class T, class E>
class [[nodiscard]] Expected {
 public:
  using value_type = T;
  using error_type = E;

  // clang-format 14 mangles requires-clauses; these two are laid out by hand.
  // clang-format off
  // Implicit by design (`return value;`); the requires-clause keeps it from hiding the
  // copy and move constructors.
  template <class U = T>
    requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::remove_cvref_t<U>, Expected>)
  Expected(U&& value)  // NOLINT(google-explicit-constructor,bugprone-forwarding-reference-overload)
      : data_(std::in_place_index<0>, std::forward<U>(value)) {}

  template <class G>
    requires std::is_constructible_v<E, G&&>
  Expected(Unexpected<G> unexpected)  // NOLINT(google-explicit-constructor)
      : data_(std::in_place_index<1>, std::move(unexpected.error)) {}
  // clang-format on

  [[nodiscard]] bool has_value() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    assert(has_value());
    return std::get<0>(data_);
  }
  const T& value() const& {
    assert(has_value());
    return std::get<0>(data_);
  }
  T&& value() && {
    assert(has_value());
    return std::get<0>(std::move(data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & {
    assert(!has_value());
    return std::get<1>(data_);
  }
  const E& error() const& {
    assert(!has_value());
    return std::get<1>(data_);
  }
  E&& error() && {
    assert(!has_value());
    return std::get<1>(std::move(data_));
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  std::variant<T, E> data_;
};

/// Expected<void, E>: success carries nothing.
template <class E>
class [[nodiscard]] Expected<void, E> {
 public:
  Expected() = default;
  // clang-format off
  template <class G>
    requires std::is_constructible_v<E, G&&>
  Expected(Unexpected<G> unexpected)  // NOLINT(google-explicit-constructor)
      : error_(std::move(unexpected.error)), failed_(true) {}
  // clang-format on

  [[nodiscard]] bool has_value() const noexcept { return !failed_; }
  explicit operator bool() const noexcept { return has_value(); }
  const E& error() const& {
    assert(failed_);
    return error_;
  }
  E&& error() && {
    assert(failed_);
    return std::move(error_);
  }

 private:
  E error_{};
  bool failed_{false};
};

/// The common layer's result type.
template <class T>
using Result = Expected<T, Error>;

/// Success value for Result<void>.
inline Result<void> ok() {
  return {};
}

}  // namespace dag
