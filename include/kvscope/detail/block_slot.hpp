// Internal (not part of the API): the per-block record of a PrefixCache and
// intrusive lists over it.
//
// One 32-byte record per block holds everything a block operation touches -
// hash, ref count, list links and the eviction policy's per-block state - so
// an operation on a block costs one cache line (two blocks share a line).
// The links serve exactly one list at a time: the cache's uncached free list,
// or one of the policy's lists of evictable blocks.
#pragma once

#include <cassert>
#include <cstdint>

#include "kvscope/types.hpp"

namespace kvscope::detail {

inline constexpr std::uint32_t kNil = UINT32_MAX;

struct BlockSlot {
  BlockHash hash;               // valid while `cached`
  std::uint32_t ref_count = 0;  // live request block tables holding this block
  std::uint32_t prev = kNil;    // list links (see above)
  std::uint32_t next = kNil;
  std::uint8_t cached : 1 = 0;   // 1: hash is in the index and maps here
  std::uint8_t watched : 1 = 0;  // 1: the observer follows this block (sampled)
  std::uint8_t twin : 1 = 0;     // 1: a private twin (in the cache's twin set)
  // 0: no twin shares this cached block's hash; 1: some may (a hint that
  // may outlive them: only then does eviction look for one to promote).
  std::uint8_t may_have_twins : 1 = 0;
  std::uint8_t policy_class = 0;  // owned by the eviction policy (ARC T1/T2, S3-FIFO queue)
  std::uint8_t policy_count = 0;  // owned by the eviction policy (LFU count, S3-FIFO frequency)
  std::uint8_t group = 0;         // KV cache group of the block's current use (0 with one group)
};
static_assert(sizeof(BlockSlot) == 32, "one BlockSlot must stay half a cache line");

/// A list header; the elements' links live in their BlockSlots.
struct IndexList {
  std::uint32_t head = kNil;
  std::uint32_t tail = kNil;
  std::uint32_t size = 0;
  bool empty() const noexcept { return size == 0; }
};

/// O(1) list operations over an array of BlockSlots. Each slot is in at most
/// one list at a time (the caller's invariant).
class SlotLists {
 public:
  explicit SlotLists(BlockSlot* slots) : slots_(slots) {}

  void push_back(IndexList& list, std::uint32_t i) {
    slots_[i].prev = list.tail;
    slots_[i].next = kNil;
    if (list.tail != kNil)
      slots_[list.tail].next = i;
    else
      list.head = i;
    list.tail = i;
    ++list.size;
  }

  void push_front(IndexList& list, std::uint32_t i) {
    slots_[i].prev = kNil;
    slots_[i].next = list.head;
    if (list.head != kNil)
      slots_[list.head].prev = i;
    else
      list.tail = i;
    list.head = i;
    ++list.size;
  }

  /// Precondition: i is in `list`.
  void unlink(IndexList& list, std::uint32_t i) {
    const std::uint32_t prev = slots_[i].prev;
    const std::uint32_t next = slots_[i].next;
    if (prev != kNil)
      slots_[prev].next = next;
    else
      list.head = next;
    if (next != kNil)
      slots_[next].prev = prev;
    else
      list.tail = prev;
    --list.size;
  }

  /// Precondition: !list.empty().
  std::uint32_t pop_front(IndexList& list) {
    assert(!list.empty());
    const std::uint32_t i = list.head;
    unlink(list, i);
    return i;
  }

  BlockSlot& operator[](std::uint32_t i) { return slots_[i]; }
  const BlockSlot& operator[](std::uint32_t i) const { return slots_[i]; }

 private:
  BlockSlot* slots_;
};

}  // namespace kvscope::detail
