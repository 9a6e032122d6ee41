#include "backends/lmdb/lmdb_sharded_store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>

#include "sessionkit/error.hpp"
#include "siphash.hpp"

namespace sessionkit {

namespace {

constexpr std::string_view kLayoutMagic = "sessionkit-lmdb-shards ";

std::filesystem::path layout_path(const std::filesystem::path& path) {
  std::filesystem::path p = path;
  p += ".shards";
  return p;
}

// The count recorded at `file`, 0 when there is no such file; Error(bad_config)
// when it is not one sessionkit wrote.
unsigned read_layout(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    throw Error(errc::io, "lmdb open " + file.string() + ": " + std::strerror(errno));
  }
  char buf[64];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  const std::string have = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  unsigned count = 0;
  bool ok = have.size() > kLayoutMagic.size() + 1 &&
            have.compare(0, kLayoutMagic.size(), kLayoutMagic) == 0 && have.back() == '\n';
  for (std::size_t i = kLayoutMagic.size(); ok && i + 1 < have.size(); ++i) {
    ok = have[i] >= '0' && have[i] <= '9' && count < 100000;
    count = count * 10 + static_cast<unsigned>(have[i] - '0');
  }
  if (!ok || count < 2) {
    throw Error(errc::bad_config, "store.shards: " + file.string() + " is not a sessionkit shard count file");
  }
  return count;
}

}  // namespace

void LmdbShardedStore::check_shard_layout(const std::filesystem::path& path, unsigned shards) {
  const std::filesystem::path file = layout_path(path);
  const auto mismatch = [&](const std::string& found) {
    return Error(errc::bad_config,
                 "store.shards: " + path.string() + " holds " + found + ", not " + std::to_string(shards) +
                     " (changing the count needs the old files removed; docs/lmdb.md, Shards)");
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    const unsigned recorded = read_layout(file);
    if (recorded == shards) return;
    if (recorded != 0) throw mismatch(std::to_string(recorded) + " shards");
    if (shards == 1) return;
    std::error_code ec;
    const auto single = std::filesystem::file_size(path, ec);
    if (!ec && single > 0) throw mismatch("a single-file store");
    // Record the count: write a temporary file, then link() it into place,
    // which never replaces; a process that loses the race reads the winner's.
    std::filesystem::path tmp = file;
    tmp += ".tmp." + std::to_string(::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw Error(errc::io, "lmdb create " + tmp.string() + ": " + std::strerror(errno));
    const std::string want = std::string(kLayoutMagic) + std::to_string(shards) + "\n";
    const bool written = ::write(fd, want.data(), want.size()) == static_cast<ssize_t>(want.size());
    const int write_err = errno;
    ::close(fd);
    const bool linked = written && (::link(tmp.c_str(), file.c_str()) == 0 || errno == EEXIST);
    const int link_err = errno;
    ::unlink(tmp.c_str());
    if (!written) throw Error(errc::io, "lmdb write " + tmp.string() + ": " + std::strerror(write_err));
    if (!linked) throw Error(errc::io, "lmdb create " + file.string() + ": " + std::strerror(link_err));
  }
  throw Error(errc::io, "lmdb create " + file.string() + ": vanished while being created");
}

LmdbShardedStore::LmdbShardedStore(const LmdbStoreOptions& options, unsigned shards) : path_(options.path) {
  if (shards < 2 || shards > kMaxShards) {
    throw Error(errc::invalid_argument, "LmdbShardedStore: shards must be in [2, " +
                                            std::to_string(kMaxShards) + "], got " + std::to_string(shards));
  }
  check_shard_layout(options.path, shards);
  shards_.reserve(shards);
  for (unsigned i = 0; i < shards; ++i) {
    LmdbStoreOptions o = options;
    o.path = shard_path(options.path, i);
    shards_.push_back(std::make_unique<LmdbStore>(std::move(o)));
  }
}

unsigned LmdbShardedStore::shard_of(std::string_view id, unsigned shards) noexcept {
  return static_cast<unsigned>(detail::siphash24(kShardKey0, kShardKey1, id) % shards);
}

std::filesystem::path LmdbShardedStore::shard_path(const std::filesystem::path& path, unsigned i) {
  std::filesystem::path p = path;
  p += "." + std::to_string(i);
  return p;
}

std::optional<std::string> LmdbShardedStore::load(std::string_view id) { return shard_for(id).load(id); }

void LmdbShardedStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  shard_for(id).save(id, record, expires_at);
}

bool LmdbShardedStore::remove(std::string_view id) { return shard_for(id).remove(id); }

SweepResult LmdbShardedStore::sweep(TimePoint now, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::lock_guard lock(sweep_mu_);
  const unsigned n = shard_count();
  SweepResult total;
  std::exception_ptr first_error;
  for (unsigned k = 0; k < n; ++k) {
    const unsigned i = next_sweep_;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (k > 0 && left.count() <= 0) break;  // out of time: the next sweep starts at shard i
    SweepResult r;
    try {
      r = shards_[i]->sweep(now, std::max(left, std::chrono::milliseconds(0)));
    } catch (...) {
      // This lap cannot be complete; the other shards still get their turn.
      if (!first_error) first_error = std::current_exception();
      failed_in_lap_ = true;
      r.complete = true;
    }
    total.examined += r.examined;
    total.removed += r.removed;
    if (!r.complete) break;  // the budget ran out inside shard i: resume there
    next_sweep_ = (i + 1) % n;
    if (next_sweep_ == 0) {  // a lap ends with the last shard
      total.complete = !failed_in_lap_;
      failed_in_lap_ = false;
      if (total.complete) break;
    }
  }
  if (first_error) std::rethrow_exception(first_error);
  return total;
}

void LmdbShardedStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  bool go_on = true;
  for (auto& shard : shards_) {
    shard->for_each([&](std::string_view id, std::string_view record) { return go_on = fn(id, record); });
    if (!go_on) return;
  }
}

StoreInfo LmdbShardedStore::info() const {
  StoreInfo out;
  out.type = "lmdb";
  out.location = path_.string() + ".{0.." + std::to_string(shards_.size() - 1) + "}";
  out.records = 0;
  out.bytes = 0;
  for (const auto& shard : shards_) {
    StoreInfo s = shard->info();
    out.records += s.records;
    out.bytes += s.bytes;
  }
  return out;
}

void LmdbShardedStore::after_fork() {
  for (auto& shard : shards_) shard->after_fork();
}

std::string LmdbShardedStore::check_consistency() {
  std::string problems;
  for (unsigned i = 0; i < shard_count(); ++i) {
    std::string p = shards_[i]->check_consistency();
    if (!p.empty()) problems += (problems.empty() ? "" : "; ") + ("shard " + std::to_string(i) + ": " + p);
    int misplaced = 0;
    shards_[i]->for_each([&](std::string_view id, std::string_view) {
      if (shard_of(id, shard_count()) != i && ++misplaced <= 3) {
        problems +=
            (problems.empty() ? "" : "; ") + ("id " + std::string(id) + " in shard " + std::to_string(i));
      }
      return true;
    });
    if (misplaced > 3)
      problems += " and " + std::to_string(misplaced - 3) + " more in shard " + std::to_string(i);
  }
  return problems;
}

}  // namespace sessionkit
