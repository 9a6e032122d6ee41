#include "backends/memory/memory_store.hpp"

#include <nlohmann/json.hpp>

#include "builtin_backends.hpp"
#include "config_reader.hpp"
#include "sessionkit/registry.hpp"

namespace sessionkit {

MemoryStore::MemoryStore() = default;
MemoryStore::~MemoryStore() = default;

MemoryStore::Shard& MemoryStore::shard_for(std::string_view id) {
  // Any good spread will do here; slot_hash is only needed where processes must agree.
  return shards_[std::hash<std::string_view>{}(id) % kShards];
}

std::optional<std::string> MemoryStore::load(std::string_view id) {
  Shard& s = shard_for(id);
  std::lock_guard lock(s.mu);
  auto it = s.records.find(id);
  if (it == s.records.end()) return std::nullopt;
  return it->second.record;
}

void MemoryStore::save(std::string_view id, std::string_view record, TimePoint expires_at) {
  Shard& s = shard_for(id);
  std::lock_guard lock(s.mu);
  auto it = s.records.find(id);
  if (it == s.records.end()) {
    s.records.emplace(std::string(id), Entry{std::string(record), expires_at});
    s.bytes += id.size() + record.size();
  } else {
    s.bytes = s.bytes - it->second.record.size() + record.size();
    it->second.record.assign(record);
    it->second.expires_at = expires_at;
  }
}

bool MemoryStore::remove(std::string_view id) {
  Shard& s = shard_for(id);
  std::lock_guard lock(s.mu);
  auto it = s.records.find(id);
  if (it == s.records.end()) return false;
  s.bytes -= it->first.size() + it->second.record.size();
  s.records.erase(it);
  return true;
}

SweepResult MemoryStore::sweep(TimePoint now, std::chrono::milliseconds budget) {
  const auto deadline = std::chrono::steady_clock::now() + budget;
  std::lock_guard sweep_lock(sweep_mu_);
  SweepResult result;
  // One full lap over every shard's buckets at most, resuming where the last
  // sweep stopped; the deadline is checked after each bucket.
  for (std::size_t visited = 0; visited < kShards; ++visited) {
    Shard& s = shards_[sweep_shard_];
    {
      std::lock_guard lock(s.mu);
      for (; sweep_bucket_ < s.records.bucket_count(); ++sweep_bucket_) {
        if (result.examined > 0 && std::chrono::steady_clock::now() >= deadline) return result;
        // Collect first: erasing invalidates the bucket's local iterators.
        std::vector<std::string> dead;
        for (auto it = s.records.begin(sweep_bucket_); it != s.records.end(sweep_bucket_); ++it) {
          ++result.examined;
          if (it->second.expires_at <= now) dead.push_back(it->first);
        }
        for (const std::string& id : dead) {
          auto it = s.records.find(id);
          s.bytes -= it->first.size() + it->second.record.size();
          s.records.erase(it);
          ++result.removed;
        }
      }
    }
    sweep_bucket_ = 0;
    sweep_shard_ = (sweep_shard_ + 1) % kShards;
  }
  result.complete = true;
  return result;
}

void MemoryStore::for_each(const std::function<bool(std::string_view, std::string_view)>& fn) {
  for (Shard& s : shards_) {
    std::vector<std::pair<std::string, std::string>> copy;
    {
      std::lock_guard lock(s.mu);
      copy.reserve(s.records.size());
      for (const auto& [id, e] : s.records) copy.emplace_back(id, e.record);
    }
    for (const auto& [id, record] : copy) {
      if (!fn(id, record)) return;
    }
  }
}

StoreInfo MemoryStore::info() const {
  StoreInfo info;
  info.type = "memory";
  info.records = 0;
  info.bytes = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mu);
    info.records += static_cast<std::int64_t>(s.records.size());
    info.bytes += static_cast<std::int64_t>(s.bytes);
  }
  return info;
}

namespace detail {

void register_memory_store(Registry& registry) {
  auto parse = [](const nlohmann::json& section) {
    ConfigReader r(section, "store");
    r.string("type", "memory");
    r.finish();
  };
  StoreType t;
  t.shared_across_processes = false;
  t.validate = [parse](const nlohmann::json& section, const std::filesystem::path&) { parse(section); };
  t.create = [parse](const nlohmann::json& section, const std::filesystem::path&) -> std::unique_ptr<Store> {
    parse(section);
    return std::make_unique<MemoryStore>();
  };
  registry.add_store("memory", std::move(t));
}

}  // namespace detail
}  // namespace sessionkit
