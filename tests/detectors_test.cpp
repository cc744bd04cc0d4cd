// The built-in detectors, the analytics pass, capacity advice and the
// performance diagnosis, on scripted snapshots and on a running Runtime.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kvscope/analytics/cache_analytics.hpp"
#include "kvscope/analytics/detectors.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "prometheus_parser.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using testing_util::seq;

/// A one-shard snapshot whose last interval has the given figures.
RuntimeSnapshot interval_snapshot(std::uint64_t sequence, const IntervalFigures& f) {
  RuntimeSnapshot s;
  s.sequence = sequence;
  s.global.num_blocks = 1000;
  s.shards.push_back(s.global);
  s.analytics.interval = f;
  s.analytics.interval.seconds = 1;
  s.analytics.shard_intervals = {s.analytics.interval};
  return s;
}

/// Runs `detector` over per-interval figures; returns the interval of the
/// first global finding at or after `from` (or -1) and the findings' metric.
struct FirstFinding {
  int at = -1;
  Finding finding;
};
FirstFinding first_global_finding(SnapshotDetector& detector,
                                  const std::vector<IntervalFigures>& intervals, int from) {
  FirstFinding first;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    std::vector<Finding> findings;
    const RuntimeSnapshot s = interval_snapshot(i + 1, intervals[i]);
    detector.inspect(s, s.analytics, findings);
    for (const Finding& f : findings) {
      if (f.shard || static_cast<int>(i) < from || first.at >= 0) continue;
      first = {static_cast<int>(i), f};
    }
  }
  return first;
}

TEST(HitRateDropDetector, FindsADropAndNamesItInPlainLanguage) {
  std::mt19937_64 rng(1);
  std::vector<IntervalFigures> intervals;
  for (int i = 0; i < 200; ++i) {
    const double p = i < 150 ? 0.6 : 0.45;
    IntervalFigures f;
    f.requests = 400;
    f.hit_rate_tokens = std::binomial_distribution<int>(400, p)(rng) / 400.0;
    intervals.push_back(f);
  }
  HitRateDropDetector detector{AnalyticsConfig{}};
  const FirstFinding first = first_global_finding(detector, intervals, 0);
  ASSERT_GE(first.at, 150) << "a finding before the drop";
  EXPECT_LT(first.at, 160);
  EXPECT_EQ(first.finding.metric, "hit_rate_tokens");
  EXPECT_NEAR(first.finding.baseline, 0.6, 0.03);
  EXPECT_NE(first.finding.message.find("token hit rate fell to"), std::string::npos);
}

TEST(HitRateDropDetector, IgnoresIntervalsWithTooFewRequests) {
  std::vector<IntervalFigures> intervals(100);
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    intervals[i].requests = 5;  // below min_interval_requests
    intervals[i].hit_rate_tokens = i < 50 ? 0.9 : 0.0;
  }
  HitRateDropDetector detector{AnalyticsConfig{}};
  EXPECT_EQ(first_global_finding(detector, intervals, 0).at, -1);
}

TEST(EvictionStormDetector, FindsAJumpInPoolTurnover) {
  std::mt19937_64 rng(2);
  std::vector<IntervalFigures> intervals;
  for (int i = 0; i < 120; ++i) {
    IntervalFigures f;
    f.evictions = std::poisson_distribution<int>(i < 100 ? 10 : 200)(rng);
    f.eviction_rate = static_cast<double>(f.evictions);
    f.pool_turnover = f.eviction_rate / 1000;
    intervals.push_back(f);
  }
  EvictionStormDetector detector{AnalyticsConfig{}};
  const FirstFinding first = first_global_finding(detector, intervals, 0);
  ASSERT_GE(first.at, 100);
  EXPECT_LT(first.at, 105);
  EXPECT_EQ(first.finding.metric, "pool_turnover");
}

TEST(ThrashingDetector, GradesTheRefaultShareOnceEnoughMissesAreSampled) {
  auto run = [](std::uint64_t misses, std::uint64_t refaults) {
    ThrashingDetector detector{AnalyticsConfig{}};
    IntervalFigures f;
    f.misses_checked = misses;
    f.refaults_within_capacity = refaults;
    f.sample_rate = 0.01;
    std::vector<Finding> findings;
    const RuntimeSnapshot s = interval_snapshot(2, f);
    detector.inspect(s, s.analytics, findings);
    return findings;
  };
  // refaults are estimates (each sampled refault weighs 1 / 0.01 = 100)
  EXPECT_TRUE(run(1000, 1000).empty());  // 10 sampled misses: too few to judge
  const auto warning = run(3000, 900);   // 30 sampled misses, 9 refaults (900 estimated): 30%
  ASSERT_FALSE(warning.empty());
  EXPECT_EQ(warning[0].level, AlertLevel::warning);
  EXPECT_NEAR(warning[0].value, 0.3, 1e-9);
  EXPECT_NE(
      warning[0].message.find("thrashing: 30% of misses were evicted less than one capacity ago"),
      std::string::npos);
  const auto critical = run(3000, 1800);
  ASSERT_FALSE(critical.empty());
  EXPECT_EQ(critical[0].level, AlertLevel::critical);
  EXPECT_TRUE(run(3000, 3).empty());  // 10%
}

TEST(MemoryPressureDetector, UsageWarnsAndRefusedAllocationsAreCritical) {
  MemoryPressureDetector detector(AnalyticsConfig{}, 0.9);
  IntervalFigures f;
  f.usage = 0.95;
  f.allocation_failures = 3;
  std::vector<Finding> findings;
  const RuntimeSnapshot s = interval_snapshot(2, f);
  detector.inspect(s, s.analytics, findings);
  ASSERT_EQ(findings.size(), 4u);  // global and shard 0, each usage + failures
  EXPECT_EQ(findings[0].metric, "usage");
  EXPECT_EQ(findings[0].level, AlertLevel::warning);
  EXPECT_EQ(findings[1].metric, "allocation_failures");
  EXPECT_EQ(findings[1].level, AlertLevel::critical);
  EXPECT_EQ(findings[3].shard, 0u);
  EXPECT_THROW(MemoryPressureDetector(AnalyticsConfig{}, 1.5), std::invalid_argument);
}

TEST(LatencyRegressionDetector, FindsATripledP99) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> noise(0, 0.05);
  std::vector<IntervalFigures> intervals;
  for (int i = 0; i < 100; ++i) {
    IntervalFigures f;
    f.latency_samples = 1000;
    f.latency_p99_us = (i < 80 ? 100 : 300) * noise(rng);
    intervals.push_back(f);
  }
  LatencyRegressionDetector detector{AnalyticsConfig{}};
  const FirstFinding first = first_global_finding(detector, intervals, 0);
  ASSERT_GE(first.at, 80);
  EXPECT_LT(first.at, 85);
  EXPECT_GT(first.finding.value, 200);  // reported in microseconds, not logs
  EXPECT_NEAR(first.finding.baseline, 100, 10);
}

TEST(AnalyticsConfig, IsValidated) {
  auto bad = [](AnalyticsConfig c) { EXPECT_THROW(c.validate(), std::invalid_argument); };
  bad(AnalyticsConfig{.hit_rate_min_drop = -1});
  bad(AnalyticsConfig{.thrashing_warning = 0.6, .thrashing_critical = 0.5});
  bad(AnalyticsConfig{.thrashing_span = 0});
  bad(AnalyticsConfig{.latency_min_ratio = 0.5});
  bad(AnalyticsConfig{.target_hit_ratio = 1.5});
  AnalyticsConfig nested;
  nested.alerts.pending_intervals = 0;
  bad(nested);
}

TEST(CacheAnalytics, MeasuresIntervalsFromConsecutiveSnapshots) {
  CacheAnalytics analytics;
  RuntimeSnapshot first;
  first.global.num_blocks = 100;
  first.global.used_blocks = 50;
  first.global.total.fresh = QueryCounts{10, 1000, 100, 10, 1};
  first.shards = {first.global};
  first.analytics = analytics.measure(first);
  EXPECT_EQ(first.analytics.interval.seconds, 0);  // nothing to compare with yet

  RuntimeSnapshot second = first;
  second.interval = 2s;
  second.global.total.fresh = QueryCounts{30, 3000, 1100, 30, 11};
  second.global.total.evictions = 40;
  second.global.total.allocation_failures = 2;
  second.shards = {second.global};
  second.analytics = analytics.measure(second);
  const IntervalFigures& f = second.analytics.interval;
  EXPECT_EQ(f.seconds, 2);
  EXPECT_EQ(f.requests, 20u);
  EXPECT_DOUBLE_EQ(f.hit_rate_tokens, 0.5);
  EXPECT_DOUBLE_EQ(f.hit_rate_blocks, 0.5);
  EXPECT_DOUBLE_EQ(f.eviction_rate, 20);
  EXPECT_DOUBLE_EQ(f.pool_turnover, 0.2);
  EXPECT_EQ(f.allocation_failures, 2u);
  EXPECT_DOUBLE_EQ(f.usage, 0.5);
  ASSERT_EQ(second.analytics.shard_intervals.size(), 1u);
  EXPECT_EQ(second.analytics.shard_intervals[0].requests, 20u);
  EXPECT_EQ(second.analytics.trends.size(), 6u);
}

TEST(CacheAnalytics, TrendsFollowARisingUsage) {
  CacheAnalytics analytics;
  RuntimeSnapshot s;
  s.global.num_blocks = 1000;
  for (int i = 0; i < 40; ++i) {
    s.sequence = static_cast<std::uint64_t>(i + 1);
    s.interval = i == 0 ? 0s : 1s;
    s.global.used_blocks = static_cast<std::uint64_t>(200 + 10 * i);
    s.shards = {s.global};
    s.analytics = analytics.measure(s);
  }
  const auto& trends = s.analytics.trends;
  const auto usage = std::find_if(trends.begin(), trends.end(),
                                  [](const SeriesTrend& t) { return t.metric == "usage"; });
  ASSERT_NE(usage, trends.end());
  EXPECT_EQ(usage->trend.direction, TrendDirection::rising);
  EXPECT_NEAR(usage->trend.slope, 0.01, 1e-9);
}

MissRatioCurve scripted_curve() {
  // Token hit ratio 0.1 per 100 blocks up to 400 blocks, then flat at 0.4.
  MissRatioCurve curve;
  curve.capacity_blocks = 200;
  curve.tokens = 1000;
  curve.references = 100;
  for (int c = 100; c <= 800; c += 100)
    curve.points.push_back(
        MrcPoint{.multiple = c / 200.0,
                 .capacity_blocks = static_cast<std::uint64_t>(c),
                 .prefix_hit_tokens = static_cast<std::uint64_t>(std::min(c, 400))});
  return curve;
}

TEST(CapacityAdvice, FindsTargetKneeAndExpectedRatio) {
  const CapacityAdvice advice = advise_capacity(scripted_curve(), 0.3, 0.15);
  EXPECT_EQ(advice.current_blocks, 200u);
  ASSERT_TRUE(advice.blocks_for_target.has_value());
  EXPECT_EQ(*advice.blocks_for_target, 300u);
  EXPECT_EQ(advice.knee_blocks, 400u);
  EXPECT_DOUBLE_EQ(advice.knee_hit_ratio, 0.4);
  EXPECT_DOUBLE_EQ(advice.expected_hit_ratio, 0.2);
  EXPECT_DOUBLE_EQ(advice.best_hit_ratio, 0.4);
  EXPECT_EQ(advice.best_blocks, 400u);
  EXPECT_DOUBLE_EQ(advice.measured_hit_ratio, 0.15);
  // The default target is 95% of the best: 0.38 -> 380 blocks.
  EXPECT_EQ(advise_capacity(scripted_curve(), std::nullopt, 0.15).blocks_for_target, 380u);
  EXPECT_FALSE(advise_capacity(scripted_curve(), 0.9, 0.15).blocks_for_target.has_value());
}

bool has_issue(const PerformanceDiagnosis& d, const std::string& code, const std::string& text) {
  return std::any_of(d.issues.begin(), d.issues.end(), [&](const DiagnosisIssue& i) {
    return i.code == code && i.message.find(text) != std::string::npos;
  });
}

TEST(Diagnosis, ExplainsShortPromptsThrashingAndUndersizing) {
  RuntimeSnapshot s;
  s.global.num_blocks = 200;
  s.global.prefixes.stops = {23, 50, 7, 20};  // LookupStop order: too_short first
  ResidencySnapshot residency;
  residency.sampled_blocks = 1'000;  // a share of 0.01 watched...
  residency.estimated_allocations = 100'000;
  residency.misses_checked = 10'000;           // ...so 100 sampled misses...
  residency.refaults_within_capacity = 4'100;  // ...41 refaulted within capacity (x 100)
  s.global.residency = residency;
  s.analytics.capacity = advise_capacity(scripted_curve(), 0.3, 0.1);
  const PerformanceDiagnosis d = diagnose(s, s.analytics, s.alerts);
  EXPECT_TRUE(has_issue(d, "short_prompts",
                        "prefixes shorter than one block can never hit: 23% of requests"));
  EXPECT_TRUE(has_issue(d, "thrashing",
                        "thrashing: 41% of misses were evicted less than one capacity ago"));
  EXPECT_TRUE(has_issue(d, "undersized", "a cache of 300 blocks (1.5x the current 200)"));
  EXPECT_TRUE(has_issue(d, "below_lru_model", "an LRU cache of the same size would hit 20%"));
  EXPECT_EQ(d.recommended_blocks, 300u);
  EXPECT_EQ(d.issues.front().severity, "warning");  // most severe first, no criticals here
  EXPECT_NE(d.to_text().find("[warning] thrashing"), std::string::npos);
}

TEST(Diagnosis, AHealthyCacheHasNoIssues) {
  RuntimeSnapshot s;
  s.global.num_blocks = 100;
  s.global.prefixes.stops = {0, 10, 80, 10};
  const PerformanceDiagnosis d = diagnose(s, s.analytics, s.alerts);
  EXPECT_TRUE(d.issues.empty());
  EXPECT_NE(d.to_text().find("no issues found"), std::string::npos);
}

// ---- end to end ----

RuntimeConfig analytics_runtime_config() {
  RuntimeConfig config;
  config.shards = 2;
  config.cache = PrefixCacheConfig{.num_blocks = 128, .block_size = 4};
  config.metrics.miss_ratio.enabled = true;
  config.snapshot_interval = std::chrono::hours(1);  // snapshots only at start and stop
  return config;
}

TEST(RuntimeAnalytics, SnapshotsCarryTheCurveAdviceAndDiagnosis) {
  Runtime runtime(analytics_runtime_config());
  runtime.start();
  asio::io_context io;
  std::uint64_t next_id = 1;
  auto client = [&]() -> asio::awaitable<void> {
    for (int round = 0; round < 30; ++round) {
      for (TokenId prompt = 0; prompt < 8; ++prompt) {
        // 8 prompts of 12 blocks sharing their first 4 blocks, and a 2-token prompt.
        const auto tokens = testing_util::cat(seq(16, 0), seq(32, 1000 + prompt * 100));
        for (const auto& body : {tokens, seq(2, 5)}) {
          const auto request = Request::with_tokens(RequestId{next_id++}, body);
          const ShardId shard = runtime.route(request);
          const auto allocated = co_await runtime.allocate(shard, request);
          if (allocated) (void)co_await runtime.free(shard, request.id);
        }
      }
    }
  };
  auto done = asio::co_spawn(io, client(), asio::use_future);
  io.run();
  done.get();
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last->global.miss_ratio.has_value());
  EXPECT_EQ(last->global.miss_ratio->shards, 2u);
  EXPECT_EQ(last->global.miss_ratio->requests, 480u);
  ASSERT_TRUE(last->analytics.capacity.has_value());
  EXPECT_EQ(last->analytics.capacity->current_blocks, 128u);
  EXPECT_GT(last->analytics.capacity->expected_hit_ratio, 0.3);
  EXPECT_TRUE(has_issue(last->analytics.diagnosis, "short_prompts", "50% of requests"));
  EXPECT_EQ(runtime.analyze_performance().issues.size(), last->analytics.diagnosis.issues.size());
  const std::string json = to_json(*last);
  for (const char* key : {"\"analytics\"", "\"capacity\"", "\"diagnosis\"", "\"trends\"",
                          "\"miss_ratio_curve\"", "\"alert_events\""})
    EXPECT_NE(json.find(key), std::string::npos) << key;
  const std::string prometheus = to_prometheus(*last);
  const auto families =
      testing_util::PromParser::parse(prometheus);  // strict: throws on a bad line
  EXPECT_DOUBLE_EQ(testing_util::PromParser::value(
                       families, "kvscope_analytics_mrc_token_hit_ratio",
                       "kvscope_analytics_mrc_token_hit_ratio", {{"capacity_multiple", "1"}}),
                   last->analytics.capacity->expected_hit_ratio);
  for (const char* family :
       {"kvscope_analytics_expected_hit_ratio", "kvscope_analytics_mrc_token_hit_ratio",
        "kvscope_analytics_trend_slope", "kvscope_analytics_diagnosis_issues"})
    EXPECT_NE(prometheus.find(family), std::string::npos) << family;
}

}  // namespace
}  // namespace kvscope
