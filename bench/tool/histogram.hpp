// A log-linear latency histogram (16 sub-buckets per power of two, about 6%
// resolution) whose buckets are plain counters, so processes can merge theirs
// into one in shared memory with atomic adds.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace sessionkit::bench {

class Histogram {
 public:
  static constexpr int kSubBits = 4;
  static constexpr int kBuckets = 64 << kSubBits;

  void record(std::uint64_t ns) { ++counts_[bucket_of(ns)]; }
  std::uint64_t count() const;
  // The value (ns) below which `q` (0..1) of the samples fall.
  std::uint64_t percentile(double q) const;

  // Adds this histogram into `shared` (kBuckets counters) atomically.
  void merge_into(std::atomic<std::uint64_t>* shared) const;
  static Histogram from_shared(const std::atomic<std::uint64_t>* shared);
  // Adds `other`'s samples to this one.
  void add(const Histogram& other);

 private:
  static int bucket_of(std::uint64_t ns);
  static std::uint64_t bucket_upper(int bucket);

  std::array<std::uint64_t, kBuckets> counts_{};
};

}  // namespace sessionkit::bench
