// kvscope/analytics/report.hpp - what the analytics add to each runtime
// snapshot: the last interval's figures, trends, capacity advice and the
// performance diagnosis. Plain values; built on the aggregator thread and
// read-only once published.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/analytics/trend.hpp"

namespace kvscope {

/// One snapshot interval of one scope (the whole runtime or one shard),
/// from the difference of two consecutive snapshots.
struct IntervalFigures {
  double seconds = 0;                     ///< interval length (0 for the first snapshot)
  std::uint64_t requests = 0;             ///< admissions in the interval
  std::uint64_t query_tokens = 0;         ///< their prompt tokens
  double hit_rate_tokens = 0;             ///< hit tokens / prompt tokens (0 without requests)
  double hit_rate_blocks = 0;             ///< hit blocks / prompt blocks
  double usage = 0;                       ///< blocks in use / blocks, at the interval's end
  std::uint64_t evictions = 0;            ///< capacity evictions in the interval
  double eviction_rate = 0;               ///< evictions per second
  double pool_turnover = 0;               ///< evictions per second / blocks
  std::uint64_t allocation_failures = 0;  ///< refused for lack of free blocks, in the interval
  std::uint64_t latency_samples = 0;  ///< observed lookup latencies in the interval (all levels)
  double latency_p99_us = 0;          ///< their p99, microseconds (0 without samples)
  std::uint64_t misses_checked = 0;   ///< missed admissions looked up in the ghosts
  std::uint64_t refaults_within_capacity = 0;  ///< estimated refaults with distance <= pool
  /// Share of allocations residency sampled in the interval (the current
  /// rate when nothing was allocated): misses x this = the misses whose
  /// refault could have been seen.
  double sample_rate = 0;
};

/// A metric's trend over the analytics horizon (global figures).
struct SeriesTrend {
  std::string metric;  ///< hit_rate_tokens, hit_rate_blocks, usage, pool_turnover,
                       ///< allocation_failures, latency_p99_us
  Trend trend;
};

/// Capacity advice from the miss-ratio curve (LRU model, prefix hits in
/// tokens).
struct CapacityAdvice {
  std::uint64_t current_blocks = 0;
  double target_hit_ratio = 0;  ///< the configured target, or 95% of the best reachable
  /// Smallest capacity whose predicted hit ratio reaches the target
  /// (interpolated between curve points); nullopt if the curve never does.
  std::optional<std::uint64_t> blocks_for_target;
  std::uint64_t knee_blocks = 0;  ///< where extra blocks stop paying (Kneedle-style)
  double knee_hit_ratio = 0;
  double best_hit_ratio = 0;  ///< predicted at the curve's largest capacity
  std::uint64_t best_blocks = 0;
  double expected_hit_ratio = 0;  ///< predicted at current_blocks
  double measured_hit_ratio = 0;  ///< what the cache actually hit (tokens, since start)
};

/// One finding of the diagnosis, in plain language.
struct DiagnosisIssue {
  std::string code;      ///< stable identifier, e.g. "short_prompts"
  std::string severity;  ///< "info", "warning" or "critical"
  double figure = 0;     ///< the number behind it (a share, a ratio, a count)
  std::string message;   ///< one or two sentences for a human
};

struct NamedHitRate {
  std::string name;
  std::uint64_t requests = 0;
  double hit_rate = 0;
};

struct PerformanceDiagnosis {
  double overall_hit_rate = 0;         ///< tokens, since start
  double recent_hit_rate = 0;          ///< tokens, within the time window
  double request_window_hit_rate = 0;  ///< tokens, last-N-requests window (vLLM's)
  std::vector<NamedHitRate> by_tenant;
  std::vector<NamedHitRate> by_adapter;
  std::vector<NamedHitRate> by_level;
  double usage = 0;
  double sharing_factor = 0;  ///< block references per block in use
  double cached_share = 0;    ///< cached blocks / blocks: memory holding reusable KV
  std::optional<std::uint64_t> recommended_blocks;  ///< from the capacity advice
  std::vector<DiagnosisIssue> issues;               ///< most severe first

  /// Human-readable report: figures, then one line per issue.
  std::string to_text() const;
};

struct AnalyticsReport {
  IntervalFigures interval;                      ///< global
  std::vector<IntervalFigures> shard_intervals;  ///< index = shard id
  std::vector<SeriesTrend> trends;
  std::optional<CapacityAdvice> capacity;  ///< when the miss-ratio curve is on
  PerformanceDiagnosis diagnosis;
};

}  // namespace kvscope
