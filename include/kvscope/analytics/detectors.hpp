// kvscope/analytics/detectors.hpp - the built-in cache detectors.
//
// Each reads the interval figures of CacheAnalytics::measure (the
// AnalyticsReport beside the merged snapshot) and reports Findings; the runtime's
// AlertTracker turns them into alerts with hysteresis. Adaptive detectors
// keep one SeriesMonitor per scope (global, and each shard when
// AnalyticsConfig::per_shard). docs/analytics.md explains each one and its
// defaults.
//
// Thread rules: the aggregator's thread (SnapshotDetector's contract).
#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "kvscope/analytics/analytics_config.hpp"
#include "kvscope/analytics/detector.hpp"
#include "kvscope/analytics/series_monitor.hpp"

namespace kvscope {

namespace detail {
/// One SeriesMonitor per scope: index 0 global, i + 1 shard i.
class ScopeMonitors {
 public:
  ScopeMonitors(ShiftSide side, MonitorConfig config) : side_(side), config_(config) {}
  SeriesMonitor& at(std::optional<std::uint32_t> shard);

 private:
  ShiftSide side_;
  MonitorConfig config_;
  std::vector<std::unique_ptr<SeriesMonitor>> monitors_;
};
}  // namespace detail

/// The token hit rate of an interval fell below its learnt level.
class HitRateDropDetector final : public SnapshotDetector {
 public:
  explicit HitRateDropDetector(const AnalyticsConfig& config);
  std::string_view name() const noexcept override { return "hit_rate_drop"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  AnalyticsConfig config_;
  detail::ScopeMonitors monitors_;
};

/// Pool turnover (evictions per second per block) rose above its learnt level.
class EvictionStormDetector final : public SnapshotDetector {
 public:
  explicit EvictionStormDetector(const AnalyticsConfig& config);
  std::string_view name() const noexcept override { return "eviction_storm"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  AnalyticsConfig config_;
  detail::ScopeMonitors monitors_;
};

/// Many misses refault within one capacity (the ghost table's refault
/// distance): a somewhat larger cache would have hit them.
class ThrashingDetector final : public SnapshotDetector {
 public:
  explicit ThrashingDetector(const AnalyticsConfig& config);
  std::string_view name() const noexcept override { return "thrashing"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  struct Sample {
    double misses = 0;          // checked against the ghosts
    double sampled_misses = 0;  // misses x sample rate: the evidence behind refaults
    double refaults = 0;        // estimated, within capacity
  };
  AnalyticsConfig config_;
  std::vector<std::deque<Sample>> spans_;  // index 0 global, i + 1 shard i
};

/// Usage at or above the memory-pressure threshold (warning) and
/// allocations refused for lack of blocks (critical).
class MemoryPressureDetector final : public SnapshotDetector {
 public:
  MemoryPressureDetector(const AnalyticsConfig& config, double usage_threshold);
  std::string_view name() const noexcept override { return "memory_pressure"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  AnalyticsConfig config_;
  double usage_threshold_;
};

/// The p99 of observed lookup latencies rose above its learnt level (judged
/// on a log scale, so the gate is a ratio).
class LatencyRegressionDetector final : public SnapshotDetector {
 public:
  explicit LatencyRegressionDetector(const AnalyticsConfig& config);
  std::string_view name() const noexcept override { return "latency_regression"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  AnalyticsConfig config_;
  detail::ScopeMonitors monitors_;
};

/// The built-ins above, plus (with more than one shard) a ThresholdDetector
/// flagging a shard that does more than min(0.9, 2/S) of an interval's work.
std::vector<std::shared_ptr<SnapshotDetector>> default_detectors(const AnalyticsConfig& config,
                                                                 double usage_threshold,
                                                                 std::uint32_t shards);

}  // namespace kvscope
