// kvscope/runtime/aggregator.hpp - one aggregation round: shard reports in,
// a RuntimeSnapshot out.
//
// The Aggregator owns what must survive between rounds - the sequence, the
// previous round's time and operation counts (for per-interval load), the
// analytics' series (CacheAnalytics), the detectors' baselines and the alert
// hysteresis (AlertTracker) - and nothing else: no threads, no shards, no
// publication. The Runtime visits its shards, hands the reports to merge()
// and publishes the result; tests and offline tools feed it fabricated
// reports directly.
//
// Thread rules: not thread-safe; one thread at a time (the Runtime's
// control thread). Cost per round: O(shards x histogram buckets) to merge,
// plus the analytics' and the detectors' costs (BM_AggregatorAnalytics).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/analytics_config.hpp"
#include "kvscope/analytics/cache_analytics.hpp"
#include "kvscope/analytics/detector.hpp"
#include "kvscope/clock.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

/// What the aggregator takes from one shard in one visit. Counts are
/// cumulative since the shard started.
struct ShardReport {
  ShardSnapshot cache;
  MultiLevelSnapshot levels;
  std::uint64_t operations = 0;            ///< operations run on the shard
  std::uint64_t observations_dropped = 0;  ///< fire-and-forget records its queue dropped
  ServiceTimes service;                    ///< time operations spent on the shard
};

class Aggregator {
 public:
  /// `detectors` run on every round, in order (pass default_detectors() for
  /// the built-in ones; an empty list runs none). Throws
  /// std::invalid_argument on a bad `analytics` config or a null detector.
  Aggregator(AnalyticsConfig analytics, std::vector<std::shared_ptr<SnapshotDetector>> detectors);

  /// One round. `reports[i]` is shard i's; every round must report the same
  /// shards (a different count restarts the interval load figures). `now`
  /// is the metrics clock, `wall_time` the wall clock at the visit. Merges
  /// the reports (global = exact sums), measures the interval
  /// (CacheAnalytics), runs the detectors (an exception from one is counted
  /// in counters.detector_failures and the others still run), updates the
  /// alerts and diagnoses the result. counters.subscriber_* are left 0 for
  /// the publisher to fill.
  RuntimeSnapshot merge(std::vector<ShardReport> reports, Timestamp now,
                        std::chrono::system_clock::time_point wall_time, bool final);

  /// Counts a round that failed before or inside merge() (it published
  /// nothing); later snapshots report it in counters.aggregation_failures.
  void count_failed_round() noexcept { ++aggregation_failures_; }

 private:
  void measure_load(const std::vector<ShardReport>& reports, MergedSnapshot& out);

  std::vector<std::shared_ptr<SnapshotDetector>> detectors_;
  CacheAnalytics analytics_;
  AlertTracker alert_tracker_;
  std::uint64_t sequence_ = 0;
  Timestamp previous_at_{0};
  std::vector<std::uint64_t> previous_operations_;  // index = shard id
  std::uint64_t detector_failures_ = 0;
  std::uint64_t aggregation_failures_ = 0;
};

}  // namespace kvscope
