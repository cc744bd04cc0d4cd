// Micro-benchmarks of the metrics primitives (histogram and sliding windows).
//
// BM_HistogramRecord: record of pseudo-random latencies into the default
// log-linear histogram (7 bits, 3,840 buckets). Reference: ~1.2-1.4 ns per
// record on the reference machine (GUIDE section 4).
// BM_SlidingCountersAdd / BM_SlidingHistogramRecord: the same with a 60 s / 1 s
// window and a timestamp advancing 1 us per operation (a slot rolls over every
// 1,000,000 operations, so the cost of expiry is amortised in).
// BM_SlidingHistogramWindowQuery: snapshot of a populated 60 s / 1 s window
// plus its p99, the per-publish cost.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/batch_collector.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/sliding_window.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::size_t kLatencies = 1 << 16;  // power of two: index with a mask
constexpr std::size_t kLatencyMask = kLatencies - 1;

// Deterministic latencies in ns: lognormal around 500 us, spread over ~6 powers of two.
const std::vector<std::uint64_t>& latencies() {
  static const std::vector<std::uint64_t> values = [] {
    std::mt19937_64 rng(12345);
    std::lognormal_distribution<double> dist(std::log(500'000.0), 1.5);
    std::vector<std::uint64_t> out(kLatencies);
    for (auto& v : out) v = static_cast<std::uint64_t>(dist(rng));
    return out;
  }();
  return values;
}

kvscope::WindowConfig window_60s() {
  kvscope::WindowConfig config;
  config.window = 60s;
  config.resolution = 1s;
  return config;
}

void BM_HistogramRecord(benchmark::State& state) {
  const auto& values = latencies();
  kvscope::Histogram h;
  std::size_t i = 0;
  for (auto _ : state) {
    h.record(values[i++ & kLatencyMask]);
    benchmark::DoNotOptimize(h);
  }
  benchmark::DoNotOptimize(h.count());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_HistogramRecord);

void BM_SlidingCountersAdd(benchmark::State& state) {
  kvscope::SlidingCounters counters(window_60s(), 2);
  kvscope::Timestamp now{0};
  std::size_t field = 0;
  for (auto _ : state) {
    now += 1us;
    counters.add(now, field, 1);
    field ^= 1;
    benchmark::DoNotOptimize(counters);
  }
  benchmark::DoNotOptimize(counters.sum(now, 0));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SlidingCountersAdd);

void BM_SlidingHistogramRecord(benchmark::State& state) {
  const auto& values = latencies();
  kvscope::SlidingHistogram h(window_60s());
  kvscope::Timestamp now{0};
  std::size_t i = 0;
  for (auto _ : state) {
    now += 1us;
    h.record(now, values[i++ & kLatencyMask]);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_SlidingHistogramRecord);

// Window populated with one sample per millisecond over 60 s (60,000 samples
// in all 60 slots); the query time stays inside the newest slot, so no slot
// expires while timing.
void BM_SlidingHistogramWindowQuery(benchmark::State& state) {
  const auto& values = latencies();
  kvscope::SlidingHistogram h(window_60s());
  kvscope::Timestamp now{0};
  for (std::size_t i = 0; i < 60'000; ++i) {
    now = std::chrono::milliseconds(static_cast<std::int64_t>(i));
    h.record(now, values[i & kLatencyMask]);
  }
  for (auto _ : state) {
    const kvscope::Histogram window = h.window(now);
    benchmark::DoNotOptimize(window.quantile(0.99));
  }
  state.counters["samples"] = static_cast<double>(h.window(now).count());
}
BENCHMARK(BM_SlidingHistogramWindowQuery)->Unit(benchmark::kMicrosecond);

// kvscope::BatchMetricsCollector: producers record hits with their tokens; thread 0
// also plays the owner and drains every 256 of its iterations (so with 2
// threads the other producer races the drain, as in a runtime). Reports
// observations per second per thread and the share dropped because the
// queue (capacity 16,384) was full.
kvscope::BatchMetricsCollector* g_collector = nullptr;
kvscope::MultiLevelCacheMetrics* g_drained = nullptr;

void BM_BatchCollectorRecord(benchmark::State& state) {
  if (state.thread_index() == 0) {
    kvscope::BatchCollectorConfig config;
    config.capacity = kvscope::BatchCollectorConfig::kMaxCapacity;
    g_collector = new kvscope::BatchMetricsCollector(config);
    g_drained = new kvscope::MultiLevelCacheMetrics();
  }
  // Google Benchmark starts every thread's loop together, after setup.
  auto producer = g_collector->producer();
  const auto observation =
      kvscope::MetricObservation::hit(kvscope::CacheType::prefix(), 16, 16 * 1024, 2us);
  std::uint64_t n = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(producer.record(observation));
    if (state.thread_index() == 0 && ++n % 256 == 0) g_collector->drain(*g_drained);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    g_collector->drain(*g_drained);
    const double recorded = static_cast<double>(g_collector->accepted() + g_collector->dropped());
    state.counters["dropped_share"] =
        recorded > 0 ? static_cast<double>(g_collector->dropped()) / recorded : 0.0;
    delete g_collector;
    delete g_drained;
  }
}
BENCHMARK(BM_BatchCollectorRecord)->Threads(1)->Threads(2)->UseRealTime();

// One thread: record 256 observations, then drain them (apply cost included).
void BM_BatchCollectorRecordAndDrain(benchmark::State& state) {
  kvscope::BatchMetricsCollector collector;
  kvscope::MultiLevelCacheMetrics metrics;
  auto producer = collector.producer();
  const auto observation =
      kvscope::MetricObservation::hit(kvscope::CacheType::prefix(), 16, 16 * 1024, 2us);
  for (auto _ : state) {
    for (int i = 0; i < 256; ++i) producer.record(observation);
    benchmark::DoNotOptimize(collector.drain(metrics));
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_BatchCollectorRecordAndDrain);

}  // namespace
