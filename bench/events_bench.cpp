// What KV cache events cost, piece by piece, on one thread (no wake-ups,
// no other threads: the figures the runtime benchmarks cannot isolate).
//
// BM_CoreRequestCycleEventLog: BM_CoreRequestCycle's LRU workload with no
// event log (events:0) or with one attached (events:1) and handed over once
// it holds KvEventsConfig's default batch_bytes, as a shard does (the
// publisher gives back an emptied log: here a spare swapped in). The
// difference is what recording costs the request path.
//
// BM_KvEventEncode: encoding such a log into one msgpack batch (map format,
// uint64 hashes), reported per request: the publisher thread's share, paid
// on another core.
#include <benchmark/benchmark.h>

#include <string>
#include <utility>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/events/kv_events_config.hpp"
#include "kvscope/prefix_cache.hpp"
#include "request_workload.hpp"

namespace {

using kvscope::bench::kBlockSize;
using kvscope::bench::kPoolBlocks;
using kvscope::bench::kPrompts;
using kvscope::bench::make_prompts;

const std::size_t kBatchBytes = kvscope::KvEventsConfig{}.batch_bytes;

kvscope::PrefixCacheConfig lru_pool() {
  kvscope::PrefixCacheConfig config;
  config.num_blocks = kPoolBlocks;
  config.block_size = kBlockSize;
  return config;
}

void one_cycle(kvscope::PrefixCache& cache,
               const std::vector<std::vector<kvscope::TokenId>>& prompts, std::uint64_t id) {
  const auto allocated =
      cache.allocate(kvscope::Request::with_tokens(kvscope::RequestId{id}, prompts[id % kPrompts]));
  benchmark::DoNotOptimize(allocated);
  const auto freed = cache.free(kvscope::RequestId{id});
  benchmark::DoNotOptimize(freed);
}

void BM_CoreRequestCycleEventLog(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCache cache(lru_pool());
  kvscope::CacheEventLog log, spare;
  const bool events = state.range(0) != 0;
  if (events) cache.set_event_log(&log);
  std::uint64_t id = 0;
  std::uint64_t events_recorded = 0;
  for (auto _ : state) {
    one_cycle(cache, prompts, id++);
    if (events && log.bytes() >= kBatchBytes) {
      events_recorded += log.size();
      std::swap(log, spare);  // the handover; the publisher returns it emptied
      spare.clear();
    }
  }
  state.counters["events_per_request"] =
      static_cast<double>(events_recorded) / static_cast<double>(id);
}
BENCHMARK(BM_CoreRequestCycleEventLog)
    ->ArgName("events")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

void BM_KvEventEncode(benchmark::State& state) {
  const auto prompts = make_prompts();
  kvscope::PrefixCache cache(lru_pool());
  kvscope::CacheEventLog log;
  cache.set_event_log(&log);
  std::uint64_t id = 0;
  for (; id < 4'096; ++id) one_cycle(cache, prompts, id);  // warm: every cycle evicts
  log.clear();
  std::uint64_t batch_requests = 0;
  for (; log.bytes() < kBatchBytes; ++id, ++batch_requests) one_cycle(cache, prompts, id);
  std::size_t bytes = 0;
  for (auto _ : state) {
    const std::string payload = kvscope::encode_kv_event_batch(
        log, 1.0, 0, kvscope::KvEventFormat::map, kvscope::KvHashEncoding::uint64, nullptr);
    bytes = payload.size();
    benchmark::DoNotOptimize(payload.data());
  }
  const auto requests = static_cast<double>(batch_requests);
  // Seconds per request (kIsRate | kInvert), printed in the counter's own unit.
  state.counters["s_per_request"] =
      benchmark::Counter(requests * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["requests_per_batch"] = requests;
  state.counters["bytes_per_request"] = static_cast<double>(bytes) / requests;
  state.counters["tokens_per_request"] = static_cast<double>(log.stored_tokens()) / requests;
}
BENCHMARK(BM_KvEventEncode)->Unit(benchmark::kMillisecond);

}  // namespace
