// Private: ARC (Megiddo & Modha, FAST'03) adapted to a pool whose in-use blocks cannot
// be evicted. Cached blocks are in class T1 (touched once since cached) or T2
// (touched again, or re-cached after a ghost hit); only evictable ones are
// linked, in release order. The adaptive target p (for |T1|) grows on a hit in
// ghost B1 and shrinks on a hit in ghost B2, by ARC's ratio rule. Ghosts are
// bounded FIFOs of num_blocks fingerprints each (ARC proper keeps LRU ghost
// lists with |T1|+|B1| <= c; the FIFO bound is the O(1) simplification).
#pragma once

#include <algorithm>

#include "detail/ghost_table.hpp"
#include "detail/hash_mix.hpp"
#include "eviction/eviction_policy.hpp"

namespace kvscope::detail {

class ArcPolicy final : public EvictionPolicy {
 public:
  ArcPolicy(BlockSlot* slots, std::uint32_t num_blocks)
      : capacity_(num_blocks), lists_(slots), b1_(num_blocks), b2_(num_blocks) {}

  std::unique_ptr<EvictionPolicy> clone_onto(BlockSlot* slots) const override {
    auto copy = std::make_unique<ArcPolicy>(*this);
    copy->lists_ = SlotLists(slots);
    return copy;
  }

  void on_cached(BlockId block, const BlockHash& hash) override {
    const std::uint64_t fp = fold(hash);
    bool frequent = true;
    if (b1_.contains(fp)) {
      const std::uint32_t delta = std::max<std::uint32_t>(1, b2_.size() / b1_.size());
      target_t1_ = std::min(capacity_, target_t1_ + delta);
      b1_.take(fp);
    } else if (b2_.contains(fp)) {
      const std::uint32_t delta = std::max<std::uint32_t>(1, b1_.size() / b2_.size());
      target_t1_ -= std::min(target_t1_, delta);
      b2_.take(fp);
    } else {
      frequent = false;
    }
    lists_[block.value].policy_class = frequent ? kT2 : kT1;
    ++(frequent ? t2_total_ : t1_total_);
  }

  void on_touched(BlockId block, bool was_evictable) override {
    std::uint8_t& cls = lists_[block.value].policy_class;
    if (was_evictable) lists_.unlink(cls == kT2 ? t2_free_ : t1_free_, block.value);
    if (cls == kT1) {
      cls = kT2;
      --t1_total_;
      ++t2_total_;
    }
  }

  void on_released(BlockId block) override {
    lists_.push_back(lists_[block.value].policy_class == kT2 ? t2_free_ : t1_free_, block.value);
  }

  BlockId evict() override {
    const bool from_t1 = !t1_free_.empty() && (t1_total_ > target_t1_ || t2_free_.empty());
    --(from_t1 ? t1_total_ : t2_total_);
    return BlockId{lists_.pop_front(from_t1 ? t1_free_ : t2_free_)};
  }

  void on_evicted(BlockId block, const BlockHash& hash) override {
    (lists_[block.value].policy_class == kT2 ? b2_ : b1_).add(fold(hash));
  }

  void clear() override {
    t1_free_ = t2_free_ = IndexList{};
    t1_total_ = t2_total_ = target_t1_ = 0;
    b1_.clear();
    b2_.clear();
  }

  std::uint32_t evictable_count() const noexcept override { return t1_free_.size + t2_free_.size; }
  std::size_t memory_bytes() const noexcept override {
    return sizeof(*this) + b1_.memory_bytes() + b2_.memory_bytes();
  }

 private:
  static constexpr std::uint8_t kT1 = 0;  // BlockSlot::policy_class values
  static constexpr std::uint8_t kT2 = 1;

  std::uint32_t capacity_;
  SlotLists lists_;
  IndexList t1_free_, t2_free_;                // evictable blocks of each class, release order
  std::uint32_t t1_total_ = 0, t2_total_ = 0;  // cached blocks of each class, in use or not
  std::uint32_t target_t1_ = 0;                // ARC's p
  GhostTable b1_, b2_;
};

}  // namespace kvscope::detail
