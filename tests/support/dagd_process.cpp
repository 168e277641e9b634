#include "dag/test/dagd_process.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace dag::test {

Result<std::unique_ptr<DagdProcess>> DagdProcess::start(TestPki& pki, DagdOptions options) {
  std::unique_ptr<DagdProcess> d(new DagdProcess());
  const auto& id = pki.client(options.client_id);
  d->options_ = std::move(options);
  d->env_ = {
      {"DAG_DAGD_STATE_DIR", d->dir_.path().string()},
      {"DAG_DATABASE_PATH", d->database().string()},
      {"DAG_MQTT_HOST", d->options_.host},
      {"DAG_MQTT_PORT", std::to_string(d->options_.port)},
      {"DAG_MQTT_CLIENT_ID", d->options_.client_id},
      {"DAG_MQTT_CA", pki.ca_file().string()},
      {"DAG_MQTT_CERT", id.cert.string()},
      {"DAG_MQTT_KEY", id.key.string()},
      {"DAG_LOG_LEVEL", "debug"},
      // Any free port (logged); tests read it with api_port().
      {"DAG_API_PORT", "0"},
      {"DAG_API_JWT_SECRET", "integration-test-secret-integration-test-secret"},
  };
  for (const auto& kv : d->options_.env) d->env_.push_back(kv);
  if (auto r = d->launch(); !r) return Unexpected<Error>{r.error()};
  return d;
}

DagdProcess::~DagdProcess() {
  if (process_) process_->kill9();
}

Result<void> DagdProcess::launch() {
  ProcessOptions po;
  po.argv = {options_.binary.string()};
  po.env = env_;
  po.log_file = dir_ / "dagd.log";
  auto p = Process::spawn(std::move(po));
  if (!p) return Unexpected<Error>{p.error()};
  process_ = *std::move(p);
  if (!process_->wait_for_line("mqtt.subscribed", options_.timeout)) {
    const auto out = process_->output();
    process_->kill9();
    return fail(Errc::unavailable, "dagd did not subscribe in time:\n" + out);
  }
  // "... api.listening host=127.0.0.1 port=40123 tls=false ...": this run's last one.
  const auto out = process_->output();
  const auto at = out.rfind("api.listening");
  api_port_ = 0;
  if (at != std::string::npos) {
    const auto field = out.find(" port=", at);
    if (field != std::string::npos)
      api_port_ = std::atoi(out.c_str() + field + 6);  // NOLINT(cert-err34-c)
  }
  return ok();
}

std::string DagdProcess::log() const {
  std::ifstream in(dir_ / "dagd.log");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<void> DagdProcess::stop() {
  const auto status = process_->stop(SIGTERM, options_.timeout);
  if (!status.success()) return fail(Errc::internal, "dagd ended with " + status.to_string());
  return ok();
}

void DagdProcess::kill9() {
  process_->kill9();
}

Result<void> DagdProcess::restart() {
  if (process_ && process_->running()) process_->kill9();
  return launch();
}

}  // namespace dag::test
