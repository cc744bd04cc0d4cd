// kvscope/analytics/alerts.hpp - alerts with hysteresis.
//
// Detectors report Findings: a condition that holds in the snapshot at hand
// (the hit rate dropped, the pool is nearly full). An AlertTracker turns the
// stream of findings into CacheAlerts the way Prometheus' alerting rules do:
//   pending   the condition holds, but not yet for `pending_intervals`
//             consecutive snapshots (one noisy interval never fires);
//   firing    it held long enough; it keeps firing until the condition has
//             been absent for `keep_firing_intervals` consecutive snapshots
//             (an alert on the edge does not flap);
//   resolved  reported once, in the snapshot where it stopped firing.
// An alert is identified by (detector, metric, shard). Its level is the
// finding's; a firing alert moves to another level only after that level
// held for `pending_intervals` snapshots too.
//
// Thread rules: single thread (the runtime's aggregator). Cost: O(findings
// + active alerts) per update, a map lookup each.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "kvscope/clock.hpp"

namespace kvscope {

enum class AlertLevel : std::uint8_t { info, warning, critical };
std::string_view to_string(AlertLevel level) noexcept;

enum class AlertState : std::uint8_t { pending, firing, resolved };
std::string_view to_string(AlertState state) noexcept;

/// A condition a detector saw in one snapshot.
struct Finding {
  std::string detector{};  ///< the detector's name
  std::string metric{};    ///< e.g. "hit_rate_tokens"
  AlertLevel level = AlertLevel::warning;
  std::optional<std::uint32_t> shard{};  ///< nullopt: about the global figures
  double value = 0;                      ///< the observed value
  double baseline = 0;                   ///< what was expected (the learnt level, or the bound)
  double threshold = 0;                  ///< the bound the value crossed
  std::string message{};                 ///< one plain-language line
};

struct CacheAlert {
  std::string detector{};
  std::string metric{};
  AlertLevel level = AlertLevel::warning;
  AlertState state = AlertState::pending;
  std::optional<std::uint32_t> shard{};
  double value = 0;      ///< latest finding's value (the last one seen, once resolved)
  double baseline = 0;   ///< latest finding's baseline
  double threshold = 0;  ///< latest finding's threshold
  Timestamp started{0};  ///< when the condition was first seen (pending began)
  std::chrono::system_clock::time_point started_wall{};
  Timestamp fired{0};           ///< when it started firing (0 while pending)
  Timestamp resolved{0};        ///< when it was resolved (0 until then)
  std::uint64_t intervals = 0;  ///< consecutive snapshots the condition held (latest run)
  std::string message{};
};

struct AlertPolicy {
  /// Consecutive snapshots a condition must hold before it fires; >= 1.
  std::uint32_t pending_intervals = 3;
  /// Consecutive snapshots without the condition before a firing alert
  /// resolves; >= 1.
  std::uint32_t keep_firing_intervals = 5;
  /// Throws std::invalid_argument naming the bad field.
  void validate() const;
};

/// What changed in one update.
struct AlertTransition {
  enum class Kind : std::uint8_t { fired, level_changed, resolved };
  Kind kind;
  CacheAlert alert;  ///< the alert after the change
};
std::string_view to_string(AlertTransition::Kind kind) noexcept;

class AlertTracker {
 public:
  /// Throws std::invalid_argument on a bad policy.
  explicit AlertTracker(AlertPolicy policy = {});

  /// Feeds one snapshot's findings (several findings with the same key: the
  /// highest level wins). Returns the transitions, in key order.
  std::vector<AlertTransition> update(const std::vector<Finding>& findings, Timestamp now,
                                      std::chrono::system_clock::time_point wall_now);

  /// Pending and firing alerts, plus those resolved by the last update, in
  /// key order.
  const std::vector<CacheAlert>& current() const noexcept { return current_; }
  std::size_t firing_count() const noexcept;
  const AlertPolicy& policy() const noexcept { return policy_; }

 private:
  using Key = std::tuple<std::string, std::string, std::int64_t>;  // detector, metric, shard|-1
  struct Track {
    CacheAlert alert;
    std::uint32_t quiet = 0;             // consecutive updates without the condition (firing only)
    std::optional<AlertLevel> proposed;  // a level other than the alert's, held for...
    std::uint32_t proposed_for = 0;      // ...this many updates
  };
  static Key key_of(const Finding& finding);
  std::optional<AlertTransition> seen(Track& track, const Finding& finding, Timestamp now);
  std::optional<AlertTransition> missed(Track& track, Timestamp now);

  AlertPolicy policy_;
  std::map<Key, Track> tracks_;
  std::vector<CacheAlert> current_;
};

}  // namespace kvscope
