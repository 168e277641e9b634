#include "dag/rules/rules.hpp"

#include <gtest/gtest.h>

namespace dag::rules {
namespace {

using protocol::Connection;
using protocol::Power;
using protocol::UserState;
using store::EventKind;
using store::Transition;

constexpr std::int64_t kProvisioned = 1'700'000'000'000;

class RulesTest : public ::testing::Test {
 protected:
  RulesTest() {
    ctx_.device.id = "dag-1";
    ctx_.device.account_id = "acc-1";
    ctx_.device.name = "Freezer ring";
    ctx_.device.provisioned_at_ms = kProvisioned;
    ctx_.account_id = "acc-1";
    ctx_.now_ms = kProvisioned + 3'600'000;
  }

  // Applies a decision's state, as dagd writes it back.
  Decision apply(Decision d) {
    ctx_.device.state = d.state;
    return d;
  }
  Decision report(std::optional<Power> status, std::optional<std::int64_t> seq,
                  std::optional<std::int64_t> observed = std::nullopt) {
    Report r;
    r.status = status;
    r.seq = seq;
    r.observed_at_ms = observed ? observed : std::optional<std::int64_t>(ctx_.now_ms - 100);
    return apply(on_report(ctx_, r));
  }
  void advance(std::int64_t ms) { ctx_.now_ms += ms; }

  Context ctx_;
};

TEST_F(RulesTest, FirstReportIsTheInitialStateNotAChange) {
  auto d = report(Power::on, 1);
  EXPECT_TRUE(d.intents.empty());
  ASSERT_EQ(d.events.size(), 1U);  // history starts here
  EXPECT_EQ(d.events[0].kind, EventKind::power_on);
  EXPECT_EQ(d.state.power, Power::on);
  EXPECT_EQ(d.state.connection, Connection::connected);
  EXPECT_EQ(d.state.user_state, UserState::on);
  EXPECT_EQ(d.state.last_seq, 1);
  EXPECT_TRUE(d.state_changed);
}

TEST_F(RulesTest, PowerLostAndBackNotifyAtOnceWithoutGrace) {
  report(Power::on, 1);
  advance(1000);
  const auto cut = ctx_.now_ms - 50;
  auto off = report(Power::off, 2, cut);
  ASSERT_EQ(off.events.size(), 1U);
  EXPECT_EQ(off.events[0].kind, EventKind::power_off);
  EXPECT_EQ(off.events[0].observed_at_ms, cut);
  EXPECT_EQ(off.events[0].seq, 2);
  EXPECT_FALSE(off.events[0].clock_fallback);
  EXPECT_EQ(off.events[0].user_state_after, UserState::off);
  ASSERT_EQ(off.intents.size(), 1U);
  EXPECT_EQ(off.intents[0].transition, Transition::power_lost);
  EXPECT_EQ(off.intents[0].user_state, UserState::off);
  EXPECT_EQ(off.intents[0].device_name, "Freezer ring");
  EXPECT_EQ(off.intents[0].account_id, "acc-1");
  EXPECT_EQ(off.intents[0].observed_at_ms, cut);
  EXPECT_TRUE(off.state.notified_power_lost);
  advance(1000);
  auto on = report(Power::on, 3);
  ASSERT_EQ(on.intents.size(), 1U);
  EXPECT_EQ(on.intents[0].transition, Transition::power_back);
  EXPECT_EQ(on.state.user_state, UserState::on);
}

TEST_F(RulesTest, ResentReportChangesNothingAndOlderSeqIsHistoryOnly) {
  report(Power::on, 5);
  report(Power::off, 6);
  auto again = report(Power::off, 6);
  EXPECT_TRUE(again.events.empty());
  EXPECT_TRUE(again.intents.empty());
  auto older = report(Power::on, 4, kProvisioned + 1000);
  ASSERT_EQ(older.events.size(), 1U);
  EXPECT_EQ(older.events[0].seq, 4);
  EXPECT_TRUE(older.intents.empty());
  EXPECT_EQ(older.state.power, Power::off);  // the current state is untouched
  EXPECT_EQ(older.state.last_seq, 6);
}

TEST_F(RulesTest, ImplausibleDeviceClocksFallBackToReceiptTime) {
  report(Power::on, 1);
  auto future = report(Power::off, 2, ctx_.now_ms + kMaxClockSkewMs + 1);
  ASSERT_EQ(future.events.size(), 1U);
  EXPECT_EQ(future.events[0].observed_at_ms, ctx_.now_ms);
  EXPECT_TRUE(future.events[0].clock_fallback);
  auto before_provisioning = report(Power::on, 3, kProvisioned - 1);
  ASSERT_EQ(before_provisioning.events.size(), 1U);
  EXPECT_TRUE(before_provisioning.events[0].clock_fallback);
  EXPECT_EQ(before_provisioning.state.power_since_ms, ctx_.now_ms);
}

TEST_F(RulesTest, PowerOffGraceAlertsOnlyIfStillOffAndRestoredOnlyAfterLost) {
  ctx_.settings.power_off_grace_s = 60;
  report(Power::on, 1);
  auto off = report(Power::off, 2);
  EXPECT_TRUE(off.intents.empty());
  ASSERT_EQ(off.timers.size(), 1U);
  EXPECT_EQ(off.timers[0].op, TimerChange::Op::schedule);
  EXPECT_EQ(off.timers[0].timer.kind, store::kPowerOffGraceTimer);
  EXPECT_EQ(off.timers[0].timer.due_at_ms, ctx_.now_ms + 60'000);
  // Back within the grace: no alert at all, and the timer is cancelled.
  auto on = report(Power::on, 3);
  EXPECT_TRUE(on.intents.empty());
  ASSERT_FALSE(on.timers.empty());
  EXPECT_EQ(on.timers.back().op, TimerChange::Op::cancel);
  // A stale timer firing later says nothing.
  advance(60'000);
  EXPECT_TRUE(apply(on_timer(ctx_, off.timers[0].timer)).intents.empty());

  // A cut that lasts: the timer alerts, then "back" follows.
  auto off2 = report(Power::off, 4);
  advance(60'000);
  auto fired = apply(on_timer(ctx_, off2.timers[0].timer));
  ASSERT_EQ(fired.intents.size(), 1U);
  EXPECT_EQ(fired.intents[0].transition, Transition::power_lost);
  auto back = report(Power::on, 5);
  ASSERT_EQ(back.intents.size(), 1U);
  EXPECT_EQ(back.intents[0].transition, Transition::power_back);
}

TEST_F(RulesTest, DisconnectStartsADebounceAndShortBlipsNeverReachTheUser) {
  ctx_.settings.disconnect_grace_s = 900;
  report(Power::on, 1);
  auto gone = apply(on_disconnected(ctx_, "m1"));
  EXPECT_TRUE(gone.request_status);
  EXPECT_TRUE(gone.intents.empty());
  EXPECT_EQ(gone.state.connection, Connection::connected);  // not yet
  ASSERT_EQ(gone.timers.size(), 1U);
  EXPECT_EQ(gone.timers[0].timer.kind, store::kDisconnectTimer);
  EXPECT_EQ(gone.timers[0].timer.marker, "m1");
  EXPECT_EQ(gone.timers[0].timer.due_at_ms, ctx_.now_ms + 900'000);
  // Any message in between clears it.
  advance(5000);
  auto blip = apply(on_connected(ctx_));
  EXPECT_TRUE(blip.intents.empty());
  EXPECT_TRUE(blip.state.presence_marker.empty());
  ASSERT_EQ(blip.timers.size(), 1U);
  EXPECT_EQ(blip.timers[0].op, TimerChange::Op::cancel);
  advance(900'000);
  auto late = apply(on_timer(ctx_, gone.timers[0].timer));
  EXPECT_TRUE(late.intents.empty());
  EXPECT_TRUE(late.events.empty());
  EXPECT_EQ(late.state.connection, Connection::connected);
}

TEST_F(RulesTest, SilenceThroughTheGraceMeansLostContactThenBack) {
  report(Power::on, 1);
  auto gone = apply(on_disconnected(ctx_, "m1"));
  advance(900'000);
  auto lost = apply(on_timer(ctx_, gone.timers[0].timer));
  EXPECT_EQ(lost.state.connection, Connection::disconnected);
  EXPECT_EQ(lost.state.user_state, UserState::was_on);
  ASSERT_EQ(lost.events.size(), 1U);
  EXPECT_EQ(lost.events[0].kind, EventKind::lost_contact);
  ASSERT_EQ(lost.intents.size(), 1U);
  EXPECT_EQ(lost.intents[0].transition, Transition::contact_lost);
  EXPECT_EQ(lost.intents[0].user_state, UserState::was_on);
  // A second will (e.g. the retained presence seen again) is no news.
  auto repeat = apply(on_disconnected(ctx_, "m2"));
  EXPECT_TRUE(repeat.timers.empty());
  EXPECT_FALSE(repeat.request_status);
  // Any report brings it back, with its own power news if any.
  advance(1000);
  auto back = report(Power::on, 2);
  ASSERT_EQ(back.intents.size(), 1U);
  EXPECT_EQ(back.intents[0].transition, Transition::dag_back);
  EXPECT_EQ(back.events[0].kind, EventKind::back);
  EXPECT_EQ(back.state.user_state, UserState::on);
}

TEST_F(RulesTest, PowerOffThenSilenceIsWasOff) {
  report(Power::on, 1);
  report(Power::off, 2);
  auto gone = apply(on_disconnected(ctx_, "m"));
  advance(900'000);
  auto lost = apply(on_timer(ctx_, gone.timers[0].timer));
  EXPECT_EQ(lost.state.user_state, UserState::was_off);
}

TEST_F(RulesTest, ANewerDisconnectReplacesTheMarker) {
  report(Power::on, 1);
  auto first = apply(on_disconnected(ctx_, "m1"));
  apply(on_connected(ctx_));
  auto second = apply(on_disconnected(ctx_, "m2"));
  advance(900'000);
  EXPECT_TRUE(apply(on_timer(ctx_, first.timers[0].timer)).intents.empty());
  EXPECT_EQ(apply(on_timer(ctx_, second.timers[0].timer)).intents.size(), 1U);
}

TEST_F(RulesTest, ASecondDisconnectDoesNotPushTheDebounceOut) {
  // The will and the lifecycle event of one disconnect, or a retained will delivered
  // again when dagd resubscribes: the first one started the clock.
  report(Power::on, 1);
  auto first = apply(on_disconnected(ctx_, "m1"));
  advance(600'000);
  auto again = apply(on_disconnected(ctx_, "m2"));
  EXPECT_FALSE(again.state_changed);
  EXPECT_TRUE(again.timers.empty());
  EXPECT_FALSE(again.request_status);
  advance(300'000);
  EXPECT_EQ(apply(on_timer(ctx_, first.timers[0].timer)).intents.size(), 1U);
}

TEST(ParseReport, SeqMustBeAPositiveInt64) {
  EXPECT_EQ(parse_report(R"({"seq":1})").seq, 1);
  EXPECT_EQ(parse_report(R"({"seq":9223372036854775807})").seq, INT64_MAX);
  for (const char* bad : {R"({"seq":0})", R"({"seq":-3})", R"({"seq":9223372036854775808})",
                          R"({"seq":18446744073709551615})", R"({"seq":1.5})", R"({"seq":"7"})"}) {
    EXPECT_FALSE(parse_report(bad).seq) << bad;
  }
}

TEST_F(RulesTest, LowBatteryOncePerOutageOnlyOnBattery) {
  ctx_.settings.low_battery_percent = 20;
  Report r;
  r.status = Power::on;
  r.seq = 1;
  r.battery_percent = 10;
  r.battery_json = R"({"percent":10})";
  auto on_mains = apply(on_report(ctx_, r));
  EXPECT_TRUE(on_mains.intents.empty());  // charging on mains is not an alarm
  report(Power::off, 2);
  Report low;
  low.battery_percent = 19.5;
  low.battery_json = R"({"percent":19.5})";
  auto first = apply(on_report(ctx_, low));
  ASSERT_EQ(first.intents.size(), 1U);
  EXPECT_EQ(first.intents[0].transition, Transition::battery_low);
  EXPECT_EQ(first.state.battery_json, R"({"percent":19.5})");
  low.battery_percent = 15;
  EXPECT_TRUE(apply(on_report(ctx_, low)).intents.empty());
  report(Power::on, 3);
  report(Power::off, 4);
  EXPECT_EQ(apply(on_report(ctx_, low)).intents.size(), 1U);  // a new outage
}

TEST_F(RulesTest, AccountPreferencesSilenceIntentsButNotHistory) {
  ctx_.settings.notify_power_lost = false;
  report(Power::on, 1);
  auto off = report(Power::off, 2);
  EXPECT_TRUE(off.intents.empty());
  EXPECT_EQ(off.events.size(), 1U);
}

TEST(ParseReport, ReadsKnownFieldsAndIgnoresTheRest) {
  auto r = parse_report(
      R"({"status":"off","observedAt":123,"seq":9,"battery":{"percent":55.5,"volts":3.9,)"
      R"("minutesLeft":312},"x":1})");
  EXPECT_EQ(r.status, Power::off);
  EXPECT_EQ(r.observed_at_ms, 123);
  EXPECT_EQ(r.seq, 9);
  EXPECT_EQ(r.battery_percent, 55.5);
  EXPECT_EQ(r.battery_volts, 3.9);
  EXPECT_EQ(r.battery_minutes_left, 312);
  ASSERT_TRUE(r.battery_json);
  // minutesLeft is null on mains, and a negative or fractional one is no estimate.
  for (const char* minutes : {"null", "-1", "2.5", "\"7\""}) {
    auto no_estimate =
        parse_report(std::string{R"({"battery":{"percent":50,"minutesLeft":)"} + minutes + "}}");
    EXPECT_TRUE(no_estimate.battery_json) << minutes;
    EXPECT_FALSE(no_estimate.battery_minutes_left) << minutes;
  }
  auto weird = parse_report(R"({"status":"maybe","observedAt":"x","seq":1.5,"battery":3})");
  EXPECT_FALSE(weird.status);
  EXPECT_FALSE(weird.observed_at_ms);
  EXPECT_FALSE(weird.seq);
  EXPECT_FALSE(weird.battery_json);
  EXPECT_FALSE(parse_report("not json").status);
}

}  // namespace
}  // namespace dag::rules
