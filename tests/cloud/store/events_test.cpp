// Event history: dedupe by (device, seq), time ranges, keyset pagination.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using EventsTest = StoreTest;
using protocol::UserState;

Event power(const std::string& device_id, EventKind kind, std::int64_t seq, std::int64_t observed) {
  return Event{device_id,
               kind,
               observed,
               observed + 5,
               seq,
               false,
               kind == EventKind::power_off ? UserState::off : UserState::on};
}

TEST_F(EventsTest, AppendedEventsComeBackNewestFirstWithEveryField) {
  const Device device = seed();
  auto tx = begin();
  const Event off = power(device.id, EventKind::power_off, 1, kT0);
  Event lost{device.id, EventKind::lost_contact, kT0 + 100, kT0 + 100, std::nullopt,
             false,     UserState::was_off};
  Event low{device.id,   EventKind::battery_low, kT0 + 50, kT0 + 60, std::nullopt, true,
            std::nullopt};
  const auto id1 = must(tx->append_event(off));
  const auto id2 = must(tx->append_event(low));
  const auto id3 = must(tx->append_event(lost));
  EXPECT_LT(id1, id2);
  EXPECT_LT(id2, id3);
  must(tx->commit());

  auto read = begin(TxMode::read_only);
  const EventPage page = must(read->list_events(EventQuery{device.id}));
  ASSERT_EQ(page.events.size(), 3U);
  EXPECT_EQ(page.events[0], (StoredEvent{id3, lost}));
  EXPECT_EQ(page.events[1], (StoredEvent{id2, low}));
  EXPECT_EQ(page.events[2], (StoredEvent{id1, off}));
  EXPECT_EQ(page.next_cursor, std::nullopt);
}

TEST_F(EventsTest, AResentPowerReportIsAConflictAndMakesNoSecondEvent) {
  const Device device = seed();
  auto tx = begin();
  must(tx->append_event(power(device.id, EventKind::power_off, 7, kT0)));
  EXPECT_EQ(error_of(tx->append_event(power(device.id, EventKind::power_off, 7, kT0))),
            StoreErrc::conflict);
  // Even with other fields changed, (device, seq) decides.
  EXPECT_EQ(error_of(tx->append_event(power(device.id, EventKind::power_on, 7, kT0 + 9))),
            StoreErrc::conflict);
  // The transaction goes on: the next report is recorded.
  must(tx->append_event(power(device.id, EventKind::power_on, 8, kT0 + 10)));
  must(tx->commit());

  auto again = begin();
  EXPECT_EQ(error_of(again->append_event(power(device.id, EventKind::power_off, 7, kT0))),
            StoreErrc::conflict);
  EXPECT_EQ(must(again->list_events(EventQuery{device.id})).events.size(), 2U);
}

TEST_F(EventsTest, SeqsAreScopedToTheirDeviceAndEventsWithoutSeqNeverCollide) {
  auto tx = begin();
  const Account account = add_account(*tx);
  add_device(*tx, account.id, "dag-1");
  add_device(*tx, account.id, "dag-2");
  must(tx->append_event(power("dag-1", EventKind::power_off, 1, kT0)));
  must(tx->append_event(power("dag-2", EventKind::power_off, 1, kT0)));
  Event lost{"dag-1", EventKind::lost_contact, kT0, kT0, std::nullopt, false, std::nullopt};
  must(tx->append_event(lost));
  must(tx->append_event(lost));
  Event unsequenced = power("dag-1", EventKind::power_on, 1, kT0);
  unsequenced.seq.reset();  // the original Python agent sends no seq
  must(tx->append_event(unsequenced));
  must(tx->append_event(unsequenced));
  EXPECT_EQ(must(tx->list_events(EventQuery{"dag-1"})).events.size(), 5U);
}

TEST_F(EventsTest, SeqIsOnlyForPowerEventsAndPositive) {
  const Device device = seed();
  auto tx = begin();
  Event lost{device.id, EventKind::lost_contact, kT0, kT0, 3, false, std::nullopt};
  EXPECT_EQ(error_of(tx->append_event(lost)), StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->append_event(power(device.id, EventKind::power_on, 0, kT0))),
            StoreErrc::invalid_argument);
  EXPECT_EQ(error_of(tx->append_event(power(device.id, EventKind::power_on, -4, kT0))),
            StoreErrc::invalid_argument);
}

TEST_F(EventsTest, UnknownDeviceIsNotFound) {
  auto tx = begin();
  EXPECT_EQ(error_of(tx->append_event(power("no-such-dag", EventKind::power_off, 1, kT0))),
            StoreErrc::not_found);
  EXPECT_TRUE(must(tx->list_events(EventQuery{"no-such-dag"})).events.empty());
}

TEST_F(EventsTest, PagesFollowTheCursorUntilTheEnd) {
  const Device device = seed();
  std::vector<std::int64_t> ids;
  {
    auto tx = begin();
    for (int i = 1; i <= 25; ++i) {
      ids.push_back(
          must(tx->append_event(power(device.id, i % 2 ? EventKind::power_off : EventKind::power_on,
                                      i, kT0 + i * std::int64_t{1000}))));
    }
    must(tx->commit());
  }
  auto read = begin(TxMode::read_only);
  std::vector<std::int64_t> seen;
  EventQuery query{device.id};
  query.limit = 10;
  int pages = 0;
  for (;;) {
    const EventPage page = must(read->list_events(query));
    ++pages;
    for (const auto& e : page.events) seen.push_back(e.id);
    if (!page.next_cursor) break;
    EXPECT_EQ(*page.next_cursor, page.events.back().id);
    query.before_id = page.next_cursor;
  }
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25U);
  EXPECT_EQ(std::vector<std::int64_t>(seen.rbegin(), seen.rend()), ids);

  // A page that ends exactly at the last event says so.
  query = EventQuery{device.id};
  query.limit = 25;
  EXPECT_EQ(must(read->list_events(query)).next_cursor, std::nullopt);
}

TEST_F(EventsTest, TimeRangeFiltersOnObservedTimeHalfOpen) {
  const Device device = seed();
  auto tx = begin();
  for (int i = 1; i <= 10; ++i) {
    must(tx->append_event(power(device.id, EventKind::power_off, i, kT0 + i * std::int64_t{1000})));
  }
  EventQuery query{device.id};
  query.from_ms = kT0 + 3000;
  query.until_ms = kT0 + 7000;
  const EventPage page = must(tx->list_events(query));
  ASSERT_EQ(page.events.size(), 4U);  // 3, 4, 5, 6
  EXPECT_EQ(page.events.front().event.seq, 6);
  EXPECT_EQ(page.events.back().event.seq, 3);
  query.until_ms.reset();
  EXPECT_EQ(must(tx->list_events(query)).events.size(), 8U);
  query.from_ms.reset();
  query.until_ms = kT0 + 1001;
  EXPECT_EQ(must(tx->list_events(query)).events.size(), 1U);
}

TEST_F(EventsTest, LimitMustBeReasonable) {
  const Device device = seed();
  auto tx = begin(TxMode::read_only);
  EventQuery query{device.id};
  query.limit = 0;
  EXPECT_EQ(error_of(tx->list_events(query)), StoreErrc::invalid_argument);
  query.limit = 1001;
  EXPECT_EQ(error_of(tx->list_events(query)), StoreErrc::invalid_argument);
  query.limit = 1000;
  must(tx->list_events(query));
}

}  // namespace
}  // namespace dag::store::test
