// dagctl: the admin CLI. Thin: parse the command line, call dag::ctl, print, exit.
// Exit codes: 0 success, 1 the environment failed (disk, store, broker), 2 bad input.
#include <CLI/CLI.hpp>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "dag/common/files.hpp"
#include "dag/ctl/ctl.hpp"
#include "dag/protocol/vocabulary.hpp"

#ifndef DAG_VERSION
#define DAG_VERSION "0.0.0"
#endif
#ifndef DAG_PRESENCE_PLUGIN
#define DAG_PRESENCE_PLUGIN ""
#endif

namespace {

using dag::ctl::Paths;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int report(const dag::Error& e) {
  std::fprintf(stderr, "dagctl: %s\n", e.message.c_str());
  return dag::ctl::exit_code(e);
}

int usage(const std::string& message) {
  std::fprintf(stderr, "dagctl: %s\n", message.c_str());
  return 2;
}

// A password from stdin (first line) or, on a terminal, typed twice without echo.
dag::Result<std::string> read_password(bool from_stdin) {
  if (from_stdin) {
    std::string line;
    if (!std::getline(std::cin, line)) {
      return dag::fail(dag::Errc::invalid_argument, "no password on stdin");
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (::isatty(STDIN_FILENO) == 0) {
    return dag::fail(dag::Errc::invalid_argument,
                     "not a terminal: give the password with --password-stdin");
  }
  auto ask = [](const char* prompt) {
    std::fprintf(stderr, "%s", prompt);
    termios old{};
    ::tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::string line;
    std::getline(std::cin, line);
    ::tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    return line;
  };
  auto first = ask("Password: ");
  if (ask("Again: ") != first) {
    return dag::fail(dag::Errc::invalid_argument, "the passwords differ");
  }
  return first;
}

bool confirm(const std::string& question, bool yes) {
  if (yes) return true;
  if (::isatty(STDIN_FILENO) == 0) return false;
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

std::string time_text(std::optional<std::int64_t> ms) {
  if (!ms) return "never";
  const std::time_t t = *ms / 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string user_state_text(const dag::store::Device& d) {
  if (d.revoked) return "revoked";
  return d.state.user_state ? std::string(dag::protocol::to_string(*d.state.user_state))
                            : "unknown";
}

void print_notes(const std::vector<std::string>& notes) {
  for (const auto& n : notes) std::fprintf(stderr, "dagctl: note: %s\n", n.c_str());
}

// Every option of every command; CLI11 writes into it.
struct Args {
  std::string dir{"/var/lib/detectordag"};
  dag::ctl::InitOptions init;
  std::string plugin{DAG_PRESENCE_PLUGIN};
  std::string username;
  std::vector<std::string> emails;
  bool password_stdin{false};
  bool yes{false};
  bool as_json{false};
  dag::ctl::NewDeviceOptions device;
  std::string csr_file;
  std::string format{"env"};
  std::string out;
  std::string device_dir{"/etc/dag-edge"};
  std::string device_id;
  std::optional<std::string> filter_account;
  bool fleet{false};
  std::string scope_account;
  std::string scope_device;
  std::vector<std::string> items;
  // target
  std::string target_account;
  std::string target_id;
  std::optional<std::string> target_email;
  std::optional<std::string> webhook;
  std::optional<std::string> ntfy;
  std::optional<std::string> secret;
  std::optional<std::string> token;
  std::optional<std::string> body_template;
  std::optional<std::string> content_type;
};

struct Commands {
  CLI::App* init{};
  CLI::App* account_add{};
  CLI::App* account_passwd{};
  CLI::App* account_list{};
  CLI::App* account_rm{};
  CLI::App* account_set{};
  CLI::App* account_show{};
  CLI::App* target_add{};
  CLI::App* target_list{};
  CLI::App* target_rm{};
  CLI::App* target_verify{};
  CLI::App* device_add{};
  CLI::App* device_list{};
  CLI::App* device_rm{};
  CLI::App* device_revoke{};
  CLI::App* config_set{};
  CLI::App* config_unset{};
  CLI::App* config_get{};
};

// `account set|show` and `target ...`.
void define_notifications(CLI::App& app, CLI::App& account, Args& a, Commands& c) {
  c.account_set = account.add_subcommand("set", "Set preferences: key=value ...");
  c.account_set->add_option("--username", a.username, "Login name")->required();
  c.account_set->add_option("items", a.items, "key=value")->required();
  c.account_show = account.add_subcommand("show", "Show an account's preferences");
  c.account_show->add_option("--username", a.username, "Login name")->required();
  c.account_show->add_flag("--json", a.as_json, "JSON output");

  auto* target =
      app.add_subcommand("target", "Where an account's alerts go")->require_subcommand(1);
  auto add_account = [&](CLI::App* cmd) {
    cmd->add_option("--account", a.target_account, "Owner's username")->required();
  };
  c.target_add = target->add_subcommand("add", "Add an e-mail address, webhook or ntfy topic");
  add_account(c.target_add);
  auto* email =
      c.target_add->add_option("--email", a.target_email, "E-mail address (verified by mail)");
  auto* webhook = c.target_add->add_option("--webhook", a.webhook, "Webhook URL (http or https)");
  auto* ntfy = c.target_add->add_option("--ntfy", a.ntfy, "ntfy topic URL");
  email->excludes(webhook)->excludes(ntfy);
  webhook->excludes(ntfy);
  c.target_add->add_option("--secret", a.secret, "Webhook: HMAC key signing the bodies")
      ->needs(webhook);
  auto* tmpl = c.target_add->add_option("--template", a.body_template, "Webhook: body template")
                   ->needs(webhook);
  c.target_add->add_option("--content-type", a.content_type, "Webhook: the template's type")
      ->needs(tmpl);
  c.target_add->add_option("--token", a.token, "ntfy: access token")->needs(ntfy);
  c.target_list = target->add_subcommand("list", "List an account's targets and their health");
  add_account(c.target_list);
  c.target_list->add_flag("--json", a.as_json, "JSON output");
  c.target_rm = target->add_subcommand("rm", "Remove a target");
  c.target_rm->add_option("id", a.target_id, "Target id")->required();
  add_account(c.target_rm);
  c.target_verify = target->add_subcommand("verify-resend", "Mail a new verification link");
  c.target_verify->add_option("id", a.target_id, "Target id")->required();
  add_account(c.target_verify);
}

Commands define(CLI::App& app, Args& a) {
  Commands c;
  app.add_option("--dir", a.dir, "Deployment state directory (env DAG_STATE_DIR)");
  app.require_subcommand(1);

  c.init = app.add_subcommand("init", "Create a deployment: CA, broker and dagd config");
  c.init->add_option("--host", a.init.hosts, "Name or address devices use to reach the broker")
      ->take_all();
  c.init->add_flag("--force", a.init.force, "Replace an existing deployment (new CA!)");
  c.init->add_option("--device-port", a.init.device_port, "Device listener (TLS)");
  c.init->add_option("--service-port", a.init.service_port, "Loopback listener for dagd/dagctl");
  c.init->add_option("--broker-user", a.init.broker_user,
                     "User mosquitto drops to when run as root");
  c.init->add_option("--plugin", a.plugin, "Path of dag_presence.so (empty: none)");

  auto* account = app.add_subcommand("account", "Accounts")->require_subcommand(1);
  c.account_add = account->add_subcommand("add", "Add an account");
  c.account_add->add_option("--username", a.username, "Login name")->required();
  c.account_add->add_option("--email", a.emails, "Notification address (verified later)");
  c.account_add->add_flag("--password-stdin", a.password_stdin, "Read the password from stdin");
  c.account_passwd = account->add_subcommand("passwd", "Set an account's password");
  c.account_passwd->add_option("--username", a.username, "Login name")->required();
  c.account_passwd->add_flag("--password-stdin", a.password_stdin, "Read the password from stdin");
  c.account_list = account->add_subcommand("list", "List accounts");
  c.account_list->add_flag("--json", a.as_json, "JSON output");
  c.account_rm = account->add_subcommand("rm", "Remove an account with its dags");
  c.account_rm->add_option("--username", a.username, "Login name")->required();
  c.account_rm->add_flag("--yes", a.yes, "Do not ask");
  define_notifications(app, *account, a, c);

  auto* device = app.add_subcommand("device", "Dags")->require_subcommand(1);
  c.device_add = device->add_subcommand("add", "Provision a dag: id, certificate, bundle");
  c.device_add->add_option("--account", a.device.account, "Owner's username")->required();
  c.device_add->add_option("--name", a.device.name, "Display name (up to 64 characters)")
      ->required();
  c.device_add->add_option("--csr", a.csr_file, "CSR from `dag-edge keygen` (the key stays there)");
  c.device_add->add_option("--format", a.format, "env | dir")->check(CLI::IsMember({"env", "dir"}));
  c.device_add->add_option("--out", a.out, "Bundle file (env; default stdout) or directory (dir)");
  c.device_add->add_option("--device-dir", a.device_dir, "Where the dir bundle lives on the dag");
  c.device_add->add_option("--validity-days", a.device.validity_days, "Certificate lifetime");
  c.device_list = device->add_subcommand("list", "List dags");
  c.device_list->add_option("--account", a.filter_account, "Only this account's");
  c.device_list->add_flag("--json", a.as_json, "JSON output");
  c.device_rm = device->add_subcommand("rm", "Revoke and delete a dag with its history");
  c.device_rm->add_option("id", a.device_id, "Device id")->required();
  c.device_rm->add_flag("--yes", a.yes, "Do not ask");
  c.device_revoke = device->add_subcommand("revoke", "Revoke a dag's certificate");
  c.device_revoke->add_option("id", a.device_id, "Device id")->required();

  auto* config = app.add_subcommand("config", "Dag configuration: fleet < account < device")
                     ->require_subcommand(1);
  auto add_scope = [&](CLI::App* cmd) {
    auto* f = cmd->add_flag("--fleet", a.fleet, "Every dag");
    auto* acc = cmd->add_option("--account", a.scope_account, "An account's dags (username)");
    auto* dev = cmd->add_option("--device", a.scope_device, "One dag");
    f->excludes(acc)->excludes(dev);
    acc->excludes(dev);
  };
  c.config_set = config->add_subcommand("set", "Set keys: key=value ...");
  add_scope(c.config_set);
  c.config_set->add_option("items", a.items, "key=value")->required();
  c.config_unset = config->add_subcommand("unset", "Remove keys at this scope");
  add_scope(c.config_unset);
  c.config_unset->add_option("keys", a.items, "key")->required();
  c.config_get = config->add_subcommand("get", "Show a scope's keys (a dag's: effective)");
  add_scope(c.config_get);
  return c;
}

int accounts(const Commands& c, Args& a, const Paths& paths, dag::store::Store& store) {
  std::vector<std::string> notes;
  if (*c.account_add || *c.account_passwd) {
    auto password = read_password(a.password_stdin);
    if (!password) return report(password.error());
    if (*c.account_passwd) {
      if (auto r = dag::ctl::set_password(store, a.username, *password); !r) {
        return report(r.error());
      }
      std::cout << "Password of " << a.username << " changed.\n";
      return 0;
    }
    auto added = dag::ctl::add_account(store, a.username, *password, a.emails, now_ms());
    if (!added) return report(added.error());
    std::cout << "Account " << added->username << " (" << added->id << ") added";
    if (!a.emails.empty()) std::cout << "; its addresses get alerts once verified";
    std::cout << ".\n";
    return 0;
  }
  if (*c.account_list) {
    auto all = dag::ctl::list_accounts(store);
    if (!all) return report(all.error());
    if (a.as_json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& x : *all) {
        j.push_back({{"id", x.id}, {"username", x.username}, {"createdAt", x.created_at_ms}});
      }
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& x : *all) std::cout << x.username << "\t" << x.id << "\n";
    }
    return 0;
  }
  if (!confirm("Remove account " + a.username + ", its dags and their history?", a.yes)) {
    return usage("not confirmed (use --yes)");
  }
  auto n = dag::ctl::remove_account(paths, store, a.username, now_ms(), notes);
  print_notes(notes);
  if (!n) return report(n.error());
  std::cout << "Account " << a.username << " removed with " << *n << " dag(s).\n";
  return 0;
}

int add_device(Args& a, const Paths& paths, dag::store::Store& store) {
  if (!a.csr_file.empty()) {
    std::ifstream in(a.csr_file);
    if (!in) return usage("cannot read " + a.csr_file);
    std::stringstream s;
    s << in.rdbuf();
    a.device.csr_pem = s.str();
  }
  if (a.format == "dir" && a.out.empty()) return usage("--format dir needs --out DIR");
  auto deployment = dag::ctl::load_deployment(paths);
  if (!deployment) return report(deployment.error());
  auto d = dag::ctl::add_device(paths, store, a.device, now_ms());
  if (!d) return report(d.error());
  if (a.format == "dir") {
    if (auto r = dag::ctl::write_dir_bundle(a.out, a.device_dir, *deployment, *d); !r) {
      return report(r.error());
    }
  } else if (a.out.empty()) {
    std::cout << dag::ctl::env_bundle(*deployment, *d);
  } else if (auto r = dag::write_private_file(a.out, dag::ctl::env_bundle(*deployment, *d)); !r) {
    return report(r.error());
  }
  std::fprintf(stderr, "dagctl: dag %s (%s) added to %s\n", d->device.id.c_str(),
               d->device.name.c_str(), a.device.account.c_str());
  return 0;
}

int devices(const Commands& c, Args& a, const Paths& paths, dag::store::Store& store) {
  if (*c.device_add) return add_device(a, paths, store);
  if (*c.device_list) {
    auto all = dag::ctl::list_devices(store, a.filter_account);
    if (!all) return report(all.error());
    if (a.as_json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& d : *all) {
        j.push_back({{"id", d.id},
                     {"name", d.name},
                     {"accountId", d.account_id},
                     {"state", user_state_text(d)},
                     {"lastSeen", d.state.last_seen_ms ? nlohmann::json(*d.state.last_seen_ms)
                                                       : nlohmann::json(nullptr)}});
      }
      std::cout << j.dump(2) << "\n";
    } else {
      for (const auto& d : *all) {
        std::cout << d.id << "\t" << d.name << "\t" << user_state_text(d) << "\t"
                  << time_text(d.state.last_seen_ms) << "\n";
      }
    }
    return 0;
  }
  const bool remove = static_cast<bool>(*c.device_rm);
  if (remove && !confirm("Delete dag " + a.device_id + " and its history?", a.yes)) {
    return usage("not confirmed (use --yes)");
  }
  std::vector<std::string> notes;
  auto r = dag::ctl::revoke_device(paths, store, a.device_id, remove, now_ms(), notes);
  print_notes(notes);
  if (!r) return report(r.error());
  std::cout << "Dag " << a.device_id << (remove ? " revoked and deleted.\n" : " revoked.\n");
  return 0;
}

int configs(const Commands& c, Args& a, dag::store::Store& store) {
  auto scope = dag::store::ConfigScope::fleet;
  std::string ref;
  if (!a.scope_account.empty()) {
    scope = dag::store::ConfigScope::account;
    ref = a.scope_account;
  } else if (!a.scope_device.empty()) {
    scope = dag::store::ConfigScope::device;
    ref = a.scope_device;
  } else if (!a.fleet) {
    return usage("say which: --fleet, --account USER or --device ID");
  }
  if (*c.config_get) {
    auto j = dag::ctl::get_config(store, scope, ref);
    if (!j) return report(j.error());
    std::cout << j->dump(2) << "\n";
    return 0;
  }
  std::map<std::string, nlohmann::json> changes;
  for (const auto& item : a.items) {
    if (*c.config_unset) {
      changes[item] = nullptr;
      continue;
    }
    auto kv = dag::ctl::parse_assignment(item);
    if (!kv) return report(kv.error());
    changes[kv->first] = kv->second;
  }
  auto n = dag::ctl::set_config(store, scope, ref, changes, now_ms());
  if (!n) return report(n.error());
  std::cout << *n << " dag(s) get a new configuration.\n";
  return 0;
}

int preferences(const Commands& c, Args& a, dag::store::Store& store) {
  dag::Result<dag::store::AccountSettings> settings = dag::store::AccountSettings{};
  if (*c.account_set) {
    std::map<std::string, nlohmann::json> changes;
    for (const auto& item : a.items) {
      auto kv = dag::ctl::parse_assignment(item);
      if (!kv) return report(kv.error());
      changes[kv->first] = kv->second;
    }
    settings = dag::ctl::set_settings(store, a.username, changes);
  } else {
    settings = dag::ctl::get_settings(store, a.username);
  }
  if (!settings) return report(settings.error());
  const auto j = dag::ctl::settings_json(*settings);
  if (a.as_json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  if (*c.account_set) std::cout << "Preferences of " << a.username << " changed:\n";
  for (const auto& [key, value] : j.items()) {
    std::cout << key << "=" << (value.is_string() ? value.get<std::string>() : value.dump())
              << "\n";
  }
  return 0;
}

std::string target_state_text(const dag::store::NotificationTarget& t) {
  return t.verified ? "verified" : "verification pending";
}

std::string target_health_text(const dag::store::NotificationTarget& t) {
  std::string text = "failures " + std::to_string(t.failure_count) + "\tlast error ";
  text += t.last_error ? time_text(t.last_error_at_ms) + " " + *t.last_error : "none";
  return text + "\tlast success " + time_text(t.last_success_at_ms);
}

int add_target(Args& a, dag::store::Store& store) {
  dag::ctl::NewTargetOptions o;
  o.account = a.target_account;
  if (a.target_email) {
    o.address = *a.target_email;
  } else if (a.webhook) {
    o.kind = dag::store::TargetKind::webhook;
    o.address = *a.webhook;
    o.secret = a.secret;
    o.body_template = a.body_template;
    o.content_type = a.content_type;
  } else if (a.ntfy) {
    o.kind = dag::store::TargetKind::ntfy;
    o.address = *a.ntfy;
    o.secret = a.token;
  } else {
    return usage("say which: --email ADDRESS, --webhook URL or --ntfy URL");
  }
  auto t = dag::ctl::add_target(store, o, now_ms());
  if (!t) return report(t.error());
  std::cout << t->id << "\n";
  if (!t->verified) {
    std::fprintf(stderr, "dagctl: %s gets alerts once verified (dagd mails it a link)\n",
                 t->address.c_str());
  }
  return 0;
}

int targets(const Commands& c, Args& a, dag::store::Store& store) {
  if (*c.target_add) return add_target(a, store);
  if (*c.target_list) {
    auto all = dag::ctl::list_targets(store, a.target_account);
    if (!all) return report(all.error());
    if (a.as_json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& t : *all) j.push_back(dag::ctl::target_json(t));
      std::cout << j.dump(2) << "\n";
      return 0;
    }
    for (const auto& t : *all) {
      std::cout << t.id << "\t" << dag::store::to_string(t.kind) << "\t" << t.address << "\t"
                << target_state_text(t) << "\tsecret " << (t.secret ? "set" : "none") << "\t"
                << target_health_text(t) << "\n";
    }
    return 0;
  }
  if (*c.target_rm) {
    if (auto r = dag::ctl::remove_target(store, a.target_account, a.target_id); !r) {
      return report(r.error());
    }
    std::cout << "Target " << a.target_id << " removed.\n";
    return 0;
  }
  if (auto r = dag::ctl::resend_verification(store, a.target_account, a.target_id, now_ms()); !r) {
    return report(r.error());
  }
  std::cout << "A new verification mail goes out shortly.\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dagctl: administers a detectordag deployment (CA, broker config, accounts, dags)"};
  app.set_version_flag("--version", std::string("dagctl ") + DAG_VERSION);
  Args a;
  // Read before any thread exists.
  if (const char* env = std::getenv("DAG_STATE_DIR")) a.dir = env;  // NOLINT(concurrency-mt-unsafe)
  const Commands c = define(app, a);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  const Paths paths(a.dir);
  if (*c.init) {
    a.init.dir = a.dir;
    a.init.plugin = a.plugin;
    auto steps = dag::ctl::init(a.init);
    if (!steps) return report(steps.error());
    std::cout << *steps;
    return 0;
  }
  auto store = dag::ctl::open_store(paths);
  if (!store) return report(store.error());
  if (*c.account_add || *c.account_passwd || *c.account_list || *c.account_rm) {
    return accounts(c, a, paths, **store);
  }
  if (*c.device_add || *c.device_list || *c.device_rm || *c.device_revoke) {
    return devices(c, a, paths, **store);
  }
  if (*c.config_set || *c.config_unset || *c.config_get) return configs(c, a, **store);
  if (*c.account_set || *c.account_show) return preferences(c, a, **store);
  if (*c.target_add || *c.target_list || *c.target_rm || *c.target_verify) {
    return targets(c, a, **store);
  }
  std::cout << app.help();
  return 2;
}
