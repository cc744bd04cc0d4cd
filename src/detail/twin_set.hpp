// Private: the live blocks a PrefixCache keeps private because another block
// already held their hash ("twins"), found by hash so that one of them can
// take the hash over when its holder is reclaimed (docs/prefix-cache.md).
//
// Entries are block ids keyed by the 64-bit mix of the block's hash; the
// caller keeps the hash itself in the block's slot and confirms matches.
// Several twins may share a hash. The table is created on the first twin
// and doubles when full (an allocation only when more twins are live than
// ever before); it never shrinks. Cost: nothing while no twin was ever
// seen; one probe run per call otherwise.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "detail/slot_table.hpp"

namespace kvscope::detail {

class TwinSet {
 public:
  bool empty() const noexcept { return table_ == nullptr || table_->size() == 0; }
  std::size_t size() const noexcept { return table_ == nullptr ? 0 : table_->size(); }
  std::size_t memory_bytes() const noexcept {
    return table_ == nullptr ? 0 : table_->memory_bytes();
  }

  /// Adds `block`. `key_mix_of(entry)` gives the key mix of an entry already
  /// present (used to move them when the table grows).
  template <class KeyMixOf>
  void add(std::uint64_t key_mix, std::uint32_t block, KeyMixOf&& key_mix_of) {
    if (table_ == nullptr) table_ = std::make_unique<SlotTable>(kFirstCapacity);
    if (table_->size() + 1 > table_->max_entries()) {
      auto bigger = std::make_unique<SlotTable>(2 * table_->max_entries());
      table_->for_each([&](std::uint32_t entry) { bigger->insert(key_mix_of(entry), entry); });
      table_ = std::move(bigger);
    }
    table_->insert(key_mix, block);
  }

  /// Removes `block`, added with `key_mix`. Precondition: it is present.
  void remove(std::uint64_t key_mix, std::uint32_t block) { table_->erase(key_mix, block); }

  /// The lowest block id among the twins whose key satisfies `same_key`
  /// (the lowest, so the choice depends on nothing but the set's contents);
  /// `*matches` gets how many satisfy it.
  template <class SameKey>
  std::optional<std::uint32_t> lowest(std::uint64_t key_mix, SameKey&& same_key,
                                      std::size_t* matches) const {
    std::optional<std::uint32_t> best;
    *matches = 0;
    if (empty()) return best;
    table_->for_each_candidate(key_mix, [&](std::uint32_t e) {
      if (!same_key(e)) return;
      ++*matches;
      if (!best || e < *best) best = e;
    });
    return best;
  }

  template <class Visit>
  void for_each(Visit&& visit) const {
    if (table_ != nullptr) table_->for_each(visit);
  }

 private:
  static constexpr std::size_t kFirstCapacity = 16;
  std::unique_ptr<SlotTable> table_;
};

}  // namespace kvscope::detail
