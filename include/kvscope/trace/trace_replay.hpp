// kvscope/trace/trace_replay.hpp - sequential replay of a Mooncake-format
// trace through the prefix cache core (PrefixCache), one request at a time:
// look up, allocate, free, next. The trace's ids are the block hashes
// (BlockHash::from_id), so nothing is hashed.
//
// Two semantics (ReplayMode):
//  - vllm: what the cache does inside a vLLM-like engine. Only blocks fully
//    covered by input_length carry a hash; the trailing partial block (unless
//    input_length is a multiple of block_tokens) takes a block but is never
//    cached, and is reused first once freed. A hit covers at most
//    input_length - 1 tokens. Blocks are freed last first.
//  - simple: the trace README's idealised LRU: every id is a cacheable
//    block, no hit cap, blocks touched and freed in request order. With the
//    LRU policy it reproduces the README's reference table exactly.
//
// Any thread; a replay owns its caches. Cost: O(trace blocks) plus the
// core's per-block work (docs/performance.md: the whole conversation trace,
// 288,500 block references, in a few tens of milliseconds per point).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kvscope/eviction_policy.hpp"
#include "kvscope/kv_cache_groups.hpp"
#include "kvscope/trace/mooncake_trace.hpp"

namespace kvscope {

enum class ReplayMode { vllm, simple };

/// "vllm", "simple".
std::string_view to_string(ReplayMode mode) noexcept;
/// Inverse of to_string; std::nullopt for an unknown name.
std::optional<ReplayMode> parse_replay_mode(std::string_view name) noexcept;

/// validate() throws std::invalid_argument naming the bad field.
struct ReplayConfig {
  ReplayMode mode = ReplayMode::vllm;
  EvictionPolicyKind policy = EvictionPolicyKind::lru;
  /// Usable blocks of the whole cache (split across shards like the
  /// Runtime's pool: the first capacity % shards shards get one more). >= shards.
  std::uint32_t capacity = 10'000;
  /// Tokens per trace id; must match the value the trace was read with. >= 1.
  std::uint32_t block_tokens = 512;
  /// Caches the capacity is split across, 1 .. 1024; a request goes to the
  /// shard its route_depth-th id picks (1 = the first block, the Runtime's rule).
  std::uint32_t shards = 1;
  std::uint32_t route_depth = 1;  ///< >= 1; shorter requests use their last id
  /// KV cache groups (PrefixCacheConfig::groups; block_tokens is the hash
  /// block size); empty: one group. vllm mode only.
  std::vector<KvCacheGroupConfig> groups{};

  void validate() const;
};

/// What one replay saw. Hits are counted at lookup, before the request
/// touches anything; a rejected request counts in requests and totals only.
struct ReplayResult {
  ReplayConfig config;
  std::uint64_t requests = 0;           ///< requests replayed, rejected included
  std::uint64_t total_blocks = 0;       ///< sum of their ids
  std::uint64_t total_tokens = 0;       ///< sum of their input_length
  std::uint64_t prefix_hit_blocks = 0;  ///< blocks of the longest usable cached prefix
  std::uint64_t prefix_hit_tokens = 0;  ///< tokens those blocks cover
  /// Request ids resident anywhere at lookup, usable or not (past a gap,
  /// past the hit cap).
  std::uint64_t any_hit_blocks = 0;
  std::uint64_t evictions = 0;                ///< cached blocks taken for reuse
  std::uint64_t rejected = 0;                 ///< requests larger than their shard's capacity
  std::vector<std::uint64_t> shard_requests;  ///< requests routed to each shard
  double seconds = 0;                         ///< wall time of the replay (parse excluded)

  double block_hit_ratio() const noexcept;  ///< prefix_hit_blocks / total_blocks
  double token_hit_ratio() const noexcept;  ///< prefix_hit_tokens / total_tokens
  /// One JSON object with every field above and both ratios.
  std::string to_json() const;
};

/// The shard of a request with block ids `ids` among `shards`: picked from
/// its route_depth-th id (its last when shorter; shard 0 without ids), keyed
/// so dense trace ids spread evenly. Depth 1 keys on the first block like the
/// Runtime's routing; the Mooncake traces share their first id, so deeper
/// keys are what spreads them. Preconditions: shards >= 1, route_depth >= 1.
std::uint32_t trace_shard(std::span<const BlockHash> ids, std::uint32_t shards,
                          std::uint32_t route_depth) noexcept;

/// Replays `trace` (read with TraceReadOptions::block_tokens equal to
/// config.block_tokens). Throws std::invalid_argument on a bad config.
ReplayResult replay_trace(const MooncakeTrace& trace, const ReplayConfig& config);

}  // namespace kvscope
