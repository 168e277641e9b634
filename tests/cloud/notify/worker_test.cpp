// The outbox worker against a real (in-memory) store, with fake channels: coalescing,
// retries, permanent failures, targets, verification mails.
#include "dag/notify/worker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "dag/common/encoding.hpp"
#include "dag/store/sqlite.hpp"

namespace dag::notify {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kT0 = 1'800'000'000'000;

template <class T>
T must(store::StoreResult<T> r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
  return std::move(r).value();
}
inline void must(const store::StoreResult<void>& r) {
  if (!r) throw std::runtime_error("store: " + r.error().message);
}

class FakeChannel final : public Channel, public Verifier {
 public:
  Delivery deliver(const store::NotificationTarget& target, const Notice& notice) override {
    calls.push_back({target.address, notice});
    if (during) during();
    if (!script.empty()) {
      auto next = script.front();
      script.pop_front();
      if (next) return Unexpected<DeliveryError>{*next};
    }
    return {};
  }
  Delivery send_verification(const std::string& address, const std::string& link,
                             std::int64_t /*expires_at_ms*/) override {
    verifications.emplace_back(address, link);
    return {};
  }
  struct Call {
    std::string address;
    Notice notice;
  };
  std::vector<Call> calls;
  std::deque<std::optional<DeliveryError>> script;  ///< per call: nullopt = success
  std::function<void()> during;                     ///< runs inside each delivery
  std::vector<std::pair<std::string, std::string>> verifications;
};

// The store, with a look at every transaction begun.
class HookedStore final : public store::Store {
 public:
  HookedStore(store::Store& inner, std::function<void(store::TxMode)> on_begin)
      : inner_(inner), on_begin_(std::move(on_begin)) {}
  store::StoreResult<std::unique_ptr<store::Transaction>> begin(store::TxMode mode) override {
    on_begin_(mode);
    return inner_.begin(mode);
  }
  store::StoreResult<void> ping() override { return inner_.ping(); }

 private:
  store::Store& inner_;
  std::function<void(store::TxMode)> on_begin_;
};

class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = must(store::open_sqlite(":memory:"));
    clock_.set_unix_ms(kT0);
    auto tx = must(store_->begin());
    account_ = must(tx->create_account("alice", "$argon2id$x", kT0));
    auto settings = account_.settings;
    settings.time_zone = "Europe/Oslo";
    must(tx->update_account_settings(account_.id, settings));
    for (int i = 0; i < 20; ++i) {
      must(tx->create_device(
          {"dag-" + std::to_string(i), account_.id, "Dag " + std::to_string(i), kT0}));
    }
    email_ = must(tx->add_target(
        {account_.id, store::TargetKind::email, "alice@example.com", true, std::nullopt, kT0}));
    must(tx->commit());
    options_.coalesce_window = 5s;
    options_.retry_initial = 30s;
    options_.retry_max = 1h;
    options_.give_up_after = 24h;
    options_.public_url = "https://dags.example.com";
    remake_worker();
  }

  // A worker with options_ as they are now.
  void remake_worker() {
    worker_ = std::make_unique<Worker>(
        *store_, clock_, options_, Channels{&channel_, &channel_, &channel_, &channel_}, metrics_);
  }

  void intent(int device, std::optional<std::string> target,
              store::Transition t = store::Transition::power_lost) {
    auto tx = must(store_->begin());
    store::Intent i{account_.id,
                    "dag-" + std::to_string(device),
                    "Dag " + std::to_string(device),
                    t,
                    protocol::UserState::off,
                    clock_.unix_ms() - 100,
                    clock_.unix_ms(),
                    "{}"};
    i.target_id = std::move(target);
    must(tx->enqueue_intent(i));
    must(tx->commit());
  }
  std::int64_t pending() {
    auto tx = must(store_->begin(store::TxMode::read_only));
    return must(tx->count_pending_intents());
  }
  store::NotificationTarget target(const std::string& id) {
    auto tx = must(store_->begin(store::TxMode::read_only));
    for (auto& t : must(tx->list_targets(account_.id))) {
      if (t.id == id) return t;
    }
    throw std::runtime_error("no target");
  }

  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  store::Account account_;
  store::NotificationTarget email_;
  FakeChannel channel_;
  WorkerOptions options_;
  WorkerMetrics metrics_;
  std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerTest, ALoneAlertGoesOutAtOnce) {
  intent(1, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  const auto& n = channel_.calls[0].notice;
  EXPECT_EQ(channel_.calls[0].address, "alice@example.com");
  ASSERT_EQ(n.items.size(), 1U);
  EXPECT_EQ(n.items[0].device_name, "Dag 1");
  EXPECT_FALSE(n.follow_up);
  EXPECT_EQ(n.time_zone, "Europe/Oslo");
  EXPECT_EQ(n.dashboard_url, "https://dags.example.com");
  EXPECT_FALSE(n.idempotency_key.empty());
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(target(email_.id).last_success_at_ms, kT0);
  // Nothing more to do.
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);
}

// A storm: what is already due when the target is quiet goes out at once in one message;
// what comes after it waits for the window and goes out as one follow-up.
TEST_F(WorkerTest, AStormIsOneAlertWithEverythingDueThenOneFollowUp) {
  for (int i = 0; i < 15; ++i) intent(i, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);  // at once, everything that was due
  const auto& first = channel_.calls[0].notice;
  EXPECT_FALSE(first.follow_up);
  ASSERT_EQ(first.items.size(), 15U);
  EXPECT_EQ(first.items.front().device_id, "dag-0");
  EXPECT_EQ(first.items.back().device_id, "dag-14");
  EXPECT_EQ(metrics_.deferred.load(), 0U);
  clock_.advance(1s);
  for (int i = 15; i < 20; ++i) intent(i, email_.id);
  const auto next = worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);  // held: the target just heard from us
  EXPECT_EQ(metrics_.deferred.load(), 5U);
  EXPECT_LE(next, kT0 + 5000);  // wakes for the follow-up
  clock_.set_unix_ms(kT0 + 4999);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);  // not before the window ends
  clock_.advance(1ms);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  const auto& follow = channel_.calls[1].notice;
  EXPECT_TRUE(follow.follow_up);
  ASSERT_EQ(follow.items.size(), 5U);
  EXPECT_EQ(follow.items.front().device_id, "dag-15");
  EXPECT_EQ(follow.items.back().device_id, "dag-19");
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.sent.load(), 2U);
}

// A storm hold: while the ingest is behind, the first alert waits for the rest of the
// storm, and the account hears of all of it in one message, not an alert and a follow-up.
TEST_F(WorkerTest, WhileTheIngestIsBehindAlertsWaitAndThenGoOutAsOneMessage) {
  std::size_t backlog = 5000;
  options_.ingest_backlog = [&] { return backlog; };
  options_.storm_backlog = 200;
  options_.storm_hold = 5s;
  remake_worker();
  for (int i = 0; i < 3; ++i) intent(i, email_.id);
  auto next = worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());  // held
  EXPECT_GT(next, kT0);
  EXPECT_LE(next, kT0 + 100);  // looks again soon: the ingest does not say when it is done
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
  clock_.advance(2s);
  for (int i = 3; i < 8; ++i) intent(i, email_.id);
  worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());
  backlog = 200;  // caught up (at the threshold counts as caught up)
  clock_.advance(1s);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  const auto& n = channel_.calls[0].notice;
  EXPECT_FALSE(n.follow_up);
  EXPECT_EQ(n.items.size(), 8U);
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.deferred.load(), 0U);
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
}

// A hold is bounded: an ingest that stays behind delays alerts by storm_hold at most.
TEST_F(WorkerTest, AStormHoldEndsAfterStormHoldEvenIfTheIngestStaysBehind) {
  options_.ingest_backlog = [] { return std::size_t{100'000}; };
  options_.storm_hold = 3s;
  remake_worker();
  intent(1, email_.id);
  worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());
  clock_.set_unix_ms(kT0 + 2999);
  EXPECT_EQ(worker_->run_once(), kT0 + 3000);  // wakes when the hold ends
  EXPECT_TRUE(channel_.calls.empty());
  clock_.set_unix_ms(kT0 + 3000);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  // Still behind: the next intents are not held again (only the coalescing applies).
  clock_.advance(6s);
  intent(2, email_.id);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
}

// A storm the broker still holds does not show in the ingest's backlog, but its intents
// come fast: more than storm_rate per second over 250 ms hold rounds too. Once holding,
// the rate over a second holds them as well, so a pause of one slow commit does not end
// the hold; it ends once they slow down over both.
TEST_F(WorkerTest, IntentsComingFastHoldAlertsUntilTheyStop) {
  options_.ingest_backlog = [] { return std::size_t{0}; };
  options_.storm_rate = 200;  // more than 50 in 250 ms
  remake_worker();
  for (int i = 0; i < 3; ++i) intent(i, email_.id);
  worker_->wake(50);  // at the threshold: not a storm
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  EXPECT_EQ(metrics_.storm_holds.load(), 0U);

  clock_.advance(6s);  // past the coalescing window: the next intents would go out at once
  for (int i = 4; i < 9; ++i) intent(i, email_.id);
  worker_->wake(51);
  clock_.advance(100ms);
  auto next = worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);  // held
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
  EXPECT_LE(next, clock_.unix_ms() + 50);
  clock_.advance(10ms);  // 51 in the last second is not above 200 per second: too early to
  worker_->run_once();   // tell over a second, and over 250 ms it is still a storm
  EXPECT_EQ(channel_.calls.size(), 1U);
  worker_->wake(200);     // the next commit, 110 ms after the first
  clock_.advance(400ms);  // 510 ms: nothing for 400 ms, but 251 in the last second
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);
  clock_.advance(500ms);  // 1,010 ms: the first commit left the window, 200 is not above 200
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(channel_.calls[1].notice.items.size(), 5U);
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
}

// Once only the last second's pace holds (the ingest is idle, nothing in 250 ms), the
// hold ends as soon as no account waiting for an alert has a dag that could still be cut:
// the rest of a storm, if any, is other accounts' news.
TEST_F(WorkerTest, AHoldEndsOnceNoWaitingAccountCanGetAnotherCut) {
  options_.ingest_backlog = [] { return std::size_t{0}; };
  options_.storm_rate = 200;  // more than 50 in 250 ms
  remake_worker();
  const auto set_power = [&](int device, protocol::Power power) {
    auto tx = must(store_->begin());
    store::DeviceState s;
    s.power = power;
    s.power_since_ms = clock_.unix_ms();
    s.notified_power_lost = power == protocol::Power::off;
    must(tx->update_device_state("dag-" + std::to_string(device), s));
    must(tx->commit());
  };
  for (int d = 0; d < 20; ++d) set_power(d, protocol::Power::off);
  set_power(19, protocol::Power::on);  // not cut (yet)
  for (int i = 0; i < 5; ++i) intent(i, email_.id);
  worker_->wake(51);
  clock_.advance(10ms);
  worker_->run_once();
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
  worker_->wake(200);     // the next commit
  clock_.advance(400ms);  // quiet for 400 ms, but 251 in the last second
  worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());  // dag-19 may still be cut
  set_power(19, protocol::Power::off);
  intent(19, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  EXPECT_EQ(channel_.calls[0].notice.items.size(), 6U);
  EXPECT_FALSE(channel_.calls[0].notice.follow_up);
}

// The storm can begin while a round claims: the ingest's commit holds the write lock, the
// claim waits for it and then finds that commit's intents too. The round sends nothing
// then; the intents stay pending and go out in one message when the hold ends.
TEST_F(WorkerTest, AStormThatBeginsDuringTheClaimHoldsThatRound) {
  int claims = 0;
  HookedStore hooked(*store_, [&](store::TxMode mode) {
    // The round's first write transaction is its claim; the commit it waited for made 80.
    if (mode == store::TxMode::read_write && ++claims == 1) worker_->wake(80);
  });
  options_.ingest_backlog = [] { return std::size_t{0}; };
  options_.storm_rate = 200;  // more than 50 in 250 ms
  worker_ = std::make_unique<Worker>(
      hooked, clock_, options_, Channels{&channel_, &channel_, &channel_, &channel_}, metrics_);
  for (int i = 0; i < 3; ++i) intent(i, email_.id);
  clock_.advance(20ms);  // the round comes a moment after the commit that made them
  const auto next = worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
  EXPECT_LE(next, clock_.unix_ms() + 50);
  EXPECT_EQ(pending(), 3);
  for (int i = 3; i < 6; ++i) intent(i, email_.id);
  clock_.advance(250ms);  // the intents slowed down
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  EXPECT_EQ(channel_.calls[0].notice.items.size(), 6U);
  EXPECT_FALSE(channel_.calls[0].notice.follow_up);  // a first alert, though it went back
  EXPECT_EQ(pending(), 0);
  {
    // Given back, not delivered: the claim did not count as an attempt.
    auto tx = must(store_->begin(store::TxMode::read_only));
    EXPECT_EQ(must(tx->get_intent(1)).attempts, 1);
  }
}

// By default more than 10 intents within 250 ms (40 per second) are a storm: a busy broker
// can hand dagd a storm at a few hundred reports per second at first, and its first
// accounts would otherwise get a first alert and then a follow-up.
TEST_F(WorkerTest, TheDefaultRateSeesAStormThatArrivesSlowly) {
  options_ = WorkerOptions{};
  options_.ingest_backlog = [] { return std::size_t{0}; };
  remake_worker();
  for (int i = 0; i < 3; ++i) intent(i, email_.id);
  worker_->wake(10);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);  // 10: a few outages at once, not a storm
  clock_.advance(6s);
  for (int i = 3; i < 6; ++i) intent(i, email_.id);
  worker_->wake(11);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);
  EXPECT_EQ(metrics_.storm_holds.load(), 1U);
}

// No backlog, or a hold of 0: a lone outage is never held.
TEST_F(WorkerTest, NoBacklogOrAZeroHoldNeverHolds) {
  std::size_t backlog = 0;
  options_.ingest_backlog = [&] { return backlog; };
  remake_worker();
  intent(1, email_.id);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);

  options_.storm_hold = 0ms;
  backlog = 100'000;
  remake_worker();
  clock_.advance(10s);
  intent(2, email_.id);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(metrics_.storm_holds.load(), 0U);
}

// The window is counted from the round that sent the first alert, not from when its
// delivery ended: intents that came during a slow delivery and after it go out together.
TEST_F(WorkerTest, ASlowFirstAlertStillMakesOneFollowUp) {
  channel_.during = [&] { clock_.advance(2s); };  // the relay takes 2 s per message
  intent(1, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  channel_.during = nullptr;
  intent(2, email_.id);   // kT0 + 2 s: made during the delivery, claimed after it
  clock_.advance(100ms);  // kT0 + 2.1 s
  intent(3, email_.id);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);
  clock_.set_unix_ms(kT0 + 5000);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  EXPECT_TRUE(channel_.calls[1].notice.follow_up);
  EXPECT_EQ(channel_.calls[1].notice.items.size(), 2U);
  clock_.advance(10s);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(pending(), 0);
}

// Claims smaller than the outbox take whole targets: each target still gets one alert and
// one follow-up with all the rest, however the claims cut the outbox.
TEST_F(WorkerTest, ClaimsThatCutATargetsIntentsStillMakeOneFollowUpEach) {
  std::vector<std::string> targets{email_.id};
  {
    auto tx = must(store_->begin());
    for (const char* a : {"bob@example.com", "carol@example.com"}) {
      targets.push_back(
          must(tx->add_target({account_.id, store::TargetKind::email, a, true, std::nullopt, kT0}))
              .id);
    }
    must(tx->commit());
  }
  // A first alert each, then two more intents per target within the window: when the
  // follow-ups are due, a claim of 3 would take two of one target and one of the next.
  auto options = options_;
  options.claim_limit = 3;
  Worker worker(*store_, clock_, options, Channels{&channel_, nullptr, nullptr, nullptr}, metrics_);
  for (const auto& t : targets) intent(0, t);
  worker.run_once();
  clock_.advance(1s);
  for (int i = 1; i < 3; ++i) {
    for (const auto& t : targets) intent(i, t);
  }
  const auto rounds_until = [&](std::int64_t until) {
    for (int n = 0; n < 100; ++n) {
      const auto due = worker.run_once();
      if (due <= clock_.unix_ms()) continue;  // a full claim: more are due now
      if (clock_.unix_ms() >= until) return;
      clock_.set_unix_ms(std::min(until, due));
    }
  };
  rounds_until(kT0 + 5000);
  rounds_until(kT0 + 20'000);
  std::map<std::string, std::vector<std::size_t>> sizes;
  for (const auto& c : channel_.calls) sizes[c.address].push_back(c.notice.items.size());
  for (const char* a : {"alice@example.com", "bob@example.com", "carol@example.com"}) {
    EXPECT_EQ(sizes[a], (std::vector<std::size_t>{1, 2})) << a;
  }
  EXPECT_EQ(pending(), 0);
}

// Intents made within the window after an alert but claimed only after it ended (the
// worker had a backlog) join one follow-up instead of starting a new first alert.
TEST_F(WorkerTest, IntentsClaimedLateStillJoinTheFollowUp) {
  intent(1, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 1U);
  clock_.advance(1s);
  intent(2, email_.id);
  clock_.advance(1s);
  intent(3, email_.id);
  clock_.set_unix_ms(kT0 + 7000);  // no round in between
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(channel_.calls[1].notice.items.size(), 2U);
  EXPECT_TRUE(channel_.calls[1].notice.follow_up);
  clock_.advance(10s);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(pending(), 0);
}

// A channel that holds every delivery until `want` of them are in progress at once (or a
// bound passes): with deliveries one after another it never sees more than one.
class ParallelChannel final : public Channel {
 public:
  explicit ParallelChannel(int want) : want_(want) {}
  Delivery deliver(const store::NotificationTarget& target, const Notice& /*notice*/) override {
    std::unique_lock lock(mutex_);
    ++in_flight_;
    most_ = std::max(most_, in_flight_);
    cv_.notify_all();
    cv_.wait_for(lock, 2s, [&] { return most_ >= want_; });
    --in_flight_;
    addresses_.push_back(target.address);
    return {};
  }
  int most() {
    std::lock_guard lock(mutex_);
    return most_;
  }
  std::vector<std::string> addresses() {
    std::lock_guard lock(mutex_);
    return addresses_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int want_;
  int in_flight_{0};
  int most_{0};
  std::vector<std::string> addresses_;
};

TEST_F(WorkerTest, DeliversARoundsMessagesInParallel) {
  std::vector<std::string> ids{email_.id};
  {
    auto tx = must(store_->begin());
    for (const char* a : {"b@example.com", "c@example.com", "d@example.com", "e@example.com"}) {
      ids.push_back(
          must(tx->add_target({account_.id, store::TargetKind::email, a, true, std::nullopt, kT0}))
              .id);
    }
    must(tx->commit());
  }
  ParallelChannel parallel(4);
  auto options = options_;
  options.concurrency = 4;
  Worker worker(*store_, clock_, options, Channels{&parallel, nullptr, nullptr, nullptr}, metrics_);
  for (std::size_t k = 0; k < ids.size(); ++k) intent(static_cast<int>(k), ids[k]);
  worker.run_once();
  EXPECT_EQ(parallel.most(), 4);
  auto got = parallel.addresses();
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{"alice@example.com", "b@example.com", "c@example.com",
                                           "d@example.com", "e@example.com"}));
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.sent.load(), 5U);
}

// A channel that holds the deliveries to one address until open() (or a bound passes);
// the others go through at once. Every call is seen by await().
class GateChannel final : public Channel {
 public:
  explicit GateChannel(std::string held) : held_(std::move(held)) {}
  Delivery deliver(const store::NotificationTarget& target, const Notice& notice) override {
    std::unique_lock lock(mutex_);
    calls_.push_back({target.address, notice});
    cv_.notify_all();
    cv_.wait_for(lock, 10s, [&] { return target.address != held_ || open_; });
    return {};
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  // Whether `address` has had `n` calls within 5 s.
  bool await(const std::string& address, std::size_t n = 1) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, 5s, [&] { return count(address) >= n; });
  }
  std::vector<FakeChannel::Call> calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }

 private:
  std::size_t count(const std::string& address) const {
    return static_cast<std::size_t>(std::count_if(
        calls_.begin(), calls_.end(), [&](const auto& c) { return c.address == address; }));
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::string held_;
  bool open_{false};
  std::vector<FakeChannel::Call> calls_;
};

class PipelineTest : public WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    auto tx = must(store_->begin());
    bob_ = must(tx->add_target(
        {account_.id, store::TargetKind::email, "bob@example.com", true, std::nullopt, kT0}));
    carol_ = must(tx->add_target(
        {account_.id, store::TargetKind::email, "carol@example.com", true, std::nullopt, kT0}));
    must(tx->commit());
    auto options = options_;
    options.concurrency = 2;
    worker_ = std::make_unique<Worker>(*store_, clock_, options,
                                       Channels{&gate_, nullptr, nullptr, nullptr}, metrics_);
  }
  void TearDown() override {
    gate_.open();
    if (runner_.joinable()) {
      worker_->stop();
      runner_.join();
    }
  }
  void start() {
    runner_ = std::thread([this] { worker_->run(); });
  }
  void stop() {
    worker_->stop();
    runner_.join();
  }

  store::NotificationTarget bob_;
  store::NotificationTarget carol_;
  GateChannel gate_{"alice@example.com"};
  std::thread runner_;
};

// One slow delivery (a relay or webhook that takes its whole timeout) holds up its own
// sender only: the next round is claimed and delivered by the others meanwhile.
TEST_F(PipelineTest, ASlowDeliveryDoesNotHoldUpTheNextRound) {
  intent(1, email_.id);
  intent(2, bob_.id);
  start();
  ASSERT_TRUE(gate_.await("alice@example.com"));
  ASSERT_TRUE(gate_.await("bob@example.com"));
  intent(3, carol_.id);
  worker_->wake(1);
  EXPECT_TRUE(gate_.await("carol@example.com"))
      << "carol's alert waited for the round with alice's slow delivery";
  gate_.open();
  stop();
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.sent.load(), 3U);
}

// An intent for a target whose first alert is still on its way belongs to the follow-up,
// as if that alert had been delivered at its round's time.
TEST_F(PipelineTest, ATargetWhoseAlertIsOnItsWayGetsAFollowUpNotASecondAlert) {
  intent(1, email_.id);
  start();
  ASSERT_TRUE(gate_.await("alice@example.com"));
  intent(2, email_.id);
  intent(3, carol_.id);
  worker_->wake(2);
  ASSERT_TRUE(gate_.await("carol@example.com"));  // the claim with alice's second is planned
  gate_.open();
  stop();  // waits for every delivery under way
  const auto to_alice = [&] {
    std::vector<Notice> out;
    for (const auto& c : gate_.calls()) {
      if (c.address == "alice@example.com") out.push_back(c.notice);
    }
    return out;
  };
  ASSERT_EQ(to_alice().size(), 1U);
  clock_.advance(5s);
  worker_->run_once();
  const auto notices = to_alice();
  ASSERT_EQ(notices.size(), 2U);
  EXPECT_TRUE(notices[1].follow_up);
  ASSERT_EQ(notices[1].items.size(), 1U);
  EXPECT_EQ(notices[1].items[0].device_id, "dag-2");
  EXPECT_EQ(pending(), 0);
}

// A delivery that fails does not count as the target having heard from us: its next
// alert is a first alert again, not a follow-up.
TEST_F(WorkerTest, AFailedAlertIsNotAFollowUpsStart) {
  channel_.script = {DeliveryError{true, "550 no such user"}};
  intent(1, email_.id);
  worker_->run_once();
  clock_.advance(1s);
  intent(2, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  EXPECT_FALSE(channel_.calls[1].notice.follow_up);
}

TEST_F(WorkerTest, AnAlertWithinTheWindowJoinsTheFollowUp) {
  intent(1, email_.id);
  worker_->run_once();
  clock_.advance(1s);
  intent(2, email_.id);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);  // held: the target just heard from us
  clock_.advance(1s);
  intent(3, email_.id);
  worker_->run_once();
  clock_.advance(3s);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 2U);
  EXPECT_EQ(channel_.calls[1].notice.items.size(), 2U);
  // A quiet target again: the next alert is immediate.
  clock_.advance(10s);
  intent(4, email_.id);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 3U);
  EXPECT_FALSE(channel_.calls[2].notice.follow_up);
}

TEST_F(WorkerTest, TransientFailuresAreRetriedWithBackoffAndDeliveredOnce) {
  channel_.script = {DeliveryError{false, "connection refused"},
                     DeliveryError{false, "connection refused"}, std::nullopt};
  intent(1, email_.id);
  worker_->run_once();
  EXPECT_EQ(target(email_.id).failure_count, 1);
  EXPECT_EQ(target(email_.id).last_error, "connection refused");
  clock_.advance(29s);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 1U);  // not before 30 s
  clock_.advance(1s);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);
  clock_.advance(59s);
  worker_->run_once();
  EXPECT_EQ(channel_.calls.size(), 2U);  // then 60 s
  clock_.advance(1s);
  worker_->run_once();
  ASSERT_EQ(channel_.calls.size(), 3U);
  EXPECT_EQ(pending(), 0);
  EXPECT_FALSE(channel_.calls[2].notice.follow_up);  // still the same lone alert
  EXPECT_EQ(channel_.calls[0].notice.idempotency_key, channel_.calls[2].notice.idempotency_key);
  EXPECT_EQ(target(email_.id).failure_count, 0);
  EXPECT_EQ(metrics_.retries.load(), 2U);
}

TEST_F(WorkerTest, PermanentFailuresAndGivingUp) {
  channel_.script = {DeliveryError{true, "550 no such user"}};
  intent(1, email_.id);
  worker_->run_once();
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.failed.load(), 1U);
  EXPECT_EQ(target(email_.id).last_error, "550 no such user");

  // Transient for a whole day: given up with the reason.
  channel_.script.assign(100, DeliveryError{false, "timeout"});
  clock_.advance(10s);
  intent(2, email_.id);
  for (int i = 0; i < 40 && pending() > 0; ++i) {
    worker_->run_once();
    clock_.advance(1h);
  }
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.failed.load(), 2U);
  EXPECT_LE(channel_.calls.size(), 30U);  // backoff capped at an hour: ~28 tries in a day
}

TEST_F(WorkerTest, NoTargetAndUnverifiedTargets) {
  intent(1, std::nullopt);
  worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());
  EXPECT_EQ(pending(), 0);
  EXPECT_EQ(metrics_.intents_done.load(), 1U);

  // Queued while verified, then un-verified: not delivered.
  intent(2, email_.id);
  {
    auto tx = must(store_->begin());
    must(tx->set_target_verified(email_.id, false));
    must(tx->commit());
  }
  worker_->run_once();
  EXPECT_TRUE(channel_.calls.empty());
  EXPECT_EQ(pending(), 0);
}

TEST_F(WorkerTest, UnconfiguredChannelFailsPermanently) {
  Worker no_email(*store_, clock_, options_, Channels{nullptr, nullptr, &channel_, &channel_},
                  metrics_);
  intent(1, email_.id);
  no_email.run_once();
  EXPECT_TRUE(channel_.calls.empty());
  EXPECT_EQ(pending(), 0);
  EXPECT_NE(target(email_.id).last_error->find("not configured"), std::string::npos);
}

TEST_F(WorkerTest, NewAddressesGetOneVerificationMail) {
  store::NotificationTarget fresh;
  {
    auto tx = must(store_->begin());
    fresh = must(tx->add_target(
        {account_.id, store::TargetKind::email, "bob@example.com", false, std::nullopt, kT0}));
    must(tx->commit());
  }
  worker_->run_once();
  ASSERT_EQ(channel_.verifications.size(), 1U);
  EXPECT_EQ(channel_.verifications[0].first, "bob@example.com");
  const auto& link = channel_.verifications[0].second;
  ASSERT_TRUE(link.starts_with("https://dags.example.com/v1/verify?token="));
  worker_->run_once();
  EXPECT_EQ(channel_.verifications.size(), 1U);  // once
  // The link's token verifies the address (what the API does with it).
  const auto token = link.substr(link.find('=') + 1);
  auto tx = must(store_->begin());
  EXPECT_EQ(must(tx->consume_verification(sha256_hex(token), clock_.unix_ms())), fresh.id);
  must(tx->commit());
  EXPECT_TRUE(target(fresh.id).verified);
}

TEST(RetryDelay, DoublesUpToTheCap) {
  EXPECT_EQ(retry_delay(1, 30s, 1h), 30s);
  EXPECT_EQ(retry_delay(2, 30s, 1h), 60s);
  EXPECT_EQ(retry_delay(7, 30s, 1h), 1920s);
  EXPECT_EQ(retry_delay(8, 30s, 1h), 1h);
  EXPECT_EQ(retry_delay(500, 30s, 1h), 1h);
}

}  // namespace
}  // namespace dag::notify
