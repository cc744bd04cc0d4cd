#include "kvscope/analytics/series_monitor.hpp"

#include "analytics/median.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace kvscope {

void MonitorConfig::validate() const {
  auto check = [](bool ok, const char* field, double value) {
    if (!ok)
      throw std::invalid_argument(std::string("kvscope: MonitorConfig.") + field +
                                  " is out of range: " + std::to_string(value));
  };
  check(std::isfinite(ewma_alpha) && ewma_alpha > 0 && ewma_alpha <= 1, "ewma_alpha (0, 1]",
        ewma_alpha);
  check(scale_window >= 5, "scale_window (>= 5)", scale_window);
  check(warmup >= 5, "warmup (>= 5)", warmup);
  check(std::isfinite(cusum_k) && cusum_k >= 0, "cusum_k (>= 0)", cusum_k);
  check(std::isfinite(h_warning) && h_warning > 0, "h_warning (> 0)", h_warning);
  check(std::isfinite(h_critical) && h_critical >= h_warning, "h_critical (>= h_warning)",
        h_critical);
  check(std::isfinite(min_effect_sigmas) && min_effect_sigmas >= 0, "min_effect_sigmas (>= 0)",
        min_effect_sigmas);
  check(std::isfinite(min_effect) && min_effect >= 0, "min_effect (>= 0)", min_effect);
  check(effect_window >= 1, "effect_window (>= 1)", effect_window);
  check(adapt_after >= 1, "adapt_after (>= 1)", adapt_after);
  check(std::isfinite(min_scale) && min_scale > 0, "min_scale (> 0)", min_scale);
}

SeriesMonitor::SeriesMonitor(ShiftSide side, MonitorConfig config) : side_(side), config_(config) {
  config_.validate();
}

double SeriesMonitor::mad_scale() const {
  std::vector<double> values(residuals_.begin(), residuals_.end());
  const double center = detail::median_in_place(values);
  for (double& v : values) v = std::abs(v - center);
  return 1.4826 * detail::median_in_place(values);
}

void SeriesMonitor::learn(double value) {
  // Warm-up: the running mean (no bias towards the first value); then EWMA.
  const double alpha = std::max(
      config_.ewma_alpha, 1.0 / static_cast<double>(std::max<std::uint64_t>(observations_, 1)));
  level_ += alpha * (value - level_);
}

void SeriesMonitor::rebaseline() {
  level_ =
      std::accumulate(recent_.begin(), recent_.end(), 0.0) / static_cast<double>(recent_.size());
  cusum_ = 0;
  shifted_for_ = 0;
  // The residuals (frozen since the shift began) still describe the noise.
}

MonitorVerdict SeriesMonitor::observe(double value, double noise_floor) {
  MonitorVerdict verdict;
  verdict.value = value;
  verdict.baseline = level_;
  verdict.cusum = cusum_;
  if (!std::isfinite(value)) {
    verdict.warming_up = observations_ < config_.warmup;
    return verdict;
  }
  ++observations_;
  if (observations_ == 1) level_ = value;
  const double residual = value - level_;
  recent_.push_back(value);
  if (recent_.size() > config_.effect_window) recent_.pop_front();

  const bool judging = observations_ > config_.warmup;
  verdict.warming_up = !judging;
  double scale = std::max(config_.min_scale, std::isfinite(noise_floor) ? noise_floor : 0.0);
  if (residuals_.size() >= 5) scale = std::max(scale, mad_scale());
  verdict.scale = scale;

  const double toward = side_ == ShiftSide::drop ? -1.0 : 1.0;  // sign of a shift we report
  if (judging) {
    cusum_ = std::max(0.0, cusum_ + toward * residual / scale - config_.cusum_k);
    const double recent_mean =
        std::accumulate(recent_.begin(), recent_.end(), 0.0) / static_cast<double>(recent_.size());
    const double gate = std::max(config_.min_effect_sigmas * scale, config_.min_effect);
    verdict.effect = toward * (recent_mean - level_);
    verdict.threshold = level_ + toward * gate;
    verdict.cusum = cusum_;
    if (cusum_ >= config_.h_warning && verdict.effect >= gate)
      verdict.level = cusum_ >= config_.h_critical ? AlertLevel::critical : AlertLevel::warning;
  }

  if (judging && cusum_ >= config_.h_warning) {
    if (++shifted_for_ >= config_.adapt_after) rebaseline();
    return verdict;  // frozen: do not learn the shift being reported
  }
  shifted_for_ = 0;
  residuals_.push_back(residual);
  if (residuals_.size() > config_.scale_window) residuals_.pop_front();
  learn(value);
  return verdict;
}

}  // namespace kvscope
