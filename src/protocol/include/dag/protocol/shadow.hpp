// The device-shadow engine: AWS IoT classic-shadow semantics as pure functions.
//
// A ShadowDocument is an immutable value. update/get/remove take the stored document
// (or nullptr when there is none), the request payload and the time, and return the new
// document together with the exact reply payloads to publish; the caller stores and
// publishes them. Nothing here does I/O, reads a clock or keeps state, so the cloud
// serializes updates per thing (e.g. under a per-thing lock or in its store
// transaction) and the engine itself needs no locking.
//
// The rules, with every point where AWS's documentation leaves room and the choice we
// made, are in docs/protocol.md ("Device shadow"). Replies are compact JSON; objects'
// keys come out in sorted order.
//
// Thread-safety: all functions are reentrant. ShadowDocument shares immutable sections
// between copies (reference counted), so copies are cheap and may be read from any
// number of threads at once.
// Blocking: none; an update of a typical dag shadow takes a few microseconds.
// Errors: every failure is a ShadowError carrying the AWS code and message; no function
// throws for any input (only std::bad_alloc can escape).
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dag/common/result.hpp"

namespace dag::protocol {

/// Largest request payload accepted (AWS IoT's MQTT message limit, 128 KiB). Checked
/// before anything else so that no work is spent on oversized input.
inline constexpr std::size_t kMaxShadowPayloadBytes = std::size_t{128} * 1024;
/// Largest state: compact JSON of `desired` plus `reported` (metadata not counted), both
/// of the request's `state` and of the resulting document (AWS classic-shadow limit).
inline constexpr std::size_t kMaxShadowStateBytes = std::size_t{8} * 1024;
/// Deepest path inside `desired` or `reported`: number of keys/array indices from the
/// section to any value (AWS: "maximum is 6").
inline constexpr int kMaxShadowDepth = 6;
/// Longest clientToken in bytes (AWS).
inline constexpr std::size_t kMaxClientTokenBytes = 64;

/// Every way a shadow request can fail. The one place mapping each to its HTTP-like
/// code and AWS message is shadow.cpp (`http_status`, `default_message`).
enum class ShadowErrc {
  invalid_json,          ///< 400 "Invalid JSON": not JSON, or not a JSON object.
  missing_state,         ///< 400 "Missing required node: state".
  state_not_object,      ///< 400 "State node must be an object" (null is allowed: clears).
  desired_not_object,    ///< 400 "Desired node must be an object" (or null).
  reported_not_object,   ///< 400 "Reported node must be an object" (or null).
  invalid_version,       ///< 400 "Invalid version": not an integer >= 0.
  invalid_client_token,  ///< 400 "Invalid clientToken": not a string, or over 64 bytes.
  too_deep,              ///< 400 "JSON contains too many levels of nesting; maximum is 6".
  invalid_state_node,    ///< 400 "State contains an invalid node": a key other than
                         ///< desired/reported in state, or a null inside an array.
  not_found,             ///< 404 "No shadow exists with name: '<thing>'".
  version_conflict,      ///< 409 "Version conflict".
  payload_too_large,     ///< 413 "The payload exceeds the maximum size allowed".
  unsupported_encoding,  ///< 415 "Unsupported documented encoding; supported encoding is UTF-8".
  too_many_requests,     ///< 429 "Too many requests": raised by the cloud's in-flight limiter.
  internal,              ///< 500 "Internal service failure": e.g. the store failed.
};

/// HTTP-like status of an error (400, 404, 409, 413, 415, 429, 500).
int http_status(ShadowErrc errc) noexcept;
/// AWS message of an error (for not_found, without the thing name; see make_error).
std::string_view default_message(ShadowErrc errc) noexcept;

/// A rejected request: what goes to `.../rejected`.
struct ShadowError {
  ShadowErrc errc{ShadowErrc::internal};
  int code{500};        ///< http_status(errc)
  std::string message;  ///< default_message(errc), or the 404 message with the thing name
  std::optional<std::string> client_token;  ///< echoed when the request carried a valid one

  bool operator==(const ShadowError&) const = default;
};

/// Builds an error with its code and message. `thing` is used only by not_found.
ShadowError make_error(ShadowErrc errc, std::optional<std::string> client_token = std::nullopt,
                       std::string_view thing = {});
/// The 429 error for the cloud's limiter of in-flight requests.
ShadowError too_many_requests(std::optional<std::string> client_token = std::nullopt);

/// `{"code":N,"message":"...","timestamp":now,"clientToken":"..."?}`.
std::string render_rejected(const ShadowError& error, std::int64_t now);

/// A thing's shadow as stored: state, per-leaf metadata, version, and whether it exists.
/// A deleted shadow is kept as a tombstone (exists() false) so that its version carries
/// on when it is created again, as AWS does.
class ShadowDocument {
 public:
  /// No shadow: not existing, version 0.
  ShadowDocument();

  /// False for a never-created or deleted shadow.
  [[nodiscard]] bool exists() const noexcept;
  /// Version of the last accepted update (of the deleted shadow, for a tombstone).
  [[nodiscard]] std::uint64_t version() const noexcept;
  /// `state.desired`: a non-empty object, or null when the section is absent.
  [[nodiscard]] const nlohmann::json& desired() const noexcept;
  /// `state.reported`: a non-empty object, or null when the section is absent.
  [[nodiscard]] const nlohmann::json& reported() const noexcept;
  /// Metadata in AWS form: `{"desired":{...},"reported":{...}}` with `{"timestamp":T}` at
  /// every leaf and one entry per array element; absent sections are left out.
  [[nodiscard]] nlohmann::json metadata() const;
  /// Timestamp (epoch seconds) of a value: `path` is a JSON pointer from the state root,
  /// e.g. "/reported/battery/percent". std::nullopt when there is no such leaf.
  [[nodiscard]] std::optional<std::int64_t> timestamp_of(std::string_view path) const;
  /// `state.delta`: desired fields missing from or different to reported (arrays are
  /// compared whole); null when there is no difference.
  [[nodiscard]] nlohmann::json delta() const;
  /// Compact JSON of desired plus reported: what counts towards kMaxShadowStateBytes.
  [[nodiscard]] std::size_t state_size() const noexcept;

  struct Section;  ///< Implementation detail: one of desired/reported with its metadata.

 private:
  friend struct ShadowEngine;
  std::shared_ptr<const Section> desired_;
  std::shared_ptr<const Section> reported_;
  std::uint64_t version_{0};
  bool exists_{false};
};

/// Outcome of an accepted update: the document to store and the payloads to publish.
struct UpdateResult {
  ShadowDocument document;
  std::string accepted;              ///< for `.../update/accepted`
  std::optional<std::string> delta;  ///< for `.../update/delta`, when there is one to send
  std::string documents;             ///< for `.../update/documents`
  /// The request's `state.reported` when it was an object (null otherwise), as parsed by
  /// the engine, so that the cloud's rules need not parse the payload again.
  nlohmann::json reported_patch;
};

/// Outcome of an accepted delete: the tombstone to store and the reply.
struct RemoveResult {
  ShadowDocument document;  ///< exists() false, same version as the deleted shadow
  std::string accepted;     ///< for `.../delete/accepted`
};

/// Applies an `/update` request. `current` is the stored document, or nullptr when the
/// thing never had a shadow. Errors: every ShadowErrc except not_found, too_many_requests
/// and internal.
Expected<UpdateResult, ShadowError> update(const ShadowDocument* current, std::string_view payload,
                                           std::int64_t now);

/// Answers a `/get` request. The payload may be empty or `{"clientToken":"..."}`; any
/// other content is ignored, as is an invalid clientToken (it is then not echoed).
/// Errors: not_found (for nullptr or a tombstone), with `thing` in the message.
Expected<std::string, ShadowError> get(std::string_view thing, const ShadowDocument* current,
                                       std::string_view payload, std::int64_t now);

/// Applies a `/delete` request; the payload is read only for a clientToken, as in get.
/// Errors: not_found (for nullptr or a tombstone).
Expected<RemoveResult, ShadowError> remove(std::string_view thing, const ShadowDocument* current,
                                           std::string_view payload, std::int64_t now);

/// The `/update/delta` message for a stored document, as an update that wrote its desired
/// state would have published it (version, timestamp, state, metadata; no clientToken):
/// for desired state written outside an MQTT update (the admin CLI). nullopt when the
/// document does not exist or desired and reported agree.
std::optional<std::string> render_delta(const ShadowDocument& document, std::int64_t now);

/// The clientToken of a request, read leniently (as get and delete do): nullopt when the
/// payload is not a JSON object within the limits or the token is missing or invalid.
/// For rejecting a request before it reaches the engine (429, 404) with its token echoed.
std::optional<std::string> client_token_of(std::string_view payload);

/// Storage form: `{"exists":b,"version":N,"state":{...},"metadata":{...}}` (state and
/// metadata as in a get reply).
std::string shadow_to_json(const ShadowDocument& document);
/// Reads the storage form back. Errors: Errc::parse when it is not a document that
/// shadow_to_json could have written (bad JSON, metadata not mirroring state, limits).
Result<ShadowDocument> shadow_from_json(std::string_view text);

/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or code points
/// above U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

}  // namespace dag::protocol
