// Private: LRU. The evictable set is one list in release order; evict its head.
#pragma once

#include "eviction/eviction_policy.hpp"

namespace kvscope::detail {

class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(BlockSlot* slots) : lists_(slots) {}

  std::unique_ptr<EvictionPolicy> clone_onto(BlockSlot* slots) const override {
    auto copy = std::make_unique<LruPolicy>(*this);
    copy->lists_ = SlotLists(slots);
    return copy;
  }
  void on_cached(BlockId, const BlockHash&) override {}
  void on_touched(BlockId block, bool was_evictable) override {
    if (was_evictable) lists_.unlink(free_, block.value);
  }
  void on_released(BlockId block) override { lists_.push_back(free_, block.value); }
  BlockId evict() override { return BlockId{lists_.pop_front(free_)}; }
  /// The block evict() would return next (kNil when none): the cache
  /// prefetches its index slot while it evicts this one.
  std::uint32_t next_victim() const noexcept { return free_.head; }
  void clear() override { free_ = IndexList{}; }
  std::uint32_t evictable_count() const noexcept override { return free_.size; }
  std::size_t memory_bytes() const noexcept override { return sizeof(*this); }

 private:
  SlotLists lists_;
  IndexList free_;  // evictable blocks, least recently released first
};

}  // namespace kvscope::detail
