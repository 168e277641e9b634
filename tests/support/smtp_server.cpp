#include "dag/test/smtp_server.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dag/test/ports.hpp"

#ifndef DAG_TEST_SMTP_SCRIPT
#error "DAG_TEST_SMTP_SCRIPT must name tests/support/smtp_server.py"
#endif

namespace dag::test {
namespace {

constexpr std::string_view kMessagePrefix = "MESSAGE ";

// Debian's interpreter, which has python3-aiosmtpd; a python3 earlier in PATH (pyenv, a
// virtualenv) usually has not.
std::string python() {
  if (::access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
  return "python3";
}

std::string lower(std::string_view s) {
  std::string out{s};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

ReceivedMail parse_line(const std::string& line, const std::filesystem::path& maildir) {
  ReceivedMail mail;
  const auto j = nlohmann::json::parse(line.substr(kMessagePrefix.size()), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    mail.defects.push_back("unparsable MESSAGE line: " + line);
    return mail;
  }
  mail.key = j.value("key", "");
  mail.mail_from = j.value("mail_from", "");
  mail.rcpt_to = j.value("rcpt_tos", std::vector<std::string>{});
  mail.subject = j.value("subject", "");
  for (const auto& h : j.value("headers", nlohmann::json::array())) {
    if (h.is_array() && h.size() == 2) {
      mail.headers.emplace_back(h[0].get<std::string>(), h[1].get<std::string>());
    }
  }
  for (const auto& p : j.value("parts", nlohmann::json::array())) {
    mail.parts.push_back(MailPart{p.value("content_type", ""), p.value("charset", ""),
                                  p.value("transfer_encoding", ""), p.value("text", "")});
  }
  mail.defects = j.value("defects", std::vector<std::string>{});
  mail.max_line = j.value("max_line", std::size_t{0});
  mail.bare_lf = j.value("bare_lf", false);
  mail.tls = j.value("tls", false);
  if (j.contains("auth_login") && j["auth_login"].is_string()) {
    mail.auth_login = j["auth_login"].get<std::string>();
  }
  for (const char* sub : {"new", "cur"}) {
    const auto path = maildir / sub / mail.key;
    if (std::filesystem::exists(path)) {
      mail.raw = read_file(path);
      break;
    }
  }
  return mail;
}

}  // namespace

std::optional<std::string> ReceivedMail::header(std::string_view name) const {
  const std::string wanted = lower(name);
  for (const auto& [k, v] : headers) {
    if (lower(k) == wanted) return v;
  }
  return std::nullopt;
}

const MailPart* ReceivedMail::part(std::string_view content_type) const {
  for (const auto& p : parts) {
    if (p.content_type == content_type) return &p;
  }
  return nullptr;
}

Result<std::unique_ptr<SmtpServer>> SmtpServer::start(SmtpServerOptions options) {
  std::unique_ptr<SmtpServer> s{new SmtpServer()};
  s->options_ = std::move(options);
  const int attempts = s->options_.port ? 1 : 3;
  Result<void> launched = fail(Errc::internal, "not started");
  for (int i = 0; i < attempts; ++i) {
    if (s->options_.port) {
      s->port_ = *s->options_.port;
    } else {
      auto port = free_loopback_port();
      if (!port) return Unexpected<Error>{port.error()};
      s->port_ = *port;
    }
    launched = s->launch();
    if (launched) return s;
    if (launched.error().message.find("Address already in use") == std::string::npos) break;
  }
  return Unexpected<Error>{launched.error()};
}

Result<void> SmtpServer::launch() {
  ProcessOptions p;
  p.argv = {
      python(),          "-u", DAG_TEST_SMTP_SCRIPT, "--port", std::to_string(port_), "--maildir",
      maildir().string()};
  for (const auto& a : options_.reject_rcpt) p.argv.insert(p.argv.end(), {"--reject", a});
  for (const auto& a : options_.tempfail_rcpt) p.argv.insert(p.argv.end(), {"--tempfail", a});
  if (options_.auth) {
    p.argv.insert(p.argv.end(), {"--auth", options_.auth->first + ":" + options_.auth->second});
  }
  if (!options_.tls_cert.empty()) {
    p.argv.insert(p.argv.end(), {"--tls-cert", options_.tls_cert.string(), "--tls-key",
                                 options_.tls_key.string()});
    if (options_.implicit_tls) p.argv.emplace_back("--implicit-tls");
    if (options_.require_tls) p.argv.emplace_back("--require-tls");
  }
  if (options_.headers_only) {
    p.argv.emplace_back("--headers-only");
  }
  if (options_.workers > 1) {
    p.argv.insert(p.argv.end(), {"--workers", std::to_string(options_.workers)});
  }
  p.env = {{"PYTHONDONTWRITEBYTECODE", "1"}};
  p.log_file = dir_ / "smtp.log";
  auto proc = Process::spawn(std::move(p));
  if (!proc) return Unexpected<Error>{proc.error()};
  const bool up = (*proc)->wait_for_line("READY port=", options_.timeout).has_value();
  if (!up) {
    (*proc)->stop(SIGKILL);
    return fail(Errc::unavailable,
                fmt::format("the SMTP server did not come up on port {} within {} ms:\n{}", port_,
                            options_.timeout.count(), (*proc)->output()));
  }
  std::lock_guard lock{mutex_};
  process_ = std::move(*proc);
  return ok();
}

SmtpServer::~SmtpServer() {
  (void)stop();
  if (::testing::Test::HasFailure()) {
    std::cerr << "---- SMTP server log (" << (dir_ / "smtp.log").string() << ") ----\n"
              << log() << "---- end of SMTP server log ----\n";
  }
}

std::string SmtpServer::url() const {
  return fmt::format("{}://127.0.0.1:{}", options_.implicit_tls ? "smtps" : "smtp", port_);
}

Result<void> SmtpServer::stop() {
  std::unique_ptr<Process> proc;
  {
    std::lock_guard lock{mutex_};
    proc = std::move(process_);
  }
  if (!proc) return ok();
  const auto status = proc->stop(SIGTERM, options_.timeout);
  // Read the output to its end (the reader thread may still be draining the pipe), so
  // that every MESSAGE line of this run is kept.
  (void)proc->wait_for_line_if([](const std::string&) { return false; }, options_.timeout);
  std::lock_guard lock{mutex_};
  for (auto& line : proc->lines()) {
    if (line.starts_with(kMessagePrefix)) earlier_lines_.push_back(std::move(line));
  }
  if (status.signal == SIGKILL) return fail(Errc::timeout, "the SMTP server had to be killed");
  return ok();
}

Result<void> SmtpServer::start() {
  {
    std::lock_guard lock{mutex_};
    if (process_) return fail(Errc::invalid_argument, "the SMTP server is already running");
  }
  return launch();
}

bool SmtpServer::running() {
  std::lock_guard lock{mutex_};
  return process_ && process_->running();
}

std::vector<std::string> SmtpServer::message_lines() const {
  std::lock_guard lock{mutex_};
  std::vector<std::string> out = earlier_lines_;
  if (process_) {
    for (auto& line : process_->lines()) {
      if (line.starts_with(kMessagePrefix)) out.push_back(std::move(line));
    }
  }
  return out;
}

std::vector<ReceivedMail> SmtpServer::messages() const {
  std::vector<ReceivedMail> out;
  for (const auto& line : message_lines()) out.push_back(parse_line(line, maildir()));
  return out;
}

Result<std::vector<ReceivedMail>> SmtpServer::wait_for_messages(std::size_t n,
                                                                std::chrono::milliseconds timeout) {
  std::size_t earlier = 0;
  Process* proc = nullptr;
  {
    std::lock_guard lock{mutex_};
    earlier = earlier_lines_.size();
    proc = process_.get();
  }
  if (earlier < n && proc != nullptr) {
    std::size_t count = earlier;
    (void)proc->wait_for_line_if(
        [&count, n](const std::string& line) {
          if (line.starts_with(kMessagePrefix)) ++count;
          return count >= n;
        },
        timeout);
  }
  auto all = messages();
  if (all.size() < n) {
    return fail(Errc::timeout, fmt::format("{} of {} messages arrived within {} ms", all.size(), n,
                                           timeout.count()));
  }
  return all;
}

std::optional<int> SmtpServer::wait_for_refusal(std::string_view address,
                                                std::chrono::milliseconds timeout) {
  Process* proc = nullptr;
  {
    std::lock_guard lock{mutex_};
    proc = process_.get();
  }
  if (proc == nullptr) return std::nullopt;
  const std::string needle = fmt::format("REFUSED rcpt={} code=", address);
  auto line = proc->wait_for_line(needle, timeout);
  if (!line) return std::nullopt;
  return std::stoi(line->substr(line->find("code=") + 5));
}

std::string SmtpServer::log() const {
  return read_file(dir_ / "smtp.log");
}

}  // namespace dag::test
