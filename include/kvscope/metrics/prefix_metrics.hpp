// kvscope/metrics/prefix_metrics.hpp - what vLLM's counters cannot tell:
// which prefixes serve the hits, how long the hits are, which tenants and
// adapters benefit, and how many prompts could never hit.
//
// Fed once per admission (record_admission, O(log K) for the top-K plus
// O(1) otherwise; no clock read). Memory is bounded by configuration:
// top_prefixes entries, max_tenants + max_adapters labelled counters.
//
// Thread rules: single writer, no locks; the snapshot is a plain value.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvscope/detail/flat_index.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/prefix_cache_stats.hpp"

namespace kvscope {

/// One tracked prefix (space-saving counts: hits may overcount by `error`).
struct PrefixEntry {
  BlockHash prefix;                 ///< hash of the prefix's last block
  std::uint32_t prefix_blocks = 0;  ///< the prefix's length in blocks
  std::uint64_t hits = 0;           ///< admissions it served (upper bound)
  std::uint64_t error = 0;          ///< hits - error is a lower bound
  std::uint64_t hit_tokens = 0;     ///< tokens it served while tracked
  friend bool operator==(const PrefixEntry&, const PrefixEntry&) = default;
};

/// Space-saving heavy hitters (Metwally, Agrawal, El Abbadi, ICDT 2005) over
/// prefixes: `capacity` counters; an untracked prefix replaces the one with
/// the fewest hits and inherits that count as its error. Any prefix with
/// more than N / capacity hits (N = records) is guaranteed to be tracked.
/// record() is O(log capacity): a flat hash index plus a min-heap.
class TopPrefixes {
 public:
  /// Throws std::invalid_argument unless 1 <= capacity <= 4096.
  explicit TopPrefixes(std::uint32_t capacity);

  void record(const BlockHash& prefix, std::uint32_t prefix_blocks, std::uint64_t hit_tokens);
  /// Tracked entries, most hits first (ties: longer prefix first). O(K log K).
  std::vector<PrefixEntry> top() const;
  std::uint64_t records() const noexcept { return records_; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  std::size_t memory_bytes() const noexcept;

 private:
  void sift_up(std::uint32_t pos);
  void sift_down(std::uint32_t pos);
  void swap_heap(std::uint32_t a, std::uint32_t b);

  std::uint32_t capacity_;
  std::uint64_t records_ = 0;
  std::vector<PrefixEntry> entries_;
  std::vector<std::uint32_t> heap_;      // entry ids, min-heap by hits
  std::vector<std::uint32_t> heap_pos_;  // entry id -> heap position
  detail::FlatIndex index_;              // fold(prefix) -> entry id
};

/// Admissions of one tenant or adapter.
struct LabelledCounts {
  QueryCounts fresh;
  QueryCounts preempted;
  LabelledCounts& operator+=(const LabelledCounts& other) noexcept;
  friend bool operator==(const LabelledCounts&, const LabelledCounts&) = default;
};

/// Admissions by where the lookup stopped (LookupStop order).
using StopCounts = std::array<std::uint64_t, 4>;

/// Hit lengths in tokens: exact below 128, <= 0.78% wide above, up to 2^30.
inline constexpr HistogramLayout kHitLengthLayout{std::uint64_t{1} << 30, 7};

struct PrefixSnapshot {
  std::vector<PrefixEntry> top_prefixes;  ///< most hits first
  std::uint32_t top_capacity = 0;
  /// Hit length in tokens of each admission that hit (fresh requests).
  Histogram hit_length_tokens{kHitLengthLayout};
  /// Fresh admissions by LookupStop (too_short: prompts shorter than one
  /// block, which can never hit).
  StopCounts stops{};
  /// Per tenant (cache salt; "none" without one; "other" past max_tenants)
  /// and per adapter ("none", the adapter id in decimal, or "other").
  std::map<std::string, LabelledCounts> tenants;
  std::map<std::string, LabelledCounts> adapters;

  std::uint64_t stop_count(LookupStop stop) const noexcept {
    return stops[static_cast<std::size_t>(stop)];
  }
  /// Share of fresh admissions too short to ever hit.
  double too_short_share() const noexcept;

  /// Merges shards: top lists combine by prefix (counts add) and keep the
  /// largest top_capacity; histograms merge; labelled counts add.
  PrefixSnapshot& operator+=(const PrefixSnapshot& other);
};

class PrefixMetrics {
 public:
  /// Throws std::invalid_argument on a bad config.
  explicit PrefixMetrics(const MetricsConfig& config);

  /// One successful allocate(): `request` as given, `result` as returned.
  void record_admission(const Request& request, const AllocateResult& result);
  /// Names a tenant in exports (default: "salt:" + 16 hex digits of its
  /// digest). Throws std::invalid_argument for an empty name.
  void set_tenant_name(const CacheSalt& salt, std::string name);

  PrefixSnapshot snapshot() const;
  /// Bytes of state (top-K, histogram, labelled counters). Bounded by the config.
  std::size_t memory_bytes() const noexcept;

 private:
  LabelledCounts& tenant_counts(const ExtraKeys& extras);
  LabelledCounts& adapter_counts(const ExtraKeys& extras);

  std::uint32_t max_tenants_;
  std::uint32_t max_adapters_;
  TopPrefixes top_;
  Histogram hit_length_;
  StopCounts stops_{};
  LabelledCounts no_tenant_, other_tenants_, no_adapter_, other_adapters_;
  std::unordered_map<std::uint64_t, LabelledCounts> tenants_;   // by salt digest (folded)
  std::unordered_map<std::uint64_t, LabelledCounts> adapters_;  // by adapter id
  std::unordered_map<std::uint64_t, std::string> tenant_names_;
};

}  // namespace kvscope
