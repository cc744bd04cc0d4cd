// kvscope/analytics/detector.hpp - the aggregator's pluggable detectors.
//
// After merging the shards and measuring the interval (snapshot.analytics),
// the aggregator hands each new snapshot to every configured detector, in
// order; the Findings they report go through the runtime's AlertTracker
// (pending / keep-firing hysteresis) into the snapshot's alerts. Detectors
// run on the aggregator's thread only, one call at a time, so they may keep
// state between snapshots (baselines). An exception from inspect() is
// caught and counted (RuntimeCounters::detector_failures); findings it added
// before throwing are kept. The built-in cache detectors live in
// kvscope/analytics/detectors.hpp.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/report.hpp"
#include "kvscope/metrics/merged_snapshot.hpp"

namespace kvscope {

class SnapshotDetector {
 public:
  virtual ~SnapshotDetector() = default;
  /// Stable name, copied into Finding::detector.
  virtual std::string_view name() const noexcept = 0;
  /// Appends findings about `snapshot` and its interval figures `analytics`
  /// (`findings` holds what earlier detectors found). Keep it cheap: it
  /// delays publication.
  virtual void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
                       std::vector<Finding>& findings) = 0;
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

/// Finds a figure beyond a fixed bound (strictly). A hit-rate rule stays
/// quiet until the window holds `min_requests` admitted requests (an idle
/// cache's hit rate of 0 is not news). For learnt baselines use the
/// adaptive detectors of kvscope/analytics/detectors.hpp.
class ThresholdDetector final : public SnapshotDetector {
 public:
  enum class Direction : std::uint8_t { above, below };
  struct Rule {
    WatchedMetric metric = WatchedMetric::window_hit_rate;
    Direction direction = Direction::below;
    double threshold = 0;
    AlertLevel level = AlertLevel::warning;
    bool per_shard = false;            ///< also check each shard (where meaningful)
    std::uint64_t min_requests = 100;  ///< window requests needed for hit-rate rules
  };

  /// Throws std::invalid_argument on a rule that cannot be evaluated (a
  /// non-finite threshold, load_share without per_shard, a per-shard
  /// observations_dropped).
  explicit ThresholdDetector(std::vector<Rule> rules);

  std::string_view name() const noexcept override { return "threshold"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
               std::vector<Finding>& findings) override;

 private:
  void check(const Rule& rule, double value, std::optional<std::uint32_t> shard,
             std::vector<Finding>& findings) const;
  std::vector<Rule> rules_;
};

}  // namespace kvscope
