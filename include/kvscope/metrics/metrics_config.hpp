// kvscope/metrics/metrics_config.hpp - configuration of a shard's metrics.
//
// Every field has a production default; validate() (called by every
// constructor that takes a MetricsConfig) throws std::invalid_argument with a
// message naming the field and the value, so bad configuration never builds
// half a metrics object.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/metrics/sliding_window.hpp"

namespace kvscope {

/// vLLM's residency histogram bounds, seconds (GUIDE section 2).
std::vector<double> vllm_residency_bounds_seconds();
/// Default latency export bounds, seconds: 1 us .. 10 s, 1-2.5-5 steps.
std::vector<double> default_latency_bounds_seconds();

struct MetricsConfig {
  // ---- time windows ----
  /// Sliding time window of hit rates and eviction rates (W and resolution).
  WindowConfig window{std::chrono::seconds(60), std::chrono::seconds(1)};
  /// vLLM's hit-rate window over the last N requests; >= 1.
  std::uint64_t request_window = 1000;

  // ---- block residency (sampled) ----
  bool track_residency = true;
  /// Highest share of block allocations followed from allocation to
  /// eviction, and the starting one; (0, 1]. Rounded down to a power of two
  /// so that every sample's weight (1 / its rate) is a whole number. vLLM
  /// samples a fixed 0.01.
  double residency_sample_rate = 1.0;
  /// Watched allocations per second the sampler steers to, per shard: the
  /// rate moves in powers of two to stay within 2x of it, so residency
  /// costs about the same at any load and still collects samples at a low
  /// one. Samples are weighted by 1 / their rate, so histograms estimate
  /// every evicted block's figures while the rate moves. 0 turns steering
  /// off: the rate stays residency_sample_rate. >= 0, finite.
  double residency_watched_per_second = 1000;
  /// With steering on, the sampler lowers the rate when this many watched
  /// blocks are alive (~80 bytes each) and does not raise it above half;
  /// >= 1. (A fixed rate is left as configured.)
  std::uint32_t residency_max_watched_blocks = 65536;
  std::uint64_t residency_seed = 0x6b76'7363'6f70'6532;
  /// Recent eviction events kept for JSON/CSV output; 0 keeps none.
  std::uint32_t eviction_event_capacity = 1024;
  /// An evicted block hit at least this many times counts as hot; >= 1.
  std::uint32_t hot_reuse_threshold = 2;
  /// Evicted sampled hashes remembered, stamped with the eviction count, to
  /// measure refault distances of later misses (0 turns it off).
  std::uint32_t ghost_entries = 4096;

  // ---- per-prefix / per-tenant breakdowns ----
  /// Hottest prefixes tracked (space-saving top-K); 1 .. 4096.
  std::uint32_t top_prefixes = 32;
  /// Distinct tenants (cache salts) and adapters with their own counters;
  /// the rest are summed under "other". 1 .. 4096 each.
  std::uint32_t max_tenants = 64;
  std::uint32_t max_adapters = 64;

  // ---- histograms ----
  /// Layout of latency histograms (nanoseconds): 1 ns .. 68.7 s at 0.78%.
  HistogramLayout latency_layout{};
  /// Layout of residency histograms (nanoseconds): up to 2^42 ns (~73 min).
  HistogramLayout residency_layout{(std::uint64_t{1} << 42) - 1, 7};
  /// Export bounds (Prometheus `le`), seconds: strictly increasing, finite, > 0.
  std::vector<double> residency_bounds_seconds = vllm_residency_bounds_seconds();
  std::vector<double> latency_bounds_seconds = default_latency_bounds_seconds();

  // ---- miss-ratio curve (exact LRU stack distances; off by default) ----
  MissRatioConfig miss_ratio{};

  // ---- thresholds (read by the analytics; validated here) ----
  /// Usage at or above which the cache is under memory pressure; (0, 1].
  double memory_pressure_threshold = 0.9;

  /// Timestamps of residency events and ticks. nullptr: SteadyClock. Must
  /// outlive the metrics. A runtime that stamps batches passes a ManualClock.
  const Clock* clock = nullptr;

  /// Throws std::invalid_argument naming the first bad field.
  void validate() const;
  /// The clock to use (SteadyClock::instance() when none is set).
  const Clock& effective_clock() const noexcept;
};

}  // namespace kvscope
