// Trace replay speed (issue 6): the whole Mooncake conversation trace
// (12,031 requests, 288,500 block references), already parsed, replayed
// through the cache core at one capacity point (10,000 blocks).
//   BM_TraceReplay/mode:0|1/policy:0..3   mode 0 = vllm, 1 = simple;
//                                          policy lru, lfu, arc, s3fifo.
// Target: <= 50 ms per capacity point (a Python replay of the same rules
// takes about 0.35 s). The counter s_per_ref is the time per block reference.
// Parsing is BM_TraceParse (analytics_bench.cpp).
#include <benchmark/benchmark.h>

#include <filesystem>

#include "kvscope/trace/trace_replay.hpp"

namespace {

const char* const kTrace = KVSCOPE_CONVERSATION_TRACE;

void BM_TraceReplay(benchmark::State& state) {
  if (!std::filesystem::exists(kTrace)) {
    state.SkipWithError("conversation trace not found (../shared/traces)");
    return;
  }
  const kvscope::MooncakeTrace trace = kvscope::read_mooncake_trace(kTrace);
  kvscope::ReplayConfig config;
  config.mode = state.range(0) == 0 ? kvscope::ReplayMode::vllm : kvscope::ReplayMode::simple;
  config.policy = static_cast<kvscope::EvictionPolicyKind>(state.range(1));
  config.capacity = 10'000;
  double hit_ratio = 0;
  for (auto _ : state) {
    const kvscope::ReplayResult result = kvscope::replay_trace(trace, config);
    hit_ratio = result.token_hit_ratio();
    benchmark::DoNotOptimize(result.prefix_hit_blocks);
  }
  state.SetLabel(std::string(kvscope::to_string(config.policy)));
  state.counters["token_hit_ratio"] = hit_ratio;
  state.counters["s_per_ref"] = benchmark::Counter(
      static_cast<double>(trace.blocks.size()) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TraceReplay)
    ->ArgNames({"mode", "policy"})
    ->ArgsProduct({{0, 1}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMillisecond);

}  // namespace
