// Shadows: optimistic concurrency by revision, tombstones, documents from the real engine.
#include <gtest/gtest.h>

#include <string>

#include "dag/protocol/shadow.hpp"

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using ShadowsTest = StoreTest;

constexpr std::int64_t kNowS = 1'700'000'000;

std::string document_after(const protocol::ShadowDocument* current, std::string_view payload) {
  auto updated = protocol::update(current, payload, kNowS);
  if (!updated) throw std::runtime_error("engine rejected: " + updated.error().message);
  return protocol::shadow_to_json(updated->document);
}

protocol::ShadowDocument parse(const StoredShadow& stored) {
  auto doc = protocol::shadow_from_json(stored.document);
  if (!doc) throw std::runtime_error("stored shadow unreadable: " + doc.error().message);
  return std::move(doc).value();
}

TEST_F(ShadowsTest, NoShadowUntilTheFirstPut) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(must(tx->get_shadow(device.id)), std::nullopt);
  EXPECT_EQ(must(tx->get_shadow("unknown-device")), std::nullopt);
}

TEST_F(ShadowsTest, PutsAdvanceTheRevisionAndGetReturnsTheLastDocument) {
  const Device device = seed();
  auto tx = begin();
  const std::string first = document_after(nullptr, R"({"state":{"reported":{"status":"on"}}})");
  EXPECT_EQ(must(tx->put_shadow(device.id, first, 0)), 1);
  auto stored = must(tx->get_shadow(device.id));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->document, first);
  EXPECT_EQ(stored->revision, 1);

  const auto doc = parse(*stored);
  const std::string second = document_after(&doc, R"({"state":{"reported":{"status":"off"}}})");
  EXPECT_EQ(must(tx->put_shadow(device.id, second, 1)), 2);
  must(tx->commit());

  auto read = begin(TxMode::read_only);
  stored = must(read->get_shadow(device.id));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->revision, 2);
  EXPECT_EQ(parse(*stored).reported()["status"], "off");
  EXPECT_EQ(parse(*stored).version(), 2U);
}

TEST_F(ShadowsTest, AStaleRevisionIsAConflictAndWritesNothing) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(must(tx->put_shadow(device.id, R"({"v":1})", 0)), 1);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, R"({"v":"again"})", 0)), StoreErrc::conflict);
  EXPECT_EQ(must(tx->put_shadow(device.id, R"({"v":2})", 1)), 2);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, R"({"v":"stale"})", 1)), StoreErrc::conflict);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, R"({"v":"future"})", 7)), StoreErrc::conflict);
  EXPECT_EQ(must(tx->get_shadow(device.id))->document, R"({"v":2})");
  must(tx->commit());
}

TEST_F(ShadowsTest, TwoReplicasReadingTheSameRevisionCannotBothWrite) {
  const Device device = seed();
  {
    auto tx = begin();
    must(tx->put_shadow(device.id, R"({"v":1})", 0));
    must(tx->commit());
  }
  // Replica A and replica B both read revision 1 ...
  std::int64_t seen_a = 0;
  std::int64_t seen_b = 0;
  {
    auto a = begin(TxMode::read_only);
    auto b = begin(TxMode::read_only);
    seen_a = must(a->get_shadow(device.id))->revision;
    seen_b = must(b->get_shadow(device.id))->revision;
  }
  // ... A writes first; B's write, based on what it read, is refused.
  {
    auto tx = begin();
    must(tx->put_shadow(device.id, R"({"v":"a"})", seen_a));
    must(tx->commit());
  }
  auto tx = begin();
  EXPECT_EQ(error_of(tx->put_shadow(device.id, R"({"v":"b"})", seen_b)), StoreErrc::conflict);
  const auto fresh = must(tx->get_shadow(device.id));
  EXPECT_EQ(fresh->document, R"({"v":"a"})");
  EXPECT_EQ(must(tx->put_shadow(device.id, R"({"v":"b"})", fresh->revision)), 3);
}

TEST_F(ShadowsTest, ADeleteIsATombstoneAndTheVersionCarriesOn) {
  const Device device = seed();
  auto tx = begin();
  std::string text = document_after(nullptr, R"({"state":{"reported":{"status":"on"}}})");
  must(tx->put_shadow(device.id, text, 0));
  auto doc = protocol::shadow_from_json(text).value();
  text = document_after(&doc, R"({"state":{"reported":{"status":"off"}}})");
  must(tx->put_shadow(device.id, text, 1));
  doc = protocol::shadow_from_json(text).value();

  auto removed = protocol::remove(device.id, &doc, "", kNowS);
  ASSERT_TRUE(removed);
  EXPECT_EQ(must(tx->put_shadow(device.id, protocol::shadow_to_json(removed->document), 2)), 3);

  auto tombstone = parse(*must(tx->get_shadow(device.id)));
  EXPECT_FALSE(tombstone.exists());
  EXPECT_EQ(tombstone.version(), 2U);
  // Created again: version 3, as AWS does.
  const std::string again = document_after(&tombstone, R"({"state":{"reported":{"status":"on"}}})");
  EXPECT_EQ(must(tx->put_shadow(device.id, again, 3)), 4);
  EXPECT_EQ(parse(*must(tx->get_shadow(device.id))).version(), 3U);
}

TEST_F(ShadowsTest, UnknownDeviceIsNotFoundAndBadInputIsInvalid) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(error_of(tx->put_shadow("unknown-device", "{}", 0)), StoreErrc::not_found);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, "{}", -1)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, "not json", 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->put_shadow(device.id, "[]", 0)), StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->get_shadow(device.id)), std::nullopt);
  must(tx->put_shadow(device.id, "{}", 0));
  EXPECT_EQ(error_of(tx->put_shadow(device.id, "{", 1)), StoreErrc::invalid_argument);
  EXPECT_EQ(must(tx->get_shadow(device.id))->revision, 1);
}

TEST_F(ShadowsTest, GetDeviceWithShadowLeavesOutOnlyTheShadowTheReaderKnows) {
  const Device device = seed();
  auto tx = begin();
  EXPECT_EQ(error_of(tx->get_device_with_shadow("unknown-device", nullptr)), StoreErrc::not_found);
  auto none = must(tx->get_device_with_shadow(device.id, nullptr));
  EXPECT_EQ(none.device, device);
  EXPECT_EQ(none.shadow_revision, std::nullopt);
  EXPECT_EQ(none.shadow_document, std::nullopt);

  const std::string first = document_after(nullptr, R"({"state":{"reported":{"status":"on"}}})");
  must(tx->put_shadow(device.id, first, 0));
  auto unknown = must(tx->get_device_with_shadow(device.id, nullptr));
  EXPECT_EQ(unknown.device, device);
  EXPECT_EQ(unknown.shadow_revision, 1);
  EXPECT_EQ(unknown.shadow_document, first);

  const StoredShadow known{first, 1};
  auto same = must(tx->get_device_with_shadow(device.id, &known));
  EXPECT_EQ(same.shadow_revision, 1);
  EXPECT_EQ(same.shadow_document, std::nullopt);

  const StoredShadow older{first, 7};
  EXPECT_EQ(must(tx->get_device_with_shadow(device.id, &older)).shadow_document, first);
  // Same revision, other text: a device deleted and created again starts over at 1.
  const StoredShadow other{R"({"v":1})", 1};
  EXPECT_EQ(must(tx->get_device_with_shadow(device.id, &other)).shadow_document, first);
  must(tx->commit());
}

}  // namespace
}  // namespace dag::store::test
