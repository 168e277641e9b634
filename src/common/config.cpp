#include "dag/common/config.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "dag/common/encoding.hpp"

namespace dag::config {
namespace {

constexpr std::string_view kPemMarker = "-----BEGIN ";

const char* type_name(Type t) {
  switch (t) {
    case Type::string: return "string";
    case Type::integer: return "integer";
    case Type::boolean: return "boolean";
    case Type::pem: return "PEM (text, base64 or file path)";
    case Type::string_list: return "list of strings";
  }
  return "?";
}

std::string trim(std::string_view s) {
  const auto* b = s.begin();
  const auto* e = s.end();
  while (b != e && std::isspace(static_cast<unsigned char>(*b)) != 0) ++b;
  while (e != b && std::isspace(static_cast<unsigned char>(*(e - 1))) != 0) --e;
  return {b, e};
}

std::optional<bool> parse_bool(std::string_view raw) {
  std::string v = trim(raw);
  std::transform(v.begin(), v.end(), v.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

std::optional<std::int64_t> parse_int(std::string_view raw) {
  const std::string v = trim(raw);
  std::int64_t out = 0;
  const auto* first = v.data();
  const auto* last = v.data() + v.size();
  if (first != last && *first == '+') ++first;
  auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec != std::errc{} || ptr != last || first == last) return std::nullopt;
  return out;
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// Renders a textual value as the TOML literal of its type (for commented_defaults()).
std::string toml_literal(const Field& f, std::string_view text) {
  switch (f.type) {
    case Type::integer:
    case Type::boolean: return std::string(text);
    case Type::string_list: {
      std::string out = "[";
      std::string_view rest = text;
      bool first = true;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const std::string item = trim(rest.substr(0, comma));
        if (!item.empty()) {
          if (!first) out += ", ";
          out += toml_quote(item);
          first = false;
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      return out + "]";
    }
    case Type::string:
    case Type::pem: return toml_quote(text);
  }
  return std::string(text);
}

}  // namespace

Schema::Schema(std::string program, std::string env_prefix)
    : program_(std::move(program)), env_prefix_(std::move(env_prefix)) {}

Schema& Schema::add(Field field) {
  if (find(field.key) != nullptr) throw std::logic_error("config: duplicate key " + field.key);
  fields_.push_back(std::move(field));
  return *this;
}

const Field* Schema::find(std::string_view key) const {
  for (const auto& f : fields_) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

std::string Schema::env_name(const Field& field) const {
  std::string out = env_prefix_;
  for (char c : field.key) {
    out.push_back(c == '.' || c == '-'
                      ? '_'
                      : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

std::string Schema::commented_defaults() const {
  std::ostringstream out;
  out << "# " << program_ << " configuration: every key with its default.\n"
      << "# Each key may also be set in the environment (name given below); the environment\n"
      << "# wins over this file. Certificates and keys accept PEM text, base64 of the PEM,\n"
      << "# or a file path.\n";
  std::string section;
  for (const auto& f : fields_) {
    const auto dot = f.key.rfind('.');
    const std::string sec = dot == std::string::npos ? "" : f.key.substr(0, dot);
    const std::string leaf = dot == std::string::npos ? f.key : f.key.substr(dot + 1);
    if (sec != section) {
      out << "\n[" << sec << "]\n";
      section = sec;
    } else {
      out << "\n";
    }
    out << "# " << f.help << "\n";
    out << "# type: " << type_name(f.type);
    if (f.type == Type::integer && (f.min != std::numeric_limits<std::int64_t>::min() ||
                                    f.max != std::numeric_limits<std::int64_t>::max())) {
      out << ", range " << f.min << ".." << f.max;
    }
    if (!f.choices.empty()) {
      out << ", one of:";
      for (const auto& c : f.choices) out << " " << c;
    }
    out << "; env: " << env_name(f);
    for (const auto& a : f.env_aliases) out << " (or " << a << ")";
    if (f.required) out << "; required";
    out << "\n";
    if (f.default_value.empty()) {
      out << "# " << leaf << " = " << (f.type == Type::string_list ? "[]" : "\"\"") << "\n";
    } else {
      out << leaf << " = " << toml_literal(f, f.default_value) << "\n";
    }
  }
  return out.str();
}

Env process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read at start-up
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Result<std::string> resolve_pem(std::string_view value) {
  const std::string v = trim(value);
  if (v.empty()) return fail(Errc::config, "empty certificate/key value");
  if (v.starts_with(kPemMarker)) return v + "\n";
  // base64 of a PEM (the original system's fleet variables carried PEMs this way).
  if (auto decoded = base64_decode(v); decoded && trim(*decoded).starts_with(kPemMarker)) {
    return trim(*decoded) + "\n";
  }
  std::ifstream in(v, std::ios::binary);
  if (!in) {
    return fail(Errc::not_found,
                "not PEM text, not base64 PEM, and no readable file at '" + v + "'");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return fail(Errc::io, "cannot read '" + v + "'");
  std::string text = trim(ss.str());
  if (!text.starts_with(kPemMarker)) return fail(Errc::parse, "file '" + v + "' is not PEM");
  return text + "\n";
}

class Loader {
 public:
  Loader(const Schema& schema, const Env& env) : schema_(schema), env_(env) {}

  Result<Config> run(std::string_view toml_text, std::string_view origin) {
    Config cfg;
    for (const auto& f : schema_.fields()) {
      if (!f.default_value.empty()) {
        cfg.values_[f.key] = Config::Entry{f.type, normalise_default(f), "default"};
      }
    }
    if (!toml_text.empty() || !origin.empty()) {
      if (auto r = apply_toml(cfg, toml_text, origin); !r) return Unexpected{r.error()};
    }
    if (auto r = apply_env(cfg); !r) return Unexpected{r.error()};
    if (auto r = validate(cfg); !r) return Unexpected{r.error()};
    return cfg;
  }

 private:
  static std::string normalise_default(const Field& f) {
    if (f.type != Type::string_list) return f.default_value;
    return split_list(f.default_value);
  }

  static std::string split_list(std::string_view csv) {
    std::string out;
    std::string_view rest = csv;
    while (true) {
      const auto comma = rest.find(',');
      const std::string item = trim(rest.substr(0, comma));
      if (!item.empty()) {
        if (!out.empty()) out.push_back('\n');
        out += item;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return out;
  }

  Result<void> apply_toml(Config& cfg, std::string_view text, std::string_view origin) {
    toml::table root;
    try {
      root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
      const auto& src = e.source();
      return fail(Errc::parse, fmt::format("{}:{}:{}: {}", origin, src.begin.line, src.begin.column,
                                           e.description()));
    }
    return walk(cfg, root, "", std::string("file ") + std::string(origin));
  }

  Result<void> walk(Config& cfg, const toml::table& table, const std::string& prefix,
                    const std::string& origin) {
    for (const auto& [k, node] : table) {
      const std::string key =
          prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
      if (const auto* sub = node.as_table()) {
        if (auto r = walk(cfg, *sub, key, origin); !r) return r;
        continue;
      }
      const Field* f = schema_.find(key);
      if (f == nullptr) return fail(Errc::config, fmt::format("{}: unknown key '{}'", origin, key));
      std::string text;
      switch (f->type) {
        case Type::string:
        case Type::pem:
          if (!node.is_string()) return wrong_type(*f, origin);
          text = *node.value<std::string>();
          break;
        case Type::integer:
          if (!node.is_integer()) return wrong_type(*f, origin);
          text = std::to_string(*node.value<std::int64_t>());
          break;
        case Type::boolean:
          if (!node.is_boolean()) return wrong_type(*f, origin);
          text = *node.value<bool>() ? "true" : "false";
          break;
        case Type::string_list: {
          const auto* arr = node.as_array();
          if (arr == nullptr) return wrong_type(*f, origin);
          for (const auto& item : *arr) {
            if (!item.is_string()) return wrong_type(*f, origin);
            const std::string s = trim(*item.value<std::string>());
            if (s.find('\n') != std::string::npos) return wrong_type(*f, origin);
            if (s.empty()) continue;
            if (!text.empty()) text.push_back('\n');
            text += s;
          }
          break;
        }
      }
      cfg.values_[key] = Config::Entry{f->type, std::move(text), origin};
    }
    return ok();
  }

  static Result<void> wrong_type(const Field& f, const std::string& origin) {
    return fail(Errc::config,
                fmt::format("{}: '{}' must be a {}", origin, f.key, type_name(f.type)));
  }

  Result<void> apply_env(Config& cfg) {
    for (const auto& f : schema_.fields()) {
      std::vector<std::string> names{schema_.env_name(f)};
      names.insert(names.end(), f.env_aliases.begin(), f.env_aliases.end());
      for (const auto& name : names) {
        auto v = env_(name);
        if (!v) continue;
        const std::string origin = "env " + name;
        std::string text = *v;
        switch (f.type) {
          case Type::integer: {
            auto n = parse_int(text);
            if (!n)
              return fail(Errc::config, fmt::format("{}: '{}' is not an integer", origin, text));
            text = std::to_string(*n);
            break;
          }
          case Type::boolean: {
            auto b = parse_bool(text);
            if (!b)
              return fail(Errc::config, fmt::format("{}: '{}' is not a boolean", origin, text));
            text = *b ? "true" : "false";
            break;
          }
          case Type::string_list: text = split_list(text); break;
          case Type::string:
          case Type::pem: break;
        }
        cfg.values_[f.key] = Config::Entry{f.type, std::move(text), origin};
        break;  // the canonical name wins over aliases
      }
    }
    return ok();
  }

  Result<void> validate(Config& cfg) {
    for (const auto& f : schema_.fields()) {
      auto it = cfg.values_.find(f.key);
      if (it == cfg.values_.end()) {
        if (f.required) {
          return fail(Errc::config, fmt::format("missing required '{}' (set it in the file or {})",
                                                f.key, schema_.env_name(f)));
        }
        continue;
      }
      auto& e = it->second;
      if (f.type == Type::integer) {
        const auto n = parse_int(e.text);
        if (!n || *n < f.min || *n > f.max) {
          return fail(Errc::config, fmt::format("{}: '{}' = {} is outside {}..{}", e.origin, f.key,
                                                e.text, f.min, f.max));
        }
      }
      if (!f.choices.empty() &&
          std::find(f.choices.begin(), f.choices.end(), e.text) == f.choices.end()) {
        return fail(Errc::config, fmt::format("{}: '{}' = '{}' is not one of: {}", e.origin, f.key,
                                              e.text, fmt::join(f.choices, ", ")));
      }
      if (f.type == Type::pem) {
        auto pem = resolve_pem(e.text);
        if (!pem) {
          return fail(Errc::config,
                      fmt::format("{}: '{}': {}", e.origin, f.key, pem.error().message));
        }
        e.text = std::move(*pem);
      }
    }
    return ok();
  }

  const Schema& schema_;
  const Env& env_;
};

const Config::Entry& Config::entry(std::string_view key, Type type) const {
  auto it = values_.find(key);
  if (it == values_.end()) {
    throw std::logic_error("config: no value for '" + std::string(key) + "'");
  }
  if (it->second.type != type) {
    throw std::logic_error("config: '" + std::string(key) + "' read with the wrong type");
  }
  return it->second;
}

const std::string& Config::str(std::string_view key) const {
  auto it = values_.find(key);
  if (it != values_.end() && it->second.type == Type::pem) return it->second.text;
  return entry(key, Type::string).text;
}

std::int64_t Config::integer(std::string_view key) const {
  return *parse_int(entry(key, Type::integer).text);
}

bool Config::boolean(std::string_view key) const {
  return entry(key, Type::boolean).text == "true";
}

std::vector<std::string> Config::list(std::string_view key) const {
  const std::string& text = entry(key, Type::string_list).text;
  std::vector<std::string> out;
  std::string_view rest = text;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    out.emplace_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

bool Config::has(std::string_view key) const {
  return values_.find(key) != values_.end();
}

const std::string& Config::origin(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end())
    throw std::logic_error("config: no value for '" + std::string(key) + "'");
  return it->second.origin;
}

Result<Config> load_string(const Schema& schema, std::string_view toml_text,
                           std::string_view origin, const Env& env) {
  return Loader(schema, env).run(toml_text, origin);
}

Result<Config> load(const Schema& schema, const std::optional<std::filesystem::path>& file,
                    const Env& env) {
  if (!file) return Loader(schema, env).run("", "");
  std::ifstream in(*file, std::ios::binary);
  if (!in) return fail(Errc::not_found, "config file '" + file->string() + "' cannot be opened");
  std::ostringstream ss;
  ss << in.rdbuf();
  return Loader(schema, env).run(ss.str(), file->string());
}

}  // namespace dag::config
