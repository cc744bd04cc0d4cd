// The Aggregator on its own: fabricated shard reports in, RuntimeSnapshots
// out, no threads and no Runtime.
#include "kvscope/runtime/aggregator.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using Wall = std::chrono::system_clock::time_point;

/// A shard that admitted `requests` requests of 100 tokens, `hits` tokens of
/// them from cache, and ran `operations` operations.
ShardReport report(std::uint64_t requests, std::uint64_t hits, std::uint64_t operations,
                   std::uint64_t dropped = 0) {
  ShardReport r;
  r.cache.num_blocks = 100;
  r.cache.used_blocks = 10;
  r.cache.total.fresh = QueryCounts{requests, 100 * requests, hits, 0, 0};
  r.operations = operations;
  r.observations_dropped = dropped;
  return r;
}

/// Reports a finding on every snapshot, then (when asked) throws.
class Scripted final : public SnapshotDetector {
 public:
  explicit Scripted(bool throws) : throws_(throws) {}
  std::string_view name() const noexcept override { return "scripted"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override {
    seen_interval_seconds.push_back(analytics.interval.seconds);
    findings.push_back(Finding{.detector = "scripted",
                               .metric = throws_ ? "thrower" : "quiet",
                               .value = static_cast<double>(snapshot.sequence),
                               .message = "scripted"});
    if (throws_) throw std::runtime_error("detector bug");
  }
  std::vector<double> seen_interval_seconds;

 private:
  bool throws_;
};

TEST(Aggregator, GlobalFiguresAreExactSumsOfTheShards) {
  Aggregator aggregator(AnalyticsConfig{}, {});
  std::vector<ShardReport> reports{report(10, 300, 20), report(30, 900, 60, 4)};
  const RuntimeSnapshot s = aggregator.merge(std::move(reports), 5s, Wall{}, false);
  EXPECT_EQ(s.sequence, 1u);
  EXPECT_EQ(s.at, 5s);
  EXPECT_EQ(s.interval, 0ns);  // the first snapshot has no interval
  ASSERT_EQ(s.shards.size(), 2u);
  EXPECT_EQ(s.global.total.fresh.requests, 40u);
  EXPECT_EQ(s.global.total.fresh.hit_tokens, 1200u);
  EXPECT_EQ(s.global.num_blocks, 200u);
  EXPECT_EQ(s.shards[1].total.fresh.requests, 30u);
  EXPECT_EQ(s.observations_dropped(), 4u);
  EXPECT_EQ(s.load[1].observations_dropped, 4u);
  EXPECT_FALSE(s.final);
}

TEST(Aggregator, LoadSharesAndRatesCoverTheIntervalSinceTheLastRound) {
  Aggregator aggregator(AnalyticsConfig{}, {});
  (void)aggregator.merge({report(0, 0, 100), report(0, 0, 100)}, 1s, Wall{}, false);
  // In the next 2 s shard 0 runs 300 more operations, shard 1 100 more.
  const RuntimeSnapshot s =
      aggregator.merge({report(0, 0, 400), report(0, 0, 200)}, 3s, Wall{}, true);
  EXPECT_EQ(s.sequence, 2u);
  EXPECT_EQ(s.interval, 2s);
  EXPECT_TRUE(s.final);
  EXPECT_EQ(s.load[0].operations, 400u);
  EXPECT_DOUBLE_EQ(s.load[0].operations_per_second, 150);
  EXPECT_DOUBLE_EQ(s.load[0].share, 0.75);
  EXPECT_DOUBLE_EQ(s.load[1].share, 0.25);
  EXPECT_DOUBLE_EQ(s.load_imbalance(), 1.5);
}

TEST(Aggregator, AnalyticsMeasureTheIntervalBetweenRounds) {
  Aggregator aggregator(AnalyticsConfig{}, {});
  (void)aggregator.merge({report(10, 500, 10)}, 1s, Wall{}, false);
  const RuntimeSnapshot s = aggregator.merge({report(30, 2500, 30)}, 2s, Wall{}, false);
  EXPECT_DOUBLE_EQ(s.analytics.interval.seconds, 1);
  EXPECT_EQ(s.analytics.interval.requests, 20u);
  EXPECT_DOUBLE_EQ(s.analytics.interval.hit_rate_tokens, 2000.0 / 2000.0);
  ASSERT_EQ(s.analytics.shard_intervals.size(), 1u);
  EXPECT_EQ(s.analytics.trends.size(), 6u);
}

TEST(Aggregator, DetectorFindingsBecomeAlertsAndFailuresAreCounted) {
  AnalyticsConfig config;
  config.alerts.pending_intervals = 1;
  auto thrower = std::make_shared<Scripted>(true);
  auto quiet = std::make_shared<Scripted>(false);
  Aggregator aggregator(config, {thrower, quiet});
  (void)aggregator.merge({report(1, 0, 1)}, 1s, Wall{}, false);
  aggregator.count_failed_round();
  const RuntimeSnapshot s = aggregator.merge({report(2, 0, 2)}, 2s, Wall{}, false);
  EXPECT_EQ(s.counters.detector_failures, 2u);  // one per round
  EXPECT_EQ(s.counters.aggregation_failures, 1u);
  ASSERT_EQ(s.alerts.size(), 2u);  // the thrower's finding is kept
  for (const CacheAlert& alert : s.alerts) {
    EXPECT_TRUE(alert.metric == "thrower" || alert.metric == "quiet") << alert.metric;
    EXPECT_EQ(alert.state, AlertState::firing);
    EXPECT_EQ(alert.value, 2.0);  // the second snapshot's sequence
  }
  EXPECT_NE(s.alerts[0].metric, s.alerts[1].metric);
  // The second detector still ran after the first threw, with the interval.
  EXPECT_EQ(quiet->seen_interval_seconds, (std::vector<double>{0, 1}));
  // Firing alerts reach the diagnosis.
  ASSERT_EQ(s.analytics.diagnosis.issues.size(), 2u);
  EXPECT_EQ(s.analytics.diagnosis.issues[0].code, "alert:scripted");
}

TEST(Aggregator, RefusesANullDetector) {
  EXPECT_THROW(Aggregator(AnalyticsConfig{}, {nullptr}), std::invalid_argument);
  AnalyticsConfig bad;
  bad.thrashing_span = 0;
  EXPECT_THROW(Aggregator(bad, {}), std::invalid_argument);
}

}  // namespace
}  // namespace kvscope

namespace kvscope {
namespace {

// ServiceTimes: exact counts add up, weighted samples merge, the total is
// the sum of mean x operations, and another layout is refused unchanged.
TEST(ServiceTimes, MergeAddsCountsAndHistogramsAndEstimatesTheTotal) {
  ServiceTimes a(HistogramLayout{}, 4), b(HistogramLayout{}, 4);
  a.operations[static_cast<std::size_t>(ShardOperation::allocate)] = 8;
  a.service_ns[static_cast<std::size_t>(ShardOperation::allocate)].record_n(1000, 4);
  b.operations[static_cast<std::size_t>(ShardOperation::allocate)] = 4;
  b.service_ns[static_cast<std::size_t>(ShardOperation::allocate)].record_n(4000, 4);
  b.operations[static_cast<std::size_t>(ShardOperation::free)] = 2;
  b.service_ns[static_cast<std::size_t>(ShardOperation::free)].record_n(500, 4);
  a += b;
  EXPECT_EQ(a.sampling, 4u);
  EXPECT_EQ(a.operations[static_cast<std::size_t>(ShardOperation::allocate)], 12u);
  EXPECT_EQ(a.operations[static_cast<std::size_t>(ShardOperation::free)], 2u);
  EXPECT_NEAR(a.mean_ns(ShardOperation::allocate), 2500.0, 2500.0 * 0.01);
  EXPECT_NEAR(a.total_ns(), 12 * 2500.0 + 2 * 500.0, 310.0);
  EXPECT_EQ(a.mean_ns(ShardOperation::lookup), 0.0);
  EXPECT_EQ(to_string(ShardOperation::append), "append");

  const ServiceTimes other(HistogramLayout{1'000'000, 5}, 4);
  const ServiceTimes before = a;
  EXPECT_THROW(a += other, std::invalid_argument);
  EXPECT_EQ(a.operations, before.operations);
  EXPECT_EQ(a.total_ns(), before.total_ns());
}

}  // namespace
}  // namespace kvscope
