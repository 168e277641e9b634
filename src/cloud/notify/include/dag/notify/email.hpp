// The e-mail channel: alerts (and address verification mails) through an SMTP server,
// with libcurl.
//
// The message (compose_message): RFC 5322 headers Date (UTC), From, To, Subject (RFC 2047
// encoded-words when not plain ASCII), Message-ID (derived from the notice's idempotency
// key, so a retry carries the same id and a reader's client can drop the duplicate),
// MIME-Version, Auto-Submitted: auto-generated (RFC 3834: no vacation replies) and
// X-Auto-Response-Suppress: All (the same for Exchange); a multipart/alternative body with
// a text/plain and a text/html part, both UTF-8 and quoted-printable (lines of at most 76
// characters, so the 998 limit is never near). CRLF line ends throughout; nothing that
// comes from an account or a device can start a header line (addresses are checked,
// subjects encoded).
//
// Errors (DeliveryError): permanent when the recipient's address is not plausible or the
// server refuses the recipient or the message with a 5xx reply; transient for 4xx
// replies, connection failures, TLS failures and timeouts, and also for refusals that are
// about our side rather than the recipient (5xx to AUTH or to MAIL FROM: fix the
// configuration and the retries go out). The reason quotes the server's refusal.
//
// Thread-safety: deliver() and send_verification() may be called from several threads at
// once: each transfer borrows a libcurl handle of the channel's pool (with its open SMTP
// connection), so parallel deliveries use parallel sessions.
// Blocking: both do network I/O bounded by SmtpOptions::timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dag/common/clock.hpp"
#include "dag/common/result.hpp"
#include "dag/notify/channel.hpp"
#include "dag/notify/mime.hpp"
#include "dag/notify/render.hpp"

namespace dag::notify {

/// Transport security of smtp:// URLs (smtps:// always uses TLS from the first byte).
enum class SmtpTls {
  none,           ///< never STARTTLS: plain text (a relay on localhost, tests)
  opportunistic,  ///< STARTTLS when the server offers it, else plain text
  required,       ///< STARTTLS or fail (transient): for a relay across a network
};

/// "none", "opportunistic", "required"; nullopt for anything else.
std::optional<SmtpTls> parse_smtp_tls(std::string_view text) noexcept;
std::string_view to_string(SmtpTls tls) noexcept;

struct SmtpOptions {
  /// smtp://host[:port][/name] (port 25 by default; 587 for submission) or
  /// smtps://host[:port][/name] (implicit TLS, port 465 by default). The optional path is
  /// the name we greet the server with in EHLO (libcurl's default: "localhost").
  std::string url{};
  /// The sender: "detectordag <dag@example.com>" or "dag@example.com". Also the envelope
  /// sender (MAIL FROM) and the domain of Message-IDs.
  std::string from{};
  std::optional<std::string> username{};  ///< AUTH (PLAIN/LOGIN/...) when set
  std::optional<std::string> password{};
  SmtpTls tls{SmtpTls::opportunistic};
  /// Bound for the whole exchange with the server (connection set-up included).
  std::chrono::milliseconds timeout{10000};
  /// PEM file of CA certificates that verify the server; default: the system's store.
  /// The server's certificate and host name are always verified.
  std::optional<std::string> ca_file{};
};

/// "<dag.KEY@domain>": KEY is the idempotency key when it is made of letters, digits and
/// ".-_+" (at most 100 characters, no leading, trailing or double dot), else the first 32
/// hex digits of its SHA-256. An empty key gets a random UUID.
std::string message_id(std::string_view idempotency_key, std::string_view domain);

/// The complete message (headers and body, CRLF line ends) described above. `from` and
/// `to` must be valid mailboxes (mime::parse_mailbox). The multipart boundary is derived
/// from the Message-ID.
std::string compose_message(const mime::Mailbox& from, const mime::Mailbox& to,
                            const RenderedEmail& content, std::string_view message_id,
                            std::int64_t date_ms);

class EmailChannel final : public Channel {
 public:
  /// Checks the options. Errors: Errc::config when the URL is not smtp:// or smtps:// with
  /// a host (or carries a user name: use `username`), or `from` is not a valid mailbox.
  /// Does not connect.
  static Result<std::unique_ptr<EmailChannel>> create(SmtpOptions options, const Clock& clock);
  /// As above with the system clock.
  static Result<std::unique_ptr<EmailChannel>> create(SmtpOptions options);

  ~EmailChannel() override;
  EmailChannel(const EmailChannel&) = delete;
  EmailChannel& operator=(const EmailChannel&) = delete;

  /// Sends render_email(notice) to target.address (an e-mail address).
  Delivery deliver(const store::NotificationTarget& target, const Notice& notice) override;

  /// Sends the address verification mail (render_verification) to `address`; its
  /// Message-ID is derived from the address and the link, so a retry is the same message.
  Delivery send_verification(const std::string& address, const std::string& link,
                             std::int64_t expires_at_ms);

  /// The options in use.
  [[nodiscard]] const SmtpOptions& options() const { return options_; }

 private:
  struct Impl;
  EmailChannel(SmtpOptions options, mime::Mailbox from, const Clock& clock);
  Delivery send(const std::string& to_address, const RenderedEmail& content,
                std::string_view idempotency_key);

  SmtpOptions options_;
  mime::Mailbox from_;
  const Clock& clock_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dag::notify
