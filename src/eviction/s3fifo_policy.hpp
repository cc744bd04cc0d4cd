// Private: S3-FIFO (Yang et al., SOSP'23) over the evictable set. Queues S (small) and
// M (main) hold evictable blocks in release order; every cached block is
// tagged S or M and carries a 2-bit touch frequency. A block touched while in
// S is promoted to M when it reaches S's head; an untouched one is evicted and
// its fingerprint goes to the ghost FIFO, which routes a re-cached hash
// straight to M. M gives touched blocks another round (frequency - 1).
// Amortised O(1): every extra loop iteration spends one frequency unit or one
// promotion.
#pragma once

#include <algorithm>
#include <cmath>

#include "detail/ghost_table.hpp"
#include "detail/hash_mix.hpp"
#include "eviction/eviction_policy.hpp"

namespace kvscope::detail {

class S3FifoPolicy final : public EvictionPolicy {
 public:
  static constexpr std::uint8_t kMaxFreq = 3;

  S3FifoPolicy(BlockSlot* slots, std::uint32_t num_blocks, double small_ratio)
      : small_target_(std::max<std::uint32_t>(
            1, static_cast<std::uint32_t>(std::lround(small_ratio * num_blocks)))),
        lists_(slots),
        ghost_(num_blocks - std::min(num_blocks, small_target_)) {}

  std::unique_ptr<EvictionPolicy> clone_onto(BlockSlot* slots) const override {
    auto copy = std::make_unique<S3FifoPolicy>(*this);
    copy->lists_ = SlotLists(slots);
    return copy;
  }

  void on_cached(BlockId block, const BlockHash& hash) override {
    const bool to_main = ghost_.take(fold(hash));
    lists_[block.value].policy_class = to_main ? kMain : kSmall;
    lists_[block.value].policy_count = 0;
    if (!to_main) ++small_total_;
  }

  void on_touched(BlockId block, bool was_evictable) override {
    if (was_evictable) lists_.unlink(queue_of(block.value), block.value);
    std::uint8_t& freq = lists_[block.value].policy_count;
    freq = std::min<std::uint8_t>(freq + 1, kMaxFreq);
  }

  void on_released(BlockId block) override { lists_.push_back(queue_of(block.value), block.value); }

  BlockId evict() override {
    for (;;) {
      const bool from_small = !small_.empty() && (small_total_ >= small_target_ || main_.empty());
      if (from_small) {
        const std::uint32_t b = lists_.pop_front(small_);
        BlockSlot& slot = lists_[b];
        if (slot.policy_count > 0) {  // touched while in S: promote
          slot.policy_class = kMain;
          slot.policy_count = 0;
          --small_total_;
          lists_.push_back(main_, b);
          continue;
        }
        --small_total_;
        return BlockId{b};  // keeps policy_class kSmall: on_evicted ghosts it
      }
      const std::uint32_t b = lists_.pop_front(main_);
      if (lists_[b].policy_count > 0) {  // another round
        --lists_[b].policy_count;
        lists_.push_back(main_, b);
        continue;
      }
      return BlockId{b};
    }
  }

  void on_evicted(BlockId block, const BlockHash& hash) override {
    if (lists_[block.value].policy_class == kSmall) ghost_.add(fold(hash));
  }

  void clear() override {
    small_ = main_ = IndexList{};
    small_total_ = 0;
    ghost_.clear();
  }

  std::uint32_t evictable_count() const noexcept override { return small_.size + main_.size; }
  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + ghost_.memory_bytes();
  }

 private:
  static constexpr std::uint8_t kSmall = 0;  // BlockSlot::policy_class values
  static constexpr std::uint8_t kMain = 1;

  IndexList& queue_of(std::uint32_t b) { return lists_[b].policy_class == kMain ? main_ : small_; }

  std::uint32_t small_target_;     // S's share of the pool, in blocks
  SlotLists lists_;                // policy_class: queue; policy_count: frequency 0..kMaxFreq
  IndexList small_, main_;         // evictable blocks per queue, release order
  std::uint32_t small_total_ = 0;  // cached blocks tagged S, in use or not
  GhostTable ghost_;
};

}  // namespace kvscope::detail
