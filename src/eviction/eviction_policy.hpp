// Private: the interface every eviction policy implements.
//
// The policy sees only cached blocks (blocks with a hash) and tracks which of
// them are evictable (ref count 0). The cache calls, for a block b:
//   on_cached(b, h)      b just got hash h; b is in use (not evictable)
//   on_touched(b, free)  a request touched cached b; `free`: b was evictable
//                        and must leave the evictable set now
//   on_released(b)       b's ref count reached 0; b becomes evictable
//   evict()              pick a victim, remove it from the evictable set
//   on_evicted(b, h)     right after evict(): b lost hash h (ghost bookkeeping)
//   clear()              every block lost its hash (reset)
// The concrete policies are `final` and header-only (lru_policy.hpp, ...):
// PrefixCache dispatches once per operation and calls them directly, so the
// per-block calls can be inlined into its loops (with the inlined block
// helpers: 22% fewer instructions per request, docs/performance.md).
// Single-threaded, owned by one PrefixCache. O(1) per call (S3-FIFO's evict
// amortised). A policy keeps its per-block state and list links in the
// cache's BlockSlots (policy_class, policy_count, prev/next of evictable
// blocks) and must not touch the other fields.
#pragma once

#include <cstdint>
#include <memory>

#include "kvscope/detail/block_slot.hpp"
#include "kvscope/eviction_policy.hpp"
#include "kvscope/types.hpp"

namespace kvscope::detail {

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  /// Deep copy working on `slots` (a copy of the cache's slots), used to list
  /// the eviction order without disturbing it.
  virtual std::unique_ptr<EvictionPolicy> clone_onto(BlockSlot* slots) const = 0;

  virtual void on_cached(BlockId block, const BlockHash& hash) = 0;
  virtual void on_touched(BlockId block, bool was_evictable) = 0;
  virtual void on_released(BlockId block) = 0;
  /// Precondition: evictable_count() > 0.
  virtual BlockId evict() = 0;
  virtual void on_evicted(BlockId /*block*/, const BlockHash& /*hash*/) {}
  virtual void clear() = 0;

  virtual std::uint32_t evictable_count() const noexcept = 0;
  virtual std::size_t memory_bytes() const noexcept = 0;
};

/// A policy of `kind` working on the cache's `slots` (`num_blocks` of them,
/// alive as long as the policy). `s3fifo_small_ratio` sizes S3-FIFO's small
/// queue (validated by PrefixCacheConfig); the other policies ignore it.
std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind,
                                                     std::uint32_t num_blocks,
                                                     double s3fifo_small_ratio, BlockSlot* slots);

}  // namespace kvscope::detail
