// The dagd process: opens the store, connects to the broker, runs the ingest worker, and
// shuts down cleanly on SIGTERM/SIGINT.
//
// Shutdown order: stop taking batches once the queue is empty (replies for everything
// processed are published), disconnect cleanly (the persistent session keeps queuing
// QoS 1 messages at the broker for the next start), process whatever arrived in between,
// close the store. A second SIGTERM during shutdown is ignored; SIGKILL is always safe for
// the data (see dag/ingest/ingest.hpp "Delivery").
#pragma once

#include "dag/dagd/settings.hpp"

namespace dag::dagd {

/// Runs dagd until SIGTERM or SIGINT. Blocks. Returns the process exit code: 0 after a
/// clean shutdown, 1 when the store or the TLS files cannot be set up.
/// Must be called before any other thread is started (it blocks the signals it waits for).
int run_dagd(const DagdSettings& settings);

}  // namespace dag::dagd
