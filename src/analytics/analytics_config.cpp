#include "kvscope/analytics/analytics_config.hpp"

#include <fmt/core.h>

#include <cmath>
#include <stdexcept>
#include <string>

namespace kvscope {

void AnalyticsConfig::validate() const {
  auto bad = [](const std::string& what) {
    throw std::invalid_argument("kvscope: AnalyticsConfig." + what);
  };
  auto nested = [&](const char* field, auto&& check) {
    try {
      check();
    } catch (const std::invalid_argument& e) {
      bad(std::string(field) + ": " + e.what());
    }
  };
  nested("trend", [&] { trend.validate(); });
  nested("monitor", [&] { monitor.validate(); });
  nested("alerts", [&] { alerts.validate(); });
  auto in = [&](const char* field, double value, double lo, double hi) {
    if (!(std::isfinite(value) && value >= lo && value <= hi))
      bad(fmt::format("{} must be in [{}, {}], got {}", field, lo, hi, value));
  };
  in("hit_rate_min_drop", hit_rate_min_drop, 0, 1);
  in("eviction_storm_min_turnover", eviction_storm_min_turnover, 0, 1e12);
  in("thrashing_warning", thrashing_warning, 1e-9, 1);
  in("thrashing_critical", thrashing_critical, thrashing_warning, 1);
  if (thrashing_span < 1) bad("thrashing_span must be >= 1, got 0");
  in("thrashing_min_sampled_misses", thrashing_min_sampled_misses, 1, 1e12);
  in("latency_min_ratio", latency_min_ratio, 1, 1e6);
  if (target_hit_ratio) in("target_hit_ratio", *target_hit_ratio, 1e-9, 1);
}

}  // namespace kvscope
