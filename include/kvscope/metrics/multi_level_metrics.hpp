// kvscope/metrics/multi_level_metrics.hpp - metrics of a stack of cache
// levels (the seeds' MultiLevelCacheMetrics): e.g. GPU prefix cache, CPU
// offload, disk. Each level has its own CachingMetrics; requests are also
// counted across levels, so "served by any level" has a hit rate.
//
// Thread rules: single writer, no locks. Cost: level() is O(log levels);
// observe_request O(log levels); snapshot O(levels x histogram buckets).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/metrics/cache_metrics.hpp"

namespace kvscope {

/// Requests counted across levels.
struct RequestServing {
  std::uint64_t requests = 0;  ///< observe_request calls
  std::uint64_t served = 0;    ///< of those, served by some level

  double hit_rate() const noexcept;  ///< served / requests; 0 when none
  RequestServing& operator+=(const RequestServing& other) noexcept;
  RequestServing& operator-=(const RequestServing& other) noexcept;
  friend bool operator==(const RequestServing&, const RequestServing&) = default;
};

struct MultiLevelSnapshot {
  std::vector<CachingSnapshot> levels;           ///< sorted by level name
  RequestServing total;                          ///< since construction
  RequestServing window;                         ///< within the time window
  std::map<CacheType, std::uint64_t> served_by;  ///< requests each level served, total

  /// Share of requests served by any level, total and within the window.
  double combined_hit_rate() const noexcept { return total.hit_rate(); }
  double window_combined_hit_rate() const noexcept { return window.hit_rate(); }
  /// Resident bytes over capacity bytes, summed over levels with a known
  /// capacity; 0 when none has one.
  double memory_pressure() const noexcept;
  const CachingSnapshot* find(CacheType type) const noexcept;

  /// Merges per level (levels only one side has are copied).
  MultiLevelSnapshot& operator+=(const MultiLevelSnapshot& other);
};

class MultiLevelCacheMetrics {
 public:
  /// Every level gets this window and latency layout. Throws on bad ones.
  explicit MultiLevelCacheMetrics(WindowConfig window = {}, HistogramLayout latency_layout = {});

  /// The level's metrics, created on first use (and ticked to the last
  /// tick). The reference stays valid for the object's lifetime.
  CachingMetrics& level(CacheType type);
  /// nullptr if the level was never used.
  const CachingMetrics* find(CacheType type) const noexcept;
  std::size_t level_count() const noexcept { return levels_.size(); }

  /// One request's outcome: served by `served_by` (the first level that held
  /// it; the level is created if new), or by none.
  void observe_request(std::optional<CacheType> served_by);

  /// Ticks every level and the request window.
  void tick(Timestamp now);
  MultiLevelSnapshot snapshot(Timestamp now);

 private:
  WindowConfig window_config_;
  HistogramLayout latency_layout_;
  std::map<CacheType, std::unique_ptr<CachingMetrics>> levels_;
  std::map<CacheType, std::uint64_t> served_by_;
  RequestServing requests_;
  SnapshotWindow<RequestServing> request_window_;
  std::optional<Timestamp> last_tick_;
};

}  // namespace kvscope
