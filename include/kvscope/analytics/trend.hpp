// kvscope/analytics/trend.hpp - slow drift in a per-interval series:
// Theil-Sen slope with Mann-Kendall significance.
//
// Both are rank-based, so one outlier interval neither fakes nor hides a
// trend: Theil-Sen's slope is the median of the slopes of every pair of
// points (breakdown point 29%), Mann-Kendall counts how many pairs rise
// minus how many fall and asks how likely that count is for a series with
// no trend (normal approximation with the tie correction; fine from ~10
// points). A series is rising or falling only when the test is significant
// AND the fitted change over the horizon is at least `min_change` (in the
// series' unit): a significant but tiny drift is reported as stable.
//
// Pure functions; any thread. Cost: O(n^2) time and memory for n points
// (n = 60 -> 1,770 pairs, a few microseconds).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace kvscope {

enum class TrendDirection : std::uint8_t { stable, rising, falling };
std::string_view to_string(TrendDirection direction) noexcept;

struct TrendConfig {
  /// Points (intervals) the analysis looks back over; >= min_points.
  std::size_t horizon = 60;
  /// Fewer points than this: always stable with confidence 0; >= 4.
  std::size_t min_points = 10;
  /// Two-sided p-value below which the Mann-Kendall test is significant; (0, 1).
  double significance = 0.01;

  /// Throws std::invalid_argument naming the bad field.
  void validate() const;
};

struct Trend {
  TrendDirection direction = TrendDirection::stable;
  std::size_t points = 0;  ///< points analysed
  double slope = 0;        ///< Theil-Sen slope, series unit per interval
  double change = 0;       ///< slope x (points - 1): the fitted change over the span
  double kendall_s = 0;    ///< Mann-Kendall S: rising pairs - falling pairs
  double z = 0;            ///< S's normal score (continuity-corrected)
  double p_value = 1;      ///< two-sided
  /// 1 - p_value: how sure the test is that the series is not trendless.
  double confidence = 0;
};

/// Analyses the last `config.horizon` values of `series` (oldest first).
/// Non-finite values are skipped. Precondition: config.validate() passes
/// (not rechecked here: this runs on every snapshot).
Trend analyze_trend(std::span<const double> series, const TrendConfig& config, double min_change);

}  // namespace kvscope
