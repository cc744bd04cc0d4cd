// The load driver behind `kvscope bench`: C client coroutines drive a
// Runtime with request cycles (allocate = lookup + allocate, a simulated
// prefill, decode growth in a few appends, free) until a request count or a
// deadline, measuring every await from suspension to resumption.
//
// Placement (thread-per-core): client thread i < shards is shard i's own
// thread (Runtime::shard_executor), so `--shards 1 --threads 1` runs on one
// core and `--shards 2 --threads 2` on two; client threads beyond the shard
// count get threads of their own. Clients are spread round-robin over the
// client threads; a request whose prefix routes to another shard hops there.
//
// Thread rules: run_load() blocks the calling thread (not a runtime or
// client thread) until the run ends; the progress callback runs on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kvscope/metrics/histogram.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "kvscope/trace/mooncake_trace.hpp"
#include "kvscope/workload/chat_workload.hpp"

namespace kvscope::cli {

struct LoadConfig {
  RuntimeConfig runtime;      ///< shards, pool, policy, metrics, analytics
  std::uint32_t threads = 0;  ///< client threads; 0 = one per shard
  /// Client coroutines, 1 .. 100,000. Each keeps a token buffer of its
  /// conversation (up to ~25 KB with the default workload).
  std::uint32_t concurrency = 1'024;
  std::uint64_t requests = 300'000;       ///< request cycles to run, >= 1
  std::chrono::milliseconds duration{0};  ///< stop issuing after this; 0 = no limit
  ChatWorkloadConfig workload;
  /// Replays this trace (hash mode, its ids as block hashes) instead of the
  /// chat workload; runtime.cache.block_size must be its block tokens.
  const MooncakeTrace* trace = nullptr;
  double speedup = 0;  ///< trace pacing: arrival = timestamp / speedup; 0 = no pacing
  /// Trace requests go to the shard of their n-th id (trace_shard); 1 uses
  /// Runtime::route (the first block: one shard for the Mooncake traces).
  std::uint32_t trace_route_depth = 1;
  /// Simulated prefill: the client waits this long per uncached prompt token.
  double prefill_ns_per_token = 20;
  std::uint32_t decode_steps = 4;   ///< appends per request (the answer split evenly); 0 = none
  std::uint32_t max_retries = 100;  ///< allocation retries while the pool is full
  std::chrono::microseconds retry_backoff{200};
  /// Resident-memory growth is measured from this point of the run on.
  std::chrono::milliseconds memory_warmup{10'000};

  /// Throws std::invalid_argument naming the bad field (runtime included).
  void validate() const;
  std::uint32_t client_threads() const noexcept;
};

/// What the client side saw, summed over client threads.
struct ClientTotals {
  std::uint64_t requests = 0;  ///< request cycles finished (admitted and freed)
  std::uint64_t admitted = 0;  ///< allocations that succeeded
  std::uint64_t errors = 0;    ///< requests given up (status in errors_by_status)
  std::map<std::string, std::uint64_t> errors_by_status;
  std::uint64_t retries = 0;           ///< allocations retried because the pool was full
  std::uint64_t decode_cut_short = 0;  ///< appends refused (pool full): decoding stopped early
  std::uint64_t prompt_tokens = 0;     ///< of admitted requests
  std::uint64_t hit_tokens = 0;        ///< as the allocations reported them
  Histogram allocate_ns, append_ns, free_ns;  ///< await-to-resume latencies

  Histogram all_ops_ns() const;  ///< the three merged
  void merge(const ClientTotals& other);
};

struct LoadProgress {
  double seconds = 0;
  std::uint64_t done = 0;    ///< request cycles finished (errors included)
  std::uint64_t target = 0;  ///< LoadConfig::requests
  SnapshotPtr snapshot;      ///< the latest published one (may be null early)
};

/// The process's resident memory at one moment of the run.
struct MemorySample {
  double seconds = 0;           ///< since the first request was issued
  std::uint64_t rss_bytes = 0;  ///< resident set size (/proc/self/statm)
};

/// Resident memory after warm-up: the baseline is the first sample at or
/// after `warmup_seconds`, the peak the largest sample from then on.
struct MemoryGrowth {
  bool measured = false;  ///< false when no sample falls after the warm-up
  double baseline_seconds = 0;
  std::uint64_t baseline_bytes = 0;
  std::uint64_t peak_bytes = 0;
  std::size_t samples = 0;  ///< samples from the baseline on
  /// (peak - baseline) / baseline; 0 when not measured.
  double growth() const noexcept;
};

struct LoadResult {
  double seconds = 0;  ///< first request issued to last one finished
  std::uint32_t shards = 0;
  std::uint32_t threads = 0;
  std::uint32_t concurrency = 0;
  ClientTotals clients;
  SnapshotPtr final_snapshot;                 ///< published by Runtime::stop()
  std::vector<AlertTransition> alert_events;  ///< every transition, in order
  MetricsConfig metrics;                      ///< for the Prometheus export
  /// Resident memory, sampled at the start and every progress period.
  std::vector<MemorySample> memory;
  double memory_warmup_seconds = 0;  ///< LoadConfig::memory_warmup
  /// KV cache groups (RuntimeConfig::cache.groups; empty: one full-attention
  /// group) and, summed over the shards at the end of the run, each one's
  /// blocks and admissions.
  std::vector<KvCacheGroupConfig> group_configs;
  std::vector<KvCacheGroupStats> group_stats;
  /// Most blocks each group held in the snapshots sampled while the load
  /// ran (hybrid layouts; every progress period).
  std::vector<std::uint64_t> group_peak_used;

  double requests_per_second() const noexcept;
  /// Growth of resident memory after memory_warmup_seconds.
  MemoryGrowth memory_growth() const;
};

/// This process's resident set size in bytes; 0 where /proc is unavailable.
std::uint64_t resident_bytes();

using ProgressCallback = std::function<void(const LoadProgress&)>;

/// Runs the load; calls `progress` every `progress_every` (>= 1 ms) on the
/// calling thread. Throws std::invalid_argument on a bad config, and
/// rethrows the first exception a client coroutine or `progress` threw,
/// after stopping the rest and waiting for every client to finish.
LoadResult run_load(const LoadConfig& config, const ProgressCallback& progress,
                    std::chrono::milliseconds progress_every);

}  // namespace kvscope::cli
