// SmtpServer: a real SMTP server for integration tests (Python's aiosmtpd, Debian's
// python3-aiosmtpd, run by tests/support/smtp_server.py through Process).
//
// It listens on a free 127.0.0.1 port and stores every accepted message unchanged in a
// Maildir inside its TempDir. The script prints a line per event ("READY", "MESSAGE
// <json>", "REFUSED ..."), which the fixture awaits: start() returns once the server
// listens, wait_for_messages() once the n-th message is stored; nothing sleeps. Each
// MESSAGE line carries what Python's email package made of the message (decoded subject,
// leaf parts with their decoded text, defects), so tests check the MIME structure with a
// real parser; the raw bytes come from the Maildir file.
//
// Modes (SmtpServerOptions): refuse some recipients with 550 (permanent) or 451
// (transient); require AUTH; offer STARTTLS, require it, or speak TLS from the first byte
// (smtps), with a TestPki server certificate.
//
// stop() ends the server; start() brings it back on the same port with the same Maildir
// (to test "server down, then up"); messages() spans every run.
//
// Blocking: start, stop and the waits block (bounded by the options' timeout or the given
// one). Thread-safety: drive it from the test thread (the code under test may send from
// other threads meanwhile).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dag/common/result.hpp"
#include "dag/test/process.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::test {

struct SmtpServerOptions {
  /// Recipients answered "550 5.1.1" at RCPT TO (compared case-insensitively).
  std::vector<std::string> reject_rcpt{};
  /// Recipients answered "451 4.3.0" at RCPT TO.
  std::vector<std::string> tempfail_rcpt{};
  /// When set, AUTH (PLAIN or LOGIN, allowed without TLS) with this user and password is
  /// required before MAIL.
  std::optional<std::pair<std::string, std::string>> auth{};
  /// Certificate and key (PEM files) for TLS; empty: no TLS at all.
  std::filesystem::path tls_cert{};
  std::filesystem::path tls_key{};
  /// TLS from the first byte (smtps://) instead of offering STARTTLS.
  bool implicit_tls{false};
  /// Refuse MAIL before STARTTLS.
  bool require_tls{false};
  /// Fixed port; default: a free loopback port (retried if taken meanwhile).
  std::optional<std::uint16_t> port{};
  /// Parse only each message's headers (benchmarks): received mails then carry key,
  /// envelope, subject and the TLS/AUTH facts, no headers list, parts or defects. The full
  /// parse costs the server's single thread milliseconds per message.
  bool headers_only{false};
  /// Server processes accepting on the one port (benchmarks). Each stores a message with
  /// an fsync before its 250, so one process holds every session behind the disk, where a
  /// mail relay runs many smtpd processes.
  int workers{1};
  /// Bound for start() and stop().
  std::chrono::milliseconds timeout{std::chrono::seconds{10}};
};

struct MailPart {
  std::string content_type;  ///< e.g. "text/plain"
  std::string charset;
  std::string transfer_encoding;
  std::string text;  ///< the decoded content
};

struct ReceivedMail {
  std::string key;  ///< Maildir key
  std::string mail_from;
  std::vector<std::string> rcpt_to;
  std::string raw;  ///< the message as received (CRLF line ends), from the Maildir file
  /// Headers in order, values decoded by Python (RFC 2047 words decoded, folding undone).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string subject;                    ///< decoded
  std::vector<MailPart> parts;            ///< leaf MIME parts in order
  std::vector<std::string> defects;       ///< the email package's complaints; empty when clean
  std::size_t max_line{0};                ///< longest line of `raw` in bytes, without CRLF
  bool bare_lf{false};                    ///< `raw` has a LF that is not part of a CRLF
  bool tls{false};                        ///< the session used TLS
  std::optional<std::string> auth_login;  ///< the AUTH user, when the session logged in

  /// The first header called `name` (case-insensitive), decoded.
  [[nodiscard]] std::optional<std::string> header(std::string_view name) const;
  /// The first leaf part of this content type, or nullptr.
  [[nodiscard]] const MailPart* part(std::string_view content_type) const;
};

class SmtpServer {
 public:
  /// Starts the server. Errors: Errc::not_found when python3 is missing; Errc::unavailable
  /// when the server exits or does not come up in time (the message carries its output,
  /// e.g. "No module named 'aiosmtpd'"); Errc::io.
  static Result<std::unique_ptr<SmtpServer>> start(SmtpServerOptions options);
  ~SmtpServer();
  SmtpServer(const SmtpServer&) = delete;
  SmtpServer& operator=(const SmtpServer&) = delete;

  [[nodiscard]] static std::string host() { return "127.0.0.1"; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// "smtp://127.0.0.1:<port>" ("smtps://..." with implicit TLS).
  [[nodiscard]] std::string url() const;
  [[nodiscard]] std::filesystem::path maildir() const { return dir_ / "Maildir"; }
  /// The server process of the current run (for CPU figures); -1 when stopped.
  [[nodiscard]] pid_t pid() const { return process_ ? process_->pid() : -1; }

  /// Ends the server (SIGTERM, then SIGKILL after the timeout). Connections are refused
  /// until start(). Messages stored so far stay.
  Result<void> stop();
  /// Starts the server again on the same port and Maildir after stop().
  Result<void> start();
  [[nodiscard]] bool running();

  /// Every message stored so far, in the order they arrived.
  [[nodiscard]] std::vector<ReceivedMail> messages() const;
  /// Blocks until at least `n` messages were stored in total (over every run) and returns
  /// them all. Errors: Errc::timeout (the message says how many arrived).
  Result<std::vector<ReceivedMail>> wait_for_messages(std::size_t n,
                                                      std::chrono::milliseconds timeout);
  /// Blocks until the server refused `address` at RCPT TO (in the current run); the code.
  std::optional<int> wait_for_refusal(std::string_view address, std::chrono::milliseconds timeout);

  /// The output of every run so far.
  [[nodiscard]] std::string log() const;

 private:
  SmtpServer() = default;
  Result<void> launch();
  [[nodiscard]] std::vector<std::string> message_lines() const;

  TempDir dir_{"dag-smtp"};  // outlives process_
  SmtpServerOptions options_;
  std::uint16_t port_{0};
  std::unique_ptr<Process> process_;
  mutable std::mutex mutex_;
  std::vector<std::string> earlier_lines_;  // MESSAGE lines of runs that ended
};

}  // namespace dag::test
