#include "dag/notify/email.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "dag/common/encoding.hpp"
#include "dag/common/validate.hpp"

#include "curl_handle.hpp"

namespace dag::notify {
namespace {

const Clock& system_clock() {
  static const SystemClock clock;
  return clock;
}

bool is_id_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == '+';
}

struct UrlDeleter {
  void operator()(CURLU* url) const noexcept { curl_url_cleanup(url); }
};

// One part of a URL, or nullopt when it is absent.
std::optional<std::string> url_part(CURLU* url, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, 0) != CURLUE_OK || text == nullptr) return std::nullopt;
  std::string out{text};
  curl_free(text);
  return out;
}

Result<void> check_smtp_url(const std::string& url) {
  for (const char c : url) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F) {
      return fail(Errc::config, "smtp url contains a space or a character that is not allowed");
    }
  }
  detail::init_curl();
  std::unique_ptr<CURLU, UrlDeleter> parsed{curl_url()};
  if (!parsed) return fail(Errc::internal, "curl_url failed");
  if (curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return fail(Errc::config, "smtp url is not a URL (smtp://host:port or smtps://host:port)");
  }
  const auto scheme = url_part(parsed.get(), CURLUPART_SCHEME);
  if (!scheme || (*scheme != "smtp" && *scheme != "smtps")) {
    return fail(Errc::config, "smtp url must start with smtp:// or smtps://");
  }
  const auto host = url_part(parsed.get(), CURLUPART_HOST);
  if (!host || host->empty()) return fail(Errc::config, "smtp url has no host");
  if (url_part(parsed.get(), CURLUPART_USER) || url_part(parsed.get(), CURLUPART_PASSWORD)) {
    return fail(Errc::config,
                "smtp url must not carry a user name or password (use the "
                "username and password settings)");
  }
  return ok();
}

long curl_tls(SmtpTls tls) {
  switch (tls) {
    case SmtpTls::none: return static_cast<long>(CURLUSESSL_NONE);
    case SmtpTls::opportunistic: return static_cast<long>(CURLUSESSL_TRY);
    case SmtpTls::required: return static_cast<long>(CURLUSESSL_ALL);
  }
  return static_cast<long>(CURLUSESSL_ALL);
}

long reply_code(const std::string& reply) {
  if (reply.size() < 3) return 0;
  long code = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    if (reply[i] < '0' || reply[i] > '9') return 0;
    code = code * 10 + (reply[i] - '0');
  }
  return code;
}

// The server's last refusal (4xx/5xx reply line), from libcurl's protocol trace; later
// lines (the "221 Bye" to our QUIT) do not overwrite it.
struct Trace {
  std::string refusal;
};

int trace_callback(CURL* /*handle*/, curl_infotype type, char* data, std::size_t size, void* user) {
  // Only what the server says: our own lines (HEADER_OUT) carry the AUTH credentials.
  if (type == CURLINFO_HEADER_IN) {
    std::string line{data, size};
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (reply_code(line) >= 400) static_cast<Trace*>(user)->refusal = std::move(line);
  }
  return 0;
}

template <class T>
void set(CURL* handle, CURLoption option, T value) {
  (void)curl_easy_setopt(handle, option, value);
}

}  // namespace

std::optional<SmtpTls> parse_smtp_tls(std::string_view text) noexcept {
  if (text == "none") return SmtpTls::none;
  if (text == "opportunistic") return SmtpTls::opportunistic;
  if (text == "required") return SmtpTls::required;
  return std::nullopt;
}

std::string_view to_string(SmtpTls tls) noexcept {
  switch (tls) {
    case SmtpTls::none: return "none";
    case SmtpTls::opportunistic: return "opportunistic";
    case SmtpTls::required: return "required";
  }
  return "required";
}

std::string message_id(std::string_view idempotency_key, std::string_view domain) {
  std::string key;
  const bool usable = !idempotency_key.empty() && idempotency_key.size() <= 100 &&
                      idempotency_key.front() != '.' && idempotency_key.back() != '.' &&
                      idempotency_key.find("..") == std::string_view::npos &&
                      std::all_of(idempotency_key.begin(), idempotency_key.end(), is_id_char);
  if (usable) {
    key = idempotency_key;
  } else if (!idempotency_key.empty()) {
    key = sha256_hex(idempotency_key).substr(0, 32);
  } else {
    key = new_uuid().value_or(
        sha256_hex(std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())));
  }
  return fmt::format("<dag.{}@{}>", key, domain.empty() ? "detectordag.invalid" : domain);
}

std::string compose_message(const mime::Mailbox& from, const mime::Mailbox& to,
                            const RenderedEmail& content, std::string_view message_id,
                            std::int64_t date_ms) {
  // Quoted-printable never produces "=_", so no line of a part can be the boundary.
  const std::string boundary = "=_dag_" + sha256_hex(message_id).substr(0, 32);
  std::string m;
  m.reserve(content.text.size() + content.html.size() * 11 / 10 + 1024);
  m += "Date: " + rfc5322_date(date_ms) + "\r\n";
  m += "From: " + mime::format_mailbox(from) + "\r\n";
  m += "To: " + mime::format_mailbox(to) + "\r\n";
  m += mime::unstructured_header("Subject", content.subject);
  m += "Message-ID: " + std::string{message_id} + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Auto-Submitted: auto-generated\r\n";
  m += "X-Auto-Response-Suppress: All\r\n";
  m += "Content-Type: multipart/alternative; boundary=\"" + boundary + "\"\r\n";
  m += "\r\n";
  m += "This is a message in MIME format.\r\n";
  const auto part = [&](std::string_view type, std::string_view body) {
    m += "\r\n--" + boundary + "\r\n";
    m += fmt::format("Content-Type: {}; charset=utf-8\r\n", type);
    m += "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
    m += mime::quoted_printable(body);
  };
  part("text/plain", content.text);
  part("text/html", content.html);
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

struct EmailChannel::Impl {
  detail::HandlePool handles;
};

Result<std::unique_ptr<EmailChannel>> EmailChannel::create(SmtpOptions options,
                                                           const Clock& clock) {
  if (auto checked = check_smtp_url(options.url); !checked) {
    return Unexpected<Error>{checked.error()};
  }
  auto from = mime::parse_mailbox(options.from);
  if (!from) return fail(Errc::config, "smtp from: " + from.error().message);
  if (options.timeout.count() <= 0) return fail(Errc::config, "smtp timeout must be positive");
  return std::unique_ptr<EmailChannel>{new EmailChannel(std::move(options), *from, clock)};
}

Result<std::unique_ptr<EmailChannel>> EmailChannel::create(SmtpOptions options) {
  return create(std::move(options), system_clock());
}

EmailChannel::EmailChannel(SmtpOptions options, mime::Mailbox from, const Clock& clock)
    : options_(std::move(options)),
      from_(std::move(from)),
      clock_(clock),
      impl_(std::make_unique<Impl>()) {}

EmailChannel::~EmailChannel() = default;

Delivery EmailChannel::deliver(const store::NotificationTarget& target, const Notice& notice) {
  if (target.kind != store::TargetKind::email) {
    return Unexpected{DeliveryError{true, "not an e-mail target"}};
  }
  return send(target.address, render_email(notice), notice.idempotency_key);
}

Delivery EmailChannel::send_verification(const std::string& address, const std::string& link,
                                         std::int64_t expires_at_ms) {
  const std::string key = "verify." + sha256_hex(address + "\n" + link).substr(0, 32);
  return send(address, render_verification(address, link, expires_at_ms), key);
}

Delivery EmailChannel::send(const std::string& to_address, const RenderedEmail& content,
                            std::string_view idempotency_key) {
  if (auto why = validate::email_error(to_address)) {
    return Unexpected{DeliveryError{true, "the address is not valid: " + *why}};
  }
  const mime::Mailbox to{"", to_address};
  const std::string data = compose_message(
      from_, to, content, message_id(idempotency_key, mime::domain_of(from_.address)),
      clock_.unix_ms());

  const auto lease = impl_->handles.acquire();
  CURL* h = lease.get();
  curl_easy_reset(h);
  std::array<char, CURL_ERROR_SIZE> error{};
  Trace trace;
  detail::ReadBuffer body{data, 0};
  const std::string mail_from = "<" + from_.address + ">";
  const detail::SlistPtr rcpt = detail::make_slist({"<" + to_address + ">"});

  set(h, CURLOPT_URL, options_.url.c_str());
  set(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  set(h, CURLOPT_MAIL_FROM, mail_from.c_str());
  set(h, CURLOPT_MAIL_RCPT, rcpt.get());
  set(h, CURLOPT_UPLOAD, 1L);
  set(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(data.size()));
  set(h, CURLOPT_READFUNCTION, &detail::read_callback);
  set(h, CURLOPT_READDATA, static_cast<void*>(&body));
  set(h, CURLOPT_USE_SSL, curl_tls(options_.tls));
  if (options_.username) set(h, CURLOPT_USERNAME, options_.username->c_str());
  if (options_.password) set(h, CURLOPT_PASSWORD, options_.password->c_str());
  if (options_.ca_file) set(h, CURLOPT_CAINFO, options_.ca_file->c_str());
  set(h, CURLOPT_NOSIGNAL, 1L);
  set(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  set(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  set(h, CURLOPT_ERRORBUFFER, error.data());
  set(h, CURLOPT_PROXY, "");    // SMTP never goes through the environment's HTTP proxy
  set(h, CURLOPT_VERBOSE, 1L);  // feeds trace_callback only; nothing is printed
  set(h, CURLOPT_DEBUGFUNCTION, &trace_callback);
  set(h, CURLOPT_DEBUGDATA, static_cast<void*>(&trace));

  const CURLcode rc = curl_easy_perform(h);
  if (rc == CURLE_OK) return {};

  long code = 0;
  (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  if (code < 400) code = std::max(code, reply_code(trace.refusal));
  const std::string reply = detail::printable(trace.refusal, 200);
  const std::string what = detail::printable(error.data(), 200);
  if (rc == CURLE_LOGIN_DENIED) {
    return Unexpected{DeliveryError{false, "the mail server refused our login: " + reply}};
  }
  if (code >= 500 && code < 600) {
    // libcurl says which command failed ("MAIL failed: 553", "RCPT failed: 550").
    if (what.starts_with("MAIL ")) {
      return Unexpected{DeliveryError{false, "the mail server refused our sender: " + reply}};
    }
    return Unexpected{DeliveryError{true, "the mail server refused the message: " + reply}};
  }
  std::string reason = curl_easy_strerror(rc);
  if (!what.empty()) reason += ": " + what;
  if (code >= 400 && !reply.empty()) reason += " (" + reply + ")";
  return Unexpected{DeliveryError{false, std::move(reason)}};
}

}  // namespace dag::notify
