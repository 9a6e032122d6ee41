#include "config_reader.hpp"

#include <cmath>
#include <limits>

#include "sessionkit/error.hpp"

namespace sessionkit::detail {

ConfigReader::ConfigReader(const nlohmann::json& section, std::string prefix)
    : section_(section), prefix_(std::move(prefix)) {
  if (!section_.is_object()) {
    throw Error(errc::bad_config, prefix_ + ": expected a JSON object, got " + section_.type_name());
  }
}

std::string ConfigReader::name(std::string_view key) const {
  if (prefix_.empty()) return std::string(key);
  return prefix_ + "." + std::string(key);
}

void ConfigReader::fail(std::string_view key, const std::string& message) const {
  throw Error(errc::bad_config, name(key) + ": " + message);
}

const nlohmann::json* ConfigReader::find(std::string_view key) {
  known_.emplace(key);
  auto it = section_.find(key);
  if (it == section_.end() || it->is_null()) return nullptr;
  return &*it;
}

const nlohmann::json* ConfigReader::raw(std::string_view key) { return find(key); }

bool ConfigReader::has(std::string_view key) const { return section_.contains(key); }

std::string ConfigReader::string(std::string_view key, std::string_view fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::string(fallback);
  if (!v->is_string()) fail(key, std::string("expected a string, got ") + v->type_name());
  return v->get<std::string>();
}

std::string ConfigReader::choice(std::string_view key, std::string_view fallback,
                                 std::initializer_list<std::string_view> allowed) {
  std::string value = string(key, fallback);
  std::string list;
  for (std::string_view a : allowed) {
    if (a == value) return value;
    list += list.empty() ? "" : ", ";
    list += "\"" + std::string(a) + "\"";
  }
  fail(key, "expected one of " + list + ", got \"" + value + "\"");
}

bool ConfigReader::boolean(std::string_view key, bool fallback) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) fail(key, std::string("expected true or false, got ") + v->type_name());
  return v->get<bool>();
}

std::optional<std::uint64_t> ConfigReader::optional_uint(std::string_view key, std::uint64_t min,
                                                         std::uint64_t max) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return std::nullopt;
  std::uint64_t value = 0;
  if (v->is_number_unsigned() || (v->is_number_integer() && v->get<std::int64_t>() >= 0)) {
    value = v->get<std::uint64_t>();
  } else if (v->is_number_integer()) {
    fail(key, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                  v->dump());
  } else {
    fail(key, std::string("expected an integer, got ") + v->type_name());
  }
  if (value < min || value > max) {
    fail(key, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " +
                  std::to_string(value));
  }
  return value;
}

std::uint64_t ConfigReader::uint(std::string_view key, std::uint64_t fallback, std::uint64_t min,
                                 std::uint64_t max) {
  return optional_uint(key, min, max).value_or(fallback);
}

double ConfigReader::number(std::string_view key, double fallback, double min, double max) {
  const nlohmann::json* v = find(key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) fail(key, std::string("expected a number, got ") + v->type_name());
  double value = v->get<double>();
  if (!std::isfinite(value) || value < min || value > max) {
    fail(key,
         "expected a number in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + v->dump());
  }
  return value;
}

std::filesystem::path ConfigReader::path(std::string_view key, std::string_view fallback,
                                         const std::filesystem::path& base_dir) {
  std::string value = string(key, fallback);
  if (value.empty()) fail(key, "expected a non-empty path");
  if (value.find('\0') != std::string::npos) fail(key, "path contains a NUL byte");
  std::filesystem::path p(value);
  if (p.is_relative()) p = resolve_base_dir(base_dir) / p;
  return p.lexically_normal();
}

void ConfigReader::finish() const {
  for (auto it = section_.begin(); it != section_.end(); ++it) {
    if (known_.find(it.key()) == known_.end()) fail(it.key(), "unknown key");
  }
}

std::filesystem::path resolve_base_dir(const std::filesystem::path& base_dir) {
  if (!base_dir.empty()) return std::filesystem::absolute(base_dir);
  return std::filesystem::current_path();
}

}  // namespace sessionkit::detail
