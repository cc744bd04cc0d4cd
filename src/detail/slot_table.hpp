// Private: an open-addressing index of 32-bit entry numbers.
//
// The table does not store keys: each slot holds an entry number (a block id,
// a ring position) and a 32-bit tag taken from the key's 64-bit mix; the
// caller confirms a tag match against its own copy of the key. Linear
// probing, backward-shift deletion (no tombstones), capacity fixed at
// construction: a power of two >= 4 x max_entries, so load <= 0.25. Measured
// on BM_CoreRequestCycleBookkeeping (LRU): load 0.5 took 5.1 us per request,
// 0.25 took 3.2 us, 0.125 no better - the extra probe lines of a half-full
// table cost more than the bigger table. 8 bytes per slot, 32 per entry.
//
// The tag is the key mix's high 32 bits (multiplicative mixes are strongest
// there); the home slot is tag & mask.
//
// Invariant: every entry sits at or after (cyclically) its home slot
// (tag & mask) with no empty slot in between.
#pragma once

#include <bit>
#include <cassert>
#include <cstdint>
#include <optional>
#include <vector>

namespace kvscope::detail {

class SlotTable {
 public:
  explicit SlotTable(std::size_t max_entries)
      : slots_(std::bit_ceil(std::max<std::size_t>(4 * max_entries, 8))),
        mask_(static_cast<std::uint32_t>(slots_.size() - 1)) {}

  /// The entry whose key has mix `key_mix` and satisfies `same_key(entry)`.
  template <class SameKey>
  std::optional<std::uint32_t> find(std::uint64_t key_mix, SameKey&& same_key) const {
    const auto tag = tag_of(key_mix);
    for (std::uint32_t pos = tag & mask_;; pos = (pos + 1) & mask_) {
      const Slot& slot = slots_[pos];
      if (slot.entry_plus1 == 0) return std::nullopt;
      if (slot.tag == tag && same_key(slot.entry_plus1 - 1)) return slot.entry_plus1 - 1;
    }
  }

  /// Precondition: no entry with an equal key is present; size() < max_entries.
  void insert(std::uint64_t key_mix, std::uint32_t entry) {
    const auto tag = tag_of(key_mix);
    std::uint32_t pos = tag & mask_;
    while (slots_[pos].entry_plus1 != 0) pos = (pos + 1) & mask_;
    slots_[pos] = Slot{entry + 1, tag};
    ++size_;
  }

  /// Removes `entry`, inserted with `key_mix`. Precondition: it is present.
  void erase(std::uint64_t key_mix, std::uint32_t entry) {
    std::uint32_t hole = tag_of(key_mix) & mask_;
    while (slots_[hole].entry_plus1 != entry + 1) {
      assert(slots_[hole].entry_plus1 != 0 && "SlotTable::erase: entry not present");
      hole = (hole + 1) & mask_;
    }
    // Backward shift: pull later members of the probe run into the hole when
    // the hole lies between their home and their current slot.
    for (std::uint32_t pos = (hole + 1) & mask_; slots_[pos].entry_plus1 != 0;
         pos = (pos + 1) & mask_) {
      const std::uint32_t home = slots_[pos].tag & mask_;
      const std::uint32_t dist_to_pos = (pos - home) & mask_;
      const std::uint32_t dist_to_hole = (hole - home) & mask_;
      if (dist_to_hole < dist_to_pos) {
        slots_[hole] = slots_[pos];
        hole = pos;
      }
    }
    slots_[hole] = Slot{};
    --size_;
  }

  /// Asks the CPU to load the slot where `key_mix`'s probe run starts.
  void prefetch(std::uint64_t key_mix) const noexcept {
    __builtin_prefetch(&slots_[tag_of(key_mix) & mask_]);
  }

  /// Calls `visit(entry)` for every entry whose key mix has the same tag as
  /// `key_mix` (the caller confirms the key), in probe order.
  template <class Visit>
  void for_each_candidate(std::uint64_t key_mix, Visit&& visit) const {
    const auto tag = tag_of(key_mix);
    for (std::uint32_t pos = tag & mask_; slots_[pos].entry_plus1 != 0; pos = (pos + 1) & mask_) {
      if (slots_[pos].tag == tag) visit(slots_[pos].entry_plus1 - 1);
    }
  }

  /// Calls `visit(entry)` for every entry, in slot order.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (const Slot& slot : slots_) {
      if (slot.entry_plus1 != 0) visit(slot.entry_plus1 - 1);
    }
  }

  /// How many entries fit before insert()'s precondition breaks.
  std::size_t max_entries() const noexcept { return slots_.size() / 4; }

  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    size_ = 0;
  }

  std::size_t size() const noexcept { return size_; }
  std::size_t memory_bytes() const noexcept { return slots_.size() * sizeof(Slot); }

 private:
  static std::uint32_t tag_of(std::uint64_t key_mix) noexcept {
    return static_cast<std::uint32_t>(key_mix >> 32);
  }

  struct Slot {
    std::uint32_t entry_plus1 = 0;  // 0 = empty
    std::uint32_t tag = 0;
  };
  std::vector<Slot> slots_;
  std::uint32_t mask_;
  std::size_t size_ = 0;
};

}  // namespace kvscope::detail
