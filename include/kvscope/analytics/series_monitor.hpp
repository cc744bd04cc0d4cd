// kvscope/analytics/series_monitor.hpp - shift detection on one
// per-interval series (a hit rate, an eviction rate, a latency).
//
// Robust baseline: the level is an EWMA of the series; the scale is
// 1.4826 x the median absolute deviation of the last `scale_window`
// residuals (value - level), floored by the caller's noise floor (for a
// ratio p over n trials, sqrt(p(1-p)/n): a quiet interval with few requests
// must not shrink the scale to nothing) and by `min_scale`.
//
// One-sided CUSUM on the standardised residual z = (level - value) / scale
// for drops (value - level for rises): S = max(0, S + z - k). S >= h_warning
// is a warning, >= h_critical critical (k = 0.5, h = 5 / 8: for normal noise
// the in-control run lengths are ~900 / ~20,000 intervals, and a 2-sigma
// step is found in ~4 intervals). An effect-size gate keeps statistically
// clear but practically tiny shifts quiet: the mean of the last
// `effect_window` values must differ from the level by at least
// max(min_effect_sigmas x scale, min_effect).
//
// While S is at or above h_warning the baseline is frozen, so a shift is not
// learnt away while it is being reported; a shift that lasts
// `adapt_after` intervals becomes the new normal (level := recent mean,
// S := 0).
//
// Thread rules: single thread. Cost: O(scale_window) per observe (two
// nth_element passes over <= 60 values).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "kvscope/analytics/alerts.hpp"

namespace kvscope {

enum class ShiftSide : std::uint8_t { drop, rise };

struct MonitorConfig {
  double ewma_alpha = 0.05;         ///< level smoothing per interval; (0, 1]
  std::uint32_t scale_window = 60;  ///< residuals behind the MAD scale; >= 5
  std::uint32_t warmup = 20;        ///< observations before any verdict; >= 5
  double cusum_k = 0.5;             ///< allowance, in scale units; >= 0
  double h_warning = 5;             ///< CUSUM decision bound of a warning; > 0
  double h_critical = 8;            ///< ... of a critical alert; >= h_warning
  double min_effect_sigmas = 1.0;   ///< effect gate in scale units; >= 0
  double min_effect = 0;            ///< effect gate in the series' unit; >= 0
  std::uint32_t effect_window = 5;  ///< recent values the gate averages; >= 1
  std::uint32_t adapt_after = 120;  ///< intervals a shift lasts before it is the new normal; >= 1
  double min_scale = 1e-9;          ///< scale floor in the series' unit; > 0

  /// Throws std::invalid_argument naming the bad field (non-finite values too).
  void validate() const;
};

struct MonitorVerdict {
  std::optional<AlertLevel> level;  ///< warning or critical while a gated shift is detected
  bool warming_up = true;           ///< too few observations to judge
  double value = 0;
  double baseline = 0;   ///< the level before this observation
  double scale = 0;      ///< the scale used
  double cusum = 0;      ///< S after this observation
  double effect = 0;     ///< recent mean's distance from the baseline, signed towards the side
  double threshold = 0;  ///< the value bound of the effect gate (baseline -/+ gate)
};

class SeriesMonitor {
 public:
  /// Throws std::invalid_argument on a bad config.
  explicit SeriesMonitor(ShiftSide side, MonitorConfig config = {});

  /// Judges `value` against the baseline, then learns from it (unless a
  /// shift is being reported). Non-finite values are ignored (returns the
  /// previous verdict's state with no level). `noise_floor` >= 0, in the
  /// series' unit.
  MonitorVerdict observe(double value, double noise_floor = 0);

  std::uint64_t observations() const noexcept { return observations_; }
  double baseline() const noexcept { return level_; }
  const MonitorConfig& config() const noexcept { return config_; }

 private:
  double mad_scale() const;
  void learn(double value);
  void rebaseline();

  ShiftSide side_;
  MonitorConfig config_;
  std::uint64_t observations_ = 0;
  double level_ = 0;
  double cusum_ = 0;
  std::uint32_t shifted_for_ = 0;  // consecutive observations with S >= h_warning
  std::deque<double> residuals_;   // last scale_window residuals
  std::deque<double> recent_;      // last effect_window values
};

}  // namespace kvscope
