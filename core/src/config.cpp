#include "sessionkit/config.hpp"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "config_reader.hpp"
#include "cookie.hpp"
#include "session_id.hpp"
#include "sessionkit/error.hpp"
#include "sessionkit/registry.hpp"
#include "siphash.hpp"

namespace sessionkit {
namespace {

using detail::ConfigReader;

const nlohmann::json& empty_object() {
  static const nlohmann::json empty = nlohmann::json::object();
  return empty;
}

// The store of a config without a "store" section (or without store.type):
// LMDB, one file in the config's directory, when it is compiled in.
constexpr const char* kDefaultStore =
#if SESSIONKIT_HAVE_LMDB
    "lmdb";
#else
    "memory";
#endif

BackendSpec default_backend(const std::string& type) {
  BackendSpec spec;
  spec.type = type;
  spec.section = std::make_shared<const nlohmann::json>(nlohmann::json{{"type", type}});
  return spec;
}

// The lock manager of a config without a "locks" section (or without
// locks.type): the one the store names (shm for the shared stores on one
// machine, thread for memory). A store that names none needs its locks named.
// `section_given`: the config has a "locks" section, without a "type".
std::string default_locks_for(const std::string& store_type, bool section_given = false) {
  std::string locks;
  try {
    locks = Registry::global().store(store_type).default_locks;
  } catch (const Error&) {
    return "thread";  // unknown store: validate() reports store.type
  }
  if (locks.empty()) {
    const std::string why = "the \"" + store_type + "\" store has no default lock manager; name one (\"" +
                            store_type + "\" when several machines share the sessions)";
    throw Error(errc::bad_config, section_given ? "locks.type: " + why : "locks: needs a section: " + why);
  }
  return locks;
}

// An "shm" locks section without a "name" gets one derived from where the
// store keeps its records ("sk-" and 32 hex digits: two SipHash-2-4 values of
// the canonical path under fixed keys), when the store says: every process
// serving that store meets in one region, and other stores on the machine get
// their own. (SipHash, not a SHA from OpenSSL: loading OpenSSL's digests costs
// a CGI program milliseconds per request.)
void name_default_region(Config& c) {
  if (c.locks.type != "shm" || c.locks.section->contains("name")) return;
  const StoreType type = Registry::global().store(c.store.type);
  if (!type.location) return;
  const std::filesystem::path path = type.location(*c.store.section, c.base_dir);
  std::error_code ec;
  std::filesystem::path where = std::filesystem::weakly_canonical(path, ec);
  if (ec) where = path.lexically_normal();  // a directory on the way cannot be read: as written
  const std::string text = where.string();
  unsigned char bytes[16];
  const std::uint64_t halves[2] = {detail::siphash24(0x736b2d726567696fULL, 0x6e2d6e616d652d31ULL, text),
                                   detail::siphash24(0x736b2d726567696fULL, 0x6e2d6e616d652d32ULL, text)};
  for (int i = 0; i < 16; ++i) bytes[i] = static_cast<unsigned char>(halves[i / 8] >> (56 - 8 * (i % 8)));
  const std::string name = "sk-" + detail::hex_encode(bytes, sizeof bytes);
  nlohmann::json section = *c.locks.section;
  section["name"] = name;
  c.locks.section = std::make_shared<const nlohmann::json>(std::move(section));
}

BackendSpec read_backend(const nlohmann::json* section, const char* name, const std::string& default_type) {
  if (section == nullptr) return default_backend(default_type);
  if (!section->is_object()) {
    throw Error(errc::bad_config,
                std::string(name) + ": expected a JSON object, got " + section->type_name());
  }
  BackendSpec spec;
  auto type = section->find("type");
  if (type == section->end()) {
    spec.type = default_type;
  } else if (!type->is_string()) {
    throw Error(errc::bad_config, std::string(name) + ".type: expected a string, got " + type->type_name());
  } else {
    spec.type = type->get<std::string>();
  }
  spec.section = std::make_shared<const nlohmann::json>(*section);
  return spec;
}

// Whether a "locks" section names its type; when it does not, the store's
// default applies. A section of the wrong JSON type is left to read_backend.
bool names_type(const nlohmann::json* section) {
  return section != nullptr && section->is_object() && section->contains("type");
}

void read_cookie(ConfigReader r, CookieOptions& c) {
  c.name = r.string("name", c.name);
  c.path = r.string("path", c.path);
  c.domain = r.string("domain", c.domain);
  if (auto max_age = r.optional_uint("max_age_s", 0, 400ull * 86400)) {
    c.max_age_s = static_cast<std::int64_t>(*max_age);
  }
  if (const nlohmann::json* secure = r.raw("secure")) {
    if (secure->is_boolean()) {
      c.secure = secure->get<bool>() ? SecureMode::always : SecureMode::never;
    } else if (secure->is_string() && secure->get<std::string>() == "auto") {
      c.secure = SecureMode::automatic;
    } else {
      r.fail("secure", "expected true, false or \"auto\", got " + secure->dump());
    }
  }
  c.http_only = r.boolean("http_only", c.http_only);
  std::string same_site = r.choice("same_site", "Lax", {"Strict", "Lax", "None"});
  c.same_site = same_site == "Strict" ? SameSite::strict
                : same_site == "Lax"  ? SameSite::lax
                                      : SameSite::none;
  if (const nlohmann::json* keys = r.raw("signing_keys")) {
    if (!keys->is_array()) r.fail("signing_keys", std::string("expected an array, got ") + keys->type_name());
    c.signing_keys.clear();
    for (std::size_t i = 0; i < keys->size(); ++i) {
      const std::string key = "signing_keys[" + std::to_string(i) + "]";
      const nlohmann::json& k = (*keys)[i];
      std::string raw;
      if (!k.is_string() || !detail::base64_decode(k.get<std::string>(), raw)) {
        r.fail(key, "expected a padded base64 string");
      }
      if (raw.size() < 32)
        r.fail(key, "a signing key needs at least 32 random bytes, got " + std::to_string(raw.size()));
      c.signing_keys.push_back(std::move(raw));
    }
  }
  r.finish();
}

void read_timeouts(ConfigReader r, TimeoutOptions& t) {
  t.idle =
      std::chrono::seconds(r.uint("idle_s", static_cast<std::uint64_t>(t.idle.count()), 1, 400ull * 86400));
  t.absolute = std::chrono::seconds(
      r.uint("absolute_s", static_cast<std::uint64_t>(t.absolute.count()), 0, 10ull * 366 * 86400));
  t.touch_fraction = r.number("touch_fraction", t.touch_fraction, 0.0, 0.9);
  r.finish();
}

void read_gc(ConfigReader r, GcOptions& g) {
  g.every_n_requests =
      static_cast<std::uint32_t>(r.uint("every_n_requests", g.every_n_requests, 0, 1u << 30));
  g.budget =
      std::chrono::milliseconds(r.uint("budget_ms", static_cast<std::uint64_t>(g.budget.count()), 1, 60'000));
  r.finish();
}

void read_limits(ConfigReader r, LimitOptions& l) {
  l.max_record_bytes = r.uint("max_record_bytes", l.max_record_bytes, 256, 16u << 20);
  l.max_depth = static_cast<std::uint32_t>(r.uint("max_depth", l.max_depth, 1, 512));
  r.finish();
}

void read_session(ConfigReader r, SessionOptions& s) {
  s.autosave = r.boolean("autosave", s.autosave);
  r.finish();
}

template <typename Section, typename Fn>
void read_section(ConfigReader& top, const char* key, Section& out, Fn fn) {
  const nlohmann::json* section = top.raw(key);
  fn(ConfigReader(section != nullptr ? *section : empty_object(), key), out);
}

}  // namespace

Config::Config()
    : store(default_backend(kDefaultStore)), locks(default_backend(default_locks_for(kDefaultStore))) {
  try {
    name_default_region(*this);  // relative to the working directory, as base_dir is empty
  } catch (const std::exception&) {
    // No working directory to resolve against: the region keeps shm's own
    // default name; SessionManager reports the path problem when it opens the store.
  }
}

Config Config::from_json(const nlohmann::json& doc, const std::filesystem::path& base_dir) {
  ConfigReader top(doc, "");
  Config c{Undefaulted{}};
  c.base_dir = detail::resolve_base_dir(base_dir);
  c.store = read_backend(top.raw("store"), "store", kDefaultStore);
  const nlohmann::json* locks = top.raw("locks");
  // A section of the wrong JSON type is reported by read_backend, not here.
  const bool takes_default = !names_type(locks) && (locks == nullptr || locks->is_object());
  c.locks =
      read_backend(locks, "locks", takes_default ? default_locks_for(c.store.type, locks != nullptr) : "");
  read_section(top, "cookie", c.cookie, read_cookie);
  read_section(top, "timeouts", c.timeouts, read_timeouts);
  read_section(top, "gc", c.gc, read_gc);
  read_section(top, "limits", c.limits, read_limits);
  read_section(top, "session", c.session, read_session);
  top.finish();
  c.validate();
  name_default_region(c);
  return c;
}

Config Config::from_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(errc::bad_config, path.string() + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(errc::bad_config, path.string() + ": not valid JSON: " + e.what());
  }
  try {
    return from_json(doc, std::filesystem::absolute(path).parent_path());
  } catch (const Error& e) {
    throw Error(errc::bad_config, path.string() + ": " + std::string(e.what()));
  }
}

void Config::validate() const {
  auto fail = [](const std::string& msg) { throw Error(errc::bad_config, msg); };
  const CookieOptions& c = cookie;
  if (!detail::is_cookie_name(c.name)) fail("cookie.name: \"" + c.name + "\" is not a valid cookie name");
  if (!c.path.empty() && (c.path.front() != '/' || !detail::is_attribute_value(c.path))) {
    fail("cookie.path: must start with '/' and hold no spaces, ';' or control characters");
  }
  if (!detail::is_attribute_value(c.domain)) fail("cookie.domain: holds spaces, ';' or control characters");
  if (c.name.starts_with("__Host-") &&
      (c.secure != SecureMode::always || c.path != "/" || !c.domain.empty())) {
    fail("cookie.name: a __Host- cookie needs \"secure\": true, \"path\": \"/\" and no domain");
  }
  if (c.name.starts_with("__Secure-") && c.secure != SecureMode::always) {
    fail("cookie.name: a __Secure- cookie needs \"secure\": true");
  }
  if (c.same_site == SameSite::none && c.secure == SecureMode::never) {
    fail("cookie.same_site: \"None\" needs \"secure\": true or \"auto\" (browsers drop it otherwise)");
  }
  for (const std::string& k : c.signing_keys) {
    if (k.size() < 32) fail("cookie.signing_keys: a signing key needs at least 32 bytes");
  }
  if (timeouts.idle.count() <= 0) fail("timeouts.idle_s: must be positive");
  if (timeouts.absolute.count() < 0) fail("timeouts.absolute_s: must not be negative");
  if (!(timeouts.touch_fraction >= 0.0 && timeouts.touch_fraction <= 0.9)) {
    fail("timeouts.touch_fraction: must be in [0, 0.9]");
  }
  if (gc.budget.count() <= 0) fail("gc.budget_ms: must be positive");
  if (limits.max_record_bytes < 256) fail("limits.max_record_bytes: must be at least 256");
  if (limits.max_depth < 1) fail("limits.max_depth: must be at least 1");

  if (!store.section || !locks.section) fail("store/locks: missing section");
  Registry& registry = Registry::global();
  StoreType store_type = registry.store(store.type);
  LockManagerType lock_type = registry.lock_manager(locks.type);
  store_type.validate(*store.section, base_dir);
  lock_type.validate(*locks.section, base_dir);
  if (!store_type.shared_across_processes && lock_type.shared_across_processes) {
    fail("store.type: the \"" + store.type + "\" store keeps sessions inside one process, but locks.type \"" +
         locks.type +
         "\" is for several processes; choose a shared store (lmdb, file, redis) or \"thread\" locks");
  }
}

}  // namespace sessionkit
