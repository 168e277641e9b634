#include "dag/store/records.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "dag/store/error.hpp"

namespace dag::store {
namespace {

TEST(RecordsTest, TargetKindsRoundTripThroughTheirNames) {
  for (auto kind : {TargetKind::email, TargetKind::webhook, TargetKind::ntfy}) {
    EXPECT_EQ(parse_target_kind(to_string(kind)), kind);
  }
  EXPECT_EQ(to_string(TargetKind::ntfy), "ntfy");
  EXPECT_EQ(parse_target_kind("Email"), std::nullopt);
  EXPECT_EQ(parse_target_kind(""), std::nullopt);
}

TEST(RecordsTest, EventKindsRoundTripAndOnlyPowerEventsArePowerEvents) {
  std::set<std::string_view> names;
  for (auto kind : {EventKind::power_off, EventKind::power_on, EventKind::lost_contact,
                    EventKind::back, EventKind::battery_low}) {
    EXPECT_EQ(parse_event_kind(to_string(kind)), kind);
    names.insert(to_string(kind));
  }
  EXPECT_EQ(names.size(), 5U);
  EXPECT_TRUE(is_power_event(EventKind::power_off));
  EXPECT_TRUE(is_power_event(EventKind::power_on));
  EXPECT_FALSE(is_power_event(EventKind::lost_contact));
  EXPECT_FALSE(is_power_event(EventKind::back));
  EXPECT_FALSE(is_power_event(EventKind::battery_low));
  EXPECT_EQ(parse_event_kind("power_lost"), std::nullopt);
}

TEST(RecordsTest, TransitionsUseTheProtocolsEventNamesPlusBatteryLow) {
  for (auto event : {protocol::Event::power_lost, protocol::Event::power_back,
                     protocol::Event::contact_lost, protocol::Event::dag_back}) {
    EXPECT_EQ(to_string(transition_of(event)), protocol::to_string(event));
  }
  for (auto t : {Transition::power_lost, Transition::power_back, Transition::contact_lost,
                 Transition::dag_back, Transition::battery_low}) {
    EXPECT_EQ(parse_transition(to_string(t)), t);
  }
  EXPECT_EQ(to_string(Transition::battery_low), "battery_low");
}

TEST(RecordsTest, IntentStatusesRoundTrip) {
  for (auto s : {IntentStatus::pending, IntentStatus::done, IntentStatus::failed}) {
    EXPECT_EQ(parse_intent_status(to_string(s)), s);
  }
  EXPECT_EQ(parse_intent_status("claimed"), std::nullopt);
}

TEST(RecordsTest, ConfigScopesRoundTrip) {
  for (auto s : {ConfigScope::fleet, ConfigScope::account, ConfigScope::device}) {
    EXPECT_EQ(parse_config_scope(to_string(s)), s);
  }
  EXPECT_EQ(to_string(ConfigScope::fleet), "fleet");
  EXPECT_EQ(to_string(ConfigScope::account), "account");
  EXPECT_EQ(to_string(ConfigScope::device), "device");
  EXPECT_EQ(parse_config_scope("Fleet"), std::nullopt);
  EXPECT_EQ(parse_config_scope(""), std::nullopt);
}

TEST(RecordsTest, ErrorCodesHaveDistinctStableNames) {
  std::set<std::string> names;
  for (auto code :
       {StoreErrc::not_found, StoreErrc::conflict, StoreErrc::invalid_argument, StoreErrc::busy,
        StoreErrc::corrupt, StoreErrc::io, StoreErrc::incompatible, StoreErrc::internal}) {
    names.insert(to_string(code));
  }
  EXPECT_EQ(names.size(), 8U);
  EXPECT_STREQ(to_string(StoreErrc::conflict), "conflict");
}

TEST(RecordsTest, OnlyCallerMistakesLeaveATransactionUsable) {
  EXPECT_TRUE(leaves_transaction_usable(StoreErrc::not_found));
  EXPECT_TRUE(leaves_transaction_usable(StoreErrc::conflict));
  EXPECT_TRUE(leaves_transaction_usable(StoreErrc::invalid_argument));
  EXPECT_FALSE(leaves_transaction_usable(StoreErrc::busy));
  EXPECT_FALSE(leaves_transaction_usable(StoreErrc::io));
  EXPECT_FALSE(leaves_transaction_usable(StoreErrc::corrupt));
  EXPECT_FALSE(leaves_transaction_usable(StoreErrc::incompatible));
  EXPECT_FALSE(leaves_transaction_usable(StoreErrc::internal));
}

}  // namespace
}  // namespace dag::store
