#include "dag/notify/target_check.hpp"

#include <fmt/format.h>

#include "dag/common/validate.hpp"
#include "dag/notify/template.hpp"

namespace dag::notify {

std::optional<std::string> new_target_error(const store::NewTarget& target) {
  const auto& o = target;
  using store::TargetKind;
  if (o.kind == TargetKind::email) {
    if (auto why = validate::email_error(o.address)) return "'" + o.address + "': " + *why;
    if (o.secret) return "an e-mail target takes no secret";
  } else {
    if (auto why = validate::url_error(o.address)) return "'" + o.address + "': " + *why;
    if (o.secret && (o.secret->empty() || o.secret->size() > kMaxSecretBytes)) {
      return fmt::format("the secret must have 1..{} bytes", kMaxSecretBytes);
    }
  }
  if (o.kind != TargetKind::webhook && (o.body_template || o.content_type)) {
    return "only webhooks take a body template and content type";
  }
  if (o.content_type && !o.body_template) return "a content type needs a body template";
  if (o.body_template) {
    if (o.body_template->size() > kMaxBodyTemplateBytes) {
      return fmt::format("the body template must have at most {} bytes", kMaxBodyTemplateBytes);
    }
    if (auto why = template_error(*o.body_template)) return "the body template: " + *why;
  }
  if (o.content_type) {
    if (auto why = content_type_error(*o.content_type)) {
      return "the content type '" + *o.content_type + "': " + *why;
    }
  }
  return std::nullopt;
}

}  // namespace dag::notify
