// Config: everything a SessionManager needs, read from a JSON document.
//
//   Config c = Config::from_file("/etc/myapp/sessions.json");
//
// from_file/from_json check the whole document: unknown keys, wrong types and
// bad values throw Error(errc::bad_config) whose message names the key
// ("cookie.same_site"). Every key has a default; docs/configuration.md lists
// them. The "store" and "locks" sections are checked by the factories their
// "type" names in the Registry.
//
// Config is a plain value: copy it, adjust fields, hand it to SessionManager
// (which checks it again).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sessionkit {

enum class SameSite { strict, lax, none };

// When the Secure attribute is sent: never, always, or when the request came
// over HTTPS ("auto", the default).
enum class SecureMode { never, always, automatic };

struct CookieOptions {
  std::string name = "sid";  // "__Host-" names require secure=true, path "/", no domain
  std::string path = "/";
  std::string domain;                     // empty: host-only cookie (the safe default)
  std::optional<std::int64_t> max_age_s;  // unset: a browser-session cookie
  SecureMode secure = SecureMode::automatic;
  bool http_only = true;
  SameSite same_site = SameSite::lax;
  // HMAC-SHA256 keys, raw bytes (>= 32 each); the first signs, all verify.
  // Empty: cookies carry the bare id (unguessable on its own).
  std::vector<std::string> signing_keys;
};

struct TimeoutOptions {
  std::chrono::seconds idle{1800};       // a session unused this long is dead
  std::chrono::seconds absolute{86400};  // a session this old is dead however used; 0: no limit
  // An unchanged session is rewritten (to refresh its last access) only once
  // this fraction of the idle timeout has passed since the stored access time.
  // 0 rewrites on every request; higher saves writes but lets a session expire
  // up to fraction*idle early.
  double touch_fraction = 0.1;
};

struct GcOptions {
  // Every N-th open() runs a sweep (before it takes the session's lock). 0: never.
  std::uint32_t every_n_requests = 1000;
  std::chrono::milliseconds budget{2};  // time budget of such a sweep
};

struct LimitOptions {
  std::size_t max_record_bytes = 65536;  // encoded record size limit (save and load)
  std::uint32_t max_depth = 64;          // nesting depth limit of data()
};

struct SessionOptions {
  // true: the Session destructor and unlock() save a changed session (errors
  // are counted in stats().save_errors, never thrown). false: only save() writes.
  bool autosave = true;
};

// A "store" or "locks" section: its type and its whole JSON object.
struct BackendSpec {
  std::string type;
  std::shared_ptr<const nlohmann::json> section;  // never null after from_json
};

struct Config {
  // Without a "store" section: {"type": "lmdb"}, the file sessions.mdb in
  // base_dir ({"type": "memory"} in a build without LMDB). Without a "locks"
  // section: the store's default lock manager, {"type": "shm"} for lmdb and
  // file, {"type": "thread"} for memory; a redis store needs its locks named.
  // An shm section without "name" is given one derived from the store's path
  // (docs/configuration.md). These defaults are applied when the config is
  // read or default-constructed: after replacing `store` by hand, set `locks`.
  BackendSpec store;
  BackendSpec locks;
  CookieOptions cookie;
  TimeoutOptions timeouts;
  GcOptions gc;
  LimitOptions limits;
  SessionOptions session;
  // Relative paths in the store and locks sections resolve against this:
  // the config file's directory, or the working directory for from_json.
  std::filesystem::path base_dir;

  // Reads and checks a JSON file. Throws Error(bad_config) naming the file and
  // the key, or naming the file when it cannot be read or parsed.
  static Config from_file(const std::filesystem::path& path);
  // Checks a JSON object; relative paths resolve against `base_dir`
  // (the working directory when empty).
  static Config from_json(const nlohmann::json& doc, const std::filesystem::path& base_dir = {});

  // The defaults, as from_json({}) with the working directory as base_dir:
  // LMDB store, shm locks (see `store` above).
  Config();

  // Checks the fields (used by SessionManager for hand-built configs).
  void validate() const;

 private:
  // No store or locks yet: from_json sets them, without first working out
  // the defaults it would throw away.
  struct Undefaulted {};
  explicit Config(Undefaulted) {}
};

}  // namespace sessionkit
