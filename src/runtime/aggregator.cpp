#include "kvscope/runtime/aggregator.hpp"

#include <stdexcept>
#include <utility>

namespace kvscope {

Aggregator::Aggregator(AnalyticsConfig analytics,
                       std::vector<std::shared_ptr<SnapshotDetector>> detectors)
    : detectors_(std::move(detectors)),
      analytics_(std::move(analytics)),
      alert_tracker_(analytics_.config().alerts) {
  for (const auto& detector : detectors_)
    if (!detector) throw std::invalid_argument("kvscope: Aggregator: a detector is null");
}

void Aggregator::measure_load(const std::vector<ShardReport>& reports, MergedSnapshot& out) {
  if (previous_operations_.size() != reports.size()) previous_operations_.assign(reports.size(), 0);
  const double seconds = std::chrono::duration<double>(out.interval).count();
  std::uint64_t interval_operations = 0;
  for (std::size_t i = 0; i < reports.size(); ++i)
    interval_operations += reports[i].operations - previous_operations_[i];
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const std::uint64_t done = reports[i].operations - previous_operations_[i];
    ShardLoad load;
    load.operations = reports[i].operations;
    load.operations_per_second = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    load.share = interval_operations > 0
                     ? static_cast<double>(done) / static_cast<double>(interval_operations)
                     : 0;
    load.observations_dropped = reports[i].observations_dropped;
    load.service = reports[i].service;
    out.load.push_back(load);
    previous_operations_[i] = reports[i].operations;
  }
}

RuntimeSnapshot Aggregator::merge(std::vector<ShardReport> reports, Timestamp now,
                                  std::chrono::system_clock::time_point wall_time, bool final) {
  RuntimeSnapshot out;
  out.sequence = ++sequence_;
  out.at = now;
  out.wall_time = wall_time;
  out.interval = out.sequence == 1 ? std::chrono::nanoseconds(0) : now - previous_at_;
  out.final = final;
  measure_load(reports, out);
  for (std::size_t i = 0; i < reports.size(); ++i) {
    ShardReport& report = reports[i];
    if (i == 0) {
      out.global = report.cache;
      out.levels = report.levels;
    } else {
      out.global += report.cache;
      out.levels += report.levels;
    }
    out.shards.push_back(std::move(report.cache));
    out.shard_levels.push_back(std::move(report.levels));
  }
  previous_at_ = now;

  out.analytics = analytics_.measure(out);
  std::vector<Finding> findings;
  for (const auto& detector : detectors_) {
    try {
      detector->inspect(out, out.analytics, findings);
    } catch (...) {
      ++detector_failures_;
    }
  }
  out.alert_events = alert_tracker_.update(findings, now, out.wall_time);
  out.alerts = alert_tracker_.current();
  out.counters.detector_failures = detector_failures_;
  out.counters.aggregation_failures = aggregation_failures_;
  out.analytics.diagnosis = diagnose(out, out.analytics, out.alerts, analytics_.config());
  return out;
}

}  // namespace kvscope
