// libFuzzer target for what dag-edge receives from the network: "<topic>\n<payload>"
// delivered to a running Agent (accepted/rejected replies, deltas with config, get
// replies, status requests, garbage). The agent must never crash, and its outbox must
// keep the latest transition whatever it is told.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "dag/common/clock.hpp"
#include "dag/edge/agent.hpp"

namespace {

class NullTransport final : public dag::edge::Transport {
 public:
  dag::Result<int> publish(const std::string& /*t*/, std::string_view /*p*/, int /*q*/,
                           bool /*r*/) override {
    return 1;
  }
  [[nodiscard]] bool connected() const override { return true; }
};

struct World {
  World() {
    // tmpfs when there is one: the outbox fsyncs every append, and a disk would make
    // fsync the whole cost of an input.
    char shm[] = "/dev/shm/dag-fuzz-edge-XXXXXX";
    char tmp[] = "/tmp/dag-fuzz-edge-XXXXXX";
    char* tmpl = std::filesystem::is_directory("/dev/shm") ? shm : tmp;
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
  }
  ~World() { std::filesystem::remove_all(dir); }
  World(const World&) = delete;
  World& operator=(const World&) = delete;
  std::filesystem::path dir;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static World world;  // one temp dir for the whole run; the outbox is reset per input
  std::filesystem::remove(world.dir / "outbox.log");
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nl = input.find('\n');
  const std::string topic(input.substr(0, nl));
  const std::string payload(nl == std::string_view::npos ? "" : input.substr(nl + 1));

  dag::edge::EdgeSettings settings;
  settings.device_id = "dag-1";
  settings.state_dir = world.dir;
  dag::FakeClock clock;
  dag::edge::SimLine line(true);
  dag::edge::SimGauge gauge;
  NullTransport transport;
  auto box = dag::edge::Outbox::open(world.dir);
  if (!box) std::abort();
  dag::edge::Agent agent(settings, {"fuzz", "boot"}, clock, line, gauge, *box, transport);
  agent.start();
  clock.advance(std::chrono::milliseconds{settings.tunables.debounce_ms});
  agent.on_timer();
  agent.on_transport({dag::edge::TransportEvent::Kind::connected, {}, {}});
  agent.on_transport({dag::edge::TransportEvent::Kind::message, topic, payload});
  // The same payload on each reply topic of this device.
  for (const char* reply : {"update/accepted", "update/rejected", "update/delta", "get/accepted"}) {
    agent.on_transport({dag::edge::TransportEvent::Kind::message,
                        std::string("$aws/things/dag-1/shadow/") + reply, payload});
  }
  line.set_level(false);
  agent.on_line_events(*line.drain());
  clock.advance(std::chrono::seconds{11});
  agent.on_timer();
  // Whatever the replies said, the newest transition is still there (nothing acked it).
  if (box->pending().empty() || box->pending().back().body.find("\"off\"") == std::string::npos) {
    std::abort();
  }
  (void)agent.status().dump();
  return 0;
}
