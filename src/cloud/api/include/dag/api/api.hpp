// dagd's REST API (docs/api.md, docs/openapi.yaml): routing, authentication and the
// handlers, over the store. Framework-free: a Request in, a Response out, so that unit
// tests and the fuzzer call it without a server; dag/api/server.hpp puts it on HTTP.
//
// Every error is answered `{code, message}` with its status (dag/api/error.hpp). A token
// for one account gets 404 on another account's resources, exactly as for something that
// does not exist. Store failures answer 500 and are logged with the store's message.
//
// Thread-safety: handle() and open_stream() may be called from any number of threads at
// once (each store call runs in its own transaction). Blocking: store I/O; a login also
// spends ~0.1 s of CPU on argon2id; a target test waits for its channel (bounded by the
// channel's timeouts; tests are sent one at a time).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "dag/api/auth.hpp"
#include "dag/api/error.hpp"
#include "dag/api/http.hpp"
#include "dag/api/hub.hpp"
#include "dag/common/clock.hpp"
#include "dag/notify/worker.hpp"
#include "dag/store/store.hpp"

namespace dag::api {

struct ApiOptions {
  /// HMAC key of the tokens (dagd makes a random one when none is configured, which
  /// signs everybody out at each restart).
  std::string jwt_secret;
  std::chrono::seconds token_ttl{7200};
  /// Base of the links in mails (verification, dashboard); no trailing slash.
  std::string public_url;
  std::size_t max_body{std::size_t{64} * 1024};
  LoginLimiter::Limits login{};
  /// At most one verification mail per target this often, on request.
  std::int64_t verify_resend_interval_ms{60'000};
  /// Origins allowed to call the API from a browser ("*": any). Empty: same origin only.
  std::vector<std::string> cors_origins;
  /// Use the first address of X-Forwarded-For as the client's (behind a reverse proxy
  /// only: anybody can send the header).
  bool trust_forwarded_for{false};
  /// Non-empty: /metrics wants `Authorization: Bearer <metrics_token>` (401 otherwise), for
  /// an API port that faces the internet. Empty: /metrics is open.
  std::string metrics_token;
  /// The document served at /v1/openapi.yaml.
  std::string openapi_yaml;
};

/// What the API reads from, or asks of, the rest of dagd. Every member may be empty.
struct ApiHooks {
  std::function<bool()> broker_ok;       ///< /readyz
  std::function<std::string()> metrics;  ///< the /metrics text
  std::function<void()> wake_notifier;   ///< verification mails wanted
  /// Channels for test notifications: separate instances from the outbox worker's (a
  /// channel serves one thread at a time). Null channel: that kind cannot be tested.
  notify::Channels test_channels{};
};

/// What a new event stream starts with.
struct StreamStart {
  std::string account_id;
  /// Sent first: a snapshot, or the events missed since Last-Event-ID.
  std::vector<StreamEvent> initial;
  /// Stream the hub's events after this id.
  std::uint64_t after{0};
};

/// docs/openapi.yaml, as built into the program.
std::string_view openapi_document();

/// Publishes a device's current view (the Device shape) to its account's streams.
void publish_device(EventHub& hub, const store::Device& device);

/// One event in the `text/event-stream` format (id, event, data lines).
std::string format_sse(const StreamEvent& event);

class Api {
 public:
  /// Every reference must outlive the Api.
  Api(store::Store& store, const Clock& clock, ApiOptions options, EventHub& hub, ApiHooks hooks);

  /// Answers everything but the body of an event stream.
  Response handle(const Request& request);

  /// For GET /v1/accounts/{id}/stream: checks the token (header or ?access_token=) and the
  /// account, watches the account in the hub (EventHub::watch) and says what to send first;
  /// the caller then holds hub.open_stream() while it streams. Errors: unauthorized,
  /// not_found, internal.
  ApiResult<StreamStart> open_stream(const Request& request, std::string_view account_id);

  /// Publishes a device's current view to its account's streams (dagd calls it after the
  /// ingest committed a change; the API after a rename).
  void publish_device(const store::Device& device);

  /// The `Access-Control-*` headers for a request's Origin, if it is allowed.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> cors_headers(
      const Request& request) const;

  /// The route template a path matches ("/v1/devices/{deviceId}"), or "" (for metrics).
  [[nodiscard]] static std::string route_of(std::string_view path);
  /// The methods the routes matching `path` take ("GET, PATCH"), for Allow.
  [[nodiscard]] static std::string allowed_methods(std::string_view path);

  /// The `{name}` segments of a matched route (private header route.hpp).
  struct Params;

 private:
  using Handler = ApiResult<Response> (Api::*)(const Request&, const Params&);
  struct Route;
  static const std::vector<Route>& routes();

  ApiResult<Response> dispatch(const Request& request, std::string& route);
  [[nodiscard]] std::string client_address(const Request& request) const;
  ApiResult<std::string> authenticate(const Request& request, bool allow_query_token) const;
  ApiResult<store::Account> own_account(const Request& request, std::string_view account_id);
  ApiResult<store::Account> account_of(const std::string& subject, std::string_view account_id);
  ApiResult<store::Device> own_device(const Request& request, std::string_view device_id);
  [[nodiscard]] std::int64_t now_ms() const;

  // Handlers (accounts.cpp, devices.cpp, targets.cpp, api.cpp).
  ApiResult<Response> login(const Request& r, const Params& p);
  ApiResult<Response> get_account(const Request& r, const Params& p);
  ApiResult<Response> patch_account(const Request& r, const Params& p);
  ApiResult<Response> change_password(const Request& r, const Params& p);
  ApiResult<Response> get_preferences(const Request& r, const Params& p);
  ApiResult<Response> patch_preferences(const Request& r, const Params& p);
  ApiResult<Response> list_devices(const Request& r, const Params& p);
  ApiResult<Response> get_device(const Request& r, const Params& p);
  ApiResult<Response> patch_device(const Request& r, const Params& p);
  ApiResult<Response> list_events(const Request& r, const Params& p);
  ApiResult<Response> get_uptime(const Request& r, const Params& p);
  ApiResult<Response> list_battery(const Request& r, const Params& p);
  ApiResult<Response> list_targets(const Request& r, const Params& p);
  ApiResult<Response> add_target(const Request& r, const Params& p);
  ApiResult<Response> delete_target(const Request& r, const Params& p);
  ApiResult<Response> test_target(const Request& r, const Params& p);
  ApiResult<Response> resend_verification(const Request& r, const Params& p);
  ApiResult<Response> verify_link(const Request& r, const Params& p);
  ApiResult<Response> stream_placeholder(const Request& r, const Params& p);
  ApiResult<Response> healthz(const Request& r, const Params& p);
  ApiResult<Response> readyz(const Request& r, const Params& p);
  ApiResult<Response> metrics(const Request& r, const Params& p);
  ApiResult<Response> openapi(const Request& r, const Params& p);

  ApiResult<store::NotificationTarget> own_target(const store::Account& account,
                                                  std::string_view target_id);

  store::Store& store_;
  const Clock& clock_;
  ApiOptions options_;
  EventHub& hub_;
  ApiHooks hooks_;
  TokenService tokens_;
  LoginLimiter limiter_;
  std::string dummy_hash_;  // verified for unknown users, so they take as long as others
  std::mutex test_mutex_;   // one test notification at a time (channels are single-threaded)

  // Rendered device lists by account, valid while the store's change marker stays the
  // same (any commit, from any process, changes it): a dashboard polling a quiet
  // deployment costs a token check and a copy. Bounded by kListCacheBytes in all.
  struct CachedList {
    std::uint64_t marker{0};
    std::shared_ptr<const std::string> body;
  };
  std::shared_ptr<const std::string> cached_list(const std::string& account_id,
                                                 std::uint64_t marker);
  void cache_list(const std::string& account_id, std::uint64_t marker, std::string body);
  std::mutex lists_mutex_;
  std::unordered_map<std::string, CachedList> lists_;
  std::size_t lists_bytes_{0};
};

}  // namespace dag::api
