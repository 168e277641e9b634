// libFuzzer target for the device-facing parsers of dag::protocol.
//
// Input: "<topic>\n<payload>". The topic goes through parse_topic; the payload is sent as
// the operation the topic names (an update for anything else) to a small document that
// evolves within the input: update, get, update again, delete, update on the tombstone.
// Besides "no crash, no sanitizer report", every reply must be valid JSON, documents must
// survive the storage round trip, and our JSON parser must agree with nlohmann's.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "dag/protocol/shadow.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/protocol/vocabulary.hpp"

#include "json_parse.hpp"

namespace {

using nlohmann::json;
namespace proto = dag::protocol;

constexpr std::int64_t kNow = 1'700'000'000;

void check(bool condition) {
  if (!condition) std::abort();
}

void check_json_text(std::string_view text) {
  check(json::accept(text.begin(), text.end()));
}

bool has_non_finite(const json& value) {
  if (value.is_number_float()) return !std::isfinite(value.get<double>());
  if (value.is_structured()) {
    for (const auto& child : value) {
      if (has_non_finite(child)) return true;
    }
  }
  return false;
}

// Our parser against nlohmann's, on text both are meant to handle.
void differential_parse(std::string_view payload) {
  if (!proto::is_valid_utf8(payload)) return;
  if (payload.starts_with("\xEF\xBB\xBF")) return;  // nlohmann skips a BOM; we do not
  // nlohmann's lexer takes a NUL byte for the end of input and ignores what follows;
  // we reject it like any other stray character.
  if (payload.find('\0') != std::string_view::npos) return;
  json theirs = json::parse(payload.begin(), payload.end(), nullptr, false);
  auto ours = proto::detail::parse_json(payload);
  if (theirs.is_discarded()) {
    check(!ours.has_value());
    return;
  }
  if (has_non_finite(theirs)) return;  // "1e999": we reject what nlohmann makes infinite
  check(ours.has_value());
  check(*ours == theirs);
}

void check_document(const proto::ShadowDocument& document) {
  check(document.state_size() <= proto::kMaxShadowStateBytes);
  std::string stored = proto::shadow_to_json(document);
  check_json_text(stored);
  auto back = proto::shadow_from_json(stored);
  check(back.has_value());
  check(proto::shadow_to_json(*back) == stored);
  check(back->desired() == document.desired());
  check(back->reported() == document.reported());
}

// Runs an update and checks its replies; returns the new document, if accepted.
std::optional<proto::ShadowDocument> run_update(const proto::ShadowDocument* current,
                                                std::string_view payload) {
  auto result = proto::update(current, payload, kNow);
  if (!result) {
    check(result.error().code == proto::http_status(result.error().errc));
    check_json_text(proto::render_rejected(result.error(), kNow));
    return std::nullopt;
  }
  check_json_text(result->accepted);
  check_json_text(result->documents);
  if (result->delta) check_json_text(*result->delta);
  check(result->document.exists());
  check(result->document.version() == (current != nullptr ? current->version() : 0) + 1);
  check_document(result->document);
  return std::move(result->document);
}

void run_get_and_delete(const proto::ShadowDocument& document, std::string_view payload) {
  auto got = proto::get("thing", &document, payload, kNow);
  if (got) {
    check_json_text(*got);
  } else {
    check_json_text(proto::render_rejected(got.error(), kNow));
  }
  auto removed = proto::remove("thing", &document, payload, kNow);
  if (removed) {
    check_json_text(removed->accepted);
    check(!removed->document.exists());
    check_document(removed->document);
    // Re-creating continues the version of the deleted shadow.
    auto again = run_update(&removed->document, payload);
    if (again) check(again->version() == document.version() + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::size_t newline = input.find('\n');
  std::string_view topic_text = input.substr(0, newline);
  std::string_view payload =
      newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  auto topic = proto::parse_topic(topic_text);
  if (topic) check(proto::parse_topic(proto::format_topic(*topic)) == topic);
  for (std::string_view filter : proto::kCloudSubscriptions) {
    (void)proto::topic_matches(filter, topic_text);
  }
  (void)proto::topic_matches(topic_text, "$aws/things/dag-1/shadow/update");

  differential_parse(payload);

  if (topic && std::holds_alternative<proto::LifecycleTopic>(*topic)) {
    auto event = proto::parse_lifecycle_event(payload);
    if (event) {
      auto back = proto::parse_lifecycle_event(proto::to_json(*event));
      check(back.has_value() && *back == *event);
    }
    return 0;
  }

  // The document the payload meets: a small shadow with both sections.
  static const proto::ShadowDocument seed = [] {
    auto first = proto::update(nullptr,
                               R"({"state":{"desired":{"color":"red","cfg":{"pollS":60}},
                                   "reported":{"color":"green","status":"on",
                                   "battery":{"percent":80,"volts":4.1},"list":[1,2]}}})",
                               kNow - 10);
    check(first.has_value());
    return first->document;
  }();

  proto::ShadowOp op = proto::ShadowOp::update;
  if (topic && std::holds_alternative<proto::ShadowRequestTopic>(*topic)) {
    op = std::get<proto::ShadowRequestTopic>(*topic).op;
  }
  switch (op) {
    case proto::ShadowOp::update: {
      (void)run_update(nullptr, payload);
      auto next = run_update(&seed, payload);
      if (next) {
        auto again = run_update(&*next, payload);
        run_get_and_delete(again ? *again : *next, payload);
      }
      break;
    }
    case proto::ShadowOp::get:
    case proto::ShadowOp::remove:
      run_get_and_delete(seed, payload);
      check(!proto::get("thing", nullptr, payload, kNow).has_value());
      break;
  }
  return 0;
}
