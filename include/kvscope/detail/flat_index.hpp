// Internal (not part of the API): a small open-addressing map from 64-bit keys to 32-bit values,
// for the metrics' bounded tables (top-K prefixes, ghost FIFO, watched
// blocks). Linear probing at load <= 1/2 with backward-shift deletion (no
// tombstones, so lookups stay short however many erases happen). Keys are
// placed by Fibonacci hashing of the whole key, so dense keys (block ids)
// spread well. O(1) expected per operation; grows by doubling.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <optional>
#include <vector>

namespace kvscope::detail {

class FlatIndex {
 public:
  static constexpr std::uint32_t kEmpty = UINT32_MAX;  // not a valid value

  explicit FlatIndex(std::size_t expected = 8) { rebuild(slots_for(expected)); }

  std::optional<std::uint32_t> find(std::uint64_t key) const noexcept {
    const std::size_t slot = slot_of(key);
    if (values_[slot] == kEmpty) return std::nullopt;
    return values_[slot];
  }

  /// Precondition: value != kEmpty.
  void insert_or_assign(std::uint64_t key, std::uint32_t value) {
    if (2 * (size_ + 1) > keys_.size()) grow();
    const std::size_t slot = slot_of(key);
    if (values_[slot] == kEmpty) ++size_;
    keys_[slot] = key;
    values_[slot] = value;
  }

  /// Returns whether the key was present.
  bool erase(std::uint64_t key) noexcept {
    std::size_t hole = slot_of(key);
    if (values_[hole] == kEmpty) return false;
    values_[hole] = kEmpty;
    --size_;
    // Shift later entries of the probe run back unless their home lies
    // cyclically in (hole, next]: then the hole does not break their run.
    for (std::size_t next = (hole + 1) & mask_; values_[next] != kEmpty;
         next = (next + 1) & mask_) {
      const std::size_t home = home_of(keys_[next]);
      const bool stays =
          hole <= next ? (hole < home && home <= next) : (hole < home || home <= next);
      if (stays) continue;
      keys_[hole] = keys_[next];
      values_[hole] = values_[next];
      values_[next] = kEmpty;
      hole = next;
    }
    return true;
  }

  /// Calls visit(key, value) for every entry, in slot order. The map must
  /// not change during the walk.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (std::size_t i = 0; i < keys_.size(); ++i) {
      if (values_[i] != kEmpty) visit(keys_[i], values_[i]);
    }
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t memory_bytes() const noexcept {
    return keys_.size() * (sizeof(std::uint64_t) + sizeof(std::uint32_t));
  }

 private:
  static std::size_t slots_for(std::size_t expected) {
    return std::bit_ceil(std::max<std::size_t>(16, 2 * expected));
  }
  std::size_t home_of(std::uint64_t key) const noexcept {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  // The slot holding `key`, or the empty slot ending its probe run.
  std::size_t slot_of(std::uint64_t key) const noexcept {
    std::size_t slot = home_of(key);
    while (values_[slot] != kEmpty && keys_[slot] != key) slot = (slot + 1) & mask_;
    return slot;
  }
  void rebuild(std::size_t slots) {
    keys_.assign(slots, 0);
    values_.assign(slots, kEmpty);
    mask_ = slots - 1;
    shift_ = 64 - std::countr_zero(slots);
    size_ = 0;
  }
  void grow() {
    const std::vector<std::uint64_t> keys = std::move(keys_);
    const std::vector<std::uint32_t> values = std::move(values_);
    rebuild(keys.size() * 2);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (values[i] != kEmpty) insert_or_assign(keys[i], values[i]);
    }
  }

  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> values_;
  std::size_t mask_ = 0;
  int shift_ = 64;
  std::size_t size_ = 0;
};

}  // namespace kvscope::detail
