#include "dag/ctl/deployment.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "dag/common/files.hpp"

namespace dag::ctl {

Paths::Paths(std::filesystem::path state_dir) : root(std::move(state_dir)) {
  deployment = root / "deployment.json";
  ca_dir = root / "ca";
  ca_cert = ca_dir / "ca.pem";
  ca_key = ca_dir / "ca.key";
  crl = ca_dir / "crl.pem";
  broker_dir = root / "broker";
  server_cert = broker_dir / "server.pem";
  server_key = broker_dir / "server.key";
  mosquitto_conf = broker_dir / "mosquitto.conf";
  acl = broker_dir / "acl";
  pid_file = broker_dir / "mosquitto.pid";
  persistence_dir = broker_dir / "data";
  dagd_dir = root / "dagd";
  dagd_cert = dagd_dir / "dagd.pem";
  dagd_key = dagd_dir / "dagd.key";
  dagd_toml = dagd_dir / "dagd.toml";
  database = dagd_dir / "dagd.db";
  ctl_dir = root / "dagctl";
  ctl_cert = ctl_dir / "dagctl.pem";
  ctl_key = ctl_dir / "dagctl.key";
}

Result<Deployment> load_deployment(const Paths& paths) {
  std::ifstream in(paths.deployment);
  if (!in) {
    return fail(Errc::not_found, "no deployment at " + paths.root.string() +
                                     " (run `dagctl init --dir " + paths.root.string() + "`)");
  }
  std::stringstream text;
  text << in.rdbuf();
  const auto j = nlohmann::json::parse(text.str(), nullptr, false);
  Deployment d;
  try {
    if (!j.is_object()) throw std::runtime_error("not an object");
    d.hosts = j.at("hosts").get<std::vector<std::string>>();
    d.device_port = j.at("devicePort").get<std::uint16_t>();
    d.service_port = j.at("servicePort").get<std::uint16_t>();
  } catch (const std::exception& e) {
    return fail(Errc::parse, paths.deployment.string() + ": " + e.what());
  }
  if (d.hosts.empty()) return fail(Errc::parse, paths.deployment.string() + ": no hosts");
  return d;
}

Result<void> save_deployment(const Paths& paths, const Deployment& d) {
  const nlohmann::json j = {
      {"hosts", d.hosts}, {"devicePort", d.device_port}, {"servicePort", d.service_port}};
  return write_private_file(paths.deployment, j.dump(2) + "\n");
}

}  // namespace dag::ctl
