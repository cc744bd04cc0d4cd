#include "kvscope/metrics/metrics_config.hpp"

#include <cmath>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace kvscope {
namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("kvscope: MetricsConfig." + what);
}

void check_bounds(const char* field, const std::vector<double>& bounds) {
  if (bounds.empty()) bad(fmt::format("{} must not be empty", field));
  double previous = 0.0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    const double b = bounds[i];
    if (!std::isfinite(b) || b <= 0.0) {
      bad(fmt::format("{}[{}] must be finite and > 0, got {}", field, i, b));
    }
    if (i > 0 && b <= previous) {
      bad(fmt::format("{} must be strictly increasing, got {} after {}", field, b, previous));
    }
    previous = b;
  }
}

// "field: <the nested message without its kvscope: prefix>".
[[noreturn]] void bad_nested(const char* field, const std::invalid_argument& e) {
  std::string_view what = e.what();
  if (what.starts_with("kvscope: ")) what.remove_prefix(9);
  bad(fmt::format("{}: {}", field, what));
}

void check_count(const char* field, std::uint64_t value, std::uint64_t low, std::uint64_t high) {
  if (value < low || value > high) {
    bad(fmt::format("{} must be in [{}, {}], got {}", field, low, high, value));
  }
}

}  // namespace

std::vector<double> vllm_residency_bounds_seconds() {
  return {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,  1,   2,
          5,     10,    20,    30,   60,   120,  300, 600, 1200, 1800};
}

std::vector<double> default_latency_bounds_seconds() {
  std::vector<double> bounds;
  for (double decade = 1e-6; decade < 10.0; decade *= 10.0) {
    for (const double step : {1.0, 2.5, 5.0}) bounds.push_back(decade * step);
  }
  bounds.push_back(10.0);
  return bounds;
}

void MetricsConfig::validate() const {
  try {
    window.validate();
  } catch (const std::invalid_argument& e) {
    bad_nested("window", e);
  }
  check_count("request_window", request_window, 1, UINT64_MAX);
  try {
    miss_ratio.validate();
  } catch (const std::invalid_argument& e) {
    bad_nested("miss_ratio", e);
  }
  if (!(residency_sample_rate > 0.0 && residency_sample_rate <= 1.0)) {
    bad(fmt::format("residency_sample_rate must be in (0, 1], got {}", residency_sample_rate));
  }
  if (!(residency_watched_per_second >= 0.0 && std::isfinite(residency_watched_per_second))) {
    bad(fmt::format("residency_watched_per_second must be finite and >= 0, got {}",
                    residency_watched_per_second));
  }
  check_count("residency_max_watched_blocks", residency_max_watched_blocks, 1, UINT32_MAX);
  check_count("hot_reuse_threshold", hot_reuse_threshold, 1, UINT32_MAX);
  check_count("top_prefixes", top_prefixes, 1, 4096);
  check_count("max_tenants", max_tenants, 1, 4096);
  check_count("max_adapters", max_adapters, 1, 4096);
  for (const auto& [field, layout] :
       {std::pair{"latency_layout", latency_layout}, {"residency_layout", residency_layout}}) {
    try {
      layout.validate();
    } catch (const std::invalid_argument& e) {
      bad_nested(field, e);
    }
  }
  check_bounds("residency_bounds_seconds", residency_bounds_seconds);
  check_bounds("latency_bounds_seconds", latency_bounds_seconds);
  if (!(memory_pressure_threshold > 0.0 && memory_pressure_threshold <= 1.0)) {
    bad(fmt::format("memory_pressure_threshold must be in (0, 1], got {}",
                    memory_pressure_threshold));
  }
}

const Clock& MetricsConfig::effective_clock() const noexcept {
  return clock != nullptr ? *clock : SteadyClock::instance();
}

}  // namespace kvscope
