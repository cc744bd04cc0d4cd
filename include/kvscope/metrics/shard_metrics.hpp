// kvscope/metrics/shard_metrics.hpp - every metric of one shard's prefix
// cache, and the snapshot the runtime merges across shards.
//
// ShardMetrics attaches to a PrefixCache: it installs a BlockResidencyTracker
// as the cache's observer (sampled) and is told of each admission by its
// owner (record_admission). Everything vLLM counts is already counted by the
// cache itself (PrefixCacheStats), so the time window over it costs nothing
// per operation: tick() stores the running totals at slot boundaries.
//
// Per-operation cost with metrics on: record_admission (top-K update, a
// histogram record, tenant/adapter counters, the last-N window, one ghost
// probe on a miss) plus the sampled residency hooks and at most one clock
// read per operation that touches a watched block. See docs/performance.md.
//
// Thread rules: single writer (the shard's strand), no locks. The cache must
// outlive the ShardMetrics, which removes itself as observer on destruction.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/metrics/block_residency.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/metrics/prefix_metrics.hpp"
#include "kvscope/metrics/sliding_window.hpp"
#include "kvscope/prefix_cache.hpp"

namespace kvscope {

/// One shard's metrics at one instant: plain values, merged across shards
/// with +=.
/// One KV cache group in a snapshot.
struct KvCacheGroupSnapshot {
  KvCacheGroupConfig config;
  KvCacheGroupStats stats;
};

struct ShardSnapshot {
  Timestamp at{0};
  std::uint32_t shards = 1;                 ///< how many shard snapshots were merged into this one
  PrefixCacheStats total;                   ///< the cache's cumulative counters
  PrefixCacheStats window;                  ///< counted within the time window
  std::chrono::nanoseconds window_span{0};  ///< time the window covers (<= W)
  QueryCounts request_window;               ///< vLLM's last-N-requests window (fresh requests)
  // Gauges.
  std::uint64_t num_blocks = 0;
  std::uint64_t used_blocks = 0;
  std::uint64_t cached_blocks = 0;
  std::uint64_t block_references = 0;
  std::uint64_t live_requests = 0;
  std::uint64_t metrics_memory_bytes = 0;  ///< bytes of metric state
  PrefixSnapshot prefixes;
  std::optional<ResidencySnapshot> residency;  ///< when tracked
  std::optional<MissRatioCurve> miss_ratio;    ///< when MetricsConfig::miss_ratio.enabled
  /// Per KV cache group (hybrid layouts only; empty for one full-attention
  /// group, whose figures are the totals): its spec, blocks and admissions.
  std::vector<KvCacheGroupSnapshot> groups;

  /// used / num_blocks (cached-but-free blocks count as free, like vLLM).
  double usage() const noexcept;
  /// Block references per block in use (1 = no sharing); 0 when none used.
  double sharing_factor() const noexcept;
  /// Blocks evicted per reason (capacity, reset), total and within the window.
  EvictionCounts evictions() const noexcept;
  EvictionCounts window_evictions() const noexcept;
  /// Window evictions per second; 0 for an empty window.
  double window_eviction_rate() const noexcept;

  /// Merges another shard's snapshot (at = the later one; window_span = the
  /// longer). Throws std::invalid_argument on mismatched histogram layouts.
  ShardSnapshot& operator+=(const ShardSnapshot& other);
};

class ShardMetrics {
 public:
  /// Attaches to `cache` (installs the residency tracker when enabled) and
  /// takes the first tick. Throws std::invalid_argument on a bad config
  /// (the cache is left untouched then).
  ShardMetrics(PrefixCache& cache, const MetricsConfig& config = {});
  ~ShardMetrics();
  ShardMetrics(const ShardMetrics&) = delete;
  ShardMetrics& operator=(const ShardMetrics&) = delete;

  /// Tells the metrics about a successful allocate() of `request`; call it
  /// right after the allocate (the miss-ratio curve reads the hashes the
  /// cache just used). O(log K), plus O(blocks) with the miss-ratio curve on.
  void record_admission(const Request& request, const AllocateResult& result);
  /// Tells the metrics that reset() dropped every hash.
  void record_reset();
  /// Moves the time windows to `now`; call at least once per window
  /// resolution (the runtime's aggregator does). O(slots begun).
  void tick(Timestamp now);
  /// Ticks, then collects everything. O(histogram buckets + K + labels).
  ShardSnapshot snapshot(Timestamp now);

  /// Names a tenant in exports (see PrefixMetrics::set_tenant_name).
  void set_tenant_name(const CacheSalt& salt, std::string name);

  const MetricsConfig& config() const noexcept { return config_; }
  /// nullptr when residency tracking is off.
  BlockResidencyTracker* residency() noexcept { return residency_.get(); }
  /// nullptr when the miss-ratio curve is off.
  const StackDistanceTracker* miss_ratio() const noexcept {
    return miss_ratio_ ? &*miss_ratio_ : nullptr;
  }
  /// Bytes of metric state (windows, histograms, tables). O(1).
  std::size_t memory_bytes() const noexcept;

 private:
  PrefixCache* cache_;
  MetricsConfig config_;
  SnapshotWindow<PrefixCacheStats> window_;
  RequestCountWindow request_window_;
  PrefixMetrics prefixes_;
  std::unique_ptr<BlockResidencyTracker> residency_;
  std::optional<StackDistanceTracker> miss_ratio_;
  Timestamp last_tick_{0};
};

/// A PrefixCache with its ShardMetrics wired in: every operation of the
/// cache, recorded. The building block of a runtime shard; also handy for
/// single-threaded embedding. Same thread rules as PrefixCache.
class MeteredPrefixCache {
 public:
  /// Throws std::invalid_argument on a bad cache or metrics config.
  explicit MeteredPrefixCache(const PrefixCacheConfig& cache_config,
                              const MetricsConfig& metrics_config = {});
  // The metrics point at the cache: the pair stays where it was built.
  MeteredPrefixCache(const MeteredPrefixCache&) = delete;
  MeteredPrefixCache& operator=(const MeteredPrefixCache&) = delete;

  Result<LookupResult> lookup(const Request& request) { return cache_.lookup(request); }
  Result<AllocateResult> allocate(const Request& request);
  Result<AppendResult> append(RequestId id, std::span<const TokenId> tokens) {
    return cache_.append(id, tokens);
  }
  Result<AppendResult> append_hashes(RequestId id, std::uint32_t num_new_tokens,
                                     std::span<const BlockHash> new_hashes) {
    return cache_.append_hashes(id, num_new_tokens, new_hashes);
  }
  Result<FreeResult> free(RequestId id, FreeOrder order = FreeOrder::reverse) {
    return cache_.free(id, order);
  }
  Result<void> reset();

  const PrefixCache& cache() const noexcept { return cache_; }
  /// PrefixCache::set_event_log: the cache's KV events go to `log` (nullptr: off).
  void set_event_log(CacheEventLog* log) noexcept { cache_.set_event_log(log); }
  ShardMetrics& metrics() noexcept { return *metrics_; }
  const ShardMetrics& metrics() const noexcept { return *metrics_; }

 private:
  PrefixCache cache_;
  std::unique_ptr<ShardMetrics> metrics_;  // attached to cache_
};

}  // namespace kvscope
