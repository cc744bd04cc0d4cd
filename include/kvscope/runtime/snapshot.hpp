// kvscope/runtime/snapshot.hpp - what the runtime's aggregator publishes.
//
// A RuntimeSnapshot is immutable once published and shared by pointer
// (std::shared_ptr<const RuntimeSnapshot>): readers on any thread may keep
// it as long as they like. Global figures are exact sums of the per-shard
// ones (ShardSnapshot::operator+=, MultiLevelSnapshot::operator+=).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/report.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"

namespace kvscope {

/// How busy one shard was: the routing's skew shows here.
struct ShardLoad {
  std::uint64_t operations = 0;      ///< operations run on the shard since start
  double operations_per_second = 0;  ///< over the last snapshot interval
  /// Share of all shards' operations in the last interval (1/S when even).
  double share = 0;
  std::uint64_t observations_dropped = 0;  ///< fire-and-forget records its queue dropped
};

/// The runtime's own health counters, cumulative since start.
struct RuntimeCounters {
  std::uint64_t subscriber_failures = 0;   ///< subscriber callbacks that threw
  std::uint64_t subscriber_skipped = 0;    ///< snapshots a busy subscriber never saw
  std::uint64_t detector_failures = 0;     ///< detector calls that threw
  std::uint64_t aggregation_failures = 0;  ///< aggregation rounds that threw (skipped)
  std::uint64_t observations_dropped = 0;  ///< fire-and-forget records dropped, all shards
};

struct RuntimeSnapshot {
  std::uint64_t sequence = 0;  ///< 1, 2, ... in publication order
  Timestamp at{0};             ///< the metrics clock when taken
  std::chrono::system_clock::time_point wall_time{};
  std::chrono::nanoseconds interval{0};  ///< since the previous snapshot (0 for the first)
  bool final = false;                    ///< published by stop(): no more will follow

  ShardSnapshot global;                          ///< sum of `shards`
  std::vector<ShardSnapshot> shards;             ///< index = shard id
  MultiLevelSnapshot levels;                     ///< observed cache levels, sum of `shard_levels`
  std::vector<MultiLevelSnapshot> shard_levels;  ///< index = shard id
  std::vector<ShardLoad> load;                   ///< index = shard id
  /// Pending and firing alerts, and those resolved at this snapshot
  /// (AlertTracker::current(), after the hysteresis).
  std::vector<CacheAlert> alerts;
  /// What changed at this snapshot: alerts fired, changed level or resolved.
  std::vector<AlertTransition> alert_events;
  AnalyticsReport analytics;  ///< interval figures, trends, capacity advice, diagnosis
  RuntimeCounters counters;

  /// Largest shard share times the shard count: 1 = perfectly even, S = one
  /// shard did everything. 0 when nothing ran in the interval.
  double load_imbalance() const noexcept;

  /// {"sequence", "at_ns", "wall_time_ms", "interval_ns", "final", "global",
  ///  "shards": [...], "levels", "shard_levels": [...], "load": [...],
  ///  "load_imbalance", "alerts": [...], "alert_events": [...], "analytics",
  ///  "counters"}.
  std::string to_json() const;
  /// Prometheus 0.0.4 text: every shard's families with shard="i", the
  /// levels, kvscope_runtime_* and kvscope_analytics_* families
  /// (docs/metrics.md).
  std::string to_prometheus(const MetricsConfig& config = {}) const;
};

}  // namespace kvscope
