// Micro-benchmarks of the shard-local prefix cache core.
//
// BM_CoreRequestCycle: hash + lookup + allocate + free of a 2,048-token
// request (block_size 16 -> 128 blocks), half of the requests sharing a
// 1,024-token prefix, pool of 4,096 blocks. Requests cycle through 64
// prompts holding 6,144 distinct blocks (1.5x the pool), so every cycle
// evicts (~96 blocks: the reuse distance of every unique block exceeds the
// pool, the LRU worst case). Target for
// LRU: <= 3.4 us per cycle (100x vLLM's Python BlockPool, ~341 us).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/prefix_cache.hpp"
#include "request_workload.hpp"

namespace {

using kvscope::TokenId;

using kvscope::bench::kBlockSize;
using kvscope::bench::kPoolBlocks;
using kvscope::bench::kPrompts;
using kvscope::bench::kPromptTokens;
using kvscope::bench::make_prompts;

// Registers one run per eviction policy (the argument), timed in microseconds.
void for_each_policy(benchmark::internal::Benchmark* bench) {
  bench->ArgName("policy")->Unit(benchmark::kMicrosecond);
  for (const auto kind : {kvscope::EvictionPolicyKind::lru, kvscope::EvictionPolicyKind::lfu,
                          kvscope::EvictionPolicyKind::arc, kvscope::EvictionPolicyKind::s3fifo}) {
    bench->Arg(static_cast<int>(kind));
  }
}

// The pool every benchmark here uses, with the policy from the argument.
kvscope::PrefixCacheConfig pool_config(const benchmark::State& state) {
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  config.policy = static_cast<kvscope::EvictionPolicyKind>(state.range(0));
  return config;
}

// Runs allocate + free cycles on `cache`; make_request(id) builds request `id`.
template <class MakeRequest>
void run_request_cycles(benchmark::State& state, kvscope::PrefixCache& cache,
                        MakeRequest make_request) {
  std::uint64_t id = 0;
  for (auto _ : state) {
    const auto allocated = cache.allocate(make_request(id));
    if (!allocated) state.SkipWithError("allocation failed");
    benchmark::DoNotOptimize(allocated);
    const auto freed = cache.free(kvscope::RequestId{id});
    benchmark::DoNotOptimize(freed);
    ++id;
  }
  const auto& stats = cache.stats();
  state.counters["hit_rate"] = stats.hit_rate();
  state.counters["evictions_per_cycle"] =
      static_cast<double>(stats.evictions) / static_cast<double>(stats.fresh.requests);
  state.SetLabel(std::string(kvscope::to_string(cache.config().policy)));
}

void BM_CoreRequestCycle(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCache cache(pool_config(state));
  run_request_cycles(state, cache, [&](std::uint64_t id) {
    return kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]);
  });
}
BENCHMARK(BM_CoreRequestCycle)->Apply(for_each_policy);

// The LRU cycle with content verification off (verify:0) or on (verify:1):
// the price of the collision defence (a second hash chain per request, a
// fingerprint compare per hit block).
void BM_CoreRequestCycleVerify(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  config.verify_tokens = state.range(0) != 0;
  kvscope::PrefixCache cache(config);
  run_request_cycles(state, cache, [&](std::uint64_t id) {
    return kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]);
  });
  state.counters["verification_failures"] =
      static_cast<double>(cache.stats().verification_failures);
}
BENCHMARK(BM_CoreRequestCycleVerify)
    ->ArgName("verify")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

// The LRU cycle on a hybrid-attention layout (issue 21): groups:1 is the
// single full-attention group (BM_CoreRequestCycle's LRU row, for the ratio
// inside one run); groups:2 adds a sliding-window group (window 4,096,
// blocks of 16) over the same pool, so every request takes a block table
// per group. Target: groups:2 <= 2x groups:1.
void BM_CoreRequestCycleHybrid(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  if (state.range(0) == 2) {
    config.groups = {{kvscope::AttentionKind::full_attention, kBlockSize, 0, 1},
                     {kvscope::AttentionKind::sliding_window, kBlockSize, 4'096, 1}};
  }
  kvscope::PrefixCache cache(config);
  run_request_cycles(state, cache, [&](std::uint64_t id) {
    return kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]);
  });
}
BENCHMARK(BM_CoreRequestCycleHybrid)
    ->ArgName("groups")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond);

// The same cycle with hashes computed up front (engines that hash themselves,
// trace replay): the bookkeeping alone.
void BM_CoreRequestCycleBookkeeping(benchmark::State& state) {
  kvscope::BlockHasher hasher(kBlockSize);
  std::vector<std::vector<kvscope::BlockHash>> hashes(kPrompts);
  const auto prompts = make_prompts();
  for (std::size_t p = 0; p < kPrompts; ++p) hasher.extend_hashes(prompts[p], {}, hashes[p]);
  kvscope::PrefixCache cache(pool_config(state));
  run_request_cycles(state, cache, [&](std::uint64_t id) {
    return kvscope::Request::with_hashes(kvscope::RequestId{id}, kPromptTokens,
                                         hashes[id % kPrompts]);
  });
}
BENCHMARK(BM_CoreRequestCycleBookkeeping)->Apply(for_each_policy);

// The LRU request cycle of BM_CoreRequestCycle with ShardMetrics attached or
// not. metrics:1 is the default MetricsConfig: windows, the last-1000-
// requests window, top-32 prefixes, tenant/adapter counters, residency
// sampling steered to 1,000 watched blocks a second with ghosts, a
// steady-clock read per operation that touches a watched block, and a
// window tick every 4,096 cycles (the aggregator ticks once a second; this
// is far more often). Target: metrics:1 <= 1.01x metrics:0. Counters: the
// residency samples taken and the sample rate at the end.
void run_metered_cycles(benchmark::State& state, const kvscope::MetricsConfig* metrics_config) {
  const auto prompts = make_prompts();
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  kvscope::PrefixCache cache(config);
  std::optional<kvscope::ShardMetrics> metrics;
  if (metrics_config != nullptr) metrics.emplace(cache, *metrics_config);
  const kvscope::Clock& clock = kvscope::SteadyClock::instance();
  std::uint64_t id = 0;
  for (auto _ : state) {
    const auto request =
        kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]);
    const auto allocated = cache.allocate(request);
    if (!allocated) state.SkipWithError("allocation failed");
    if (metrics) {
      metrics->record_admission(request, *allocated);
      if (id % 4096 == 0) metrics->tick(clock.now());
    }
    benchmark::DoNotOptimize(allocated);
    const auto freed = cache.free(kvscope::RequestId{id});
    benchmark::DoNotOptimize(freed);
    ++id;
  }
  state.counters["hit_rate"] = cache.stats().hit_rate();
  if (metrics && metrics->residency() != nullptr) {
    const kvscope::ResidencySnapshot& residency = metrics->residency()->snapshot();
    state.counters["sampled_blocks"] = static_cast<double>(residency.sampled_blocks);
    state.counters["sample_rate"] = residency.sample_rate;
  }
}

void BM_CoreRequestCycleMetrics(benchmark::State& state) {
  const kvscope::MetricsConfig defaults;
  run_metered_cycles(state, state.range(0) != 0 ? &defaults : nullptr);
}
BENCHMARK(BM_CoreRequestCycleMetrics)
    ->ArgName("metrics")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

// Where metrics:1's cost goes: the default config minus one part.
// part:0 no residency tracking, part:1 residency without ghosts,
// part:2 residency at a fixed rate of ~0 (observer installed, nothing watched),
// part:3 residency at vLLM's fixed 1% (steering off: 1/128 here).
void BM_CoreRequestCycleMetricsParts(benchmark::State& state) {
  kvscope::MetricsConfig config;
  if (state.range(0) == 0) config.track_residency = false;
  if (state.range(0) == 1) config.ghost_entries = 0;
  if (state.range(0) >= 2) config.residency_watched_per_second = 0;
  if (state.range(0) == 2) config.residency_sample_rate = 1e-9;
  if (state.range(0) == 3) config.residency_sample_rate = 0.01;
  run_metered_cycles(state, &config);
}
BENCHMARK(BM_CoreRequestCycleMetricsParts)
    ->ArgName("part")
    ->DenseRange(0, 3)
    ->Unit(benchmark::kMicrosecond);

// Residency tracking at sample rate 1.0: every block followed, one clock
// read per operation. The cost of watching everything (compare with metrics:1).
void BM_CoreRequestCycleResidencyAll(benchmark::State& state) {
  kvscope::MetricsConfig config;
  config.residency_sample_rate = 1.0;
  config.residency_watched_per_second = 0;
  run_metered_cycles(state, &config);
}
BENCHMARK(BM_CoreRequestCycleResidencyAll)->Unit(benchmark::kMicrosecond);

// The miss-ratio curve's cost (issue 5 target: <= 10% of the request cycle
// when on, 0 when off): mrc:0 is the default metrics (curve off), mrc:1 adds
// the exact stack-distance tracker (bound 4x the pool), mrc:2 adds AET's
// reuse-time histogram too. Counter mrc_refs_per_cycle: block references
// recorded per cycle (the per-reference cost is the difference / 128).
void BM_CoreRequestCycleMissRatio(benchmark::State& state) {
  kvscope::MetricsConfig config;
  config.miss_ratio.enabled = state.range(0) >= 1;
  config.miss_ratio.estimate_aet = state.range(0) >= 2;
  run_metered_cycles(state, &config);
}
BENCHMARK(BM_CoreRequestCycleMissRatio)
    ->ArgName("mrc")
    ->DenseRange(0, 2)
    ->Unit(benchmark::kMicrosecond);

// Metadata bytes per block (block records, hash index, policy state and
// ghosts; request state excluded), reported as the counter bytes_per_block.
// The timed part is the construction of a 4,096-block cache.
void BM_MetadataBytesPerBlock(benchmark::State& state) {
  const auto config = pool_config(state);
  std::size_t bytes = 0;
  for (auto _ : state) {
    kvscope::PrefixCache cache(config);
    bytes = cache.metadata_bytes();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["bytes_per_block"] = static_cast<double>(bytes) / kPoolBlocks;
  state.SetLabel(std::string(kvscope::to_string(config.policy)));
}
BENCHMARK(BM_MetadataBytesPerBlock)->Apply(for_each_policy);

// Chained XXH3-128 hashing of a 2,048-token prompt (128 blocks of 16).
void BM_BlockHashing(benchmark::State& state) {
  kvscope::BlockHasher hasher(static_cast<std::uint32_t>(state.range(0)));
  std::vector<TokenId> tokens(kPromptTokens);
  for (std::uint32_t t = 0; t < kPromptTokens; ++t) tokens[t] = t * 7919u;
  const kvscope::ExtraKeys extras;
  std::vector<kvscope::BlockHash> hashes;
  hashes.reserve(kPromptTokens);
  for (auto _ : state) {
    hashes.clear();
    hasher.extend_hashes(tokens, extras, hashes);
    benchmark::DoNotOptimize(hashes.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          (kPromptTokens / state.range(0)));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * kPromptTokens *
                          sizeof(TokenId));
}
BENCHMARK(BM_BlockHashing)
    ->ArgName("block_size")
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->Unit(benchmark::kMicrosecond);

}  // namespace

// The core's own cost of feeding an observer: the BM_CoreRequestCycle
// workload with an observer whose hooks only count, at a sample rate of
// permille/1000 (0: no observer installed). Separates the core's share of
// the residency overhead (sampling, watched-flag branches, hook calls) from
// the tracker's.
struct CountingObserver final : kvscope::PrefixCacheObserver {
  std::uint64_t calls = 0;
  void on_block_allocated(kvscope::BlockId, kvscope::Timestamp) override { ++calls; }
  void on_block_cached(kvscope::BlockId, const kvscope::BlockHash&, kvscope::Timestamp) override {
    ++calls;
  }
  void on_block_hit(kvscope::BlockId, kvscope::Timestamp) override { ++calls; }
  void on_block_released(kvscope::BlockId, bool, kvscope::Timestamp) override { ++calls; }
  void on_block_uncached(kvscope::BlockId, const kvscope::BlockHash&, kvscope::UncacheCause, bool,
                         kvscope::Timestamp) override {
    ++calls;
  }
};

void BM_CoreObserverOverhead(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  kvscope::PrefixCache cache(config);
  CountingObserver observer;
  if (state.range(0) > 0) {
    kvscope::ObserverOptions options;
    options.sample_rate = static_cast<double>(state.range(0)) / 1000.0;
    cache.set_observer(&observer, options);
  }
  run_request_cycles(state, cache, [&](std::uint64_t id) {
    return kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]);
  });
  state.counters["hooks_per_cycle"] =
      static_cast<double>(observer.calls) /
      static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1));
}
BENCHMARK(BM_CoreObserverOverhead)
    ->ArgName("permille")
    ->Arg(0)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->Unit(benchmark::kMicrosecond);
