#include "bench/tool/raw_lmdb.hpp"

#include <lmdb.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "backends/lmdb/lmdb_sharded_store.hpp"

namespace sessionkit::bench {
namespace {

void check(int rc, const char* what) {
  if (rc != MDB_SUCCESS) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

unsigned int flags_for(const RawLmdbFlags& raw) {
  unsigned int flags = MDB_NOSUBDIR | MDB_NOTLS;
  if (raw.durability == "nosync") flags |= MDB_NOSYNC;
  if (raw.durability == "nometasync") flags |= MDB_NOMETASYNC;
  if (raw.write_map) flags |= MDB_WRITEMAP;
  return flags;
}

class Env {
 public:
  Env(const std::filesystem::path& path, const RawLmdbFlags& raw) {
    check(mdb_env_create(&env_), "mdb_env_create");
    check(mdb_env_set_mapsize(env_, std::size_t{4} << 30), "mdb_env_set_mapsize");
    check(mdb_env_set_maxreaders(env_, 510), "mdb_env_set_maxreaders");
    check(mdb_env_open(env_, path.c_str(), flags_for(raw), 0600), "mdb_env_open");
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    check(mdb_dbi_open(txn, nullptr, 0, &dbi_), "mdb_dbi_open");
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }
  ~Env() { mdb_env_close(env_); }
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  void put(const std::string& key, const std::string& value) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, 0, &txn), "mdb_txn_begin");
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value.size(), const_cast<char*>(value.data())};
    int rc = mdb_put(txn, dbi_, &k, &v, 0);
    if (rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      check(rc, "mdb_put");
    }
    check(mdb_txn_commit(txn), "mdb_txn_commit");
  }

  std::string get(const std::string& key) {
    MDB_txn* txn = nullptr;
    check(mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn), "mdb_txn_begin");
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{};
    int rc = mdb_get(txn, dbi_, &k, &v);
    std::string out = rc == MDB_SUCCESS ? std::string(static_cast<const char*>(v.mv_data), v.mv_size) : "";
    mdb_txn_abort(txn);
    check(rc, "mdb_get");
    return out;
  }

 private:
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};

// One environment, or one per shard with ids placed as LmdbShardedStore
// places them.
class Envs {
 public:
  Envs(const std::filesystem::path& path, const RawLmdbFlags& flags) {
    if (flags.shards <= 1) {
      envs_.push_back(std::make_unique<Env>(path, flags));
      return;
    }
    for (unsigned i = 0; i < flags.shards; ++i) {
      envs_.push_back(std::make_unique<Env>(LmdbShardedStore::shard_path(path, i), flags));
    }
  }
  Env& for_id(const std::string& id) {
    const auto n = static_cast<unsigned>(envs_.size());
    return n == 1 ? *envs_[0] : *envs_[LmdbShardedStore::shard_of(id, n)];
  }

 private:
  std::vector<std::unique_ptr<Env>> envs_;
};

class RawLmdbWorker final : public ProcessWorker {
 public:
  RawLmdbWorker(const std::filesystem::path& path, const RawLmdbFlags& flags,
                const std::vector<std::string>& ids)
      : envs_(path, flags), ids_(ids) {}

  bool op(std::uint64_t index, bool read_only, SharedCounters& shared) override {
    try {
      Env& env = envs_.for_id(ids_[index]);
      std::string value = env.get(ids_[index]);
      if (!read_only) env.put(ids_[index], value);
    } catch (const std::exception&) {
      shared.errors.fetch_add(1);
    }
    return false;
  }

 private:
  Envs envs_;
  const std::vector<std::string>& ids_;
};

}  // namespace

void populate_raw_lmdb(const std::filesystem::path& path, const RawLmdbFlags& flags,
                       const std::vector<std::string>& ids, const std::string& record) {
  RawLmdbFlags loading = flags;
  loading.durability = "nosync";  // loading speed; the run reopens with `flags`
  Envs envs(path, loading);
  for (const std::string& id : ids) envs.for_id(id).put(id, record);
}

std::unique_ptr<ProcessWorker> make_raw_lmdb_worker(const std::filesystem::path& path,
                                                    const RawLmdbFlags& flags,
                                                    const std::vector<std::string>& ids) {
  return std::make_unique<RawLmdbWorker>(path, flags, ids);
}

}  // namespace sessionkit::bench
