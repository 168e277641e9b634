// Devices and their derived state.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using DevicesTest = StoreTest;
using protocol::Connection;
using protocol::Power;
using protocol::UserState;

TEST_F(DevicesTest, ANewDeviceHasAnUnknownState) {
  auto tx = begin();
  const Account account = add_account(*tx);
  const Device device = must(tx->create_device(NewDevice{"dag-1", account.id, "Ring A", kT0}));
  EXPECT_EQ(device.id, "dag-1");
  EXPECT_EQ(device.account_id, account.id);
  EXPECT_EQ(device.name, "Ring A");
  EXPECT_EQ(device.provisioned_at_ms, kT0);
  EXPECT_FALSE(device.revoked);
  EXPECT_EQ(device.state, DeviceState{});
  EXPECT_EQ(device.state.power, std::nullopt);
  EXPECT_EQ(device.state.user_state, std::nullopt);
  EXPECT_EQ(must(tx->get_device("dag-1")), device);
}

TEST_F(DevicesTest, TheWholeStateRoundTrips) {
  const Device device = seed();
  DeviceState state;
  state.power = Power::off;
  state.power_since_ms = kT0 + 10;
  state.last_seq = 42;
  state.connection = Connection::disconnected;
  state.connection_since_ms = kT0 + 20;
  state.last_seen_ms = kT0 + 30;
  state.user_state = UserState::was_off;
  state.battery_json = R"({"percent":87.5,"volts":4.05,"minutesLeft":312,"low":false})";
  state.presence_marker = "m-7";
  state.last_lifecycle_version = 9;
  state.notified_lost_contact = true;
  state.notified_power_lost = true;
  state.notified_battery_low = true;
  {
    auto tx = begin();
    must(tx->update_device_state(device.id, state));
    must(tx->commit());
  }
  auto read = begin(TxMode::read_only);
  EXPECT_EQ(must(read->get_device(device.id)).state, state);
}

TEST_F(DevicesTest, StateCanGoBackToUnknown) {
  const Device device = seed();
  auto tx = begin();
  DeviceState state;
  state.power = Power::on;
  state.connection = Connection::connected;
  state.user_state = UserState::on;
  state.battery_json = "{}";
  must(tx->update_device_state(device.id, state));
  must(tx->update_device_state(device.id, DeviceState{}));
  EXPECT_EQ(must(tx->get_device(device.id)).state, DeviceState{});
}

TEST_F(DevicesTest, ListIsPerAccountByName) {
  auto tx = begin();
  const Account alice = add_account(*tx, "alice");
  const Account bob = add_account(*tx, "bob");
  add_device(*tx, alice.id, "dag-b", "Ring B");
  add_device(*tx, alice.id, "dag-a", "Ring A");
  add_device(*tx, bob.id, "dag-c", "Shed");
  const auto devices = must(tx->list_devices(alice.id));
  ASSERT_EQ(devices.size(), 2U);
  EXPECT_EQ(devices[0].id, "dag-a");
  EXPECT_EQ(devices[1].id, "dag-b");
  EXPECT_EQ(must(tx->list_devices(bob.id)).size(), 1U);
  EXPECT_TRUE(must(tx->list_devices("nobody")).empty());
}

TEST_F(DevicesTest, RenameAndRevoke) {
  const Device device = seed();
  auto tx = begin();
  must(tx->rename_device(device.id, "Freezer ring"));
  must(tx->set_device_revoked(device.id, true));
  Device stored = must(tx->get_device(device.id));
  EXPECT_EQ(stored.name, "Freezer ring");
  EXPECT_TRUE(stored.revoked);
  must(tx->set_device_revoked(device.id, false));
  EXPECT_FALSE(must(tx->get_device(device.id)).revoked);
  EXPECT_EQ(error_of(tx->rename_device(device.id, "")), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->rename_device(device.id, std::string(129, 'n'))),
            StoreErrc::invalid_argument);
}

TEST_F(DevicesTest, UnknownAccountIsNotFound) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->create_device(NewDevice{"dag-1", "no-account", "Ring", kT0})),
            StoreErrc::not_found);
  // The failed insert left the transaction usable.
  const Account account = add_account(*tx);
  add_device(*tx, account.id, "dag-1");
  must(tx->commit());
}

TEST_F(DevicesTest, DuplicateIdIsAConflict) {
  auto tx = begin();
  const Account account = add_account(*tx);
  add_device(*tx, account.id, "dag-1");
  EXPECT_EQ(error_of(tx->create_device(NewDevice{"dag-1", account.id, "Again", kT0})),
            StoreErrc::conflict);
}

TEST_F(DevicesTest, InvalidIdsAndNamesAreRefused) {
  auto tx = begin();
  const Account account = add_account(*tx);
  for (const std::string& id :
       std::vector<std::string>{"", "a/b", "+", "#", "$aws", std::string(129, 'd')}) {
    EXPECT_EQ(error_of(tx->create_device(NewDevice{id, account.id, "Ring", kT0})),
              StoreErrc::invalid_argument)
        << id;
  }
  EXPECT_EQ(error_of(tx->create_device(NewDevice{"dag-1", account.id, "", kT0})),
            StoreErrc::invalid_argument);
}

TEST_F(DevicesTest, UnknownDevicesAreNotFound) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->get_device("nope")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->get_device("a/b#")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->rename_device("nope", "x")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->set_device_revoked("nope", true)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->update_device_state("nope", DeviceState{})), StoreErrc::not_found);
}

TEST_F(DevicesTest, BadStateValuesAreInvalidAndChangeNothing) {
  const Device device = seed();
  auto tx = begin();
  DeviceState state;
  state.battery_json = "not json";
  EXPECT_EQ(error_of(tx->update_device_state(device.id, state)), StoreErrc::invalid_argument);
  state.battery_json = "[1,2]";
  EXPECT_EQ(error_of(tx->update_device_state(device.id, state)), StoreErrc::invalid_argument);
  state.battery_json.reset();
  state.presence_marker = std::string(257, 'm');
  EXPECT_EQ(error_of(tx->update_device_state(device.id, state)), StoreErrc::invalid_argument);
  state.presence_marker.clear();
  state.last_seq = -1;
  EXPECT_EQ(error_of(tx->update_device_state(device.id, state)), StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->get_device(device.id)).state, DeviceState{});
  must(tx->commit());
}

TEST_F(DevicesTest, ChangeDeviceStateWritesTheNewStateWhetherOrNotTheBatteryChanged) {
  const Device device = seed();
  auto tx = begin();
  DeviceState before;
  before.battery_json = R"({"percent":87})";
  must(tx->update_device_state(device.id, before));

  DeviceState after = before;  // same battery: the narrower UPDATE
  after.power = Power::off;
  after.power_since_ms = kT0 + 5;
  after.last_seq = 3;
  after.connection = Connection::connected;
  after.last_seen_ms = kT0 + 6;
  after.user_state = UserState::off;
  after.presence_marker = "m";
  after.last_lifecycle_version = 4;
  after.notified_power_lost = true;
  must(tx->change_device_state(device.id, before, after));
  EXPECT_EQ(must(tx->get_device(device.id)).state, after);

  DeviceState later = after;  // a new battery, and none at all
  later.battery_json = R"({"percent":50})";
  must(tx->change_device_state(device.id, after, later));
  EXPECT_EQ(must(tx->get_device(device.id)).state, later);
  DeviceState none = later;
  none.battery_json.reset();
  must(tx->change_device_state(device.id, later, none));
  EXPECT_EQ(must(tx->get_device(device.id)).state, none);

  DeviceState bad = none;
  bad.battery_json = "not json";
  EXPECT_EQ(error_of(tx->change_device_state(device.id, none, bad)), StoreErrc::invalid_argument);
  bad = none;
  bad.last_seq = -1;
  EXPECT_EQ(error_of(tx->change_device_state(device.id, none, bad)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->change_device_state("nope", none, none)), StoreErrc::not_found);
  EXPECT_EQ(must(tx->get_device(device.id)).state, none);
  must(tx->commit());
}

}  // namespace
}  // namespace dag::store::test
