// Private: a bounded FIFO memory of evicted block hashes ("ghosts"), as used
// by ARC and S3-FIFO. Stores 64-bit fingerprints (a false match costs only a
// slightly different eviction choice). O(1) add / contains / take; the oldest
// ghost is forgotten when the FIFO is full. ~40 bytes per ghost slot.
#pragma once

#include <cstdint>
#include <vector>

#include "detail/slot_table.hpp"

namespace kvscope::detail {

class GhostTable {
 public:
  explicit GhostTable(std::uint32_t capacity) : ring_(capacity, kDead), table_(capacity) {}

  /// Remembers `fingerprint` as the newest ghost (refreshing an older copy).
  void add(std::uint64_t fingerprint) {
    if (ring_.empty()) return;
    fingerprint = alive(fingerprint);
    take(fingerprint);
    if (ring_[next_] != kDead) table_.erase(ring_[next_], next_);
    ring_[next_] = fingerprint;
    table_.insert(fingerprint, next_);
    next_ = (next_ + 1) % static_cast<std::uint32_t>(ring_.size());
  }

  bool contains(std::uint64_t fingerprint) const { return find(alive(fingerprint)).has_value(); }

  /// Forgets `fingerprint`; returns whether it was remembered.
  bool take(std::uint64_t fingerprint) {
    fingerprint = alive(fingerprint);
    const auto pos = find(fingerprint);
    if (!pos) return false;
    table_.erase(fingerprint, *pos);
    ring_[*pos] = kDead;
    return true;
  }

  std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(table_.size()); }
  void clear() {
    std::fill(ring_.begin(), ring_.end(), kDead);
    table_.clear();
    next_ = 0;
  }
  std::size_t memory_bytes() const noexcept {
    return ring_.size() * sizeof(std::uint64_t) + table_.memory_bytes();
  }

 private:
  static constexpr std::uint64_t kDead = 0;
  static std::uint64_t alive(std::uint64_t fp) noexcept { return fp == kDead ? 1 : fp; }

  std::optional<std::uint32_t> find(std::uint64_t fp) const {
    return table_.find(fp, [&](std::uint32_t pos) { return ring_[pos] == fp; });
  }

  std::vector<std::uint64_t> ring_;
  SlotTable table_;
  std::uint32_t next_ = 0;
};

}  // namespace kvscope::detail
