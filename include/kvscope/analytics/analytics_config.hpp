// kvscope/analytics/analytics_config.hpp - settings of the runtime's
// analytics: trends, shift detection, alert hysteresis, detector bounds and
// capacity advice. Every field has a default (docs/analytics.md explains
// each); validate() throws std::invalid_argument naming the bad field.
#pragma once

#include <cstdint>
#include <optional>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/series_monitor.hpp"
#include "kvscope/analytics/trend.hpp"

namespace kvscope {

struct AnalyticsConfig {
  TrendConfig trend{};
  /// Shift detection shared by the adaptive detectors (each adds its own
  /// effect-size floor below).
  MonitorConfig monitor{};
  AlertPolicy alerts{};
  /// Run the detectors per shard as well as on the global figures.
  bool per_shard = true;

  // ---- hit-rate drop ----
  /// Intervals with fewer admissions are not judged.
  std::uint64_t min_interval_requests = 20;
  /// Smallest drop of the token hit rate worth an alert (absolute); [0, 1].
  double hit_rate_min_drop = 0.02;

  // ---- eviction storm ----
  /// Smallest rise of pool turnover (evictions per second / blocks) worth an alert; >= 0.
  double eviction_storm_min_turnover = 0.02;

  // ---- thrashing ----
  /// Share of misses that refaulted within one capacity: warning and
  /// critical bounds; 0 < warning <= critical <= 1.
  double thrashing_warning = 0.25;
  double thrashing_critical = 0.5;
  /// Intervals pooled for the estimate (refaults are sampled); >= 1.
  std::uint32_t thrashing_span = 10;
  /// Sampled misses (misses x sample rate) the span needs before judging; >= 1.
  double thrashing_min_sampled_misses = 20;

  // ---- latency regression ----
  /// Intervals with fewer observed lookup latencies are not judged.
  std::uint64_t latency_min_samples = 50;
  /// Smallest p99 rise worth an alert, as a ratio to the baseline; >= 1.
  double latency_min_ratio = 1.5;

  // ---- capacity advice ----
  /// Hit ratio (tokens) the advice sizes for; nullopt: 95% of the best the
  /// curve reaches. In (0, 1].
  std::optional<double> target_hit_ratio{};

  void validate() const;
};

}  // namespace kvscope
