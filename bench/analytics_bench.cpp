// Analytics costs (issue 5):
//   BM_StackDistanceTrace     exact stack distances over the whole Mooncake
//                             conversation trace (288,500 block references),
//                             seconds per reference as the counter s_per_ref.
//   BM_AggregatorAnalytics    one Aggregator::merge round for S shards (fed
//                             fabricated reports): merge S shard snapshots (miss-ratio curve and
//                             residency on, one observed level), measure the
//                             interval, trends, capacity advice, the default
//                             detectors, alert hysteresis and the diagnosis.
// The request-cycle overhead of the curve is BM_CoreRequestCycleMissRatio
// (core_bench.cpp).
#include <benchmark/benchmark.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <vector>

#include "kvscope/analytics/cache_analytics.hpp"
#include "kvscope/analytics/detectors.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/runtime/aggregator.hpp"
#include "kvscope/trace/mooncake_trace.hpp"

namespace {

const char* const kTrace = KVSCOPE_CONVERSATION_TRACE;

void BM_StackDistanceTrace(benchmark::State& state) {
  if (!std::filesystem::exists(kTrace)) {
    state.SkipWithError("conversation trace not found (../shared/traces)");
    return;
  }
  const kvscope::MooncakeTrace trace = kvscope::read_mooncake_trace(kTrace);
  kvscope::MissRatioConfig config;
  config.estimate_aet = state.range(0) != 0;
  for (auto _ : state) {
    kvscope::StackDistanceTracker tracker(20'000, config);  // bound 80,000 positions
    for (const kvscope::TraceRequest& r : trace.requests)
      tracker.record(trace.blocks_of(r), r.input_length, 512, r.block_count);
    benchmark::DoNotOptimize(tracker.tracked_blocks());
  }
  const double refs = static_cast<double>(trace.blocks.size());
  // Seconds per block reference (printed with an SI prefix, e.g. 30n).
  state.counters["s_per_ref"] =
      benchmark::Counter(refs * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_StackDistanceTrace)->ArgName("aet")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_TraceParse(benchmark::State& state) {
  if (!std::filesystem::exists(kTrace)) {
    state.SkipWithError("conversation trace not found (../shared/traces)");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(kvscope::read_mooncake_trace(kTrace).blocks.size());
}
BENCHMARK(BM_TraceParse)->Unit(benchmark::kMillisecond);

/// S shard snapshots with every section filled: a real metered cache per
/// shard after some traffic, plus one observed level.
struct ShardReports {
  std::vector<kvscope::ShardSnapshot> caches;
  std::vector<kvscope::MultiLevelSnapshot> levels;
};

ShardReports make_reports(std::size_t shards) {
  kvscope::MetricsConfig metrics;
  metrics.miss_ratio.enabled = true;
  ShardReports out;
  for (std::size_t s = 0; s < shards; ++s) {
    kvscope::MeteredPrefixCache cache(
        kvscope::PrefixCacheConfig{.num_blocks = 512, .block_size = 16}, metrics);
    std::vector<kvscope::TokenId> tokens(256);
    for (std::uint64_t id = 0; id < 400; ++id) {
      for (std::size_t t = 0; t < tokens.size(); ++t)
        tokens[t] = static_cast<kvscope::TokenId>(t < 128 ? t : id * 1000 + t);
      const auto request = kvscope::Request::with_tokens(kvscope::RequestId{id}, tokens);
      if (cache.allocate(request)) (void)cache.free(request.id);
    }
    kvscope::MultiLevelCacheMetrics levels;
    for (int i = 0; i < 1000; ++i)
      levels.level(kvscope::CacheType::prefix())
          .observe_hit(1, 0, std::chrono::microseconds(i % 50));
    const auto now = kvscope::SteadyClock::instance().now();
    out.caches.push_back(cache.metrics().snapshot(now));
    out.levels.push_back(levels.snapshot(now));
  }
  return out;
}

void BM_AggregatorAnalytics(benchmark::State& state) {
  const auto shards = static_cast<std::size_t>(state.range(0));
  const ShardReports reports = make_reports(shards);
  kvscope::AnalyticsConfig config;
  kvscope::Aggregator aggregator(
      config, kvscope::default_detectors(config, 0.9, static_cast<std::uint32_t>(shards)));
  std::int64_t second = 0;
  for (auto _ : state) {
    std::vector<kvscope::ShardReport> round(shards);
    for (std::size_t i = 0; i < shards; ++i) {
      round[i].cache = reports.caches[i];
      round[i].levels = reports.levels[i];
    }
    const kvscope::RuntimeSnapshot out =
        aggregator.merge(std::move(round), std::chrono::seconds(++second),
                         std::chrono::system_clock::time_point{}, false);
    benchmark::DoNotOptimize(out.analytics.diagnosis.issues.size());
  }
}
BENCHMARK(BM_AggregatorAnalytics)
    ->ArgName("shards")
    ->Arg(1)
    ->Arg(64)
    ->Unit(benchmark::kMillisecond);

}  // namespace
