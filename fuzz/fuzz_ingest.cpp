// libFuzzer target for dagd's ingest path: batches of MQTT messages (topic, payload,
// retained) through dag::shadow::Service over an in-memory SQLite store, as dagd's ingest
// worker hands them over.
//
// Input: up to kMaxBatch messages separated by "\n--\n", processed as ONE batch. Each
// message starts with a selector byte:
//   bit 7        retained flag
//   bits 3..6    topic shape: update, get, delete, presence, lifecycle connected,
//                lifecycle disconnected, update/accepted (a reply: not for dagd), status
//                request, and (8..15) a raw topic: the bytes up to the first '\n'
//   bits 0..2    device: dag-1, dag-2 (account A, no grace), dag-3 (account B, short
//                graces), dag-4 (revoked), dag-5 (unknown), a 128-byte unknown id, a
//                129-byte id and "+" (both invalid)
// and the rest is the payload. The world (store, devices, service) is created once and
// evolves from input to input; the fake clock moves 700 ms per input, so rate-limit
// buckets refill and debounce timers come due (fired after each batch). So a finding may
// need the inputs before it: FUZZ_INGEST_TRACE=1 prints every batch, its replies and
// dagd's log lines; run the corpus and the crash file in one process to reproduce.
//
// Invariants besides "no crash, no sanitizer report, no exception":
// - every outbound topic parses and is a shadow reply or a status request, for a device
//   named in the batch (a status request only for a provisioned, unrevoked one);
// - every shadow request gets exactly one accepted-or-rejected reply on its own
//   (thing, op), echoing the request's clientToken when it has a valid one;
// - every payload is JSON; a rejection is {"code":<400|404|409|413|415|429>,"message":..},
//   404 (or 429) for unknown or revoked devices; delta and documents only follow an accepted
//   update;
// - the store never fails (an in-memory SQLite): no 500, no batch fallback, no store error;
// - after an accepted update the stored shadow is readable and has the accepted version.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "dag/common/clock.hpp"
#include "dag/common/log.hpp"
#include "dag/protocol/shadow.hpp"
#include "dag/protocol/topics.hpp"
#include "dag/shadow/service.hpp"
#include "dag/store/sqlite.hpp"
#include "dag/store/store.hpp"

namespace {

using nlohmann::json;
namespace proto = dag::protocol;
namespace store = dag::store;

constexpr std::size_t kMaxBatch = 8;
constexpr std::string_view kSeparator = "\n--\n";

// The replies being checked, printed when an invariant fails.
const std::vector<dag::shadow::Outbound>* g_replies = nullptr;

// Aborts (a crash for libFuzzer) naming the invariant that failed.
void fail_check(const char* what, int line) {
  std::fprintf(stderr, "fuzz_ingest.cpp:%d: invariant failed: %s\n", line, what);
  if (g_replies != nullptr) {
    for (const auto& m : *g_replies) {
      std::fprintf(stderr, "  reply %s %.200s\n", m.topic.c_str(), m.payload.c_str());
    }
  }
  std::abort();
}
#define CHECK(condition) ((condition) ? void() : fail_check(#condition, __LINE__))

const std::string& device_id(unsigned index) {
  static const std::string ids[8] = {
      "dag-1",
      "dag-2",
      "dag-3",
      "dag-4",
      "dag-5",
      std::string(128, 'x'),
      std::string(129, 'y'),  // too long: not a device id
      "+",                    // a wildcard: not a device id
  };
  return ids[index & 7U];
}

constexpr std::string_view kRevoked = "dag-4";

// FUZZ_INGEST_TRACE=1: print every batch, its replies and dagd's log lines.
bool tracing() {
  static const bool on =
      std::getenv("FUZZ_INGEST_TRACE") != nullptr;  // NOLINT(concurrency-mt-unsafe)
  return on;
}

struct World {
  World() {
    dag::log::set_level(tracing() ? dag::log::Level::debug : dag::log::Level::off);
    auto opened = store::open_sqlite(":memory:");
    CHECK(opened.has_value());
    db = *std::move(opened);
    const std::int64_t now = clock.unix_ms();
    auto made = store::transact(
        *db, store::TxMode::read_write, [&](store::Transaction& tx) -> store::StoreResult<void> {
          auto a = tx.create_account("alice", "hash", now);
          if (!a) return dag::Unexpected<store::StoreError>{a.error()};
          auto b = tx.create_account("bob", "hash", now);
          if (!b) return dag::Unexpected<store::StoreError>{b.error()};
          store::AccountSettings quick;
          quick.power_off_grace_s = 2;
          quick.disconnect_grace_s = 1;
          quick.low_battery_percent = 50;
          if (auto r = tx.update_account_settings(b->id, quick); !r) {
            return r;
          }
          const std::pair<const char*, const std::string*> devices[] = {
              {"dag-1", &a->id}, {"dag-2", &a->id}, {"dag-3", &b->id}, {"dag-4", &b->id}};
          for (const auto& [id, account] : devices) {
            auto d = tx.create_device({id, *account, id, now - 1000});
            if (!d) return dag::Unexpected<store::StoreError>{d.error()};
          }
          return tx.set_device_revoked(kRevoked, true);
        });
    CHECK(made.has_value());
    dag::shadow::ServiceOptions options;
    options.rate_per_s = 4;
    options.rate_burst = 3;
    options.owner = "fuzz";
    service = std::make_unique<dag::shadow::Service>(*db, clock, options, metrics);
  }

  dag::FakeClock clock{1'700'000'000'000};
  std::unique_ptr<store::Store> db;
  dag::shadow::Metrics metrics;
  std::unique_ptr<dag::shadow::Service> service;
};

bool provisioned(std::string_view id) {
  return id == "dag-1" || id == "dag-2" || id == "dag-3" || id == kRevoked;
}

dag::shadow::Inbound make_message(std::string_view record, std::int64_t now_ms) {
  dag::shadow::Inbound in;
  in.received_ms = now_ms;
  if (record.empty()) return in;
  const auto selector = static_cast<unsigned char>(record[0]);
  std::string_view rest = record.substr(1);
  in.retained = (selector & 0x80U) != 0;
  const unsigned shape = (selector >> 3U) & 0x0FU;
  const std::string& id = device_id(selector);
  switch (shape) {
    case 0: in.topic = "$aws/things/" + id + "/shadow/update"; break;
    case 1: in.topic = "$aws/things/" + id + "/shadow/get"; break;
    case 2: in.topic = "$aws/things/" + id + "/shadow/delete"; break;
    case 3: in.topic = "dags/" + id + "/presence"; break;
    case 4: in.topic = "$aws/events/presence/connected/" + id; break;
    case 5: in.topic = "$aws/events/presence/disconnected/" + id; break;
    case 6: in.topic = "$aws/things/" + id + "/shadow/update/accepted"; break;
    case 7: in.topic = "dags/" + id + "/status/request"; break;
    default: {
      const auto nl = rest.find('\n');
      in.topic = std::string(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      break;
    }
  }
  in.payload = std::string(rest);
  return in;
}

std::vector<dag::shadow::Inbound> split(std::string_view input, std::int64_t now_ms) {
  std::vector<dag::shadow::Inbound> batch;
  while (batch.size() < kMaxBatch) {
    const auto end = input.find(kSeparator);
    batch.push_back(make_message(input.substr(0, end), now_ms));
    if (end == std::string_view::npos) break;
    input.remove_prefix(end + kSeparator.size());
  }
  return batch;
}

json parse_object(std::string_view text) {
  json value = json::parse(text.begin(), text.end(), nullptr, false);
  CHECK(value.is_object());
  return value;
}

using Key = std::pair<std::string, proto::ShadowOp>;

struct Wanted {
  int requests{0};
  std::multiset<std::string> tokens;  // valid clientTokens of the requests ("" = none)
};

void check_outbound(const std::vector<dag::shadow::Outbound>& out, std::map<Key, Wanted>& wanted,
                    const std::set<std::string>& named, World& world) {
  std::map<Key, int> replies;
  std::map<Key, std::multiset<std::string>> tokens;
  std::map<std::string, std::optional<std::uint64_t>> last_write;  // thing -> version, or delete
  std::map<std::string, bool> accepted_update;  // thing -> last update reply was accepted
  for (const auto& m : out) {
    auto topic = proto::parse_topic(m.topic);
    CHECK(topic.has_value());
    if (const auto* status = std::get_if<proto::StatusRequestTopic>(&*topic)) {
      CHECK(provisioned(status->device) && status->device != kRevoked);
      CHECK(m.payload.empty());
      continue;
    }
    const auto* reply = std::get_if<proto::ShadowResponseTopic>(&*topic);
    CHECK(reply != nullptr);
    CHECK(named.contains(reply->thing));
    const json body = parse_object(m.payload);
    const Key key{reply->thing, reply->op};
    switch (reply->reply) {
      case proto::ShadowReply::rejected: {
        CHECK(body.contains("code") && body["code"].is_number_integer());
        const int code = body["code"].get<int>();
        // 500 only comes from a failing store; this one does not fail.
        CHECK(code == 400 || code == 404 || code == 409 || code == 413 || code == 415 ||
              code == 429);
        CHECK(body.contains("message") && body["message"].is_string());
        // No shadow service for an unknown or revoked device (the rate limit comes first).
        if (!provisioned(reply->thing) || reply->thing == kRevoked) {
          CHECK(code == 404 || code == 429);
        }
        ++replies[key];
        tokens[key].insert(body.value("clientToken", std::string()));
        if (reply->op == proto::ShadowOp::update) accepted_update[reply->thing] = false;
        break;
      }
      case proto::ShadowReply::accepted: {
        CHECK(provisioned(reply->thing) && reply->thing != kRevoked);
        ++replies[key];
        tokens[key].insert(body.value("clientToken", std::string()));
        if (reply->op == proto::ShadowOp::update) {
          CHECK(body.contains("version") && body["version"].is_number_unsigned());
          last_write[reply->thing] = body["version"].get<std::uint64_t>();
          accepted_update[reply->thing] = true;
        } else if (reply->op == proto::ShadowOp::remove) {
          last_write[reply->thing] = std::nullopt;
        }
        break;
      }
      case proto::ShadowReply::delta:
      case proto::ShadowReply::documents:
        // Published right after the accepted reply of the same update.
        CHECK(reply->op == proto::ShadowOp::update);
        CHECK(accepted_update[reply->thing]);
        break;
    }
  }
  for (auto& [key, expected] : wanted) {
    CHECK(replies[key] == expected.requests);
    CHECK(tokens[key] == expected.tokens);
  }
  for (const auto& [key, n] : replies) CHECK(wanted.contains(key));

  // What was accepted was committed.
  for (const auto& [thing, version] : last_write) {
    const std::string& id = thing;  // a structured binding cannot be captured (C++20)
    auto stored = store::transact(*world.db, store::TxMode::read_only,
                                  [&](store::Transaction& tx) { return tx.get_shadow(id); });
    CHECK(stored.has_value() && stored->has_value());
    auto document = proto::shadow_from_json((*stored)->document);
    CHECK(document.has_value());
    if (version) {
      CHECK(document->exists() && document->version() == *version);
    } else {
      CHECK(!document->exists());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;
  world.clock.advance(std::chrono::milliseconds{700});
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto batch = split(input, world.clock.unix_ms());

  std::map<Key, Wanted> wanted;
  std::set<std::string> named;
  for (const auto& in : batch) {
    auto topic = proto::parse_topic(in.topic);
    if (!topic) continue;
    if (const auto* req = std::get_if<proto::ShadowRequestTopic>(&*topic)) {
      auto& e = wanted[{req->thing, req->op}];
      ++e.requests;
      e.tokens.insert(proto::client_token_of(in.payload).value_or(std::string()));
      named.insert(req->thing);
    }
  }

  auto& m = world.metrics;
  const auto messages = m.messages.load();
  const auto fallbacks = m.batch_fallbacks.load();
  const auto store_errors = m.store_errors.load();
  const auto internal = m.rejects(500);

  const auto out = world.service->process(batch);
  g_replies = &out;
  if (tracing()) {
    for (const auto& in : batch) {
      std::fprintf(stderr, "in  %s%s %.200s\n", in.topic.c_str(), in.retained ? " (retained)" : "",
                   in.payload.c_str());
    }
    for (const auto& o : out)
      std::fprintf(stderr, "out %s %.200s\n", o.topic.c_str(), o.payload.c_str());
  }
  check_outbound(out, wanted, named, world);

  // Debounce and grace timers that came due meanwhile.
  g_replies = nullptr;
  auto round = world.service->fire_due_timers();
  CHECK(round.has_value());
  for (const auto& o : round->outbound) {
    auto topic = proto::parse_topic(o.topic);
    CHECK(topic.has_value());
    // A status request (debounce), or the delta of desired state set by an operator.
    if (const auto* reply = std::get_if<proto::ShadowResponseTopic>(&*topic)) {
      CHECK(reply->op == proto::ShadowOp::update && reply->reply == proto::ShadowReply::delta);
      CHECK(provisioned(reply->thing));
      (void)parse_object(o.payload);
    } else {
      CHECK(std::holds_alternative<proto::StatusRequestTopic>(*topic));
    }
  }

  CHECK(m.messages.load() == messages + batch.size());
  CHECK(m.batch_fallbacks.load() == fallbacks);
  CHECK(m.store_errors.load() == store_errors);
  CHECK(m.rejects(500) == internal);
  CHECK(m.database_ok.load());
  return 0;
}
