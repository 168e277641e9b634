// What the admin CLI provisions: deleting devices and accounts with everything of theirs,
// device certificates (revocation, the CRL's list) and configuration entries per scope.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using ProvisioningTest = StoreTest;

constexpr std::int64_t kDay = 24LL * 3600 * 1000;

DeviceCertificate certificate(const std::string& serial, const std::string& device_id,
                              std::int64_t issued = kT0,
                              std::int64_t not_after = kT0 + 365 * kDay) {
  return DeviceCertificate{serial, device_id, issued, not_after, std::nullopt};
}

ConfigEntry entry(ConfigScope scope, const std::string& scope_id, const std::string& key,
                  const std::string& value, std::int64_t at = kT0) {
  return ConfigEntry{scope, scope_id, key, value, at};
}

std::vector<std::string> keys_of(const std::vector<ConfigEntry>& entries) {
  std::vector<std::string> keys;
  keys.reserve(entries.size());
  for (const ConfigEntry& e : entries) keys.push_back(e.key);
  return keys;
}

std::vector<std::string> serials_of(const std::vector<DeviceCertificate>& certs) {
  std::vector<std::string> serials;
  serials.reserve(certs.size());
  for (const DeviceCertificate& c : certs) serials.push_back(c.serial_hex);
  return serials;
}

/// Gives a device something in every table that refers to it.
void populate(Transaction& tx, const Device& device, const std::string& serial) {
  must(tx.put_shadow(device.id, R"({"exists":true,"version":1})", 0));
  must(tx.append_event(
      Event{device.id, EventKind::power_off, kT0, kT0, 1, false, protocol::UserState::off}));
  must(tx.append_event(Event{device.id, EventKind::lost_contact, kT0 + 1, kT0 + 1}));
  must(tx.schedule_timer(Timer{std::string{kDisconnectTimer}, device.id, kT0 + 900'000, "m"}));
  must(tx.enqueue_intent(Intent{device.account_id, device.id, device.name, Transition::power_lost,
                                protocol::UserState::off, kT0, kT0, "{}"}));
  must(tx.set_config_entry(entry(ConfigScope::device, device.id, "sample_ms", "250")));
  must(tx.add_certificate(certificate(serial, device.id)));
}

// ---- deletion ---------------------------------------------------------------------------

TEST_F(ProvisioningTest, DeletingADeviceRemovesEverythingOfItButItsCertificates) {
  {
    auto tx = begin();
    const Account account = add_account(*tx);
    const Device gone = add_device(*tx, account.id, "dag-1", "Ring A");
    const Device kept = add_device(*tx, account.id, "dag-2", "Ring B");
    populate(*tx, gone, "0A01");
    populate(*tx, kept, "0B01");
    must(tx->set_config_entry(entry(ConfigScope::account, account.id, "sample_ms", "500")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "sample_ms", "1000")));
    must(tx->commit());
  }
  {
    auto tx = begin();
    must(tx->delete_device("dag-1"));
    must(tx->commit());
  }
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(error_of(tx->get_device("dag-1")), StoreErrc::not_found);
  EXPECT_EQ(must(tx->get_shadow("dag-1")), std::nullopt);
  EXPECT_TRUE(must(tx->list_events(EventQuery{"dag-1"})).events.empty());
  EXPECT_EQ(must(tx->find_timer("dag-1", kDisconnectTimer)), std::nullopt);
  EXPECT_TRUE(must(tx->list_config_entries(ConfigScope::device, "dag-1")).empty());
  EXPECT_EQ(must(tx->count_pending_intents()), 1);  // dag-2's
  EXPECT_EQ(serials_of(must(tx->list_certificates("dag-1"))), std::vector<std::string>{"0A01"});
  // The other device, the account and the fleet keep everything.
  const Device kept = must(tx->get_device("dag-2"));
  EXPECT_TRUE(must(tx->get_shadow(kept.id)));
  EXPECT_EQ(must(tx->list_events(EventQuery{kept.id})).events.size(), 2U);
  EXPECT_TRUE(must(tx->find_timer(kept.id, kDisconnectTimer)));
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::device, kept.id)).size(), 1U);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::account, kept.account_id)).size(), 1U);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::fleet, "")).size(), 1U);
  EXPECT_EQ(must(tx->list_devices(kept.account_id)).size(), 1U);
}

TEST_F(ProvisioningTest, ADeletedDeviceIdCanBeRegisteredAfreshWithoutItsHistory) {
  const Device device = seed();
  auto tx = begin();
  populate(*tx, device, "0A01");
  must(tx->delete_device(device.id));
  const Device again = add_device(*tx, device.account_id, device.id, "Ring again");
  EXPECT_EQ(again.state, DeviceState{});
  EXPECT_EQ(must(tx->get_shadow(device.id)), std::nullopt);
  EXPECT_TRUE(must(tx->list_events(EventQuery{device.id})).events.empty());
  // A resent report with an old seq is news for the new device, not a duplicate.
  must(tx->append_event(Event{device.id, EventKind::power_off, kT0, kT0, 1}));
  must(tx->commit());
}

TEST_F(ProvisioningTest, DeletingAnUnknownDeviceIsNotFoundAndDeletesNothing) {
  const Device device = seed();
  auto tx = begin();
  // A stray entry for a device id that does not exist (config scope ids are not checked).
  must(tx->set_config_entry(entry(ConfigScope::device, "ghost", "k", "1")));
  EXPECT_EQ(error_of(tx->delete_device("ghost")), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->delete_device("a/b#")), StoreErrc::not_found);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::device, "ghost")).size(), 1U);
  // The transaction goes on.
  must(tx->delete_device(device.id));
  EXPECT_EQ(error_of(tx->delete_device(device.id)), StoreErrc::not_found);
  must(tx->commit());
}

TEST_F(ProvisioningTest, DeletingAnAccountRemovesItsDevicesTargetsIntentsAndConfig) {
  std::string alice_id;
  std::string bob_id;
  {
    auto tx = begin();
    const Account alice = add_account(*tx, "alice");
    const Account bob = add_account(*tx, "bob");
    alice_id = alice.id;
    bob_id = bob.id;
    populate(*tx, add_device(*tx, alice.id, "dag-a1", "Ring A"), "0A01");
    populate(*tx, add_device(*tx, alice.id, "dag-a2", "Ring B"), "0A02");
    populate(*tx, add_device(*tx, bob.id, "dag-b1", "Shed"), "0B01");
    must(tx->add_target(NewTarget{alice.id, TargetKind::email, "alice@example.org", true}));
    must(tx->add_target(NewTarget{bob.id, TargetKind::email, "bob@example.org", true}));
    must(tx->set_config_entry(entry(ConfigScope::account, alice.id, "tz", R"("Europe/Paris")")));
    must(tx->set_config_entry(entry(ConfigScope::account, bob.id, "tz", R"("UTC")")));
    must(tx->commit());
  }
  {
    auto tx = begin();
    must(tx->delete_account(alice_id));
    must(tx->commit());
  }
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(error_of(tx->get_account(alice_id)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->find_account_by_username("alice")), StoreErrc::not_found);
  EXPECT_TRUE(must(tx->list_devices(alice_id)).empty());
  EXPECT_TRUE(must(tx->list_targets(alice_id)).empty());
  EXPECT_TRUE(must(tx->list_config_entries(ConfigScope::account, alice_id)).empty());
  for (const char* id : {"dag-a1", "dag-a2"}) {
    EXPECT_EQ(error_of(tx->get_device(id)), StoreErrc::not_found) << id;
    EXPECT_EQ(must(tx->get_shadow(id)), std::nullopt) << id;
    EXPECT_TRUE(must(tx->list_events(EventQuery{id})).events.empty()) << id;
    EXPECT_EQ(must(tx->find_timer(id, kDisconnectTimer)), std::nullopt) << id;
    EXPECT_TRUE(must(tx->list_config_entries(ConfigScope::device, id)).empty()) << id;
    EXPECT_EQ(must(tx->list_certificates(id)).size(), 1U) << id;  // certificates stay
  }
  // Bob keeps everything.
  EXPECT_EQ(must(tx->list_accounts()).size(), 1U);
  EXPECT_EQ(must(tx->list_devices(bob_id)).size(), 1U);
  EXPECT_EQ(must(tx->list_targets(bob_id)).size(), 1U);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::account, bob_id)).size(), 1U);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::device, "dag-b1")).size(), 1U);
  EXPECT_EQ(must(tx->count_pending_intents()), 1);
}

TEST_F(ProvisioningTest, AnAccountWithoutDevicesCanBeDeletedAndItsNameReused) {
  auto tx = begin();
  const Account account = add_account(*tx, "alice");
  must(tx->delete_account(account.id));
  EXPECT_NE(add_account(*tx, "alice").id, account.id);
  must(tx->commit());
}

TEST_F(ProvisioningTest, DeletingAnUnknownAccountIsNotFoundAndDeletesNothing) {
  auto tx = begin();
  must(tx->set_config_entry(entry(ConfigScope::account, "no-account", "k", "1")));
  EXPECT_EQ(error_of(tx->delete_account("no-account")), StoreErrc::not_found);
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::account, "no-account")).size(), 1U);
  const Account account = add_account(*tx);
  must(tx->delete_account(account.id));
  EXPECT_EQ(error_of(tx->delete_account(account.id)), StoreErrc::not_found);
  must(tx->commit());
}

// ---- certificates -----------------------------------------------------------------------

TEST_F(ProvisioningTest, CertificatesAreListedPerDeviceOldestFirst) {
  auto tx = begin();
  // The device need not exist (dagctl may record the certificate before registering it).
  must(tx->add_certificate(certificate("C0FFEE", "dag-1", kT0 + 2 * kDay)));
  must(tx->add_certificate(certificate("0123456789ABCDEF0123456789ABCDEF", "dag-1", kT0)));
  const DeviceCertificate imported{"BEEF", "dag-1", kT0 + kDay, kT0 + 2 * kDay, kT0 + kDay + 5};
  must(tx->add_certificate(imported));
  must(tx->add_certificate(certificate("FACE", "dag-2")));
  const auto certs = must(tx->list_certificates("dag-1"));
  ASSERT_EQ(certs.size(), 3U);
  EXPECT_EQ(certs[0], certificate("0123456789ABCDEF0123456789ABCDEF", "dag-1", kT0));
  EXPECT_EQ(certs[1], imported);
  EXPECT_EQ(certs[2].serial_hex, "C0FFEE");
  EXPECT_EQ(certs[2].revoked_at_ms, std::nullopt);
  EXPECT_EQ(serials_of(must(tx->list_certificates("dag-2"))), std::vector<std::string>{"FACE"});
  EXPECT_TRUE(must(tx->list_certificates("dag-3")).empty());
  must(tx->commit());
  auto read = begin(TxMode::read_only);
  EXPECT_EQ(must(read->list_certificates("dag-1")), certs);
}

TEST_F(ProvisioningTest, ASerialIsRecordedOnce) {
  auto tx = begin();
  must(tx->add_certificate(certificate("ABC", "dag-1")));
  EXPECT_EQ(error_of(tx->add_certificate(certificate("ABC", "dag-2"))), StoreErrc::conflict);
  EXPECT_EQ(serials_of(must(tx->list_certificates("dag-1"))), std::vector<std::string>{"ABC"});
  EXPECT_TRUE(must(tx->list_certificates("dag-2")).empty());
  must(tx->commit());
}

TEST_F(ProvisioningTest, InvalidCertificatesAreRefused) {
  auto tx = begin();
  for (const std::string& serial :
       std::vector<std::string>{"", std::string(65, 'A'), "abc", "0x1F", "AB:CD", "G1"}) {
    EXPECT_EQ(error_of(tx->add_certificate(certificate(serial, "dag-1"))),
              StoreErrc::invalid_argument)
        << serial;
  }
  for (const std::string& id :
       std::vector<std::string>{"", "a/b", "+", "#", std::string(129, 'd')}) {
    EXPECT_EQ(error_of(tx->add_certificate(certificate("AB", id))), StoreErrc::invalid_argument)
        << id;
  }
  EXPECT_TRUE(must(tx->list_certificates("dag-1")).empty());
  must(tx->add_certificate(certificate(std::string(64, 'F'), "dag-1")));
  must(tx->commit());
}

TEST_F(ProvisioningTest, RevokingMarksEveryUnrevokedCertificateOnce) {
  auto tx = begin();
  must(tx->add_certificate(certificate("B2", "dag-1", kT0 + kDay)));
  must(tx->add_certificate(certificate("A1", "dag-1", kT0)));
  must(tx->add_certificate(DeviceCertificate{"C3", "dag-1", kT0, kT0 + kDay, kT0 + 10}));
  must(tx->add_certificate(certificate("D4", "dag-2")));
  const std::int64_t now = kT0 + 2 * kDay;
  EXPECT_EQ(must(tx->revoke_certificates("dag-1", now)), (std::vector<std::string>{"A1", "B2"}));
  // Revoking again finds nothing new and keeps the first revocation time.
  EXPECT_TRUE(must(tx->revoke_certificates("dag-1", now + 1)).empty());
  for (const DeviceCertificate& cert : must(tx->list_certificates("dag-1"))) {
    EXPECT_EQ(cert.revoked_at_ms, cert.serial_hex == "C3" ? kT0 + 10 : now) << cert.serial_hex;
  }
  EXPECT_EQ(must(tx->list_certificates("dag-2")).at(0).revoked_at_ms, std::nullopt);
  EXPECT_TRUE(must(tx->revoke_certificates("no-such-device", now)).empty());
  must(tx->commit());
}

TEST_F(ProvisioningTest, TheCrlListsRevokedCertificatesUntilTheyExpire) {
  const std::int64_t now = kT0 + 10 * kDay;
  auto tx = begin();
  must(tx->add_certificate(certificate("E1", "dag-1", kT0, now + kDay)));  // revoked, valid
  must(tx->add_certificate(certificate("A2", "dag-2", kT0, now + kDay)));  // revoked, valid
  must(tx->add_certificate(certificate("C3", "dag-3", kT0, now)));         // revoked, expires now
  must(tx->add_certificate(certificate("D4", "dag-4", kT0, now - 1)));     // revoked, expired
  must(tx->add_certificate(certificate("F5", "dag-5", kT0, now + kDay)));  // not revoked
  for (const char* id : {"dag-1", "dag-2", "dag-3", "dag-4"}) {
    must(tx->revoke_certificates(id, kT0 + kDay));
  }
  EXPECT_EQ(serials_of(must(tx->list_revoked_certificates(now))),
            (std::vector<std::string>{"A2", "E1"}));
  EXPECT_EQ(serials_of(must(tx->list_revoked_certificates(now - 1))),
            (std::vector<std::string>{"A2", "C3", "E1"}));
  EXPECT_TRUE(must(tx->list_revoked_certificates(now + kDay)).empty());
  const auto listed = must(tx->list_revoked_certificates(now));
  EXPECT_EQ(listed.at(0).device_id, "dag-2");
  EXPECT_EQ(listed.at(0).revoked_at_ms, kT0 + kDay);
  must(tx->commit());
}

TEST_F(ProvisioningTest, ADeletedDevicesCertificatesStayRevocableAndInTheCrl) {
  const Device device = seed();
  {
    auto tx = begin();
    must(tx->add_certificate(certificate("AA", device.id)));
    must(tx->add_certificate(certificate("BB", device.id, kT0 + 1)));
    must(tx->revoke_certificates(device.id, kT0 + 5));
    must(tx->add_certificate(certificate("CC", device.id, kT0 + 2)));
    must(tx->delete_device(device.id));
    must(tx->commit());
  }
  auto tx = begin();
  EXPECT_EQ(must(tx->revoke_certificates(device.id, kT0 + 6)), std::vector<std::string>{"CC"});
  EXPECT_EQ(serials_of(must(tx->list_revoked_certificates(kT0 + 7))),
            (std::vector<std::string>{"AA", "BB", "CC"}));
  must(tx->commit());
}

// ---- configuration ----------------------------------------------------------------------

TEST_F(ProvisioningTest, ConfigEntriesAreSetReplacedListedByKeyAndRemoved) {
  {
    auto tx = begin();
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "sample_ms", "1000")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "broker", R"("mqtt.example.org")")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "features", R"(["a","b"])")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "limits", R"({"max":3})")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "debug", "false")));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "extra", "null")));
    must(tx->commit());
  }
  {
    auto tx = begin();
    EXPECT_EQ(
        keys_of(must(tx->list_config_entries(ConfigScope::fleet, ""))),
        (std::vector<std::string>{"broker", "debug", "extra", "features", "limits", "sample_ms"}));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "sample_ms", "250", kT0 + 9)));
    EXPECT_TRUE(must(tx->remove_config_entry(ConfigScope::fleet, "", "extra")));
    EXPECT_FALSE(must(tx->remove_config_entry(ConfigScope::fleet, "", "extra")));
    EXPECT_FALSE(must(tx->remove_config_entry(ConfigScope::account, "", "debug")));
    must(tx->commit());
  }
  auto tx = begin(TxMode::read_only);
  const auto entries = must(tx->list_config_entries(ConfigScope::fleet, ""));
  EXPECT_EQ(keys_of(entries),
            (std::vector<std::string>{"broker", "debug", "features", "limits", "sample_ms"}));
  EXPECT_EQ(entries.back(), entry(ConfigScope::fleet, "", "sample_ms", "250", kT0 + 9));
  EXPECT_EQ(entries.front(), entry(ConfigScope::fleet, "", "broker", R"("mqtt.example.org")"));
}

TEST_F(ProvisioningTest, ScopesAndScopeIdsKeepTheirOwnEntries) {
  auto tx = begin();
  must(tx->set_config_entry(entry(ConfigScope::fleet, "", "k", "1")));
  must(tx->set_config_entry(entry(ConfigScope::account, "acc-1", "k", "2")));
  must(tx->set_config_entry(entry(ConfigScope::account, "acc-2", "k", "3")));
  must(tx->set_config_entry(entry(ConfigScope::device, "acc-1", "k", "4")));  // same id
  auto value_of = [&](ConfigScope scope, const std::string& id) {
    const auto entries = must(tx->list_config_entries(scope, id));
    return entries.size() == 1 ? entries[0].value_json : std::string{"?"};
  };
  EXPECT_EQ(value_of(ConfigScope::fleet, ""), "1");
  EXPECT_EQ(value_of(ConfigScope::account, "acc-1"), "2");
  EXPECT_EQ(value_of(ConfigScope::account, "acc-2"), "3");
  EXPECT_EQ(value_of(ConfigScope::device, "acc-1"), "4");
  EXPECT_TRUE(must(tx->list_config_entries(ConfigScope::device, "acc-2")).empty());
  EXPECT_TRUE(must(tx->list_config_entries(ConfigScope::fleet, "acc-1")).empty());
  EXPECT_TRUE(must(tx->remove_config_entry(ConfigScope::account, "acc-1", "k")));
  EXPECT_EQ(value_of(ConfigScope::device, "acc-1"), "4");
  EXPECT_EQ(value_of(ConfigScope::account, "acc-2"), "3");
  must(tx->commit());
}

TEST_F(ProvisioningTest, InvalidConfigEntriesAreRefusedAndStoreNothing) {
  auto tx = begin();
  const std::vector<ConfigEntry> bad{
      entry(ConfigScope::fleet, "", "", "1"),
      entry(ConfigScope::fleet, "", std::string(65, 'k'), "1"),
      entry(ConfigScope::fleet, "x", "k", "1"),
      entry(ConfigScope::account, "", "k", "1"),
      entry(ConfigScope::device, "", "k", "1"),
      entry(ConfigScope::device, std::string(129, 'd'), "k", "1"),
      entry(ConfigScope::fleet, "", "k", ""),
      entry(ConfigScope::fleet, "", "k", "not json"),
      entry(ConfigScope::fleet, "", "k", "{a:1}"),
      entry(ConfigScope::fleet, "", "k", R"({"a":1)"),
      entry(ConfigScope::fleet, "", "k", "1 2"),
  };
  for (const ConfigEntry& e : bad) {
    EXPECT_EQ(error_of(tx->set_config_entry(e)), StoreErrc::invalid_argument)
        << to_string(e.scope) << " '" << e.scope_id << "' " << e.key << " = " << e.value_json;
  }
  for (auto scope : {ConfigScope::fleet, ConfigScope::account, ConfigScope::device}) {
    EXPECT_TRUE(must(tx->list_config_entries(scope, "")).empty());
  }
  // The limits themselves are fine, and the transaction goes on.
  must(tx->set_config_entry(entry(ConfigScope::device, std::string(128, 'd'), std::string(64, 'k'),
                                  R"({"nested":{"list":[1,2.5,"x",null,true]}})")));
  must(tx->commit());
}

// ---- transactions -----------------------------------------------------------------------

TEST_F(ProvisioningTest, AReadOnlyTransactionRefusesEveryProvisioningWrite) {
  const Device device = seed();
  {
    auto tx = begin();
    must(tx->add_certificate(certificate("AB", device.id)));
    must(tx->set_config_entry(entry(ConfigScope::fleet, "", "k", "1")));
    must(tx->commit());
  }
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(error_of(tx->delete_device(device.id)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->delete_account(device.account_id)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->add_certificate(certificate("CD", device.id))),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->revoke_certificates(device.id, kT0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->set_config_entry(entry(ConfigScope::fleet, "", "k", "2"))),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->remove_config_entry(ConfigScope::fleet, "", "k")),
            StoreErrc::invalid_argument);
  // Reads still work, and nothing changed.
  EXPECT_EQ(must(tx->get_device(device.id)).id, device.id);
  EXPECT_EQ(serials_of(must(tx->list_certificates(device.id))), std::vector<std::string>{"AB"});
  EXPECT_TRUE(must(tx->list_revoked_certificates(kT0)).empty());
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::fleet, "")).at(0).value_json, "1");
}

TEST_F(ProvisioningTest, ARolledBackDeletionLeavesEverything) {
  const Device device = seed();
  {
    auto tx = begin();
    populate(*tx, device, "AB");
    must(tx->commit());
  }
  {
    auto tx = begin();
    must(tx->delete_account(device.account_id));
    EXPECT_EQ(error_of(tx->get_device(device.id)), StoreErrc::not_found);
  }  // destroyed uncommitted
  auto tx = begin(TxMode::read_only);
  EXPECT_EQ(must(tx->get_device(device.id)).name, device.name);
  EXPECT_TRUE(must(tx->get_shadow(device.id)));
  EXPECT_EQ(must(tx->list_config_entries(ConfigScope::device, device.id)).size(), 1U);
  EXPECT_EQ(must(tx->count_pending_intents()), 1);
}

}  // namespace
}  // namespace dag::store::test
