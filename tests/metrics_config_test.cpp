// MetricsConfig::validate: the defaults are valid, and each bad field throws
// std::invalid_argument with a message naming that field. Also the default
// export bounds (vLLM's residency bounds, the latency bounds).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/metrics_config.hpp"

namespace kvscope {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

/// The message of the std::invalid_argument validate() throws; "" if it
/// accepts the config; "<other exception>" for any other exception type.
std::string validation_error(const MetricsConfig& c) {
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).empty() ? "<empty message>" : e.what();
  } catch (...) {
    return "<other exception>";
  }
  return "";
}

/// A default config changed by `edit`.
MetricsConfig with(const std::function<void(MetricsConfig&)>& edit) {
  MetricsConfig c;
  edit(c);
  return c;
}

TEST(MetricsConfig, DefaultsValidate) {
  const MetricsConfig c;
  EXPECT_EQ(validation_error(c), "");
  EXPECT_EQ(c.window.window, 60s);
  EXPECT_EQ(c.window.resolution, 1s);
  EXPECT_EQ(c.request_window, 1000u);
  EXPECT_DOUBLE_EQ(c.residency_sample_rate, 1.0);
  EXPECT_DOUBLE_EQ(c.residency_watched_per_second, 1000.0);
  EXPECT_EQ(c.residency_max_watched_blocks, 65536u);
  EXPECT_EQ(c.top_prefixes, 32u);
  EXPECT_EQ(c.max_tenants, 64u);
  EXPECT_EQ(c.max_adapters, 64u);
  EXPECT_EQ(c.hot_reuse_threshold, 2u);
  EXPECT_DOUBLE_EQ(c.memory_pressure_threshold, 0.9);
  EXPECT_EQ(c.residency_bounds_seconds, vllm_residency_bounds_seconds());
  EXPECT_EQ(c.latency_bounds_seconds, default_latency_bounds_seconds());
}

TEST(MetricsConfig, EdgeValuesInsideTheRangesValidate) {
  EXPECT_EQ(validation_error(with([](auto& c) { c.residency_sample_rate = 1.0; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.request_window = 1; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.top_prefixes = 1; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.top_prefixes = 4096; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.max_tenants = 4096; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.max_adapters = 1; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.hot_reuse_threshold = 1; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.memory_pressure_threshold = 1.0; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.eviction_event_capacity = 0; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.ghost_entries = 0; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.residency_bounds_seconds = {0.5}; })), "");
  EXPECT_EQ(validation_error(with([](auto& c) { c.window = {1s, 1s}; })), "");
}

TEST(MetricsConfig, ResidencySampleRateOutsideZeroToOneIsRejected) {
  for (const double bad : {0.0, -0.5, 1.5, kNaN, kInf}) {
    EXPECT_THAT(validation_error(with([&](auto& c) { c.residency_sample_rate = bad; })),
                HasSubstr("residency_sample_rate"))
        << bad;
  }
}

TEST(MetricsConfig, NegativeOrInfiniteWatchedPerSecondIsRejected) {
  EXPECT_EQ(validation_error(with([](auto& c) { c.residency_watched_per_second = 0; })), "");
  for (const double bad : {-1.0, kNaN, kInf}) {
    EXPECT_THAT(validation_error(with([&](auto& c) { c.residency_watched_per_second = bad; })),
                HasSubstr("residency_watched_per_second"))
        << bad;
  }
  EXPECT_THAT(validation_error(with([](auto& c) { c.residency_max_watched_blocks = 0; })),
              HasSubstr("residency_max_watched_blocks"));
}

TEST(MetricsConfig, ZeroRequestWindowIsRejected) {
  EXPECT_THAT(validation_error(with([](auto& c) { c.request_window = 0; })),
              HasSubstr("request_window"));
}

TEST(MetricsConfig, BadTimeWindowIsRejected) {
  // Window smaller than its resolution, zero resolution, not a multiple.
  EXPECT_THAT(validation_error(with([](auto& c) { c.window = {1s, 2s}; })), HasSubstr("window"));
  EXPECT_THAT(validation_error(with([](auto& c) { c.window = {10s, 0s}; })), HasSubstr("window"));
  EXPECT_THAT(validation_error(with([](auto& c) { c.window = {10s, 3s}; })), HasSubstr("window"));
}

TEST(MetricsConfig, TopPrefixesOutsideOneTo4096IsRejected) {
  for (const std::uint32_t bad : {0u, 4097u, 5000u}) {
    EXPECT_THAT(validation_error(with([&](auto& c) { c.top_prefixes = bad; })),
                HasSubstr("top_prefixes"))
        << bad;
  }
}

TEST(MetricsConfig, TenantAndAdapterLimitsOutsideOneTo4096AreRejected) {
  for (const std::uint32_t bad : {0u, 4097u}) {
    EXPECT_THAT(validation_error(with([&](auto& c) { c.max_tenants = bad; })),
                HasSubstr("max_tenants"))
        << bad;
    EXPECT_THAT(validation_error(with([&](auto& c) { c.max_adapters = bad; })),
                HasSubstr("max_adapters"))
        << bad;
  }
}

TEST(MetricsConfig, ZeroHotReuseThresholdIsRejected) {
  EXPECT_THAT(validation_error(with([](auto& c) { c.hot_reuse_threshold = 0; })),
              HasSubstr("hot_reuse_threshold"));
}

TEST(MetricsConfig, ExportBoundsMustBeNonEmptyFinitePositiveAndStrictlyIncreasing) {
  const std::vector<std::vector<double>> bad_bounds = {
      {},           // empty
      {1.0, 1.0},   // not strictly increasing
      {2.0, 1.0},   // decreasing
      {-1.0, 1.0},  // negative
      {0.0, 1.0},   // zero
      {0.5, kNaN},  // NaN
      {kNaN},       // NaN alone
      {0.5, kInf},  // infinite
  };
  for (const auto& bounds : bad_bounds) {
    SCOPED_TRACE(::testing::PrintToString(bounds));
    EXPECT_THAT(validation_error(with([&](auto& c) { c.residency_bounds_seconds = bounds; })),
                HasSubstr("residency_bounds_seconds"));
    EXPECT_THAT(validation_error(with([&](auto& c) { c.latency_bounds_seconds = bounds; })),
                HasSubstr("latency_bounds_seconds"));
  }
}

TEST(MetricsConfig, MemoryPressureThresholdOutsideZeroToOneIsRejected) {
  for (const double bad : {kNaN, 0.0, 1.5, -0.5, kInf}) {
    EXPECT_THAT(validation_error(with([&](auto& c) { c.memory_pressure_threshold = bad; })),
                HasSubstr("memory_pressure_threshold"))
        << bad;
  }
}

TEST(MetricsConfig, BadHistogramLayoutsAreRejected) {
  EXPECT_THAT(validation_error(with([](auto& c) {
                c.latency_layout = {0, 7};
              })),
              HasSubstr("latency_layout"));
  EXPECT_THAT(validation_error(with([](auto& c) {
                c.latency_layout = {1000, 13};
              })),
              HasSubstr("latency_layout"));
  EXPECT_THAT(validation_error(with([](auto& c) {
                c.residency_layout = {1000, 0};
              })),
              HasSubstr("residency_layout"));
  EXPECT_THAT(validation_error(with([](auto& c) {
                c.residency_layout = {0, 7};
              })),
              HasSubstr("residency_layout"));
}

TEST(MetricsConfig, EffectiveClockIsTheSteadyClockUnlessOneIsSet) {
  MetricsConfig c;
  EXPECT_EQ(&c.effective_clock(), &SteadyClock::instance());
  ManualClock manual(3s);
  c.clock = &manual;
  EXPECT_EQ(&c.effective_clock(), &manual);
  EXPECT_EQ(c.effective_clock().now(), 3s);
}

TEST(MetricsConfigBounds, VllmResidencyBoundsAreTheTwentyOneVllmBuckets) {
  const std::vector<double> expected = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                        0.2,   0.5,   1,     2,    5,    10,   20,
                                        30,    60,    120,   300,  600,  1200, 1800};
  const auto bounds = vllm_residency_bounds_seconds();
  ASSERT_EQ(bounds.size(), 21u);
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ(bounds[i], expected[i]) << i;
}

// 1 us .. 10 s in 1 - 2.5 - 5 steps: 1e-6, 2.5e-6, 5e-6, 1e-5, ..., 5, 10.
TEST(MetricsConfigBounds, DefaultLatencyBoundsStepOneTwoAndAHalfFiveFromAMicrosecondToTenSeconds) {
  std::vector<double> expected;
  for (int exponent = -6; exponent <= 0; ++exponent) {
    for (const double mantissa : {1.0, 2.5, 5.0}) {
      expected.push_back(mantissa * std::pow(10.0, exponent));
    }
  }
  expected.push_back(10.0);
  const auto bounds = default_latency_bounds_seconds();
  ASSERT_EQ(bounds.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_DOUBLE_EQ(bounds[i], expected[i]) << i;
}

}  // namespace
}  // namespace kvscope
