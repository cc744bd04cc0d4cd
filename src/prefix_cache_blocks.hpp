// Private to the core floor (src/prefix_cache*.cpp): PrefixCache's request
// state, the block invariants, and the per-block moves every operation
// inlines (take a free block, touch, cache, release, promote a twin). Shared
// by prefix_cache.cpp (one group) and prefix_cache_hybrid.cpp (KV cache
// groups) so both run the same block rules.
#pragma once

#include <array>
#include <cassert>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "detail/hash_mix.hpp"
#include "detail/slot_table.hpp"
#include "detail/twin_set.hpp"
#include "eviction/arc_policy.hpp"
#include "eviction/eviction_policy.hpp"
#include "eviction/lfu_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "eviction/s3fifo_policy.hpp"
#include "kvscope/cache_events.hpp"
#include "kvscope/prefix_cache.hpp"

namespace kvscope {

// Block invariants (detail::BlockSlot):
//  - ref_count = number of live request block tables holding the block;
//  - cached <=> the block's hash is in index_ and maps to this block;
//  - ref_count == 0 && cached   <=> the block is in the policy's evictable set;
//  - ref_count == 0 && !cached  <=> the block is in the uncached_ free list;
//  - a block in twins_ is live (ref_count > 0), not cached, has `twin` set
//    (and no other block has) and keeps in `hash` a hash another, cached
//    block holds, whose `may_have_twins` is set.
using BlockMeta = detail::BlockSlot;

// A live request. Invariants: blocks.size() == ceil(num_tokens / block_size);
// blocks [0, hashed_blocks) had a hash when they were filled (a block whose
// hash was already resident elsewhere stays private and uncached); token mode
// keeps the tokens after the last hashed block in `partial`.
struct PrefixCache::RequestState {
  RequestId id;
  std::vector<BlockId> blocks;
  std::uint32_t num_tokens = 0;
  std::uint32_t hashed_blocks = 0;
  BlockHash last_hash;         // parent of the next block to be hashed
  BlockHash last_fingerprint;  // the same in the verification chain (verify_tokens)
  std::vector<TokenId> partial;
  ExtraKeys extras;
  bool hash_mode = false;
  bool sealed = false;
};

// A live request's state for KV cache groups (hybrid layouts only; its
// RequestState's `blocks` then stays empty), in hybrid_states_ at the same
// slot (kept apart so the single-group RequestState is what it was): one
// block table per group (kPlaceholderBlock where no block is needed: before
// a window's run, or released once out of the window); the whole hash
// chain and, in token mode with an event log attached at admission, every
// token (the events' token ids: a larger group's block completes across
// appends); per group the blocks decided, cached or not (vLLM's
// num_cached_block: a block passed over is never cached later), and the
// leading entries released.
struct PrefixCache::HybridState {
  std::vector<std::vector<BlockId>> group_blocks;
  std::vector<BlockHash> chain;
  std::vector<TokenId> tokens;
  std::array<std::uint32_t, kMaxKvCacheGroups> decided{};
  std::array<std::uint32_t, kMaxKvCacheGroups> released{};
};

// Helpers of both translation units (private: src/ only).

// The index key of `hash` cached for KV cache group g: the hash itself for
// group 0 (so one group keys exactly as before), else the hash with a
// per-group pattern XORed in. Its own inverse: the raw hash of a cached
// block is group_key(slot.hash, slot.group).
inline BlockHash group_key(BlockHash hash, std::uint32_t g) noexcept {
  hash.low ^= g * 0x9E37'79B9'7F4A'7C15ULL;
  hash.high ^= g * 0xC2B2'AE3D'27D4'EB4FULL;
  return hash;
}

inline constexpr std::uint32_t kNoBlock = detail::kNil;

inline std::uint32_t blocks_for(std::uint64_t tokens, std::uint32_t block_size) {
  return static_cast<std::uint32_t>((tokens + block_size - 1) / block_size);
}

// The verification chain is keyed apart from the block-hash chain, so a
// collision in one says nothing about the other.
inline HashSeed fingerprint_seed(HashSeed seed) {
  return HashSeed{seed.secret ^ 0x9e37'79b9'7f4a'7c15};
}

// The fingerprint block i stores: 64 bits of the verification chain, never 0;
// 0 (no fingerprint) when the chain is empty (nothing verified).
inline std::uint64_t stored_fingerprint(std::span<const BlockHash> chain, std::size_t i) {
  return chain.empty() ? 0 : chain[i].low | 1;
}

[[gnu::always_inline]] inline std::optional<BlockId> PrefixCache::find_block(
    const BlockHash& hash) const {
  const auto entry =
      index_->find(detail::fold(hash), [&](std::uint32_t b) { return blocks_[b].hash == hash; });
  if (!entry) return std::nullopt;
  return BlockId{*entry};
}

// Calls fn with the concrete policy, so the per-block calls inside inline.
template <class Fn>
decltype(auto) PrefixCache::with_policy(Fn&& fn) {
  switch (config_.policy) {
    case EvictionPolicyKind::lru: return fn(static_cast<detail::LruPolicy&>(*policy_));
    case EvictionPolicyKind::lfu: return fn(static_cast<detail::LfuPolicy&>(*policy_));
    case EvictionPolicyKind::arc: return fn(static_cast<detail::ArcPolicy&>(*policy_));
    case EvictionPolicyKind::s3fifo: return fn(static_cast<detail::S3FifoPolicy&>(*policy_));
  }
  throw std::logic_error("kvscope: PrefixCache has an unknown eviction policy");
}

// Takes one free block (an uncached one if any, else the policy's victim,
// which loses its hash) and gives it ref count 1. Returns the block; adds 1
// to `evicted_count` when a cached block was reclaimed.
// Per-block hot path: inlined into every operation loop.
template <class Policy>
[[gnu::always_inline]] inline BlockId PrefixCache::take_free_block(Policy& policy,
                                                                   std::uint32_t& evicted_count) {
  assert(num_free_blocks() > 0);
  std::uint32_t b;
  if (!uncached_.empty()) {
    b = links_.pop_front(uncached_);
  } else {
    ++evicted_count;
    b = policy.evict().value;
    BlockMeta& meta = blocks_[b];
    if constexpr (requires { policy.next_victim(); }) {
      // Evictions come in runs (one per new block): start loading the next
      // victim's index slot now (its block slot is warm: the pop linked it).
      const std::uint32_t next = policy.next_victim();
      if (next != detail::kNil) index_->prefetch(detail::fold(blocks_[next].hash));
    }
    index_->erase(detail::fold(meta.hash), b);
    meta.cached = false;
    policy.on_evicted(BlockId{b}, meta.hash);
    ++stats_.evictions;
    bool hash_lives_on = false;
    if (meta.may_have_twins) [[unlikely]] {
      meta.may_have_twins = 0;
      hash_lives_on = promote_twin(policy, meta.hash);
    }
    if (events_ != nullptr && !hash_lives_on) [[unlikely]]
      record_removed(meta);
    if (reports_uncache(meta)) [[unlikely]]
      report_uncached(BlockId{b}, UncacheCause::reused);
  }
  blocks_[b].ref_count = 1;
  if (observer_ != nullptr && --sample_countdown_ == 0) watch_if_sampled(BlockId{b});
  return BlockId{b};
}

// Per-block hot path: inlined into every operation loop.
template <class Policy>
[[gnu::always_inline]] inline void PrefixCache::touch(Policy& policy, BlockId id) {
  BlockMeta& meta = blocks_[id.value];
  policy.on_touched(id, meta.ref_count == 0);
  ++meta.ref_count;
  if (meta.watched) [[unlikely]]
    observer_->on_block_hit(id, event_time());
}

// Gives a block its hash unless another block already holds it (then the
// block stays private: no duplicate entries). Returns whether it was cached.
// `may_be_resident` false skips the probe when the caller has just seen the
// hash absent (saves one index probe per new block on the allocate path).
// Per-block hot path: inlined into every operation loop.
template <class Policy>
[[gnu::always_inline]] inline bool PrefixCache::cache_block(Policy& policy, BlockId id,
                                                            const BlockHash& hash,
                                                            bool may_be_resident,
                                                            std::uint64_t fingerprint) {
  if (may_be_resident) {
    if (const auto holder = find_block(hash)) [[unlikely]] {
      blocks_[holder->value].may_have_twins = 1;
      keep_private(id, hash, fingerprint);
      return false;
    }
  }
  BlockMeta& meta = blocks_[id.value];
  meta.hash = hash;
  meta.cached = true;
  meta.may_have_twins = 0;
  if (!fingerprints_.empty()) fingerprints_[id.value] = fingerprint;
  index_->insert(detail::fold(hash), id.value);
  policy.on_cached(id, hash);
  if (meta.watched) [[unlikely]]
    observer_->on_block_cached(id, hash, event_time());
  return true;
}

// Per-block hot path: inlined into every operation loop.
template <class Policy>
[[gnu::always_inline]] inline void PrefixCache::release(Policy& policy, BlockId id) {
  BlockMeta& meta = blocks_[id.value];
  assert(meta.ref_count > 0);
  if (--meta.ref_count != 0) return;
  if (meta.cached) {
    policy.on_released(id);
  } else {  // nothing worth keeping: reuse it before any cached block
    links_.push_front(uncached_, id.value);
    if (meta.twin) [[unlikely]] {
      twins_->remove(detail::fold(meta.hash), id.value);
      meta.twin = 0;
    }
  }
  if (meta.watched) [[unlikely]] {
    meta.watched = meta.cached;  // an uncached block's story ends at its release
    observer_->on_block_released(id, meta.cached, event_time());
  }
}

// The block holding `hash` was just reclaimed: the lowest-id twin, if any,
// becomes its holder (it is live, so it joins no free list). Returns whether
// one did.
template <class Policy>
[[gnu::noinline]] bool PrefixCache::promote_twin(Policy& policy, const BlockHash& hash) {
  const std::uint64_t key = detail::fold(hash);
  std::size_t matches = 0;
  const auto twin = twins_->lowest(
      key, [&](std::uint32_t b) { return blocks_[b].hash == hash; }, &matches);
  if (!twin) return false;
  twins_->remove(key, *twin);
  BlockMeta& meta = blocks_[*twin];
  meta.twin = 0;
  meta.may_have_twins = matches > 1 ? 1 : 0;
  meta.cached = true;
  index_->insert(key, *twin);
  policy.on_cached(BlockId{*twin}, hash);
  if (meta.watched) [[unlikely]]
    observer_->on_block_cached(BlockId{*twin}, hash, event_time());
  return true;
}
}  // namespace kvscope
