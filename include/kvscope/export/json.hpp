// kvscope/export/json.hpp - JSON of every snapshot type, the export floor.
//
// Free functions over the plain values below this floor (metrics,
// analytics, runtime): each returns one compact JSON document. Key sets are
// listed per function; docs/metrics.md and docs/analytics.md explain each
// figure. Durations are seconds ("..._s") or nanoseconds ("..._ns") as the
// key says; hashes are 32 lowercase hex digits.
//
// Thread rules: pure functions of their argument; any thread. Cost: linear
// in the value's size (a histogram's quantiles walk its buckets).
#pragma once

#include <span>
#include <string>

#include "kvscope/metrics/block_residency.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/prefix_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/prefix_cache_stats.hpp"
#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

/// {"count", "sum", "mean", "min", "max", "p50", "p90", "p99", "p999", "overflow"}.
std::string to_json(const Histogram& h);
/// The fresh counts {"requests", "queries", "hits", "query_blocks",
/// "hit_blocks", "hit_rate", "block_hit_rate"} plus {"preempted", "probes"}
/// (the same keys each), "allocation_failures", "evictions", "resets",
/// "reset_evictions", "verification_failures".
std::string to_json(const PrefixCacheStats& stats);
/// {"type", "total", "window", "window_seconds", "hit_rate", "window_hit_rate",
///  "window_eviction_rate", "latency_ns", "window_latency_ns", "resident_bytes",
///  "capacity_bytes", "memory_efficiency", "memory_pressure"}.
std::string to_json(const CachingSnapshot& snapshot);
/// {"levels": {name: CachingSnapshot}, "requests", "served", "combined_hit_rate",
///  "window_requests", "window_served", "window_combined_hit_rate",
///  "served_by": {name: n}, "memory_pressure"}.
std::string to_json(const MultiLevelSnapshot& snapshot);
/// {"top_prefixes": [{"prefix", "prefix_blocks", "hits", "error",
///  "hit_tokens"}], "hit_length_tokens": {...}, "stops": {...},
///  "too_short_share", "tenants": {...}, "adapters": {...}}.
std::string to_json(const PrefixSnapshot& snapshot);
/// {"sample_rate", "lifetime_ns", "idle_ns", "idle_since_free_ns",
///  "reuse_gap_ns", "reuse_count", "refault_distance", shares and counts}.
std::string to_json(const ResidencySnapshot& snapshot);
/// {"at_s", "shards", "total", "window", "window_seconds", "request_window",
///  block counts, "usage", "sharing_factor", "evictions", "window_evictions",
///  "window_eviction_rate", "metrics_memory_bytes", "prefixes", "residency"
///  (null when off), "miss_ratio_curve" (null when off)}.
std::string to_json(const ShardSnapshot& snapshot);
/// {"capacity_blocks", "bound_blocks", "requests", "references", "tokens",
///  "shards", "touch_order", "has_aet", "points": [{"multiple",
///  "capacity_blocks", "prefix_hit_blocks", "any_hit_blocks",
///  "prefix_hit_tokens", "block_hit_ratio", "token_hit_ratio",
///  "any_hit_ratio", "aet_hit_ratio" (AET only)}]}.
std::string to_json(const MissRatioCurve& curve);
/// {"detector", "metric", "level", "state", "shard" (null = global), "value",
///  "baseline", "threshold", "started_ns", "started_wall_ms", "fired_ns",
///  "resolved_ns", "intervals", "message"}.
std::string to_json(const CacheAlert& alert);
/// {"sequence", "at_s", "wall_time_ms", "interval_s", "final", "global",
///  "shards": [...], "levels", "shard_levels": [...], "load": [...],
///  "load_imbalance", "alerts": [...], "alert_events": [...], "analytics",
///  "counters"}.
std::string to_json(const RuntimeSnapshot& snapshot);

/// Eviction events (BlockResidencyTracker::recent_events()) as a JSON array
/// of {"block", "hash", "reason", "at_s", "lifetime_s", "idle_s",
/// "idle_since_free_s", "hits", "reuse_gaps_s"}.
std::string eviction_events_json(std::span<const EvictionEvent> events);
/// The same as CSV with a header line; reuse gaps joined by ';'.
std::string eviction_events_csv(std::span<const EvictionEvent> events);

}  // namespace kvscope
