#include <condition_variable>
#include <csignal>
#include <fstream>
#include <mutex>

#include "dag/common/errno_text.hpp"
#include "dag/mqtt/client.hpp"

#include "internal.hpp"

namespace dag::ctl {
namespace {

// The presence plugin's command topic (src/broker/plugin): payload = the device id.
constexpr const char* kKickTopic = "$CONTROL/dag-presence/v1/kick";

class Waiter final : public mqtt::Handler {
 public:
  void on_connected(bool /*session_present*/) override { set(connected_); }
  void on_disconnected(const std::string& reason) override {
    std::lock_guard lock(mu_);
    last_error_ = reason;
  }
  void on_message(mqtt::Message /*message*/) override {}
  void on_publish_result(int mid, int reason_code) override {
    std::lock_guard lock(mu_);
    acked_ = mid;
    reason_ = reason_code;
    cv_.notify_all();
  }
  int reason() {
    std::lock_guard lock(mu_);
    return reason_;
  }
  bool wait_connected(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return connected_; });
  }
  bool wait_acked(int mid, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return acked_ == mid; });
  }
  std::string last_error() {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  void set(bool& flag) {
    std::lock_guard lock(mu_);
    flag = true;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool connected_{false};
  int acked_{-1};
  int reason_{0};
  std::string last_error_;
};

}  // namespace

Result<void> reload_broker(const Paths& paths) {
  std::ifstream in(paths.pid_file);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) {
    return fail(Errc::unavailable, "no broker pid in " + paths.pid_file.string());
  }
  if (::kill(static_cast<pid_t>(pid), SIGHUP) != 0) {
    return fail(Errc::unavailable, "broker pid " + std::to_string(pid) + ": " + errno_text());
  }
  return ok();
}

Result<void> kick_device(const Paths& paths, const Deployment& deployment,
                         const std::string& device_id) {
  mqtt::Options o;
  o.client_id = kCtlIdentity;
  o.host = "127.0.0.1";
  o.port = deployment.service_port;
  o.ca_file = paths.ca_cert.string();
  o.cert_file = paths.ctl_cert.string();
  o.key_file = paths.ctl_key.string();
  o.clean_session = true;
  o.keepalive_s = 10;
  Waiter waiter;
  auto client = mqtt::Client::create(o, waiter);
  if (!client) return Unexpected<Error>{client.error()};
  (*client)->start();
  constexpr auto kTimeout = std::chrono::seconds{5};
  Result<void> result = ok();
  if (!waiter.wait_connected(kTimeout)) {
    result = fail(Errc::unavailable, "cannot reach the broker's service listener on port " +
                                         std::to_string(deployment.service_port) + ": " +
                                         waiter.last_error());
  } else if (auto mid = (*client)->publish(kKickTopic, device_id, 1, false); !mid) {
    result = Unexpected<Error>{mid.error()};
  } else if (!waiter.wait_acked(*mid, kTimeout)) {
    result = fail(Errc::timeout, "the broker did not acknowledge the command");
  } else if (waiter.reason() >= 0x80) {
    // 0x87: the ACL lacks the $CONTROL grant (an ACL written before dagctl could kick).
    result = fail(Errc::unavailable, "the broker refused the command (reason " +
                                         std::to_string(waiter.reason()) +
                                         "); regenerate broker/acl with this dagctl's rules");
  }
  (*client)->stop();
  return result;
}

}  // namespace dag::ctl
