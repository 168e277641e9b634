#include "dag/test/mosquitto_broker.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dag/broker/acl.hpp"
#include "dag/common/pki.hpp"
#include "dag/test/ports.hpp"

namespace dag::test {
namespace {

std::string current_user() {
  passwd pw{};
  passwd* found = nullptr;
  std::array<char, 4096> buf{};
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return {};  // mosquitto's default user then; fine unless started as root
  }
  return pw.pw_name;
}

}  // namespace

Result<std::unique_ptr<MosquittoBroker>> MosquittoBroker::start(const TestPki& pki,
                                                                BrokerOptions options) {
  std::unique_ptr<MosquittoBroker> b{new MosquittoBroker()};
  b->options_ = std::move(options);
  b->ca_file_ = pki.ca_file();

  broker::BrokerConfig conf;
  conf.host = "127.0.0.1";
  conf.cafile = pki.ca_file();
  conf.certfile = pki.server_cert_file();
  conf.keyfile = pki.server_key_file();
  if (b->options_.use_crl) conf.crlfile = pki.crl_file();
  conf.acl_file = b->acl_file();
  conf.user = current_user();
  conf.persistence = b->options_.persistence;
  conf.persistence_location = b->dir() / "data";
  conf.log_types = b->options_.log_types;
  conf.log_dests = {"stderr"};
  conf.plugin = b->options_.plugin;
  if (conf.persistence) std::filesystem::create_directories(conf.persistence_location);

  broker::AclConfig acl;
  acl.service_identities = b->options_.service_identities;
  auto acl_text = broker::render_acl(acl);
  if (!acl_text) return Unexpected<Error>{acl_text.error()};
  if (auto w = pki::write_pem_file(b->acl_file(), *acl_text, pki::kSharedReadable); !w) {
    return Unexpected<Error>{w.error()};
  }

  // A port picked by free_loopback_port can be taken before mosquitto binds it.
  const int attempts = b->options_.port ? 1 : 3;
  Result<void> launched = fail(Errc::internal, "not started");
  for (int i = 0; i < attempts; ++i) {
    if (b->options_.port) {
      b->port_ = *b->options_.port;
    } else {
      auto port = free_loopback_port();
      if (!port) return Unexpected<Error>{port.error()};
      b->port_ = *port;
    }
    conf.port = b->port_;
    auto text = broker::render_mosquitto_conf(conf);
    if (!text) return Unexpected<Error>{text.error()};
    if (auto w = pki::write_pem_file(b->conf_file(), *text, pki::kSharedReadable); !w) {
      return Unexpected<Error>{w.error()};
    }
    launched = b->launch();
    if (launched) return b;
    if (launched.error().message.find("Address already in use") == std::string::npos) break;
  }
  return Unexpected<Error>{launched.error()};
}

Result<void> MosquittoBroker::launch() {
  ProcessOptions p;
  p.argv = {"mosquitto", "-c", conf_file().string()};
  p.log_file = log_file();
  p.cwd = dir();
  auto proc = Process::spawn(std::move(p));
  if (!proc) return Unexpected<Error>{proc.error()};
  process_ = std::move(*proc);
  // "Opening ... listen socket" is logged before bind(); "running" comes after every
  // listener is bound, privileges are dropped and the TLS files are loaded.
  const std::string opening = fmt::format("listen socket on port {}.", port_);
  const auto timeout = options_.timeout;
  const bool opened = process_->wait_for_line(opening, timeout).has_value();
  const bool up =
      opened &&
      process_->wait_for_line(std::regex{R"(mosquitto version \S+ running)"}, timeout).has_value();
  if (up) return ok();
  process_->stop(SIGKILL);
  return fail(Errc::unavailable,
              fmt::format("mosquitto did not come up on port {} within {} ms:\n{}", port_,
                          timeout.count(), process_->output()));
}

MosquittoBroker::~MosquittoBroker() {
  (void)stop();
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- mosquitto log (" << log_file().string() << ") ----\n"
              << log() << "---- end of mosquitto log ----\n";
  }
}

Result<void> MosquittoBroker::stop() {
  if (!process_ || !process_->running()) return ok();
  // mosquitto 2.0.11 installs its signal handlers, logs "running" and only then sets its
  // run flag, so a SIGTERM that lands in between is forgotten. Repeating it is harmless.
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!process_->signal(SIGTERM)) break;
    if (process_->wait_for_exit(std::chrono::milliseconds{200})) return ok();
  }
  if (!process_->running()) return ok();
  process_->stop(SIGKILL);
  return fail(Errc::timeout, "mosquitto did not exit after SIGTERM; killed");
}

Result<void> MosquittoBroker::restart() {
  if (auto s = stop(); !s) return s;
  return launch();
}

Result<void> MosquittoBroker::signal(int sig) {
  if (!process_) return fail(Errc::unavailable, "broker not started");
  return process_->signal(sig);
}

Result<void> MosquittoBroker::sighup() {
  if (!process_) return fail(Errc::unavailable, "broker not started");
  const std::size_t mark = process_->line_count();
  if (auto s = process_->signal(SIGHUP); !s) return s;
  if (!process_->wait_for_line("Reloading config.", options_.timeout, mark)) {
    return fail(Errc::timeout, "mosquitto did not log a reload after SIGHUP");
  }
  return ok();
}

bool MosquittoBroker::running() {
  return process_ && process_->running();
}

std::size_t MosquittoBroker::line_count() const {
  return process_ ? process_->line_count() : 0;
}

std::optional<std::string> MosquittoBroker::wait_for_log(std::string_view substring,
                                                         std::chrono::milliseconds timeout,
                                                         std::size_t from) {
  if (!process_) return std::nullopt;
  return process_->wait_for_line(substring, timeout, from);
}

std::optional<std::string> MosquittoBroker::wait_for_log(const std::regex& pattern,
                                                         std::chrono::milliseconds timeout,
                                                         std::size_t from) {
  if (!process_) return std::nullopt;
  return process_->wait_for_line(pattern, timeout, from);
}

std::string MosquittoBroker::log() const {
  std::ifstream in{log_file()};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace dag::test
