// kvscope/analytics/cache_analytics.hpp - the aggregator's analytics pass
// over each merged snapshot: interval figures, trends, capacity advice and
// the performance diagnosis.
//
// The runtime's aggregator calls measure() on every merged snapshot before
// its detectors (which read the interval figures), and diagnose() after the
// alerts are known. Both read the merged snapshot and return their results
// as values; they are usable on their own, e.g. on snapshots replayed from
// a file.
//
// Thread rules: measure() on one thread (it keeps the previous totals and
// the series); the free functions anywhere. Cost per snapshot: O(shards x
// histogram buckets) for the interval figures, O(series x horizon^2) for
// the trends (6 x 60^2 / 2 pairs), O(curve points) for the advice.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/analytics_config.hpp"
#include "kvscope/analytics/report.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/merged_snapshot.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/prefix_cache_stats.hpp"

namespace kvscope {

class CacheAnalytics {
 public:
  /// Throws std::invalid_argument on a bad config.
  explicit CacheAnalytics(AnalyticsConfig config = {});

  /// The interval figures (global and per shard), trends and capacity
  /// advice of `snapshot`, from the difference to the previous measured
  /// snapshot (the first one gets zero-length intervals). The diagnosis is
  /// left empty: diagnose() fills it once the alerts are known.
  AnalyticsReport measure(const MergedSnapshot& snapshot);

  const AnalyticsConfig& config() const noexcept { return config_; }

 private:
  /// Cumulative counters of one scope, kept to difference the next snapshot.
  struct ScopeTotals {
    PrefixCacheStats stats;
    std::uint64_t misses_checked = 0;
    std::uint64_t refaults_within_capacity = 0;
    std::uint64_t sampled_blocks = 0;
    std::uint64_t estimated_allocations = 0;
    std::optional<Histogram> latency;  // all levels' lookup latencies
  };
  struct Series {
    std::string metric;
    double min_change_abs;  // trend gate: the larger of this and...
    double min_change_rel;  // ...this share of the series' median
    std::deque<double> values;
  };
  void extend_series(const IntervalFigures& global);

  AnalyticsConfig config_;
  std::vector<ScopeTotals> previous_;  // index 0 global, i + 1 shard i
  std::vector<Series> series_;
};

/// Advice from a miss-ratio curve: see CapacityAdvice. `measured` is the
/// cache's actual token hit ratio over the same admissions.
CapacityAdvice advise_capacity(const MissRatioCurve& curve, std::optional<double> target,
                               double measured);

/// The performance diagnosis of one snapshot (its figures, the analytics'
/// capacity advice and the alerts now pending or firing): overall vs recent
/// hit rate, breakdowns and issues. The thrashing issue uses `config`'s
/// thrashing bounds.
PerformanceDiagnosis diagnose(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
                              std::span<const CacheAlert> alerts,
                              const AnalyticsConfig& config = {});

}  // namespace kvscope
