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

#include "kvscope/metrics/clock.hpp"
#include "kvscope/metrics/histogram.hpp"
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

}  // namespace
