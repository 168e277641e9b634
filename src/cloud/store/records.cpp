#include "dag/store/records.hpp"

#include <array>
#include <utility>

namespace dag::store {

namespace {

// One table per enum gives both directions from the same text.
template <class E, std::size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<TargetKind, 3> kTargetKinds{{
    {TargetKind::email, "email"},
    {TargetKind::webhook, "webhook"},
    {TargetKind::ntfy, "ntfy"},
}};

constexpr Names<EventKind, 5> kEventKinds{{
    {EventKind::power_off, "power_off"},
    {EventKind::power_on, "power_on"},
    {EventKind::lost_contact, "lost_contact"},
    {EventKind::back, "back"},
    {EventKind::battery_low, "battery_low"},
}};

constexpr Names<Transition, 5> kTransitions{{
    {Transition::power_lost, "power_lost"},
    {Transition::power_back, "power_back"},
    {Transition::contact_lost, "contact_lost"},
    {Transition::dag_back, "dag_back"},
    {Transition::battery_low, "battery_low"},
}};

constexpr Names<IntentStatus, 3> kIntentStatuses{{
    {IntentStatus::pending, "pending"},
    {IntentStatus::done, "done"},
    {IntentStatus::failed, "failed"},
}};

constexpr Names<ConfigScope, 3> kConfigScopes{{
    {ConfigScope::fleet, "fleet"},
    {ConfigScope::account, "account"},
    {ConfigScope::device, "device"},
}};

template <class E, std::size_t N>
std::string_view name_of(const Names<E, N>& names, E value) noexcept {
  for (const auto& [e, name] : names) {
    if (e == value) return name;
  }
  return "unknown";
}

template <class E, std::size_t N>
std::optional<E> parse_name(const Names<E, N>& names, std::string_view text) noexcept {
  for (const auto& [e, name] : names) {
    if (name == text) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(TargetKind kind) noexcept {
  return name_of(kTargetKinds, kind);
}
std::optional<TargetKind> parse_target_kind(std::string_view text) noexcept {
  return parse_name(kTargetKinds, text);
}

std::string_view to_string(EventKind kind) noexcept {
  return name_of(kEventKinds, kind);
}
std::optional<EventKind> parse_event_kind(std::string_view text) noexcept {
  return parse_name(kEventKinds, text);
}

std::string_view to_string(Transition transition) noexcept {
  return name_of(kTransitions, transition);
}
std::optional<Transition> parse_transition(std::string_view text) noexcept {
  return parse_name(kTransitions, text);
}

Transition transition_of(protocol::Event event) noexcept {
  switch (event) {
    case protocol::Event::power_lost: return Transition::power_lost;
    case protocol::Event::power_back: return Transition::power_back;
    case protocol::Event::contact_lost: return Transition::contact_lost;
    case protocol::Event::dag_back: return Transition::dag_back;
  }
  return Transition::power_lost;
}

std::string_view to_string(IntentStatus status) noexcept {
  return name_of(kIntentStatuses, status);
}
std::optional<IntentStatus> parse_intent_status(std::string_view text) noexcept {
  return parse_name(kIntentStatuses, text);
}

std::string_view to_string(ConfigScope scope) noexcept {
  return name_of(kConfigScopes, scope);
}
std::optional<ConfigScope> parse_config_scope(std::string_view text) noexcept {
  return parse_name(kConfigScopes, text);
}

}  // namespace dag::store
