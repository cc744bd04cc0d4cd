// kvscope/eviction_policy.hpp - which cached free block is reused next.
//
// A block whose ref count drops to 0 keeps its hash and stays hittable; it is
// "evictable". When the pool needs a block, blocks that never got a hash are
// reused first (they hold nothing worth keeping); after those, the policy
// picks the evictable cached block to give up. Every policy works only on the
// evictable set (blocks in use cannot be evicted) and is O(1) per event
// (S3-FIFO amortised). Eviction orders, precisely:
//
//  lru     Least recently released first: the free queue of vLLM. A request's
//          blocks are released in reverse order, so a chain's tail goes before
//          its prefix.
//  lfu     Fewest touches since the block was cached first (allocation counts
//          as one, every hit adds one; counts saturate at 63); ties broken
//          least recently released first.
//  arc     Adaptive Replacement Cache (Megiddo & Modha, FAST'03) over the
//          evictable set: T1 (touched once since cached) and T2 (touched
//          again, or re-cached after a ghost hit); evict the LRU evictable
//          block of T1 while |T1| exceeds the adaptive target p, else of T2.
//          Ghost lists B1/B2 remember evicted hashes (bounded FIFOs of
//          num_blocks entries each) and move p.
//  s3fifo  S3-FIFO (Yang et al., SOSP'23) over the evictable set: a small
//          queue S (10% of the pool by default) and a main queue M, both in
//          release order, plus a ghost FIFO of hashes evicted from S. New
//          blocks enter S (M if their hash is in the ghost). Eviction from S
//          promotes blocks touched while in S to M, else evicts them (into the
//          ghost); eviction from M gives touched blocks another round
//          (frequency 0..3, decremented per round).
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace kvscope {

enum class EvictionPolicyKind { lru, lfu, arc, s3fifo };

/// Every policy, in declaration order (for sweeps and option lists).
inline constexpr std::array<EvictionPolicyKind, 4> kEvictionPolicies{
    EvictionPolicyKind::lru, EvictionPolicyKind::lfu, EvictionPolicyKind::arc,
    EvictionPolicyKind::s3fifo};

/// "lru", "lfu", "arc", "s3fifo".
std::string_view to_string(EvictionPolicyKind kind) noexcept;
/// Inverse of to_string; std::nullopt for an unknown name.
std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept;

}  // namespace kvscope
