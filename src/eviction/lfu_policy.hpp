// Private: LFU with O(1) operations: one release-ordered list per touch count
// (1 .. kMaxCount, saturating; kept in BlockSlot::policy_count) and a bitmask
// of non-empty lists, so the lowest non-empty count is one
// count-trailing-zeros away.
#pragma once

#include <bit>

#include "eviction/eviction_policy.hpp"

namespace kvscope::detail {

class LfuPolicy final : public EvictionPolicy {
 public:
  static constexpr std::uint8_t kMaxCount = 63;

  explicit LfuPolicy(BlockSlot* slots) : lists_(slots) {}

  std::unique_ptr<EvictionPolicy> clone_onto(BlockSlot* slots) const override {
    auto copy = std::make_unique<LfuPolicy>(*this);
    copy->lists_ = SlotLists(slots);
    return copy;
  }

  void on_cached(BlockId block, const BlockHash&) override { lists_[block.value].policy_count = 1; }

  void on_touched(BlockId block, bool was_evictable) override {
    std::uint8_t& count = lists_[block.value].policy_count;
    if (was_evictable) unlink(block.value, count);
    if (count < kMaxCount) ++count;
  }

  void on_released(BlockId block) override {
    const std::uint8_t count = lists_[block.value].policy_count;
    lists_.push_back(by_count_[count], block.value);
    nonempty_ |= std::uint64_t{1} << count;
    ++evictable_;
  }

  BlockId evict() override {
    const auto count = static_cast<std::uint8_t>(std::countr_zero(nonempty_));
    const std::uint32_t victim = by_count_[count].head;
    unlink(victim, count);
    return BlockId{victim};
  }

  void clear() override {
    for (IndexList& list : by_count_) list = IndexList{};
    nonempty_ = 0;
    evictable_ = 0;
  }

  std::uint32_t evictable_count() const noexcept override { return evictable_; }
  std::size_t memory_bytes() const noexcept override { return sizeof(*this); }

 private:
  void unlink(std::uint32_t block, std::uint8_t count) {
    lists_.unlink(by_count_[count], block);
    if (by_count_[count].empty()) nonempty_ &= ~(std::uint64_t{1} << count);
    --evictable_;
  }

  SlotLists lists_;
  IndexList by_count_[kMaxCount + 1];  // evictable blocks per count (index 0 unused)
  std::uint64_t nonempty_ = 0;         // bit c set <=> by_count_[c] non-empty
  std::uint32_t evictable_ = 0;
};

}  // namespace kvscope::detail
