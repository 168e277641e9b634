#include "dag/edge/run.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "dag/common/errno_text.hpp"
#include "dag/common/files.hpp"
#include "dag/common/log.hpp"
#include "dag/edge/agent.hpp"
#include "dag/mqtt/client.hpp"
#include "dag/protocol/topics.hpp"

extern char** environ;  // NOLINT: POSIX

namespace dag::edge {
namespace {

using json = nlohmann::json;

// Bridges the network thread's callbacks to the agent thread: a queue and an eventfd.
class EventQueue final : public mqtt::Handler {
 public:
  [[nodiscard]] int fd() const { return wake_.fd(); }
  void on_connected(bool /*session_present*/) override {
    push({TransportEvent::Kind::connected, {}, {}});
  }
  void on_disconnected(const std::string& reason) override {
    log::warn("mqtt.disconnected", {{"reason", reason}});
    push({TransportEvent::Kind::disconnected, {}, {}});
  }
  void on_message(mqtt::Message m) override {
    push({TransportEvent::Kind::message, std::move(m.topic), std::move(m.payload)});
  }
  void on_published(int mid) override { push({TransportEvent::Kind::published, {}, {}, mid}); }
  std::deque<TransportEvent> take() {
    wake_.drain();
    std::lock_guard lock(mutex_);
    std::deque<TransportEvent> out;
    out.swap(events_);
    return out;
  }

 private:
  void push(TransportEvent e) {
    {
      std::lock_guard lock(mutex_);
      events_.push_back(std::move(e));
    }
    wake_.signal();
  }
  EventFd wake_;
  std::mutex mutex_;
  std::deque<TransportEvent> events_;
};

class ClientTransport final : public Transport {
 public:
  explicit ClientTransport(mqtt::Client& c) : client_(c) {}
  Result<int> publish(const std::string& topic, std::string_view payload, int qos,
                      bool retain) override {
    return client_.publish(topic, payload, qos, retain);
  }
  [[nodiscard]] bool connected() const override { return client_.connected(); }

 private:
  mqtt::Client& client_;
};

class ControlSocket {
 public:
  static Result<ControlSocket> open(const std::filesystem::path& path) {
    ControlSocket s;
    s.path_ = path;
    sockaddr_un addr{};
    if (path.string().size() >= sizeof addr.sun_path) {
      return fail(Errc::config, "control socket path too long: " + path.string());
    }
    s.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s.fd_ < 0) return fail(Errc::io, std::string("control socket: ") + errno_text());
    ::unlink(path.c_str());
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(s.fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return fail(Errc::io, "control socket bind " + path.string() + ": " + errno_text());
    }
    ::chmod(path.c_str(), 0600);
    return s;
  }
  ControlSocket() = default;
  ControlSocket(ControlSocket&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  ControlSocket& operator=(ControlSocket&&) = delete;
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;
  ~ControlSocket() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(path_.c_str());
    }
  }
  [[nodiscard]] int fd() const { return fd_; }

  template <class Fn>
  void serve(Fn&& handle) {
    char buf[512];
    sockaddr_un from{};
    socklen_t from_len = sizeof from;
    while (true) {
      const ssize_t n =
          ::recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
      if (n < 0) return;
      const std::string reply = handle(std::string_view(buf, static_cast<std::size_t>(n)));
      // Only a client that bound an address can be answered; a lost reply is the client's
      // timeout, never the agent's problem.
      if (from_len > sizeof(sa_family_t) &&
          ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from),
                   from_len) < 0) {
        log::debug("control.reply_lost", {{"error", errno_text()}});
      }
      from_len = sizeof from;
    }
  }

 private:
  int fd_{-1};
  std::filesystem::path path_;
};

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return std::string(s);
}

void run_shutdown_command(const std::string& command) {
  pid_t pid = 0;
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-const-cast): posix_spawn's historical signature
  if (::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char* const*>(argv), environ) !=
      0) {
    log::error("shutdown.spawn_failed", {{"error", errno_text()}});
    return;
  }
  log::warn("shutdown.started", {{"pid", pid}});
}

std::optional<Tunables> load_tunables(const std::filesystem::path& path, const Tunables& base) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  const auto outcome = apply_delta(base, j);
  return outcome.applied;
}

}  // namespace

std::filesystem::path control_socket_path(const std::filesystem::path& state_dir) {
  return state_dir / "control.sock";
}

Result<std::string> control_request(const std::filesystem::path& state_dir,
                                    std::string_view command, std::chrono::milliseconds timeout) {
  const auto server = control_socket_path(state_dir);
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::io, std::string("socket: ") + errno_text());
  // An abstract reply address: nothing to clean up on disk.
  sockaddr_un me{};
  me.sun_family = AF_UNIX;
  const std::string name = "dag-edge-ctl-" + std::to_string(::getpid()) + "-" + std::to_string(fd);
  std::memcpy(me.sun_path + 1, name.data(), std::min(name.size(), sizeof me.sun_path - 2));
  const auto me_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  sockaddr_un to{};
  to.sun_family = AF_UNIX;
  std::strncpy(to.sun_path, server.c_str(), sizeof to.sun_path - 1);
  auto done = [fd](Result<std::string> r) {
    ::close(fd);
    return r;
  };
  if (::bind(fd, reinterpret_cast<sockaddr*>(&me), me_len) != 0) {
    return done(fail(Errc::io, std::string("bind: ") + errno_text()));
  }
  if (::sendto(fd, command.data(), command.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) <
      0) {
    return done(fail(Errc::unavailable,
                     "dag-edge is not running (" + server.string() + ": " + errno_text() + ")"));
  }
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) {
    return done(fail(Errc::timeout, "no answer from dag-edge"));
  }
  char buf[65536];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) return done(fail(Errc::io, std::string("recv: ") + errno_text()));
  return done(std::string(buf, static_cast<std::size_t>(n)));
}

Result<void> materialise_tls(const EdgeSettings& s, TlsFiles& out) {
  auto files = write_tls_files(s.state_dir / "tls", s.ca_pem, s.cert_pem, s.key_pem);
  if (!files) return Unexpected<Error>{files.error()};
  out = *std::move(files);
  return ok();
}

int run_agent(const EdgeSettings& settings, const AgentInfo& info) {
  // Signals arrive through a descriptor so that shutdown is one more event of the loop;
  // block them before any thread exists so that every thread inherits the mask.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  const int sig_fd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  signal(SIGPIPE, SIG_IGN);  // NOLINT(cert-err33-c)

  std::error_code ec;
  std::filesystem::create_directories(settings.state_dir, ec);
  if (ec) {
    log::error("state_dir.create_failed",
               {{"dir", settings.state_dir.string()}, {"error", ec.message()}});
    return 1;
  }
  TlsFiles tls;
  if (auto r = materialise_tls(settings, tls); !r) {
    log::error("tls.write_failed", {{"error", r.error().message}});
    return 1;
  }
  auto outbox = Outbox::open(settings.state_dir, settings.outbox_capacity);
  if (!outbox) {
    log::error("outbox.open_failed", {{"error", outbox.error().message}});
    return 1;
  }
  if (outbox->torn_bytes_dropped() > 0) {
    log::warn("outbox.torn_tail_dropped", {{"bytes", outbox->torn_bytes_dropped()}});
  }
  log::info("outbox.opened",
            {{"pending", outbox->pending().size()}, {"next_seq", outbox->next_seq()}});

  std::unique_ptr<PowerSource> power;
  SimLine* sim_line = nullptr;
  if (settings.power_source == "sim") {
    auto line = std::make_unique<SimLine>(settings.sim_initial_on);
    sim_line = line.get();
    power = std::move(line);
  } else {
    auto line = open_gpiod_line(settings.gpio_chip, settings.gpio_line, settings.gpio_active_low);
    if (!line) {
      // A chip or line that does not exist is a configuration mistake, not an outage.
      log::error("power.open_failed", {{"error", line.error().message}});
      return line.error().code == Errc::not_found ? 2 : 1;
    }
    power = std::move(*line);
  }
  std::unique_ptr<BatteryGauge> gauge;
  SimGauge* sim_gauge = nullptr;
  if (settings.battery_gauge == "max17040") {
    gauge = std::make_unique<Max17040Gauge>(settings.i2c_device, settings.i2c_address);
  } else if (settings.battery_gauge == "sim") {
    auto g = std::make_unique<SimGauge>();
    sim_gauge = g.get();
    gauge = std::move(g);
  } else {
    gauge = std::make_unique<NoGauge>();
  }

  auto control = ControlSocket::open(control_socket_path(settings.state_dir));
  if (!control) {
    log::error("control.open_failed", {{"error", control.error().message}});
    return 1;
  }

  EventQueue events;
  mqtt::Options opts;
  opts.client_id = settings.device_id;
  opts.host = settings.broker_host;
  opts.port = settings.broker_port;
  opts.keepalive_s = settings.keepalive_s;
  opts.protocol_version = settings.protocol_version;
  opts.ca_file = tls.ca.string();
  opts.cert_file = tls.cert.string();
  opts.key_file = tls.key.string();
  opts.will = mqtt::Will{protocol::presence_topic(settings.device_id), "disconnected", 1, true};
  auto client = mqtt::Client::create(opts, events);
  if (!client) {
    log::error("mqtt.create_failed", {{"error", client.error().message}});
    return 2;
  }
  for (const auto& filter : protocol::device_subscriptions(settings.device_id)) {
    (*client)->subscribe(filter, 1);
  }
  ClientTransport transport(**client);
  SystemClock clock;
  Agent agent(settings, info, clock, *power, *gauge, *outbox, transport);

  const auto tunables_path = settings.state_dir / "tunables.json";
  if (auto saved = load_tunables(tunables_path, settings.tunables)) agent.restore_tunables(*saved);
  auto apply_log_level = [](const Tunables& t) {
    log::Level l{};
    if (log::parse_level(t.log_level, l)) log::set_level(l);
  };
  apply_log_level(agent.tunables());
  agent.set_tunables_listener([&](const Tunables& t) {
    apply_log_level(t);
    if (auto r = write_private_file(tunables_path, t.to_json().dump()); !r) {
      log::warn("tunables.save_failed", {{"error", r.error().message}});
    }
  });
  agent.set_shutdown_hook([&] { run_shutdown_command(settings.shutdown_command); });

  log::info("agent.start",
            {{"device", settings.device_id},
             {"broker", settings.broker_host + ":" + std::to_string(settings.broker_port)},
             {"source", power->describe()},
             {"version", info.version}});
  agent.start();
  (*client)->start();

  auto handle_control = [&](std::string_view raw) -> std::string {
    const std::string cmd = trim(raw);
    if (cmd == "status") return agent.status().dump();
    std::istringstream in(cmd);
    std::string verb;
    in >> verb;
    if (sim_line == nullptr && (verb == "on" || verb == "off" || verb == "toggle")) {
      return "error: the power source is not simulated";
    }
    if (verb == "on" || verb == "off" || verb == "toggle") {
      if (verb == "toggle") {
        sim_line->toggle();
      } else {
        sim_line->set_level(verb == "on");
      }
      return "ok";
    }
    if (verb == "battery") {
      if (sim_gauge == nullptr) return "error: the battery gauge is not simulated";
      double percent = -1;
      double volts = -1;
      in >> percent >> volts;
      if (in.fail() || percent < 0 || percent > 100 || volts < 0 || volts > 10) {
        return "error: usage: battery <percent 0..100> <volts>";
      }
      sim_gauge->set({percent, volts});
      agent.on_timer();
      return "ok";
    }
    return "error: unknown command '" + cmd + "' (status, on, off, toggle, battery P V)";
  };

  bool running = true;
  while (running) {
    const auto now = clock.steady();
    const auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(agent.next_deadline() - now);
    const int timeout = static_cast<int>(std::clamp<std::int64_t>(wait.count() + 1, 0, 3'600'000));
    pollfd fds[4] = {{sig_fd, POLLIN, 0},
                     {events.fd(), POLLIN, 0},
                     {control->fd(), POLLIN, 0},
                     {power->fd(), POLLIN, 0}};
    const int n = ::poll(fds, power->fd() >= 0 ? 4 : 3, timeout);
    if (n < 0 && errno != EINTR) {
      log::error("poll.failed", {{"error", errno_text()}});
      break;
    }
    if (n > 0 && (fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo si{};
      if (::read(sig_fd, &si, sizeof si) != static_cast<ssize_t>(sizeof si)) {
        // Spurious wake-up: nothing was queued.
      } else if (si.ssi_signo == SIGHUP) {
        log::info("agent.sighup_ignored", {});
      } else {
        log::info("agent.stop", {{"signal", si.ssi_signo}});
        running = false;
      }
    }
    if (n > 0 && (fds[3].revents & POLLIN) != 0) {
      if (auto edges = power->drain(); edges) {
        agent.on_line_events(*edges);
      } else {
        log::error("power.drain_failed", {{"error", edges.error().message}});
      }
    }
    if (n > 0 && (fds[1].revents & POLLIN) != 0) {
      for (auto& e : events.take()) agent.on_transport(e);
    }
    if (n > 0 && (fds[2].revents & POLLIN) != 0) control->serve(handle_control);
    agent.on_timer();
  }

  // A clean goodbye: retained presence says so, and DISCONNECT tells the broker to drop the
  // will (the device did not vanish; it was stopped). First let outstanding replies and the
  // goodbye's PUBACK arrive (bounded): a socket closed with unread input is reset by the
  // kernel, and the reset can destroy the DISCONNECT before the broker reads it.
  const auto goodbye =
      transport.publish(protocol::presence_topic(settings.device_id), "disconnected", 1, true);
  bool acked = !goodbye;
  const auto deadline = clock.steady() + std::chrono::seconds{2};
  while ((!acked || agent.in_flight() > 0) && clock.steady() < deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.steady()).count();
    pollfd p{events.fd(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left, 0))) <= 0) break;
    for (auto& e : events.take()) {
      if (e.kind == TransportEvent::Kind::published && goodbye && e.mid == *goodbye) acked = true;
      if (e.kind == TransportEvent::Kind::disconnected) acked = true;  // nothing more will come
      agent.on_transport(e);
    }
  }
  (*client)->stop();
  ::close(sig_fd);
  return 0;
}

}  // namespace dag::edge
