#include "bench/tool/histogram.hpp"

#include <bit>

namespace sessionkit::bench {

int Histogram::bucket_of(std::uint64_t ns) {
  if (ns < (1u << kSubBits)) return static_cast<int>(ns);
  const int msb = 63 - std::countl_zero(ns);
  const int shift = msb - kSubBits;
  const auto sub = static_cast<int>((ns >> shift) & ((1u << kSubBits) - 1));
  return ((shift + 1) << kSubBits) + sub;
}

std::uint64_t Histogram::bucket_upper(int bucket) {
  if (bucket < (1 << kSubBits)) return static_cast<std::uint64_t>(bucket);
  const int shift = (bucket >> kSubBits) - 1;
  const std::uint64_t sub = static_cast<std::uint64_t>(bucket & ((1 << kSubBits) - 1));
  return (((1ULL << kSubBits) | sub) << shift) + ((1ULL << shift) - 1);
}

std::uint64_t Histogram::count() const {
  std::uint64_t n = 0;
  for (std::uint64_t c : counts_) n += c;
  return n;
}

std::uint64_t Histogram::percentile(double q) const {
  const std::uint64_t total = count();
  if (total == 0) return 0;
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total));
  if (rank >= total) rank = total - 1;
  std::uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen > rank) return bucket_upper(b);
  }
  return bucket_upper(kBuckets - 1);
}

void Histogram::merge_into(std::atomic<std::uint64_t>* shared) const {
  for (int b = 0; b < kBuckets; ++b) {
    if (counts_[b] != 0) shared[b].fetch_add(counts_[b], std::memory_order_relaxed);
  }
}

Histogram Histogram::from_shared(const std::atomic<std::uint64_t>* shared) {
  Histogram h;
  for (int b = 0; b < kBuckets; ++b) h.counts_[b] = shared[b].load(std::memory_order_relaxed);
  return h;
}

void Histogram::add(const Histogram& other) {
  for (int b = 0; b < kBuckets; ++b) counts_[b] += other.counts_[b];
}

}  // namespace sessionkit::bench
