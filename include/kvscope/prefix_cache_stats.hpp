// kvscope/prefix_cache_stats.hpp - cumulative prefix-cache counters of one cache.
//
// Plain counters (all monotonically increasing), merged with +=. Owned by the
// cache that writes them; read them on the owning thread or from a copy.
#pragma once

#include <cstdint>
#include <string>

namespace kvscope {

/// Lookups of admitted requests, counted in tokens and in blocks.
struct QueryCounts {
  std::uint64_t requests = 0;      ///< requests admitted (allocate succeeded)
  std::uint64_t query_tokens = 0;  ///< prompt tokens of those requests
  std::uint64_t hit_tokens = 0;    ///< prompt tokens served from cache (prefix hit)
  std::uint64_t query_blocks = 0;  ///< blocks of those prompts, the partial last one included
  std::uint64_t hit_blocks = 0;    ///< blocks served from cache (prefix hit)

  QueryCounts& operator+=(const QueryCounts& other) noexcept;
  /// Precondition: every field of other <= this one's (window bookkeeping).
  QueryCounts& operator-=(const QueryCounts& other) noexcept;
  friend bool operator==(const QueryCounts&, const QueryCounts&) = default;
  /// hit_tokens / query_tokens; 0 when nothing was queried.
  double token_hit_rate() const noexcept;
  /// hit_blocks / query_blocks; 0 when nothing was queried.
  double block_hit_rate() const noexcept;
};

/// vLLM's PrefixCacheStats plus block counts, failures and evictions.
///
/// Requests flagged as preempted (looked up again after losing their blocks)
/// are counted in `preempted`, never in `fresh`, so recomputation does not
/// inflate the hit rate. A request whose allocation fails is not counted as a
/// query (a scheduler retries it; counting every try would inflate queries);
/// it is counted in allocation_failures instead.
struct PrefixCacheStats {
  QueryCounts fresh;      ///< admitted requests not preempted
  QueryCounts preempted;  ///< admitted requests flagged preempted
  /// lookup() probes (no admission), counted apart so that a probe followed
  /// by an allocate is not counted twice; `requests` counts probes here.
  QueryCounts probes;
  std::uint64_t allocation_failures = 0;  ///< allocate/append refused for lack of free blocks
  std::uint64_t evictions = 0;            ///< cached blocks un-hashed because the pool reused them
  std::uint64_t resets = 0;               ///< successful reset() calls
  std::uint64_t reset_evictions = 0;      ///< cached blocks un-hashed by reset()
  /// With verify_tokens: resident hashes refused because the block's content
  /// fingerprint differed (hash collisions caught), counted per probe.
  std::uint64_t verification_failures = 0;

  PrefixCacheStats& operator+=(const PrefixCacheStats& other) noexcept;
  /// Precondition: every counter of other <= this one's (window bookkeeping).
  PrefixCacheStats& operator-=(const PrefixCacheStats& other) noexcept;
  friend bool operator==(const PrefixCacheStats&, const PrefixCacheStats&) = default;

  /// Token hit rate of fresh requests (vLLM's prefix cache hit rate).
  double hit_rate() const noexcept { return fresh.token_hit_rate(); }
};

}  // namespace kvscope
