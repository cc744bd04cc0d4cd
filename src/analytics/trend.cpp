#include "kvscope/analytics/trend.hpp"

#include "analytics/median.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvscope {

std::string_view to_string(TrendDirection direction) noexcept {
  switch (direction) {
    case TrendDirection::stable: return "stable";
    case TrendDirection::rising: return "rising";
    case TrendDirection::falling: return "falling";
  }
  return "unknown";
}

void TrendConfig::validate() const {
  auto bad = [](const std::string& what) {
    throw std::invalid_argument("kvscope: TrendConfig." + what);
  };
  if (min_points < 4) bad("min_points must be >= 4, got " + std::to_string(min_points));
  if (horizon < min_points)
    bad("horizon must be >= min_points (" + std::to_string(min_points) + "), got " +
        std::to_string(horizon));
  if (!(significance > 0 && significance < 1))
    bad("significance must be in (0, 1), got " + std::to_string(significance));
}

namespace {

/// Points as (index, value): skipped non-finite values keep the x spacing.
struct Point {
  double x;
  double y;
};

std::vector<Point> finite_points(std::span<const double> series, std::size_t horizon) {
  const std::size_t first = series.size() > horizon ? series.size() - horizon : 0;
  std::vector<Point> points;
  points.reserve(series.size() - first);
  for (std::size_t i = first; i < series.size(); ++i)
    if (std::isfinite(series[i])) points.push_back({static_cast<double>(i - first), series[i]});
  return points;
}

/// Var(S) under no trend, corrected for groups of tied values.
double kendall_variance(std::vector<double> values) {
  const double n = static_cast<double>(values.size());
  double variance = n * (n - 1) * (2 * n + 5);
  std::sort(values.begin(), values.end());
  for (std::size_t i = 0; i < values.size();) {
    std::size_t j = i;
    while (j < values.size() && values[j] == values[i]) ++j;
    const double t = static_cast<double>(j - i);
    variance -= t * (t - 1) * (2 * t + 5);
    i = j;
  }
  return variance / 18;
}

}  // namespace

Trend analyze_trend(std::span<const double> series, const TrendConfig& config, double min_change) {
  const std::vector<Point> points = finite_points(series, config.horizon);
  Trend trend;
  trend.points = points.size();
  if (points.size() < config.min_points) return trend;

  std::vector<double> slopes;
  slopes.reserve(points.size() * (points.size() - 1) / 2);
  double s = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    for (std::size_t j = i + 1; j < points.size(); ++j) {
      const double dy = points[j].y - points[i].y;
      slopes.push_back(dy / (points[j].x - points[i].x));
      s += static_cast<double>((dy > 0) - (dy < 0));
    }
  }
  trend.slope = detail::median_in_place(slopes);
  trend.change = trend.slope * (points.back().x - points.front().x);
  trend.kendall_s = s;

  std::vector<double> values(points.size());
  std::transform(points.begin(), points.end(), values.begin(), [](Point p) { return p.y; });
  const double variance = kendall_variance(std::move(values));
  if (variance > 0 && s != 0) trend.z = (s - (s > 0 ? 1 : -1)) / std::sqrt(variance);
  trend.p_value = std::erfc(std::abs(trend.z) / std::sqrt(2.0));
  trend.confidence = 1 - trend.p_value;

  const bool significant = trend.p_value < config.significance;
  if (significant && trend.change >= min_change && trend.z > 0)
    trend.direction = TrendDirection::rising;
  else if (significant && -trend.change >= min_change && trend.z < 0)
    trend.direction = TrendDirection::falling;
  return trend;
}

}  // namespace kvscope
