// EmailChannel against a real SMTP server (aiosmtpd, dag::test::SmtpServer): the message
// as a mail reader parses it, error mapping (550, 451, server down), AUTH, STARTTLS and
// implicit TLS with the test CA.
#include "dag/notify/email.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "dag/test/smtp_server.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::notify {
namespace {

using protocol::UserState;
using store::Transition;
using test::SmtpServer;
using test::SmtpServerOptions;
using namespace std::chrono_literals;

constexpr auto kWait = 10s;

Notice notice(std::string device_name = "Home", Transition t = Transition::power_lost,
              UserState s = UserState::off) {
  Notice n;
  n.account_id = "acc-1";
  n.account_name = "alice";
  n.time_zone = "Europe/Oslo";
  n.dashboard_url = "https://dags.example.com";
  Item item;
  item.device_id = "dev-1";
  item.device_name = std::move(device_name);
  item.transition = t;
  item.user_state = s;
  item.observed_at_ms = 1'795'560'096'123;  // 23:41 CET
  n.items.push_back(item);
  n.idempotency_key = "n.42";
  return n;
}

store::NotificationTarget target(std::string address = "alice@example.com") {
  store::NotificationTarget t;
  t.id = "t-1";
  t.account_id = "acc-1";
  t.kind = store::TargetKind::email;
  t.address = std::move(address);
  t.verified = true;
  return t;
}

std::unique_ptr<SmtpServer> server(SmtpServerOptions options = {}) {
  auto s = SmtpServer::start(std::move(options));
  if (!s) ADD_FAILURE() << s.error().message;
  return s ? std::move(*s) : nullptr;
}

std::unique_ptr<EmailChannel> channel(const SmtpServer& smtp, SmtpOptions options = {}) {
  if (options.url.empty()) options.url = smtp.url();
  if (options.from.empty()) options.from = "detectordag <dag@example.com>";
  if (options.timeout == SmtpOptions{}.timeout) options.timeout = 5s;
  auto c = EmailChannel::create(std::move(options));
  if (!c) ADD_FAILURE() << c.error().message;
  return c ? std::move(*c) : nullptr;
}

void expect_clean(const test::ReceivedMail& mail) {
  EXPECT_TRUE(mail.defects.empty()) << ::testing::PrintToString(mail.defects);
  EXPECT_LE(mail.max_line, 998U);
  EXPECT_FALSE(mail.bare_lf);
}

TEST(EmailChannel, DeliversOneMultipartMessage) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);

  const auto sent = email->deliver(target(), notice());
  ASSERT_TRUE(sent) << sent.error().reason;
  auto mails = smtp->wait_for_messages(1, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  ASSERT_EQ(mails->size(), 1U);
  const auto& mail = mails->front();
  expect_clean(mail);
  EXPECT_EQ(mail.mail_from, "dag@example.com");
  EXPECT_EQ(mail.rcpt_to, std::vector<std::string>{"alice@example.com"});
  EXPECT_EQ(mail.subject, "You've lost power! (Home)");
  EXPECT_EQ(mail.header("From"), "detectordag <dag@example.com>");
  EXPECT_EQ(mail.header("To"), "alice@example.com");
  EXPECT_EQ(mail.header("Message-ID"), "<dag.n.42@example.com>");
  EXPECT_EQ(mail.header("Auto-Submitted"), "auto-generated");
  EXPECT_EQ(mail.header("MIME-Version"), "1.0");
  EXPECT_TRUE(mail.header("Date").has_value());
  EXPECT_TRUE(mail.header("Content-Type")->starts_with("multipart/alternative"));

  ASSERT_EQ(mail.parts.size(), 2U);
  EXPECT_EQ(mail.parts[0].content_type, "text/plain");
  EXPECT_EQ(mail.parts[1].content_type, "text/html");
  for (const auto& part : mail.parts) {
    EXPECT_EQ(part.charset, "utf-8");
    EXPECT_EQ(part.transfer_encoding, "quoted-printable");
    EXPECT_NE(part.text.find("Home"), std::string::npos);
    EXPECT_NE(part.text.find("Tuesday 24 November 2026 at 23:41 CET"), std::string::npos);
    EXPECT_NE(part.text.find("https://dags.example.com"), std::string::npos);
  }
  EXPECT_NE(mail.parts[0].text.find("Hello alice,\n\nYou've lost power!\n"), std::string::npos)
      << mail.parts[0].text;
  EXPECT_NE(mail.parts[1].text.find("<!DOCTYPE html>"), std::string::npos);
  // On the wire: CRLF lines, quoted-printable.
  EXPECT_NE(mail.raw.find("\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
            std::string::npos);
}

// The benchmarks' server: several processes accept on one port. Parallel sessions all get
// their messages stored and reported once, and stopping the server stops every process.
TEST(EmailChannel, ServerWorkersShareThePortAndStopTogether) {
  auto smtp = server({.headers_only = true, .workers = 3});
  ASSERT_TRUE(smtp);
  const std::string self = std::to_string(smtp->pid());
  std::vector<pid_t> workers;
  {
    std::ifstream children("/proc/" + self + "/task/" + self + "/children");
    for (pid_t p = 0; children >> p;) workers.push_back(p);
  }
  ASSERT_EQ(workers.size(), 2U);

  constexpr int kThreads = 4;
  constexpr int kEach = 5;
  std::vector<std::thread> senders;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      auto email = channel(*smtp);
      if (!email) {
        ++failures;
        return;
      }
      for (int i = 0; i < kEach; ++i) {
        const auto name = "dag " + std::to_string(t) + "." + std::to_string(i);
        if (!email->deliver(target(), notice(name))) ++failures;
      }
    });
  }
  for (auto& s : senders) s.join();
  EXPECT_EQ(failures.load(), 0);
  auto mails = smtp->wait_for_messages(kThreads * kEach, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  std::set<std::string> subjects;
  std::set<std::string> keys;
  for (const auto& m : *mails) {
    subjects.insert(m.subject);
    keys.insert(m.key);
    EXPECT_FALSE(m.raw.empty()) << m.key;
  }
  EXPECT_EQ(subjects.size(), static_cast<std::size_t>(kThreads * kEach));
  EXPECT_EQ(keys.size(), static_cast<std::size_t>(kThreads * kEach));

  ASSERT_TRUE(smtp->stop());
  for (const pid_t p : workers) {
    EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(p))) << "worker " << p;
  }
  EXPECT_EQ(smtp->messages().size(), static_cast<std::size_t>(kThreads * kEach));
}

TEST(EmailChannel, NonAsciiNamesAndHostileNames) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp, {.from = "Dåg Wätcher <dag@example.com>"});
  ASSERT_TRUE(email);
  ASSERT_TRUE(email->deliver(target(), notice("Hütte ☃")));
  ASSERT_TRUE(email->deliver(target(), notice("x\r\nBcc: victim@example.com <img src=x>")));
  auto mails = smtp->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  const auto& first = (*mails)[0];
  expect_clean(first);
  EXPECT_EQ(first.subject, "You've lost power! (Hütte ☃)");
  EXPECT_NE(first.raw.find("Subject: =?UTF-8?B?"), std::string::npos);
  EXPECT_EQ(first.header("From"), "Dåg Wätcher <dag@example.com>");
  EXPECT_NE(first.part("text/plain")->text.find("Hütte ☃"), std::string::npos);
  EXPECT_NE(first.part("text/html")->text.find("Hütte ☃"), std::string::npos);

  const auto& second = (*mails)[1];
  expect_clean(second);
  EXPECT_FALSE(second.header("Bcc").has_value());
  EXPECT_EQ(second.rcpt_to, std::vector<std::string>{"alice@example.com"});
  EXPECT_EQ(second.part("text/html")->text.find("<img"), std::string::npos);
}

TEST(EmailChannel, ARetryCarriesTheSameMessageId) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  auto n = notice();
  n.idempotency_key = "target 7 / intents 1,2,3";  // not usable as is: hashed
  ASSERT_TRUE(email->deliver(target(), n));
  ASSERT_TRUE(email->deliver(target(), n));
  auto mails = smtp->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  EXPECT_EQ((*mails)[0].header("Message-ID"), (*mails)[1].header("Message-ID"));
  EXPECT_TRUE((*mails)[0].header("Message-ID")->starts_with("<dag."));
}

TEST(EmailChannel, FollowUpListsEveryItem) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  auto n = notice("North");
  for (const char* name : {"South", "East"}) {
    auto item = n.items.front();
    item.device_id = name;
    item.device_name = name;
    n.items.push_back(item);
  }
  n.follow_up = true;
  ASSERT_TRUE(email->deliver(target(), n));
  auto mails = smtp->wait_for_messages(1, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  EXPECT_EQ(mails->front().subject, "3 more of your dags lost power");
  for (const char* name : {"North", "South", "East"}) {
    EXPECT_NE(mails->front().part("text/plain")->text.find(name), std::string::npos) << name;
  }
}

TEST(EmailChannel, RefusedRecipientIsPermanent) {
  auto smtp = server({.reject_rcpt = {"nobody@example.com"}});
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  const auto sent = email->deliver(target("nobody@example.com"), notice());
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().permanent);
  EXPECT_NE(sent.error().reason.find("550"), std::string::npos) << sent.error().reason;
  EXPECT_EQ(smtp->wait_for_refusal("nobody@example.com", kWait), 550);
  // The channel keeps working for others.
  ASSERT_TRUE(email->deliver(target(), notice()));
  ASSERT_TRUE(smtp->wait_for_messages(1, kWait));
}

TEST(EmailChannel, TemporaryRefusalIsTransient) {
  auto smtp = server({.tempfail_rcpt = {"busy@example.com"}});
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  const auto sent = email->deliver(target("busy@example.com"), notice());
  ASSERT_FALSE(sent);
  EXPECT_FALSE(sent.error().permanent);
  EXPECT_NE(sent.error().reason.find("451"), std::string::npos) << sent.error().reason;
}

TEST(EmailChannel, ServerDownIsTransientThenDelivers) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  ASSERT_TRUE(email->deliver(target(), notice("Before")));
  ASSERT_TRUE(smtp->wait_for_messages(1, kWait));

  ASSERT_TRUE(smtp->stop());
  const auto down = email->deliver(target(), notice("While down"));
  ASSERT_FALSE(down);
  EXPECT_FALSE(down.error().permanent);
  EXPECT_FALSE(down.error().reason.empty());

  ASSERT_TRUE(smtp->start());
  const auto again = email->deliver(target(), notice("After"));
  ASSERT_TRUE(again) << again.error().reason;
  auto mails = smtp->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  ASSERT_EQ(mails->size(), 2U);
  EXPECT_EQ((*mails)[0].subject, "You've lost power! (Before)");
  EXPECT_EQ((*mails)[1].subject, "You've lost power! (After)");
}

TEST(EmailChannel, UnreachableServerTimesOutTransiently) {
  // A port that nothing listens on: refused at once; either way transient and bounded.
  auto smtp = server();
  ASSERT_TRUE(smtp);
  const auto url = smtp->url();
  smtp.reset();
  auto email = EmailChannel::create({.url = url, .from = "dag@example.com", .timeout = 2s});
  ASSERT_TRUE(email);
  const auto started = std::chrono::steady_clock::now();
  const auto sent = (*email)->deliver(target(), notice());
  ASSERT_FALSE(sent);
  EXPECT_FALSE(sent.error().permanent);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(EmailChannel, InvalidAddressIsPermanentWithoutSending) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  for (const char* bad : {"alice@example.com\r\nBcc: victim@example.com", "not an address", ""}) {
    const auto sent = email->deliver(target(bad), notice());
    ASSERT_FALSE(sent) << bad;
    EXPECT_TRUE(sent.error().permanent) << bad;
  }
  store::NotificationTarget webhook = target();
  webhook.kind = store::TargetKind::webhook;
  EXPECT_FALSE(email->deliver(webhook, notice()));
  EXPECT_TRUE(smtp->messages().empty());
}

TEST(EmailChannel, Authenticates) {
  auto smtp = server({.auth = std::pair<std::string, std::string>{"dagd", "s3cret"}});
  ASSERT_TRUE(smtp);
  auto good = channel(*smtp, {.username = "dagd", .password = "s3cret"});
  ASSERT_TRUE(good);
  const auto sent = good->deliver(target(), notice());
  ASSERT_TRUE(sent) << sent.error().reason;
  auto mails = smtp->wait_for_messages(1, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  EXPECT_EQ(mails->front().auth_login, "dagd");

  // Wrong credentials are our configuration's fault, not the recipient's: transient.
  auto bad = channel(*smtp, {.username = "dagd", .password = "wrong"});
  ASSERT_TRUE(bad);
  const auto refused = bad->deliver(target(), notice());
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().permanent) << refused.error().reason;
  // Without AUTH the server refuses MAIL FROM (530): also ours to fix, transient.
  auto anonymous = channel(*smtp);
  const auto anon = anonymous->deliver(target(), notice());
  ASSERT_FALSE(anon);
  EXPECT_FALSE(anon.error().permanent) << anon.error().reason;
}

TEST(EmailChannel, StartTlsRequiredWithTheDeploymentsCa) {
  test::TestPki pki;
  auto smtp = server(
      {.tls_cert = pki.server_cert_file(), .tls_key = pki.server_key_file(), .require_tls = true});
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp, {.tls = SmtpTls::required, .ca_file = pki.ca_file().string()});
  ASSERT_TRUE(email);
  const auto sent = email->deliver(target(), notice());
  ASSERT_TRUE(sent) << sent.error().reason;
  auto mails = smtp->wait_for_messages(1, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  EXPECT_TRUE(mails->front().tls);

  // Opportunistic TLS takes the offer too (and still verifies the certificate).
  auto opportunistic =
      channel(*smtp, {.tls = SmtpTls::opportunistic, .ca_file = pki.ca_file().string()});
  ASSERT_TRUE(opportunistic->deliver(target(), notice()));
  mails = smtp->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  EXPECT_TRUE((*mails)[1].tls);

  // A certificate we cannot verify: transient (our trust store may be fixed), nothing sent.
  auto untrusting = channel(*smtp, {.tls = SmtpTls::required});
  const auto refused = untrusting->deliver(target(), notice());
  ASSERT_FALSE(refused);
  EXPECT_FALSE(refused.error().permanent);
}

TEST(EmailChannel, RequiredTlsAgainstAPlainServerFails) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp, {.tls = SmtpTls::required});
  ASSERT_TRUE(email);
  const auto sent = email->deliver(target(), notice());
  ASSERT_FALSE(sent);
  EXPECT_FALSE(sent.error().permanent);
  EXPECT_TRUE(smtp->messages().empty());
}

TEST(EmailChannel, ImplicitTls) {
  test::TestPki pki;
  auto smtp = server(
      {.tls_cert = pki.server_cert_file(), .tls_key = pki.server_key_file(), .implicit_tls = true});
  ASSERT_TRUE(smtp);
  ASSERT_TRUE(smtp->url().starts_with("smtps://"));
  auto email = channel(*smtp, {.ca_file = pki.ca_file().string()});
  ASSERT_TRUE(email);
  const auto sent = email->deliver(target(), notice());
  ASSERT_TRUE(sent) << sent.error().reason;
  ASSERT_TRUE(smtp->wait_for_messages(1, kWait));
}

TEST(EmailChannel, VerificationMail) {
  auto smtp = server();
  ASSERT_TRUE(smtp);
  auto email = channel(*smtp);
  ASSERT_TRUE(email);
  const std::string link = "https://dags.example.com/v1/verify?token=abc_DEF-123";
  ASSERT_TRUE(email->send_verification("bob@example.com", link, 1'795'560'096'123));
  ASSERT_TRUE(email->send_verification("bob@example.com", link, 1'795'560'096'123));
  auto mails = smtp->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  const auto& mail = mails->front();
  expect_clean(mail);
  EXPECT_EQ(mail.rcpt_to, std::vector<std::string>{"bob@example.com"});
  EXPECT_EQ(mail.subject, "Confirm your address for detectordag alerts");
  EXPECT_NE(mail.part("text/plain")->text.find(link), std::string::npos);
  EXPECT_NE(mail.part("text/plain")->text.find("22:41 UTC"), std::string::npos);
  EXPECT_NE(mail.part("text/html")->text.find("href=\"" + link + "\""), std::string::npos);
  EXPECT_EQ(mail.header("Message-ID"), (*mails)[1].header("Message-ID"));
  EXPECT_FALSE(email->send_verification("bob@example.com\r\nBcc: x@y.z", link, 0));
}

TEST(EmailChannel, CreateChecksTheOptions) {
  EXPECT_TRUE(EmailChannel::create({.url = "smtp://mail.example.com:587", .from = "a@b.example"}));
  EXPECT_TRUE(EmailChannel::create({.url = "smtps://mail.example.com", .from = "x <a@b.example>"}));
  for (const char* url : {"", "http://mail.example.com", "mail.example.com:25", "smtp://",
                          "smtp://user:pw@mail.example.com", "smtp://mail.example.com:25\r\n"}) {
    const auto c = EmailChannel::create({.url = url, .from = "a@b.example"});
    ASSERT_FALSE(c) << url;
    EXPECT_EQ(c.error().code, Errc::config) << url;
  }
  for (const char* from : {"", "nobody", "x <a@b.example>\r\nBcc: y@z.example", "<a@b.example"}) {
    EXPECT_FALSE(EmailChannel::create({.url = "smtp://mail.example.com", .from = from})) << from;
  }
  EXPECT_EQ(parse_smtp_tls("required"), SmtpTls::required);
  EXPECT_EQ(parse_smtp_tls("starttls"), std::nullopt);
  EXPECT_EQ(to_string(SmtpTls::opportunistic), "opportunistic");
}

}  // namespace
}  // namespace dag::notify
