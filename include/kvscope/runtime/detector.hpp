// kvscope/runtime/detector.hpp - the aggregator's pluggable detectors.
//
// After merging the shards, the aggregator hands each new snapshot to every
// configured detector, in order, before publishing it; the alerts they add
// are published with it. Detectors run on the aggregator's thread only, one
// call at a time, so they may keep state between snapshots (trends). An
// exception from inspect() is caught and counted
// (RuntimeCounters::detector_failures); alerts it added before throwing are
// kept.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

class SnapshotDetector {
 public:
  virtual ~SnapshotDetector() = default;
  /// Stable name, copied into Alert::detector.
  virtual std::string_view name() const noexcept = 0;
  /// Appends alerts about `snapshot` (whose `alerts` holds what earlier
  /// detectors found). Keep it cheap: it delays publication.
  virtual void inspect(const RuntimeSnapshot& snapshot, std::vector<Alert>& alerts) = 0;
};

/// The figures a ThresholdDetector can watch. Global and per-shard unless noted.
enum class WatchedMetric : std::uint8_t {
  window_hit_rate,       ///< prefix-cache token hit rate within the time window
  usage,                 ///< blocks in use / blocks
  window_eviction_rate,  ///< evicted blocks per second within the window
  load_share,            ///< per shard only: share of the last interval's operations
  observations_dropped,  ///< global only: fire-and-forget records dropped so far
};
std::string_view to_string(WatchedMetric metric) noexcept;

/// Fires while a figure is beyond a fixed bound (strictly). A hit-rate rule
/// stays quiet until the window holds `min_requests` admitted requests (an
/// idle cache's hit rate of 0 is not news).
class ThresholdDetector final : public SnapshotDetector {
 public:
  enum class Direction : std::uint8_t { above, below };
  struct Rule {
    WatchedMetric metric = WatchedMetric::window_hit_rate;
    Direction direction = Direction::below;
    double threshold = 0;
    AlertSeverity severity = AlertSeverity::warning;
    bool per_shard = false;            ///< also check each shard (where meaningful)
    std::uint64_t min_requests = 100;  ///< window requests needed for hit-rate rules
  };

  /// Throws std::invalid_argument on a rule that cannot be evaluated (a
  /// non-finite threshold, load_share without per_shard, a per-shard
  /// observations_dropped).
  explicit ThresholdDetector(std::vector<Rule> rules);
  /// A starting set: global window hit rate below 10%, usage (global or a
  /// shard's) above the memory-pressure threshold and, with S > 1 shards, a
  /// shard doing more than min(0.9, 2/S) of an interval's operations.
  static std::vector<Rule> default_rules(double memory_pressure_threshold, std::uint32_t shards);

  std::string_view name() const noexcept override { return "threshold"; }
  void inspect(const RuntimeSnapshot& snapshot, std::vector<Alert>& alerts) override;

 private:
  void check(const Rule& rule, double value, std::optional<std::uint32_t> shard,
             std::vector<Alert>& alerts) const;
  std::vector<Rule> rules_;
};

}  // namespace kvscope
