// ConfigReader: reads one JSON object of the configuration, key by key, with
// types, defaults and ranges, and rejects the keys nobody asked for.
//
//   ConfigReader r(section, "store");
//   auto path = r.path("path", "sessions.mdb", base_dir);
//   auto mb = r.uint("map_size_mb", 64, 1, 1 << 20);
//   r.finish();  // Error(bad_config) "store.colour: unknown key"
//
// Every failure is Error(errc::bad_config) whose message starts with the full
// key ("store.map_size_mb: ..."). Used by Config and by every back end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace sessionkit::detail {

class ConfigReader {
 public:
  // Throws Error(bad_config) when `section` is not an object.
  ConfigReader(const nlohmann::json& section, std::string prefix);

  std::string string(std::string_view key, std::string_view fallback);
  // A string from `allowed`.
  std::string choice(std::string_view key, std::string_view fallback,
                     std::initializer_list<std::string_view> allowed);
  bool boolean(std::string_view key, bool fallback);
  std::uint64_t uint(std::string_view key, std::uint64_t fallback, std::uint64_t min, std::uint64_t max);
  std::optional<std::uint64_t> optional_uint(std::string_view key, std::uint64_t min, std::uint64_t max);
  double number(std::string_view key, double fallback, double min, double max);
  // A path; relative ones resolve against `base_dir`. Empty strings are refused.
  std::filesystem::path path(std::string_view key, std::string_view fallback,
                             const std::filesystem::path& base_dir);
  // The raw value, or nullptr when absent; the key counts as known.
  const nlohmann::json* raw(std::string_view key);
  bool has(std::string_view key) const;

  // "prefix.key", for messages.
  std::string name(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;

  // Throws for the first key that no getter asked for.
  void finish() const;

 private:
  const nlohmann::json* find(std::string_view key);

  const nlohmann::json& section_;
  std::string prefix_;
  std::set<std::string, std::less<>> known_;
};

// The directory relative paths resolve against when none was given.
std::filesystem::path resolve_base_dir(const std::filesystem::path& base_dir);

}  // namespace sessionkit::detail
