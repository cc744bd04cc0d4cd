// The Prometheus families of a RuntimeSnapshot (kvscope/export/prometheus.hpp):
// each shard's, the runtime's own and the analytics'.
#include <algorithm>
#include <string>

#include <fmt/core.h>

#include "kvscope/export/prometheus.hpp"

namespace kvscope {

namespace {

/// kvscope_analytics_* families: trends, capacity advice, diagnosis issues
/// and the global miss-ratio curve.
void write_analytics_prometheus(PrometheusWriter& out, const AnalyticsReport& report,
                                const ShardSnapshot& global) {
  for (const SeriesTrend& t : report.trends) {
    const PrometheusLabels metric{{"metric", t.metric}};
    out.gauge("kvscope_analytics_trend_slope",
              "Theil-Sen slope of the metric per snapshot interval.", metric, t.trend.slope);
    const double direction = t.trend.direction == TrendDirection::rising    ? 1.0
                             : t.trend.direction == TrendDirection::falling ? -1.0
                                                                            : 0.0;
    out.gauge("kvscope_analytics_trend_direction",
              "1 rising, -1 falling, 0 stable (Mann-Kendall significant and large enough).", metric,
              direction);
  }
  if (report.capacity) {
    const CapacityAdvice& c = *report.capacity;
    out.gauge("kvscope_analytics_expected_hit_ratio",
              "Token hit ratio the LRU model predicts at the current capacity.", {},
              c.expected_hit_ratio);
    out.gauge("kvscope_analytics_knee_blocks",
              "Capacity where extra blocks stop paying (knee of the miss-ratio curve).", {},
              static_cast<double>(c.knee_blocks));
    if (c.blocks_for_target)
      out.gauge("kvscope_analytics_recommended_blocks",
                "Smallest capacity predicted to reach the target hit ratio.", {},
                static_cast<double>(*c.blocks_for_target));
  }
  if (global.miss_ratio) {
    const MissRatioCurve& curve = *global.miss_ratio;
    // Labelled by the multiple of the capacity: unique per point, where
    // rounded block counts of a small cache could repeat.
    for (const MrcPoint& p : curve.points)
      out.gauge("kvscope_analytics_mrc_token_hit_ratio",
                "Predicted token hit ratio at capacity_multiple x the current capacity "
                "(exact LRU stack distances).",
                {{"capacity_multiple", fmt::format("{}", p.multiple)}}, curve.token_hit_ratio(p));
  }
  for (const char* severity : {"info", "warning", "critical"}) {
    const auto& issues = report.diagnosis.issues;
    const auto n = std::count_if(issues.begin(), issues.end(),
                                 [&](const DiagnosisIssue& i) { return i.severity == severity; });
    out.gauge("kvscope_analytics_diagnosis_issues", "Issues the diagnosis reports, by severity.",
              {{"severity", severity}}, static_cast<double>(n));
  }
}

/// kvscope_kv_events_* families: what the KV event publisher sent.
void write_kv_events_prometheus(PrometheusWriter& out, const KvEventStats& s) {
  out.counter("kvscope_kv_events_batches_total", "KV event batches published (ZeroMQ PUB).", {},
              static_cast<double>(s.batches));
  const std::pair<const char*, std::uint64_t> by_type[] = {{"BlockStored", s.events.stored},
                                                           {"BlockRemoved", s.events.removed},
                                                           {"AllBlocksCleared", s.events.cleared}};
  for (const auto& [type, n] : by_type)
    out.counter("kvscope_kv_events_total", "KV events published, by type.", {{"type", type}},
                static_cast<double>(n));
  out.counter("kvscope_kv_events_blocks_stored_total", "Blocks announced in BlockStored events.",
              {}, static_cast<double>(s.events.blocks_stored));
  out.counter("kvscope_kv_events_bytes_total", "Payload bytes of the published batches.", {},
              static_cast<double>(s.bytes));
  out.counter("kvscope_kv_events_batches_dropped_total",
              "KV event batches dropped because the publisher's queue was full.", {},
              static_cast<double>(s.batches_dropped));
  out.counter("kvscope_kv_events_replay_requests_total", "Replay requests, by outcome.",
              {{"outcome", "served"}}, static_cast<double>(s.replay_served));
  out.counter("kvscope_kv_events_replay_requests_total", "Replay requests, by outcome.",
              {{"outcome", "refused"}}, static_cast<double>(s.replay_refused));
}

void write_service(PrometheusWriter& out, const ServiceTimes& t, const PrometheusLabels& shard,
                   const MetricsConfig& config) {
  for (std::size_t k = 0; k < kShardOperationCount; ++k) {
    PrometheusLabels labels = shard;
    labels.emplace_back("op", std::string(to_string(static_cast<ShardOperation>(k))));
    out.counter("kvscope_runtime_operations_total", "Operations run on the shard, by kind.", labels,
                static_cast<double>(t.operations[k]));
    out.histogram("kvscope_runtime_operation_service_seconds",
                  "Time operations spent on the shard's thread (service time, no queueing), "
                  "a timed sample of them, weighted to stand for all",
                  labels, t.service_ns[k], config.latency_bounds_seconds, 1e-9);
  }
}

}  // namespace

std::string to_prometheus(const RuntimeSnapshot& s, const MetricsConfig& config) {
  PrometheusWriter out;
  for (std::size_t i = 0; i < s.shards.size(); ++i) {
    const PrometheusLabels shard{{"shard", std::to_string(i)}};
    write_prometheus(out, s.shards[i], shard, config);
    if (i < s.shard_levels.size()) write_prometheus(out, s.shard_levels[i], shard, config);
    if (i < s.load.size()) {
      out.counter("kvscope_runtime_shard_operations_total", "Operations run on the shard.", shard,
                  static_cast<double>(s.load[i].operations));
      out.gauge("kvscope_runtime_shard_load_share",
                "The shard's share of all operations in the last snapshot interval.", shard,
                s.load[i].share);
      write_service(out, s.load[i].service, shard, config);
    }
  }
  out.gauge("kvscope_runtime_snapshot_sequence", "Sequence number of this snapshot.", {},
            static_cast<double>(s.sequence));
  out.gauge("kvscope_runtime_load_imbalance",
            "Largest shard share times the shard count (1 = even).", {}, s.load_imbalance());
  for (AlertLevel level : {AlertLevel::info, AlertLevel::warning, AlertLevel::critical}) {
    const auto firing = std::count_if(s.alerts.begin(), s.alerts.end(), [&](const CacheAlert& a) {
      return a.level == level && a.state == AlertState::firing;
    });
    out.gauge("kvscope_runtime_alerts", "Alerts firing at this snapshot, by level.",
              {{"level", std::string(to_string(level))}}, static_cast<double>(firing));
  }
  write_analytics_prometheus(out, s.analytics, s.global);
  out.counter("kvscope_runtime_subscriber_failures_total", "Subscriber callbacks that threw.", {},
              static_cast<double>(s.counters.subscriber_failures));
  out.counter("kvscope_runtime_subscriber_skipped_total", "Snapshots a busy subscriber never saw.",
              {}, static_cast<double>(s.counters.subscriber_skipped));
  out.counter("kvscope_runtime_detector_failures_total", "Detector calls that threw.", {},
              static_cast<double>(s.counters.detector_failures));
  out.counter("kvscope_runtime_aggregation_failures_total",
              "Aggregation rounds that threw and were skipped.", {},
              static_cast<double>(s.counters.aggregation_failures));
  if (s.kv_events) write_kv_events_prometheus(out, *s.kv_events);
  out.counter("kvscope_runtime_observations_dropped_total",
              "Fire-and-forget observations dropped by full queues.", {},
              static_cast<double>(s.observations_dropped()));
  return out.text();
}

}  // namespace kvscope
