// The notification chain with real parts: a power cut processed by the shadow service
// (rules, per-target intents in the same transaction), the outbox worker, the e-mail channel
// over libcurl, and a real SMTP server (aiosmtpd) writing a Maildir. The worker runs on a
// fake clock so that retry and coalescing times are exact; the network is real.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "dag/notify/email.hpp"
#include "dag/notify/worker.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/shadow/service.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/test/smtp_server.hpp"
#include "dag/test/temp_dir.hpp"

namespace dag::notify {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::int64_t kT0 = 1'800'000'000'000;
constexpr auto kWait = 10s;

template <class T>
T must(store::StoreResult<T> r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
  return std::move(r).value();
}
inline void must(const store::StoreResult<void>& r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
}

class EmailVerifier final : public Verifier {
 public:
  explicit EmailVerifier(EmailChannel& c) : channel_(c) {}
  Delivery send_verification(const std::string& address, const std::string& link,
                             std::int64_t expires_at_ms) override {
    return channel_.send_verification(address, link, expires_at_ms);
  }

 private:
  EmailChannel& channel_;
};

class OutboxSmtpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto smtp = test::SmtpServer::start({});
    ASSERT_TRUE(smtp) << smtp.error().message;
    smtp_ = std::move(*smtp);
    store_ = must(store::open_sqlite(dir_.path() / "dagd.db"));
    clock_.set_unix_ms(kT0);
    auto tx = must(store_->begin());
    account_ = must(tx->create_account("alice", "$argon2id$x", kT0));
    for (int i = 0; i < 20; ++i) {
      must(tx->create_device(
          {"dag-" + std::to_string(i), account_.id, "Dag " + std::to_string(i), kT0}));
    }
    for (const auto& [address, verified] :
         {std::pair{"alice@example.com", true}, std::pair{"carol@example.com", true},
          std::pair{"bob@example.com", false}}) {
      must(tx->add_target(
          {account_.id, store::TargetKind::email, address, verified, std::nullopt, kT0}));
    }
    must(tx->commit());

    SmtpOptions so;
    so.url = smtp_->url();
    so.from = "detectordag <dag@dags.example.com>";
    so.tls = SmtpTls::none;
    auto email = EmailChannel::create(so, clock_);
    ASSERT_TRUE(email) << email.error().message;
    email_ = std::move(*email);
    verifier_ = std::make_unique<EmailVerifier>(*email_);
    WorkerOptions wo;
    wo.coalesce_window = 5s;
    wo.retry_initial = 10s;
    wo.public_url = "https://dags.example.com";
    worker_ = std::make_unique<Worker>(*store_, clock_, wo,
                                       Channels{email_.get(), nullptr, nullptr, nullptr}, metrics_);
    service_ = std::make_unique<shadow::Service>(*store_, clock_, shadow::ServiceOptions{},
                                                 shadow_metrics_);
  }

  // A dag reports its status, as dag-edge does; the service writes intents per target.
  void report(int dag, std::string_view status, std::int64_t seq) {
    const std::string id = "dag-" + std::to_string(dag);
    const json body = {
        {"state",
         {{"reported", {{"status", status}, {"seq", seq}, {"observedAt", clock_.unix_ms() - 50}}}}},
        {"clientToken", "e" + std::to_string(seq)}};
    const shadow::Inbound in{protocol::shadow_topic(id, protocol::ShadowOp::update), body.dump(),
                             false, clock_.unix_ms()};
    service_->process(std::span(&in, 1));
  }
  static std::vector<test::ReceivedMail> alerts(const std::vector<test::ReceivedMail>& all) {
    std::vector<test::ReceivedMail> out;
    for (const auto& m : all) {
      if (m.subject.find("Confirm your address") == std::string::npos) out.push_back(m);
    }
    return out;
  }
  std::int64_t pending() {
    auto tx = must(store_->begin(store::TxMode::read_only));
    return must(tx->count_pending_intents());
  }

  test::TempDir dir_{"dag-outbox"};
  std::unique_ptr<test::SmtpServer> smtp_;
  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  store::Account account_;
  std::unique_ptr<EmailChannel> email_;
  std::unique_ptr<EmailVerifier> verifier_;
  WorkerMetrics metrics_;
  shadow::Metrics shadow_metrics_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<shadow::Service> service_;
};

TEST_F(OutboxSmtpTest, APowerCutMailsEveryVerifiedAddressOnce) {
  report(1, "on", 1);
  clock_.advance(60s);
  report(1, "off", 2);
  worker_->run_once();
  auto mails = smtp_->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  std::set<std::string> rcpts;
  for (const auto& m : *mails) {
    ASSERT_EQ(m.rcpt_to.size(), 1U);
    rcpts.insert(m.rcpt_to[0]);
    EXPECT_EQ(m.subject, "You've lost power! (Dag 1)");
    EXPECT_TRUE(m.defects.empty());
    const auto* text = m.part("text/plain");
    const auto* html = m.part("text/html");
    ASSERT_TRUE(text && html);
    EXPECT_NE(text->text.find("Dag 1"), std::string::npos) << text->text;
    EXPECT_NE(text->text.find("https://dags.example.com"), std::string::npos) << text->text;
    EXPECT_NE(html->text.find("Dag 1"), std::string::npos);
    EXPECT_TRUE(m.header("Message-ID").has_value());
    EXPECT_TRUE(m.header("Date").has_value());
  }
  EXPECT_EQ(rcpts, (std::set<std::string>{"alice@example.com", "carol@example.com"}));  // not bob
  // Nothing more: a later round sends nothing (a sentinel mail proves the absence).
  worker_->run_once();
  clock_.advance(1h);
  worker_->run_once();
  report(2, "on", 1);  // an initial state: no alert
  worker_->run_once();
  EXPECT_EQ(pending(), 0);
  ASSERT_TRUE(email_->send_verification("sentinel@example.com", "https://x", kT0));
  auto all = smtp_->wait_for_messages(3, kWait);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3U);
  EXPECT_EQ(all->back().rcpt_to[0], "sentinel@example.com");
}

TEST_F(OutboxSmtpTest, ServerDownThirtySecondsThenUpDeliversOnce) {
  ASSERT_TRUE(smtp_->stop());
  report(1, "on", 1);
  report(1, "off", 2);
  worker_->run_once();  // t+0: refused
  for (int s = 5; s < 30; s += 5) {
    clock_.advance(5s);
    worker_->run_once();  // retries at +10 and +30 (backoff 10 s, 20 s): refused meanwhile
  }
  EXPECT_GT(metrics_.retries.load(), 0U);
  EXPECT_EQ(metrics_.sent.load(), 0U);
  ASSERT_TRUE(smtp_->start());
  clock_.advance(5s);  // t+30
  worker_->run_once();
  auto mails = smtp_->wait_for_messages(2, kWait);
  ASSERT_TRUE(mails) << mails.error().message;
  for (int i = 0; i < 5; ++i) {
    clock_.advance(1min);
    worker_->run_once();
  }
  EXPECT_EQ(pending(), 0);
  ASSERT_TRUE(email_->send_verification("sentinel@example.com", "https://x", kT0));
  auto all = smtp_->wait_for_messages(3, kWait);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3U);  // one per verified address, once, then the sentinel
}

TEST_F(OutboxSmtpTest, AStormIsOneAlertAndOneFollowUpListingTheOthers) {
  // One target only, to count messages simply.
  {
    auto tx = must(store_->begin());
    for (const auto& t : must(tx->list_targets(account_.id))) {
      if (t.address != "alice@example.com") must(tx->remove_target(t.id));
    }
    must(tx->commit());
  }
  for (int i = 0; i < 20; ++i) report(i, "on", 1);
  // The first cut is told at once; the 19 that follow within the window wait for it.
  report(0, "off", 2);
  worker_->run_once();
  auto first = smtp_->wait_for_messages(1, kWait);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)[0].subject, "You've lost power! (Dag 0)");
  clock_.advance(1s);
  for (int i = 1; i < 20; ++i) report(i, "off", 2);
  worker_->run_once();
  clock_.advance(4s);
  worker_->run_once();
  auto both = smtp_->wait_for_messages(2, kWait);
  ASSERT_TRUE(both) << both.error().message;
  const auto& follow = (*both)[1];
  EXPECT_EQ(follow.subject, "19 more of your dags lost power");
  const auto* text = follow.part("text/plain");
  ASSERT_TRUE(text);
  for (int i = 1; i < 20; ++i) {
    EXPECT_NE(text->text.find("Dag " + std::to_string(i) + ":"), std::string::npos) << i;
  }
  EXPECT_EQ(pending(), 0);
  // A lone alert later goes out without waiting for a window.
  clock_.advance(1min);
  report(0, "on", 3);
  worker_->run_once();
  auto third = smtp_->wait_for_messages(3, kWait);
  ASSERT_TRUE(third);
  EXPECT_EQ((*third)[2].subject, "Your power's back! (Dag 0)");
}

}  // namespace
}  // namespace dag::notify
