#include "dag/edge/outbox.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace dag::edge {
namespace {

namespace fs = std::filesystem;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dag-outbox-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  Outbox open(std::size_t capacity = Outbox::kDefaultCapacity) {
    auto box = Outbox::open(dir_, capacity);
    EXPECT_TRUE(box) << box.error().message;
    return std::move(box).value();
  }
  std::uintmax_t file_size() const { return fs::file_size(dir_ / "outbox.log"); }

  fs::path dir_;
};

TEST_F(OutboxTest, AppendedEntriesArePendingInOrderWithIncreasingSeq) {
  Outbox box = open();
  EXPECT_EQ(box.next_seq(), 1U);
  ASSERT_TRUE(box.append(1, R"({"status":"off"})"));
  ASSERT_TRUE(box.append(2, R"({"status":"on"})"));
  ASSERT_EQ(box.pending().size(), 2U);
  EXPECT_EQ(box.pending()[0].seq, 1U);
  EXPECT_EQ(box.pending()[0].body, R"({"status":"off"})");
  EXPECT_EQ(box.pending()[1].seq, 2U);
  EXPECT_EQ(box.next_seq(), 3U);
}

TEST_F(OutboxTest, RejectsASeqThatIsNotTheNext) {
  Outbox box = open();
  auto r = box.append(5, "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_TRUE(box.pending().empty());
}

TEST_F(OutboxTest, AckRemovesOnlyThatEntryAndDuplicateAcksAreHarmless) {
  Outbox box = open();
  ASSERT_TRUE(box.append(1, "a"));
  ASSERT_TRUE(box.append(2, "b"));
  ASSERT_TRUE(box.append(3, "c"));
  ASSERT_TRUE(box.ack(2));
  ASSERT_TRUE(box.ack(2));
  ASSERT_TRUE(box.ack(99));
  ASSERT_EQ(box.pending().size(), 2U);
  EXPECT_EQ(box.pending()[0].seq, 1U);
  EXPECT_EQ(box.pending()[1].seq, 3U);
}

TEST_F(OutboxTest, PendingEntriesAndSeqSurviveARestart) {
  {
    Outbox box = open();
    ASSERT_TRUE(box.append(1, "a"));
    ASSERT_TRUE(box.append(2, "b"));
    ASSERT_TRUE(box.append(3, "c"));
    ASSERT_TRUE(box.ack(1));
  }
  Outbox again = open();
  ASSERT_EQ(again.pending().size(), 2U);
  EXPECT_EQ(again.pending()[0].seq, 2U);
  EXPECT_EQ(again.pending()[0].body, "b");
  EXPECT_EQ(again.pending()[1].body, "c");
  EXPECT_EQ(again.next_seq(), 4U);
  EXPECT_EQ(again.torn_bytes_dropped(), 0U);
}

TEST_F(OutboxTest, SeqSurvivesCompactionWhenEverythingWasAcknowledged) {
  {
    Outbox box = open();
    for (std::uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(box.append(s, "x"));
    for (std::uint64_t s = 1; s <= 5; ++s) ASSERT_TRUE(box.ack(s));
    EXPECT_TRUE(box.pending().empty());
  }
  EXPECT_LT(file_size(), 64U);  // compacted to the BASE record alone
  Outbox again = open();
  EXPECT_TRUE(again.pending().empty());
  EXPECT_EQ(again.next_seq(), 6U);
}

TEST_F(OutboxTest, TornTailIsDroppedNeverMisread) {
  {
    Outbox box = open();
    ASSERT_TRUE(box.append(1, R"({"status":"off"})"));
    ASSERT_TRUE(box.append(2, R"({"status":"on"})"));
  }
  const auto full = file_size();
  // A power cut in the middle of the second record: cut at every possible length.
  for (std::uintmax_t cut = 1; cut < 20; ++cut) {
    fs::path copy = dir_ / "copy";
    fs::create_directories(copy);
    fs::copy_file(dir_ / "outbox.log", copy / "outbox.log", fs::copy_options::overwrite_existing);
    fs::resize_file(copy / "outbox.log", full - cut);
    auto box = Outbox::open(copy);
    ASSERT_TRUE(box) << box.error().message;
    ASSERT_EQ(box->pending().size(), 1U) << "cut " << cut;
    EXPECT_EQ(box->pending()[0].body, R"({"status":"off"})");
    EXPECT_GT(box->torn_bytes_dropped(), 0U);
    // The torn bytes are gone: appends after them are readable after another restart.
    ASSERT_TRUE(box->append(box->next_seq(), "after"));
    auto reread = Outbox::open(copy);
    ASSERT_TRUE(reread);
    ASSERT_EQ(reread->pending().size(), 2U);
    EXPECT_EQ(reread->pending()[1].body, "after");
    EXPECT_EQ(reread->torn_bytes_dropped(), 0U);
    fs::remove_all(copy);
  }
}

TEST_F(OutboxTest, CorruptedRecordIsDetectedByCrc) {
  {
    Outbox box = open();
    ASSERT_TRUE(box.append(1, "first"));
    ASSERT_TRUE(box.append(2, "second"));
  }
  {
    std::fstream f(dir_ / "outbox.log", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('X');  // flip a byte inside "second"
  }
  Outbox box = open();
  ASSERT_EQ(box.pending().size(), 1U);
  EXPECT_EQ(box.pending()[0].body, "first");
  EXPECT_EQ(box.next_seq(), 2U);
}

TEST_F(OutboxTest, WhenFullTheOldestAreCoalescedAndTheLatestKept) {
  Outbox box = open(20);
  for (std::uint64_t s = 1; s <= 20; ++s) ASSERT_TRUE(box.append(s, "e" + std::to_string(s)));
  ASSERT_TRUE(box.append(21, "latest"));
  EXPECT_EQ(box.pending().size(), 19U);  // two oldest dropped, the new one added
  EXPECT_EQ(box.pending().front().seq, 3U);
  EXPECT_EQ(box.pending().back().body, "latest");
  EXPECT_EQ(box.coalesced_total(), 2U);

  Outbox again = open(20);
  EXPECT_EQ(again.pending().size(), 19U);
  EXPECT_EQ(again.pending().back().seq, 21U);
  EXPECT_EQ(again.coalesced_total(), 2U);
  EXPECT_EQ(again.next_seq(), 22U);
}

TEST_F(OutboxTest, ManyAcksTriggerCompaction) {
  Outbox box = open();
  ASSERT_TRUE(box.append(1, "kept"));
  for (std::uint64_t s = 2; s <= 1200; ++s) {
    ASSERT_TRUE(box.append(s, "x"));
    ASSERT_TRUE(box.ack(s));
  }
  EXPECT_LT(file_size(), 20'000U);
  Outbox again = open();
  ASSERT_EQ(again.pending().size(), 1U);
  EXPECT_EQ(again.pending()[0].body, "kept");
  EXPECT_EQ(again.next_seq(), 1201U);
}

TEST(Crc32c, MatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283U);
  EXPECT_EQ(crc32c(""), 0U);
}

}  // namespace
}  // namespace dag::edge
