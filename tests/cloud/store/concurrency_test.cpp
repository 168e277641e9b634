// Several threads (and several Store instances, as several processes would) writing and
// reading at once: every transaction succeeds, busy is absorbed by the busy timeout.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store_fixture.hpp"

namespace dag::store::test {
namespace {

using ConcurrencyTest = StoreTest;

constexpr int kTransactionsPerThread = 500;

/// One ingest-like transaction: read the device, record a power event, update the state.
StoreResult<void> report(Store& store, const std::string& device_id, std::int64_t seq) {
  return transact(store, TxMode::read_write, [&](Transaction& tx) -> StoreResult<void> {
    auto device = tx.get_device(device_id);
    if (!device) return Unexpected<StoreError>{device.error()};
    const auto kind = seq % 2 ? EventKind::power_off : EventKind::power_on;
    auto event =
        tx.append_event(Event{device_id, kind, kT0 + seq, kT0 + seq, seq, false, std::nullopt});
    if (!event) return Unexpected<StoreError>{event.error()};
    DeviceState state = device->state;
    state.last_seq = std::max(state.last_seq, seq);
    state.power = kind == EventKind::power_off ? protocol::Power::off : protocol::Power::on;
    return tx.update_device_state(device_id, state);
  });
}

/// Runs `threads` writers, each on its own device and Store from `stores` (round robin).
void run_writers(std::vector<Store*> stores, const std::vector<std::string>& devices,
                 std::atomic<int>& failures, std::string& first_failure) {
  std::mutex failure_mutex;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < devices.size(); ++t) {
    threads.emplace_back([&, t] {
      Store& store = *stores[t % stores.size()];
      for (int i = 1; i <= kTransactionsPerThread; ++i) {
        auto done = report(store, devices[t], i);
        if (!done) {
          std::lock_guard lock{failure_mutex};
          if (failures++ == 0) first_failure = done.error().message;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
}

void expect_all_recorded(Store& store, const std::vector<std::string>& devices) {
  auto tx = must(store.begin(TxMode::read_only));
  for (const auto& id : devices) {
    EXPECT_EQ(must(tx->get_device(id)).state.last_seq, kTransactionsPerThread);
    EventQuery query{id};
    query.limit = 1000;
    EXPECT_EQ(must(tx->list_events(query)).events.size(),
              static_cast<std::size_t>(kTransactionsPerThread));
  }
}

std::vector<std::string> seed_devices(Store& store, int count) {
  std::vector<std::string> ids;
  must(transact(store, TxMode::read_write, [&](Transaction& tx) -> StoreResult<void> {
    const Account account = must(tx.create_account("alice", "h", kT0));
    for (int i = 0; i < count; ++i) {
      ids.push_back("dag-" + std::to_string(i));
      must(tx.create_device(NewDevice{ids.back(), account.id, "Ring", kT0}));
    }
    return {};
  }));
  return ids;
}

TEST_F(ConcurrencyTest, TwoThreadsOnOneStore) {
  const auto devices = seed_devices(*store_, 2);
  std::atomic<int> failures{0};
  std::string first_failure;
  // A reader alongside, as the REST API would be.
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop) {
      auto tx = store_->begin(TxMode::read_only);
      if (!tx || !(*tx)->list_devices(must((*tx)->list_accounts()).at(0).id)) ++failures;
      ++reads;
    }
  });
  run_writers({store_.get()}, devices, failures, first_failure);
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(reads.load(), 0);
  expect_all_recorded(*store_, devices);
}

TEST_F(ConcurrencyTest, TwoStoresOnOneFileLikeTwoProcesses) {
  // Between stores SQLite's file locks and busy handler serialise the writers (it sleeps
  // while it waits, hence slower than one store's queue); fsync adds nothing to what this
  // tests, so it is left out.
  SqliteOptions options;
  options.durability = SqliteOptions::Durability::crash_safe;
  store_.reset();
  store_ = open(options);
  const auto devices = seed_devices(*store_, 2);
  auto second = open(options);
  std::atomic<int> failures{0};
  std::string first_failure;
  run_writers({store_.get(), second.get()}, devices, failures, first_failure);
  EXPECT_EQ(failures.load(), 0) << first_failure;
  expect_all_recorded(*store_, devices);
}

TEST_F(ConcurrencyTest, TwoReplicasClaimingTimersNeverGetTheSameOne) {
  const auto devices = seed_devices(*store_, 200);
  must(transact(*store_, TxMode::read_write, [&](Transaction& tx) -> StoreResult<void> {
    for (const auto& id : devices) {
      must(tx.schedule_timer(Timer{std::string{kDisconnectTimer}, id, kT0, "m"}));
    }
    return {};
  }));
  auto second = open();
  std::vector<std::vector<std::int64_t>> claimed(2);
  auto replica = [&](Store& store, const std::string& owner, std::vector<std::int64_t>& out) {
    for (;;) {
      auto batch = transact(store, TxMode::read_write, [&](Transaction& tx) {
        return tx.claim_due_timers(kT0, 7, owner, 60'000);
      });
      if (!batch || batch->empty()) return;
      for (const auto& t : *batch) out.push_back(t.id);
    }
  };
  std::thread a([&] { replica(*store_, "a", claimed[0]); });
  std::thread b([&] { replica(*second, "b", claimed[1]); });
  a.join();
  b.join();
  std::vector<std::int64_t> all = claimed[0];
  all.insert(all.end(), claimed[1].begin(), claimed[1].end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), devices.size());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
}

}  // namespace
}  // namespace dag::store::test
