// One configuration loader for every program (dag-edge, dagd, dagctl).
//
// A program declares a Schema: every key with its type, default, range and a one-line help.
// load() then reads an optional TOML file, applies environment overrides, resolves
// certificates and keys given as PEM text, base64 PEM or file paths, and validates
// everything into a Config, or returns the first problem as an Errc::config / Errc::parse
// error whose message names the key and where its value came from.
//
// Environment names: the prefix (default "DAG_") + the key upper-cased with '.' -> '_':
// "mqtt.host" -> DAG_MQTT_HOST. A field may list aliases (the original system's fleet
// variables, e.g. CERT, PRIVATE_KEY, AWS_ROOT_CERT); the canonical name wins over aliases.
//
// Blocking: load() reads the config file and PEM files from disk. Thread-safety: a loaded
// Config is immutable and safe to share.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dag/common/result.hpp"

namespace dag::config {

enum class Type {
  string,       ///< Any UTF-8 text.
  integer,      ///< 64-bit signed, checked against [min, max].
  boolean,      ///< true/false (env also: 1/0, yes/no, on/off).
  pem,          ///< PEM text, base64 of PEM text, or a path to a PEM file; loaded as PEM text.
  string_list,  ///< TOML array of strings; env: comma-separated.
};

struct Field {
  std::string key;  ///< Dotted TOML path, e.g. "mqtt.host".
  Type type{Type::string};
  std::string default_value;  ///< Textual default (as an env value would be); empty = none.
  std::string help;           ///< One line, printed above the key by commented_defaults().
  bool required{false};       ///< No default and must be given.
  bool secret{false};         ///< Never printed with its value (keys, passwords).
  std::int64_t min{std::numeric_limits<std::int64_t>::min()};
  std::int64_t max{std::numeric_limits<std::int64_t>::max()};
  std::vector<std::string> choices;      ///< For strings: the allowed values (empty = any).
  std::vector<std::string> env_aliases;  ///< Extra environment names, lower priority.
};

class Schema {
 public:
  explicit Schema(std::string program, std::string env_prefix = "DAG_");
  /// Adds a field. Throws std::logic_error on a duplicate key (a programming error).
  Schema& add(Field field);
  [[nodiscard]] const std::vector<Field>& fields() const { return fields_; }
  [[nodiscard]] const Field* find(std::string_view key) const;
  [[nodiscard]] std::string env_name(const Field& field) const;
  [[nodiscard]] const std::string& program() const { return program_; }
  /// A complete TOML file with every key at its default, each preceded by its help, its
  /// environment name and its range; required keys without default are commented out.
  [[nodiscard]] std::string commented_defaults() const;

 private:
  std::string program_;
  std::string env_prefix_;
  std::vector<Field> fields_;
};

/// Reads one environment variable; injectable for tests.
using Env = std::function<std::optional<std::string>(const std::string& name)>;
Env process_env();

/// Resolves a certificate or key value: PEM text as is, base64-encoded PEM, or a file path.
/// Errors: Errc::not_found (no such file), Errc::io, Errc::parse (not PEM after decoding).
Result<std::string> resolve_pem(std::string_view value);

/// Validated configuration values. Getters take a key declared in the schema with the
/// matching type; anything else is a programming error and throws std::logic_error.
class Config {
 public:
  [[nodiscard]] const std::string& str(std::string_view key) const;
  [[nodiscard]] std::int64_t integer(std::string_view key) const;
  [[nodiscard]] bool boolean(std::string_view key) const;
  /// For Type::pem: the PEM text (already read from file or decoded).
  [[nodiscard]] const std::string& pem(std::string_view key) const { return str(key); }
  [[nodiscard]] std::vector<std::string> list(std::string_view key) const;
  /// False when an optional key without default was not given.
  [[nodiscard]] bool has(std::string_view key) const;
  /// "default", "file <path>" or "env <NAME>": where the value came from.
  [[nodiscard]] const std::string& origin(std::string_view key) const;

 private:
  friend class Loader;
  struct Entry {
    Type type;
    std::string text;  // canonical textual value (lists: '\n'-joined)
    std::string origin;
  };
  const Entry& entry(std::string_view key, Type type) const;
  std::map<std::string, Entry, std::less<>> values_;
};

/// Loads `file` (when given; a missing file is Errc::not_found) then the environment.
Result<Config> load(const Schema& schema, const std::optional<std::filesystem::path>& file,
                    const Env& env);
/// Same, from TOML text; `origin` names it in error messages.
Result<Config> load_string(const Schema& schema, std::string_view toml_text,
                           std::string_view origin, const Env& env);

}  // namespace dag::config
