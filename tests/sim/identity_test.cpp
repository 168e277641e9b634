#include "dag/sim/identity.hpp"

#include <gtest/gtest.h>

#include <set>

#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"
#include "dag/test/temp_dir.hpp"
#include "dag/test/test_pki.hpp"

namespace dag::sim {
namespace {

namespace fs = std::filesystem;

void write_bundle(const fs::path& dir, const pki::IssuedCertificate& c, const std::string& ca) {
  fs::create_directories(dir);
  ASSERT_TRUE(pki::write_pem_file(dir / "cert.pem", c.cert_pem, pki::kOwnerOnly));
  ASSERT_TRUE(pki::write_pem_file(dir / "key.pem", c.key_pem, pki::kOwnerOnly));
  ASSERT_TRUE(pki::write_pem_file(dir / "ca.pem", ca, pki::kOwnerOnly));
}

TEST(Identity, DeviceIdsArePrefixedAndPadded) {
  EXPECT_EQ(device_id("sim-", 42), "sim-000042");
  EXPECT_EQ(device_id("x", 1234567), "x1234567");
}

TEST(Identity, MintedCertificatesNameTheDeviceAndChainToTheCa) {
  test::TestPki pki;
  auto ids = mint(pki.ca(), "m-", 5, 2);
  ASSERT_TRUE(ids) << ids.error().message;
  ASSERT_EQ(ids->size(), 5U);
  for (std::size_t i = 0; i < ids->size(); ++i) {
    const Identity& id = (*ids)[i];
    EXPECT_EQ(id.id, device_id("m-", i));
    auto info = pki::inspect_certificate(id.cert_pem);
    ASSERT_TRUE(info);
    EXPECT_EQ(info->subject_cn, id.id);
    EXPECT_TRUE(pki::verify_certificate(pki.ca().cert_pem, id.cert_pem));
    auto match = pki::key_matches_certificate(id.key_pem, id.cert_pem);
    ASSERT_TRUE(match);
    EXPECT_TRUE(*match);
  }
  auto bad = mint(pki.ca(), "bad/", 1, 1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

TEST(Identity, LoadsDagctlDirBundlesInNameOrder) {
  test::TestPki pki;
  test::TempDir dir;
  auto a = pki::issue_client_certificate(pki.ca(), "dev-a");
  auto b = pki::issue_client_certificate(pki.ca(), "dev-b");
  ASSERT_TRUE(a && b);
  write_bundle(dir / "2-second", *b, pki.ca().cert_pem);
  write_bundle(dir / "1-first", *a, pki.ca().cert_pem);
  fs::create_directories(dir / "not-a-bundle");
  auto creds = load_bundles(dir.path(), SIZE_MAX);
  ASSERT_TRUE(creds) << creds.error().message;
  ASSERT_EQ(creds->devices.size(), 2U);
  EXPECT_EQ(creds->devices[0].id, "dev-a");
  EXPECT_EQ(creds->devices[1].id, "dev-b");
  EXPECT_EQ(creds->broker_ca_pem, pki.ca().cert_pem);
  auto one = load_bundles(dir.path(), 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->devices.size(), 1U);

  // A key that is not the certificate's is bad input, named.
  ASSERT_TRUE(pki::write_pem_file(dir / "2-second" / "key.pem", a->key_pem, pki::kOwnerOnly));
  auto mixed = load_bundles(dir.path(), SIZE_MAX);
  ASSERT_FALSE(mixed);
  EXPECT_EQ(mixed.error().code, Errc::invalid_argument);
  EXPECT_NE(mixed.error().message.find("2-second"), std::string::npos);

  auto none = load_bundles(dir / "not-a-bundle", SIZE_MAX);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
}

TEST(Identity, ProvisionGroupsDevicesIntoAccountsAndKeepsExistingOnes) {
  test::TempDir dir;
  const auto db = dir / "dagd.db";
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 7; ++i) ids.push_back(device_id("p-", i));
  ProvisionOptions o;
  o.prefix = "p-";
  o.min_account_size = o.max_account_size = 3;
  o.now_ms = 1'700'000'000'000;
  auto first = provision(db, ids, o);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->devices_created, 7U);
  EXPECT_EQ(first->accounts_created, 3U);
  auto again = provision(db, ids, o);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->devices_created, 0U);
  EXPECT_EQ(again->devices_existing, 7U);
  EXPECT_EQ(again->accounts_created, 0U);

  auto st = store::open_sqlite(db);
  ASSERT_TRUE(st);
  auto devs = store::transact(**st, store::TxMode::read_only,
                              [](store::Transaction& tx) { return tx.get_device("p-000004"); });
  ASSERT_TRUE(devs);
  auto acc = store::transact(**st, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.get_account(devs->account_id);
  });
  ASSERT_TRUE(acc);
  EXPECT_EQ(acc->username, "p-acct-000001");

  EXPECT_EQ(first->targets_created, 0U);

  o.max_account_size = 11;
  EXPECT_FALSE(provision(db, ids, o));
}

TEST(Identity, AccountSizesAreDrawnWithinTheBoundsAndCoverEveryDag) {
  auto sizes = account_sizes(10'000, 1, 10, 7);
  ASSERT_TRUE(sizes);
  std::size_t total = 0;
  std::set<std::size_t> seen;
  for (std::size_t k = 0; k < sizes->size(); ++k) {
    total += (*sizes)[k];
    if (k + 1 < sizes->size()) seen.insert((*sizes)[k]);  // the last may be cut short
    EXPECT_GE((*sizes)[k], 1U);
    EXPECT_LE((*sizes)[k], 10U);
  }
  EXPECT_EQ(total, 10'000U);
  EXPECT_EQ(seen.size(), 10U) << "every size from 1 to 10 should occur";
  EXPECT_EQ(*sizes, *account_sizes(10'000, 1, 10, 7)) << "the same seed, the same grouping";
  EXPECT_NE(*sizes, *account_sizes(10'000, 1, 10, 8));
  EXPECT_FALSE(account_sizes(5, 0, 3, 1));
  EXPECT_FALSE(account_sizes(5, 4, 3, 1));

  EXPECT_EQ(*parse_account_size("5"), std::pair(5, 5));
  EXPECT_EQ(*parse_account_size("1-10"), std::pair(1, 10));
  for (const char* bad : {"", "0", "11", "3-2", "1-", "-4", "x", "1-10x", "2 - 3"}) {
    EXPECT_FALSE(parse_account_size(bad)) << bad;
  }
}

TEST(Identity, ProvisionGivesEachOwnerAVerifiedAddressOnce) {
  test::TempDir dir;
  const auto db = dir / "dagd.db";
  std::vector<std::string> ids;
  for (std::size_t i = 0; i < 1'200; ++i) ids.push_back(device_id("m-", i));
  ProvisionOptions o;
  o.prefix = "m-";
  o.min_account_size = 1;
  o.max_account_size = 10;
  o.seed = 3;
  o.owner_email_domain = "owners.example";
  o.now_ms = 1'700'000'000'000;
  auto first = provision(db, ids, o);
  ASSERT_TRUE(first) << first.error().message;
  const auto sizes = *account_sizes(ids.size(), 1, 10, 3);
  EXPECT_EQ(first->accounts_created, sizes.size());
  EXPECT_EQ(first->targets_created, sizes.size());
  EXPECT_EQ(first->devices_created, ids.size());
  auto again = provision(db, ids, o);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->targets_created, 0U);
  EXPECT_EQ(again->devices_existing, ids.size());

  auto st = store::open_sqlite(db);
  ASSERT_TRUE(st);
  // The dag after the first account's dags is the second account's first.
  auto r = store::transact(**st, store::TxMode::read_only,
                           [&](store::Transaction& tx) { return tx.get_device(ids[sizes[0]]); });
  ASSERT_TRUE(r);
  auto targets = store::transact(**st, store::TxMode::read_only, [&](store::Transaction& tx) {
    return tx.list_targets(r->account_id);
  });
  ASSERT_TRUE(targets);
  ASSERT_EQ(targets->size(), 1U);
  EXPECT_EQ(targets->front().address, "m-acct-000001@owners.example");
  EXPECT_TRUE(targets->front().verified);

  // Another grouping of the same dags is a conflict, not a silent move.
  o.seed = 4;
  auto regrouped = provision(db, ids, o);
  ASSERT_FALSE(regrouped);
  EXPECT_EQ(regrouped.error().code, Errc::invalid_argument);
  EXPECT_NE(regrouped.error().message.find("belongs to another account"), std::string::npos);
  o.owner_email_domain = "localhost";
  EXPECT_EQ(provision(db, ids, o).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace dag::sim
