// Trends, shift detection and alert hysteresis on synthetic series with
// fixed seeds: the detectors' statistical promises, measured.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/series_monitor.hpp"
#include "kvscope/analytics/trend.hpp"
#include "kvscope/export/json.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;

std::vector<double> ramp(std::size_t n, double start, double step, double noise, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0, noise);
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = start + step * static_cast<double>(i) + gauss(rng);
  return out;
}

TEST(Trend, RisingRampIsRisingWithHighConfidence) {
  const auto series = ramp(60, 0.5, 0.002, 0.01, 1);
  const Trend t = analyze_trend(series, TrendConfig{}, 0.02);
  EXPECT_EQ(t.direction, TrendDirection::rising);
  EXPECT_NEAR(t.slope, 0.002, 0.0007);
  EXPECT_GT(t.confidence, 0.99);
  EXPECT_EQ(t.points, 60u);
}

TEST(Trend, FallingRampIsFalling) {
  const auto series = ramp(60, 0.8, -0.003, 0.01, 2);
  const Trend t = analyze_trend(series, TrendConfig{}, 0.02);
  EXPECT_EQ(t.direction, TrendDirection::falling);
  EXPECT_LT(t.change, -0.1);
}

TEST(Trend, FlatNoiseIsStableAcrossSeeds) {
  int trending = 0;
  for (unsigned seed = 0; seed < 200; ++seed) {
    const Trend t = analyze_trend(ramp(60, 0.5, 0, 0.02, seed), TrendConfig{}, 0.0);
    if (t.direction != TrendDirection::stable) ++trending;
  }
  // significance 0.01, two-sided: ~2 of 200 expected by chance.
  EXPECT_LE(trending, 8);
}

TEST(Trend, SignificantButTinyDriftIsStable) {
  const auto series = ramp(60, 0.5, 0.0001, 0.00001, 3);  // change 0.006 over the horizon
  const Trend t = analyze_trend(series, TrendConfig{}, 0.02);
  EXPECT_LT(t.p_value, 0.01);
  EXPECT_EQ(t.direction, TrendDirection::stable);
}

TEST(Trend, OneOutlierDoesNotMakeATrend) {
  auto series = ramp(60, 0.5, 0, 0.005, 4);
  series[59] = 5.0;
  const Trend t = analyze_trend(series, TrendConfig{}, 0.02);
  EXPECT_EQ(t.direction, TrendDirection::stable);
  EXPECT_LT(std::abs(t.slope), 0.001);
}

TEST(Trend, TooFewPointsIsStableWithNoConfidence) {
  const std::vector<double> series{1, 2, 3, 4, 5};
  const Trend t = analyze_trend(series, TrendConfig{}, 0);
  EXPECT_EQ(t.direction, TrendDirection::stable);
  EXPECT_EQ(t.confidence, 0);
}

TEST(Trend, UsesOnlyTheHorizonAndSkipsNonFiniteValues) {
  std::vector<double> series = ramp(100, 10, -0.1, 0.001, 5);  // falling...
  const auto rise = ramp(30, 0, 0.1, 0.001, 6);                // ...then rising
  series.insert(series.end(), rise.begin(), rise.end());
  series[120] = std::nan("");
  TrendConfig config;
  config.horizon = 30;
  const Trend t = analyze_trend(series, config, 0.5);
  EXPECT_EQ(t.direction, TrendDirection::rising);
  EXPECT_EQ(t.points, 29u);
}

TEST(Trend, ConfigIsValidated) {
  TrendConfig c;
  c.min_points = 3;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = {};
  c.horizon = 5;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = {};
  c.significance = 1;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

// A hit-rate-like series: binomial successes of n trials at p, as a ratio,
// with the binomial noise floor the runtime passes.
struct RatioSource {
  std::mt19937_64 rng;
  std::uint32_t trials;
  double next(double p) {
    return std::binomial_distribution<std::uint32_t>(trials, p)(rng) / double(trials);
  }
  double floor(double p) const { return std::sqrt(p * (1 - p) / trials); }
};

/// Monitor + tracker over `values`; returns the interval of each "fired".
std::vector<std::size_t> fired_at(const std::vector<double>& values, double noise_floor,
                                  ShiftSide side = ShiftSide::drop) {
  SeriesMonitor monitor(side);
  AlertTracker tracker;
  std::vector<std::size_t> fired;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const MonitorVerdict v = monitor.observe(values[i], noise_floor);
    std::vector<Finding> findings;
    if (v.level) findings.push_back({.detector = "d", .metric = "m", .level = *v.level});
    for (const auto& t : tracker.update(findings, Timestamp(std::chrono::seconds(i)), {}))
      if (t.kind == AlertTransition::Kind::fired) fired.push_back(i);
  }
  return fired;
}

TEST(SeriesMonitor, StationaryNoiseRaisesAtMostOneWarningPerThousandIntervals) {
  constexpr std::size_t kIntervals = 20'000;
  std::size_t fired = 0, intervals = 0;
  for (unsigned seed = 1; seed <= 10; ++seed) {
    RatioSource source{std::mt19937_64(seed), 400};
    std::vector<double> values(kIntervals);
    for (double& v : values) v = source.next(0.6);
    fired += fired_at(values, source.floor(0.6)).size();
    intervals += kIntervals;
  }
  const double per_thousand = 1000.0 * static_cast<double>(fired) / static_cast<double>(intervals);
  RecordProperty("false_alarms_per_1000_intervals", std::to_string(per_thousand));
  EXPECT_LE(per_thousand, 1.0) << fired << " alerts fired in " << intervals << " intervals";
}

TEST(SeriesMonitor, GaussianNoiseWithoutAFloorAlsoStaysQuiet) {
  std::size_t fired = 0;
  for (unsigned seed = 1; seed <= 10; ++seed)
    fired += fired_at(ramp(20'000, 100, 0, 3, seed), 0, ShiftSide::rise).size();
  EXPECT_LE(fired, 200u);  // <= 1 per 1,000 of 200,000 intervals
}

TEST(SeriesMonitor, TwoSigmaStepDropIsDetectedWithinFifteenIntervals) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    RatioSource source{std::mt19937_64(100 + seed), 400};
    const double sigma = source.floor(0.6);
    std::vector<double> values;
    for (int i = 0; i < 300; ++i) values.push_back(source.next(0.6));
    for (int i = 0; i < 30; ++i) values.push_back(source.next(0.6 - 2 * sigma));
    const auto fired = fired_at(values, sigma);
    ASSERT_FALSE(fired.empty()) << "seed " << seed;
    // A false alarm before the step would not count as detection.
    const auto first_after =
        std::find_if(fired.begin(), fired.end(), [](auto i) { return i >= 300; });
    ASSERT_NE(first_after, fired.end()) << "seed " << seed;
    EXPECT_LT(*first_after - 300, 15u) << "seed " << seed;
  }
}

TEST(SeriesMonitor, ReportsBaselineScaleAndGate) {
  SeriesMonitor monitor(ShiftSide::drop, MonitorConfig{.min_effect = 0.05});
  for (int i = 0; i < 100; ++i) (void)monitor.observe(0.5 + (i % 2 ? 0.01 : -0.01));
  const MonitorVerdict v = monitor.observe(0.2);
  EXPECT_FALSE(v.warming_up);
  EXPECT_NEAR(v.baseline, 0.5, 0.01);
  EXPECT_GT(v.scale, 0);
  EXPECT_NEAR(v.threshold, v.baseline - std::max(v.scale, 0.05), 1e-12);
  EXPECT_GT(v.cusum, 0);
}

TEST(SeriesMonitor, EffectGateSilencesTinyShifts) {
  // Almost noiseless: a 0.01 drop is many sigmas but below min_effect.
  MonitorConfig config;
  config.min_effect = 0.05;
  SeriesMonitor monitor(ShiftSide::drop, config);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> gauss(0, 0.0005);
  bool alerted = false;
  for (int i = 0; i < 200; ++i) {
    const double value = (i < 100 ? 0.5 : 0.49) + gauss(rng);
    alerted |= monitor.observe(value).level.has_value();
  }
  EXPECT_FALSE(alerted);
}

TEST(SeriesMonitor, CriticalNeedsTheHigherBound) {
  SeriesMonitor monitor(ShiftSide::rise);
  std::mt19937_64 rng(10);
  std::normal_distribution<double> gauss(0, 1);
  for (int i = 0; i < 100; ++i) (void)monitor.observe(10 + gauss(rng));
  std::vector<AlertLevel> levels;
  for (int i = 0; i < 10; ++i)
    if (auto level = monitor.observe(13 + gauss(rng)).level) levels.push_back(*level);
  ASSERT_FALSE(levels.empty());
  EXPECT_EQ(levels.front(), AlertLevel::warning);
  EXPECT_EQ(levels.back(), AlertLevel::critical);
}

TEST(SeriesMonitor, ALastingShiftBecomesTheNewNormal) {
  MonitorConfig config;
  config.adapt_after = 20;
  SeriesMonitor monitor(ShiftSide::drop, config);
  for (int i = 0; i < 100; ++i) (void)monitor.observe(0.5 + (i % 2 ? 0.01 : -0.01));
  std::size_t alerts_late = 0;
  for (int i = 0; i < 100; ++i) {
    const auto v = monitor.observe(0.3 + (i % 2 ? 0.01 : -0.01));
    if (i >= 60 && v.level) ++alerts_late;
  }
  EXPECT_EQ(alerts_late, 0u);
  EXPECT_NEAR(monitor.baseline(), 0.3, 0.02);
}

TEST(SeriesMonitor, NonFiniteValuesAreIgnored) {
  SeriesMonitor monitor(ShiftSide::drop);
  (void)monitor.observe(0.5);
  const auto v = monitor.observe(std::nan(""));
  EXPECT_FALSE(v.level.has_value());
  EXPECT_EQ(monitor.observations(), 1u);
}

TEST(SeriesMonitor, ConfigIsValidated) {
  EXPECT_THROW(SeriesMonitor(ShiftSide::drop, MonitorConfig{.ewma_alpha = 0}),
               std::invalid_argument);
  EXPECT_THROW(SeriesMonitor(ShiftSide::drop, MonitorConfig{.h_warning = 5, .h_critical = 4}),
               std::invalid_argument);
  EXPECT_THROW(SeriesMonitor(ShiftSide::drop, MonitorConfig{.min_effect = std::nan("")}),
               std::invalid_argument);
}

Finding finding(AlertLevel level = AlertLevel::warning, std::optional<std::uint32_t> shard = {}) {
  return Finding{.detector = "det", .metric = "m", .level = level, .shard = shard, .value = 1};
}

Timestamp at(int i) { return Timestamp(std::chrono::seconds(i)); }

TEST(AlertTracker, FiresOnlyAfterThePendingIntervals) {
  AlertTracker tracker(AlertPolicy{.pending_intervals = 3, .keep_firing_intervals = 2});
  EXPECT_TRUE(tracker.update({finding()}, at(1), {}).empty());
  ASSERT_EQ(tracker.current().size(), 1u);
  EXPECT_EQ(tracker.current()[0].state, AlertState::pending);
  EXPECT_TRUE(tracker.update({finding()}, at(2), {}).empty());
  const auto t = tracker.update({finding()}, at(3), {});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].kind, AlertTransition::Kind::fired);
  EXPECT_EQ(t[0].alert.state, AlertState::firing);
  EXPECT_EQ(t[0].alert.started, at(1));
  EXPECT_EQ(t[0].alert.fired, at(3));
  EXPECT_EQ(tracker.firing_count(), 1u);
}

TEST(AlertTracker, ResolvesAfterKeepFiringAndReportsItOnce) {
  AlertTracker tracker(AlertPolicy{.pending_intervals = 1, .keep_firing_intervals = 2});
  ASSERT_EQ(tracker.update({finding()}, at(1), {}).size(), 1u);
  EXPECT_TRUE(tracker.update({}, at(2), {}).empty());
  EXPECT_EQ(tracker.current()[0].state, AlertState::firing);
  const auto t = tracker.update({}, at(3), {});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].kind, AlertTransition::Kind::resolved);
  EXPECT_EQ(t[0].alert.resolved, at(3));
  ASSERT_EQ(tracker.current().size(), 1u);
  EXPECT_EQ(tracker.current()[0].state, AlertState::resolved);
  EXPECT_TRUE(tracker.update({}, at(4), {}).empty());
  EXPECT_TRUE(tracker.current().empty());
}

TEST(AlertTracker, AlternatingConditionNeitherFiresNorFlaps) {
  AlertTracker quiet_start;  // defaults: pending 3, keep firing 5
  for (int i = 0; i < 100; ++i)
    EXPECT_TRUE(
        quiet_start
            .update(i % 2 ? std::vector<Finding>{finding()} : std::vector<Finding>{}, at(i), {})
            .empty());

  AlertTracker firing;
  std::size_t transitions = 0;
  for (int i = 0; i < 3; ++i) transitions += firing.update({finding()}, at(i), {}).size();
  for (int i = 3; i < 103; ++i)
    transitions +=
        firing.update(i % 2 ? std::vector<Finding>{finding()} : std::vector<Finding>{}, at(i), {})
            .size();
  EXPECT_EQ(transitions, 1u);  // fired once, never resolved while the condition flickers
  EXPECT_EQ(firing.firing_count(), 1u);
}

TEST(AlertTracker, LevelChangesNeedToHoldToo) {
  AlertTracker tracker(AlertPolicy{.pending_intervals = 2, .keep_firing_intervals = 5});
  (void)tracker.update({finding()}, at(1), {});
  (void)tracker.update({finding()}, at(2), {});
  EXPECT_TRUE(tracker.update({finding(AlertLevel::critical)}, at(3), {}).empty());
  EXPECT_TRUE(tracker.update({finding(AlertLevel::warning)}, at(4), {}).empty());
  EXPECT_TRUE(tracker.update({finding(AlertLevel::critical)}, at(5), {}).empty());
  const auto t = tracker.update({finding(AlertLevel::critical)}, at(6), {});
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].kind, AlertTransition::Kind::level_changed);
  EXPECT_EQ(t[0].alert.level, AlertLevel::critical);
}

TEST(AlertTracker, KeysSeparateShardsAndTheHighestDuplicateWins) {
  AlertTracker tracker(AlertPolicy{.pending_intervals = 1, .keep_firing_intervals = 1});
  const auto t = tracker.update({finding(AlertLevel::info, 1), finding(AlertLevel::critical, 1),
                                 finding(AlertLevel::warning)},
                                at(1), {});
  ASSERT_EQ(t.size(), 2u);
  EXPECT_FALSE(t[0].alert.shard.has_value());  // global sorts first
  EXPECT_EQ(t[1].alert.shard, 1u);
  EXPECT_EQ(t[1].alert.level, AlertLevel::critical);
}

TEST(AlertTracker, PolicyIsValidated) {
  EXPECT_THROW(AlertTracker(AlertPolicy{.pending_intervals = 0}), std::invalid_argument);
  EXPECT_THROW(AlertTracker(AlertPolicy{.keep_firing_intervals = 0}), std::invalid_argument);
}

TEST(CacheAlert, JsonNamesEveryField) {
  CacheAlert alert{.detector = "hit_rate_drop", .metric = "hit_rate_tokens", .shard = 2};
  const std::string json = to_json(alert);
  for (const char* key :
       {"\"detector\"", "\"metric\"", "\"level\"", "\"state\"", "\"shard\":2", "\"value\"",
        "\"baseline\"", "\"threshold\"", "\"started_ns\"", "\"started_wall_ms\"", "\"message\""})
    EXPECT_NE(json.find(key), std::string::npos) << key;
}

}  // namespace
}  // namespace kvscope
