// kvscope/runtime/snapshot.hpp - what the runtime's aggregator publishes.
//
// A RuntimeSnapshot is immutable once published and shared by pointer
// (std::shared_ptr<const RuntimeSnapshot>): readers on any thread may keep
// it as long as they like. It is the merged shard metrics (MergedSnapshot)
// plus what the aggregator derived from them - the analytics report, the
// alerts after their hysteresis - and the runtime's own health counters.
// kvscope/export/json.hpp and kvscope/export/prometheus.hpp write it out.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "kvscope/analytics/alerts.hpp"
#include "kvscope/analytics/report.hpp"
#include "kvscope/events/kv_event_publisher.hpp"
#include "kvscope/metrics/merged_snapshot.hpp"

namespace kvscope {

/// The runtime's own health counters, cumulative since start. (Observations
/// dropped by full queues are MergedSnapshot::observations_dropped().)
struct RuntimeCounters {
  std::uint64_t subscriber_failures = 0;   ///< subscriber callbacks that threw
  std::uint64_t subscriber_skipped = 0;    ///< snapshots a busy subscriber never saw
  std::uint64_t detector_failures = 0;     ///< detector calls that threw
  std::uint64_t aggregation_failures = 0;  ///< aggregation rounds that threw (skipped)
};

struct RuntimeSnapshot : MergedSnapshot {
  /// Pending and firing alerts, and those resolved at this snapshot
  /// (AlertTracker::current(), after the hysteresis).
  std::vector<CacheAlert> alerts;
  /// What changed at this snapshot: alerts fired, changed level or resolved.
  std::vector<AlertTransition> alert_events;
  AnalyticsReport analytics;  ///< interval figures, trends, capacity advice, diagnosis
  RuntimeCounters counters;
  /// The KV event publisher's figures (RuntimeConfig::kv_events); empty when off.
  std::optional<KvEventStats> kv_events;
};

}  // namespace kvscope
