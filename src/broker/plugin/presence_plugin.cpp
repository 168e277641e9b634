// dag_presence.so: a Mosquitto 2.0 plugin (API version 5) that publishes AWS IoT lifecycle
// events on $aws/events/presence/{connected|disconnected}/{clientId}, so the cloud learns
// of devices that set no last will (the original Python app). Contract: docs/protocol.md,
// "The presence plugin".
//
// How it learns of connections (Mosquitto 2.0.11 has no CONNECT event, and with
// use_identity_as_username it does not call BASIC_AUTH for certificate clients):
// - Connected: the first ACL_CHECK of a live connection. Every PUBLISH and SUBSCRIBE of a
//   client is checked, and so is every message delivered to it, so a client is seen as
//   soon as it subscribes, publishes or receives. A client that connects and does nothing
//   else is not seen (and gets no disconnected event either). Mosquitto 2.0.11 checks a
//   will's topic only when it sends the will, not at CONNECT.
// - "Live" comes from mosquitto__get_state(), an internal broker function that the
//   mosquitto executable exports: only checks of a client in state active (3) count. Checks
//   also run for offline persistent sessions (a message queued for them, state
//   disconnected) and for a will sent after the disconnect; those are no connection.
// - Disconnected: the DISCONNECT event. Its `reason` is always -1 in 2.0.11
//   (context__disconnect passes -1), so the reason comes from the client's state at that
//   moment: disconnecting (2) or disconnect_with_will (18) = the client sent DISCONNECT;
//   duplicate (17) = another connection took its client id over; active (3) = the socket
//   closed or failed, the keep-alive expired or the client broke the protocol (the broker
//   does not tell the plugin which: CONNECTION_LOST).
// - No events when the broker stops: 2.0.11 calls no DISCONNECT callback at shutdown.
//
// One command (for `dagctl device revoke`: the broker re-reads its CRL on SIGHUP but keeps
// open connections): a PUBLISH to $CONTROL/dag-presence/v1/kick (kKickTopic) whose payload is
// a device id drops that client's connection without its will
// (mosquitto_kick_client_by_clientid(id, false)); its disconnected event says
// SERVER_INITIATED_DISCONNECT. Only service identities (ignore_usernames) may send it, and
// the acl_file must grant them write access to the topic (Mosquitto 2.0.11 checks the ACL
// before it hands a $CONTROL message to the plugin). Anything else is logged and ignored.
// The callback always returns success: in 2.0.11 an error return closes the SENDER's
// connection, and the broker answers PUBACK "success" (after the callback) whatever it does.
// Only a connection the tracker saw live is dropped: kicking an offline persistent session
// would make 2.0.11 put it on its session-expiry list a second time (a use-after-free when
// it expires). A client that connected but did nothing yet is therefore not dropped.
//
// Without mosquitto__get_state (another broker build), the plugin logs an error and stays
// passive (no events, no command) rather than publish wrong events.
//
// Every ACL_CHECK returns MOSQ_ERR_PLUGIN_DEFER, so the acl_file alone decides access.
// Callbacks never let an exception escape into the broker. Thread-safety: Mosquitto 2.0 runs
// plugins on its single main thread; nothing here is shared with other threads.
#include <dlfcn.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "presence_tracker.hpp"

namespace dag::broker::presence {
namespace {

constexpr std::string_view kName = "dag_presence";

// enum mosquitto_client_state in Mosquitto 2.0 (lib/mosquitto_internal.h, unchanged since 1.6).
constexpr int kStateDisconnecting = 2;
constexpr int kStateActive = 3;
constexpr int kStateDuplicate = 17;
constexpr int kStateDisconnectWithWill = 18;

using GetStateFn = int (*)(const mosquitto*);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string str_or_empty(const char* s) {
  return s == nullptr ? std::string{} : std::string{s};
}

void log_line(int level, const std::string& line) {
  mosquitto_log_printf(level, "%s: %s", kName.data(), line.c_str());
}

// A version 4 UUID. Uniqueness is what matters here, not secrecy: should getrandom fail
// (it does not on Linux >= 3.17), a per-process seed and a counter still make unique ids.
class SessionIds {
 public:
  SessionIds() {
    if (getrandom(&seed_, sizeof seed_, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof seed_)) {
      seed_ = static_cast<std::uint64_t>(now_ms()) ^ (static_cast<std::uint64_t>(getpid()) << 40);
    }
  }

  std::string next() {
    std::array<std::uint8_t, 16> b{};
    if (getrandom(b.data(), b.size(), GRND_NONBLOCK) != static_cast<ssize_t>(b.size())) {
      const std::uint64_t hi = splitmix(seed_ + ++counter_);
      const std::uint64_t lo = splitmix(hi ^ counter_);
      for (std::size_t i = 0; i < 8; ++i) {
        b[i] = static_cast<std::uint8_t>(hi >> (8 * i));
        b[8 + i] = static_cast<std::uint8_t>(lo >> (8 * i));
      }
    }
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0fU) | 0x40U);  // version 4
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3fU) | 0x80U);  // RFC 9562 variant
    constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
      out += kHex[b[i] >> 4U];
      out += kHex[b[i] & 0x0fU];
    }
    return out;
  }

 private:
  static std::uint64_t splitmix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27U)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31U);
  }
  std::uint64_t seed_{0};
  std::uint64_t counter_{0};
};

struct Plugin {
  Plugin(Options options, GetStateFn get_state_fn)
      : get_state(get_state_fn),
        first_version(now_ms() * 1000),
        tracker(std::move(options), first_version, [this] { return ids.next(); }) {}

  mosquitto_plugin_id_t* id{nullptr};
  GetStateFn get_state;
  std::int64_t first_version;
  SessionIds ids;
  PresenceTracker tracker;
  // True while mosquitto_kick_client_by_clientid runs: it calls the DISCONNECT callback of
  // the client it drops synchronously, with the client in state "disconnecting".
  bool kicking{false};
};

void publish(const Publication& p) {
  const int rc =
      mosquitto_broker_publish_copy(nullptr, p.topic.c_str(), static_cast<int>(p.payload.size()),
                                    p.payload.data(), 1, false, nullptr);
  if (rc == MOSQ_ERR_SUCCESS) {
    log_line(MOSQ_LOG_DEBUG, "event=published topic=" + p.topic + " payload=" + p.payload);
  } else {
    log_line(MOSQ_LOG_WARNING, "event=publish_failed topic=" + p.topic +
                                   " error=" + std::string{mosquitto_strerror(rc)});
  }
}

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::tracked: return "tracked";
    case Verdict::ignored_username: return "ignored_username";
    case Verdict::invalid_client_id: return "invalid_client_id";
  }
  return "?";
}

int on_acl_check(int /*event*/, void* event_data, void* userdata) noexcept {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    const auto* ed = static_cast<const mosquitto_evt_acl_check*>(event_data);
    const mosquitto* client = ed->client;
    if (client != nullptr && plugin->tracker.is_new(client) &&
        plugin->get_state(client) == kStateActive) {
      ClientInfo info{str_or_empty(mosquitto_client_id(client)),
                      str_or_empty(mosquitto_client_username(client)),
                      str_or_empty(mosquitto_client_address(client))};
      const std::string id = info.client_id;
      FirstSeen seen = plugin->tracker.first_seen(client, std::move(info), now_ms());
      if (seen.publication) {
        publish(*seen.publication);
      } else {
        log_line(MOSQ_LOG_DEBUG, "event=not_tracked client_id=" + id +
                                     " reason=" + std::string{verdict_name(seen.verdict)});
      }
    }
  } catch (const std::exception& e) {
    log_line(MOSQ_LOG_ERR, std::string{"event=acl_check_failed error="} + e.what());
  } catch (...) {
    log_line(MOSQ_LOG_ERR, "event=acl_check_failed error=unknown");
  }
  // Never decide: the acl_file (or another plugin) does.
  return MOSQ_ERR_PLUGIN_DEFER;
}

DisconnectKind kind_of_state(int state) {
  switch (state) {
    case kStateDisconnecting:
    case kStateDisconnectWithWill: return DisconnectKind::client_initiated;
    case kStateDuplicate: return DisconnectKind::duplicate_client_id;
    case kStateActive: return DisconnectKind::connection_lost;
    default: return DisconnectKind::unknown;
  }
}

int on_disconnect(int /*event*/, void* event_data, void* userdata) noexcept {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    const auto* ed = static_cast<const mosquitto_evt_disconnect*>(event_data);
    if (ed->client != nullptr) {
      const DisconnectKind kind = plugin->kicking ? DisconnectKind::server_initiated
                                                  : kind_of_state(plugin->get_state(ed->client));
      if (auto p = plugin->tracker.disconnected(ed->client, kind, now_ms())) publish(*p);
    }
  } catch (const std::exception& e) {
    log_line(MOSQ_LOG_ERR, std::string{"event=disconnect_failed error="} + e.what());
  } catch (...) {
    log_line(MOSQ_LOG_ERR, "event=disconnect_failed error=unknown");
  }
  return MOSQ_ERR_SUCCESS;
}

// MOSQ_EVT_CONTROL on kKickTopic (see the top of this file).
int on_kick(int /*event*/, void* event_data, void* userdata) noexcept {
  try {
    auto* plugin = static_cast<Plugin*>(userdata);
    const auto* ed = static_cast<const mosquitto_evt_control*>(event_data);
    const std::string sender = str_or_empty(mosquitto_client_username(ed->client));
    const std::string_view payload =
        ed->payload == nullptr
            ? std::string_view{}
            : std::string_view{static_cast<const char*>(ed->payload), ed->payloadlen};
    const KickCommand command = parse_kick(plugin->tracker.options(), sender, payload);
    // The sender is a certificate CN (never blank, no spaces); the payload is shown only
    // once it is known to be a valid device id.
    const std::string who = " sender=" + (sender.empty() ? std::string{"(none)"} : sender);
    if (command.verdict != KickVerdict::accepted) {
      log_line(MOSQ_LOG_WARNING,
               "event=command_ignored command=kick" + who +
                   " reason=" + std::string{kick_verdict_name(command.verdict)} +
                   (command.client_id.empty() ? " payload_bytes=" + std::to_string(payload.size())
                                              : " client_id=" + command.client_id));
      return MOSQ_ERR_SUCCESS;
    }
    const auto key = plugin->tracker.tracked_connection(command.client_id);
    if (!key || plugin->get_state(static_cast<const mosquitto*>(*key)) != kStateActive) {
      log_line(MOSQ_LOG_NOTICE,
               "event=kick_skipped client_id=" + command.client_id + who + " reason=not_connected");
      return MOSQ_ERR_SUCCESS;
    }
    plugin->kicking = true;
    const int rc = mosquitto_kick_client_by_clientid(command.client_id.c_str(), false);
    plugin->kicking = false;
    if (rc == MOSQ_ERR_SUCCESS) {
      log_line(MOSQ_LOG_NOTICE, "event=kicked client_id=" + command.client_id + who);
    } else {
      log_line(MOSQ_LOG_WARNING, "event=kick_failed client_id=" + command.client_id + who +
                                     " error=" + std::string{mosquitto_strerror(rc)});
    }
  } catch (const std::exception& e) {
    log_line(MOSQ_LOG_ERR, std::string{"event=kick_failed error="} + e.what());
  } catch (...) {
    log_line(MOSQ_LOG_ERR, "event=kick_failed error=unknown");
  }
  // Never an error: mosquitto 2.0.11 would close the sender's connection.
  return MOSQ_ERR_SUCCESS;
}

int on_tick(int /*event*/, void* /*event_data*/, void* userdata) noexcept {
  static_cast<Plugin*>(userdata)->tracker.tick();
  return MOSQ_ERR_SUCCESS;
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out.empty() ? "(none)" : out;
}

struct Registration {
  int event;
  MOSQ_FUNC_generic_callback callback;
  const char* event_data;  // the topic for MOSQ_EVT_CONTROL, else null
};
const std::array<Registration, 4> kRegistrations{
    Registration{MOSQ_EVT_ACL_CHECK, on_acl_check, nullptr},
    Registration{MOSQ_EVT_DISCONNECT, on_disconnect, nullptr},
    Registration{MOSQ_EVT_TICK, on_tick, nullptr},
    Registration{MOSQ_EVT_CONTROL, on_kick, kKickTopic}};

int init(mosquitto_plugin_id_t* identifier, void** userdata, const mosquitto_opt* opts,
         int opt_count) {
  std::vector<std::pair<std::string, std::string>> pairs;
  pairs.reserve(static_cast<std::size_t>(std::max(opt_count, 0)));
  for (int i = 0; i < opt_count; ++i) {
    pairs.emplace_back(str_or_empty(opts[i].key), str_or_empty(opts[i].value));
  }
  auto options = parse_options(pairs);
  if (!options) {
    log_line(MOSQ_LOG_ERR, "event=config_error error=" + options.error().message);
    return MOSQ_ERR_INVAL;
  }
  // Resolved at run time so that a broker without it still starts (with the plugin idle).
  auto get_state = reinterpret_cast<GetStateFn>(dlsym(RTLD_DEFAULT, "mosquitto__get_state"));
  if (get_state == nullptr) {
    log_line(MOSQ_LOG_ERR,
             "event=disabled reason=\"this mosquitto does not export mosquitto__get_state; no "
             "lifecycle events will be published\"");
    *userdata = nullptr;
    return MOSQ_ERR_SUCCESS;
  }

  auto plugin = std::make_unique<Plugin>(std::move(*options), get_state);
  plugin->id = identifier;
  for (std::size_t i = 0; i < kRegistrations.size(); ++i) {
    const Registration& r = kRegistrations[i];
    const int rc =
        mosquitto_callback_register(identifier, r.event, r.callback, r.event_data, plugin.get());
    if (rc != MOSQ_ERR_SUCCESS) {
      log_line(MOSQ_LOG_ERR, "event=register_failed callback=" + std::to_string(r.event) +
                                 " error=" + std::string{mosquitto_strerror(rc)});
      // No callback may keep a pointer to the plugin that is about to be freed.
      for (std::size_t j = 0; j < i; ++j) {
        mosquitto_callback_unregister(identifier, kRegistrations[j].event,
                                      kRegistrations[j].callback, kRegistrations[j].event_data);
      }
      return rc;
    }
  }
  log_line(MOSQ_LOG_INFO,
           "event=loaded ignore_usernames=" + join(plugin->tracker.options().ignore_usernames) +
               " first_version=" + std::to_string(plugin->first_version) +
               " command_topic=" + std::string{kKickTopic});
  *userdata = plugin.release();
  return MOSQ_ERR_SUCCESS;
}

}  // namespace
}  // namespace dag::broker::presence

// ---- The plugin's C entry points (the only exported symbols) ----

extern "C" {

__attribute__((visibility("default"))) int mosquitto_plugin_version(int supported_version_count,
                                                                    const int* supported_versions) {
  for (int i = 0; i < supported_version_count; ++i) {
    if (supported_versions[i] == 5) return 5;
  }
  return -1;
}

__attribute__((visibility("default"))) int mosquitto_plugin_init(mosquitto_plugin_id_t* identifier,
                                                                 void** userdata,
                                                                 struct mosquitto_opt* options,
                                                                 int option_count) {
  try {
    return dag::broker::presence::init(identifier, userdata, options, option_count);
  } catch (const std::exception& e) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "dag_presence: event=init_failed error=%s", e.what());
  } catch (...) {
    mosquitto_log_printf(MOSQ_LOG_ERR, "dag_presence: event=init_failed error=unknown");
  }
  return MOSQ_ERR_UNKNOWN;
}

__attribute__((visibility("default"))) int mosquitto_plugin_cleanup(
    void* userdata, struct mosquitto_opt* /*options*/, int /*option_count*/) {
  using dag::broker::presence::Plugin;
  std::unique_ptr<Plugin> plugin{static_cast<Plugin*>(userdata)};
  if (plugin) {
    for (const auto& r : dag::broker::presence::kRegistrations) {
      mosquitto_callback_unregister(plugin->id, r.event, r.callback, r.event_data);
    }
  }
  return MOSQ_ERR_SUCCESS;
}

}  // extern "C"
