// The JSON of the analytics' and the runtime's values (kvscope/export/json.hpp).
#include <chrono>

#include "detail/units.hpp"
#include "export/json_values.hpp"
#include "kvscope/export/json.hpp"

namespace kvscope {

namespace {

nlohmann::json interval_json(const IntervalFigures& f) {
  return nlohmann::json{{"seconds", f.seconds},
                        {"requests", f.requests},
                        {"query_tokens", f.query_tokens},
                        {"hit_rate_tokens", f.hit_rate_tokens},
                        {"hit_rate_blocks", f.hit_rate_blocks},
                        {"usage", f.usage},
                        {"evictions", f.evictions},
                        {"eviction_rate", f.eviction_rate},
                        {"pool_turnover", f.pool_turnover},
                        {"allocation_failures", f.allocation_failures},
                        {"latency_samples", f.latency_samples},
                        {"latency_p99_us", f.latency_p99_us},
                        {"misses_checked", f.misses_checked},
                        {"refaults_within_capacity", f.refaults_within_capacity}};
}

nlohmann::json trend_json(const SeriesTrend& t) {
  return nlohmann::json{{"metric", t.metric},
                        {"direction", to_string(t.trend.direction)},
                        {"confidence", t.trend.confidence},
                        {"slope", t.trend.slope},
                        {"change", t.trend.change},
                        {"p_value", t.trend.p_value},
                        {"points", t.trend.points}};
}

nlohmann::json capacity_json(const CapacityAdvice& c) {
  return nlohmann::json{
      {"current_blocks", c.current_blocks},
      {"target_hit_ratio", c.target_hit_ratio},
      {"blocks_for_target", c.blocks_for_target ? nlohmann::json(*c.blocks_for_target) : nullptr},
      {"knee_blocks", c.knee_blocks},
      {"knee_hit_ratio", c.knee_hit_ratio},
      {"best_blocks", c.best_blocks},
      {"best_hit_ratio", c.best_hit_ratio},
      {"expected_hit_ratio", c.expected_hit_ratio},
      {"measured_hit_ratio", c.measured_hit_ratio}};
}

nlohmann::json named_json(const std::vector<NamedHitRate>& rates) {
  nlohmann::json out = nlohmann::json::array();
  for (const NamedHitRate& r : rates)
    out.push_back({{"name", r.name}, {"requests", r.requests}, {"hit_rate", r.hit_rate}});
  return out;
}

nlohmann::json diagnosis_json(const PerformanceDiagnosis& d) {
  nlohmann::json issues = nlohmann::json::array();
  for (const DiagnosisIssue& i : d.issues)
    issues.push_back(
        {{"code", i.code}, {"severity", i.severity}, {"figure", i.figure}, {"message", i.message}});
  return nlohmann::json{
      {"overall_hit_rate", d.overall_hit_rate},
      {"recent_hit_rate", d.recent_hit_rate},
      {"request_window_hit_rate", d.request_window_hit_rate},
      {"by_tenant", named_json(d.by_tenant)},
      {"by_adapter", named_json(d.by_adapter)},
      {"by_level", named_json(d.by_level)},
      {"usage", d.usage},
      {"sharing_factor", d.sharing_factor},
      {"cached_share", d.cached_share},
      {"recommended_blocks",
       d.recommended_blocks ? nlohmann::json(*d.recommended_blocks) : nlohmann::json(nullptr)},
      {"issues", std::move(issues)}};
}

nlohmann::json service_json(const ServiceTimes& t) {
  nlohmann::json by_kind = nlohmann::json::object();
  for (std::size_t k = 0; k < kShardOperationCount; ++k) {
    by_kind[std::string(to_string(static_cast<ShardOperation>(k)))] = {
        {"operations", t.operations[k]}, {"service_ns", detail::histogram_json(t.service_ns[k])}};
  }
  return {
      {"sampling", t.sampling}, {"total_ns", t.total_ns()}, {"by_operation", std::move(by_kind)}};
}

nlohmann::json load_json(const ShardLoad& l) {
  return nlohmann::json{{"operations", l.operations},
                        {"operations_per_second", l.operations_per_second},
                        {"share", l.share},
                        {"observations_dropped", l.observations_dropped},
                        {"service", service_json(l.service)}};
}

nlohmann::json counters_json(const RuntimeSnapshot& s) {
  const RuntimeCounters& c = s.counters;
  return nlohmann::json{{"subscriber_failures", c.subscriber_failures},
                        {"subscriber_skipped", c.subscriber_skipped},
                        {"detector_failures", c.detector_failures},
                        {"aggregation_failures", c.aggregation_failures},
                        {"observations_dropped", s.observations_dropped()}};
}

nlohmann::json kv_events_json(const std::optional<KvEventStats>& stats) {
  if (!stats) return nullptr;
  const KvEventStats& s = *stats;
  return nlohmann::json{{"batches", s.batches},
                        {"events",
                         {{"BlockStored", s.events.stored},
                          {"BlockRemoved", s.events.removed},
                          {"AllBlocksCleared", s.events.cleared}}},
                        {"blocks_stored", s.events.blocks_stored},
                        {"bytes", s.bytes},
                        {"batches_dropped", s.batches_dropped},
                        {"replay_served", s.replay_served},
                        {"replay_refused", s.replay_refused}};
}

template <class T, class ToJson>
nlohmann::json array_json(const std::vector<T>& items, ToJson to_json) {
  nlohmann::json out = nlohmann::json::array();
  for (const T& item : items) out.push_back(to_json(item));
  return out;
}

}  // namespace

nlohmann::json detail::cache_alert_json(const CacheAlert& a) {
  const auto wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(a.started_wall.time_since_epoch());
  nlohmann::json j{{"detector", a.detector},
                   {"metric", a.metric},
                   {"level", to_string(a.level)},
                   {"state", to_string(a.state)},
                   {"shard", nullptr},
                   {"value", a.value},
                   {"baseline", a.baseline},
                   {"threshold", a.threshold},
                   {"started_ns", a.started.count()},
                   {"started_wall_ms", wall_ms.count()},
                   {"fired_ns", a.fired.count()},
                   {"resolved_ns", a.resolved.count()},
                   {"intervals", a.intervals},
                   {"message", a.message}};
  if (a.shard) j["shard"] = *a.shard;
  return j;
}

nlohmann::json detail::alert_transition_json(const AlertTransition& t) {
  return nlohmann::json{{"kind", to_string(t.kind)}, {"alert", cache_alert_json(t.alert)}};
}

nlohmann::json detail::analytics_json(const AnalyticsReport& r) {
  nlohmann::json shards = nlohmann::json::array();
  for (const IntervalFigures& f : r.shard_intervals) shards.push_back(interval_json(f));
  nlohmann::json trends = nlohmann::json::array();
  for (const SeriesTrend& t : r.trends) trends.push_back(trend_json(t));
  return nlohmann::json{
      {"interval", interval_json(r.interval)},
      {"shard_intervals", std::move(shards)},
      {"trends", std::move(trends)},
      {"capacity", r.capacity ? capacity_json(*r.capacity) : nlohmann::json(nullptr)},
      {"diagnosis", diagnosis_json(r.diagnosis)}};
}

// ---- the public strings ----

std::string to_json(const CacheAlert& a) { return detail::cache_alert_json(a).dump(); }

std::string to_json(const RuntimeSnapshot& s) {
  const auto wall_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(s.wall_time.time_since_epoch()).count();
  const nlohmann::json j{
      {"sequence", s.sequence},
      {"at_s", detail::seconds(s.at)},
      {"wall_time_ms", wall_ms},
      {"interval_s", detail::seconds(s.interval)},
      {"final", s.final},
      {"global", detail::shard_snapshot_json(s.global)},
      {"shards", array_json(s.shards, detail::shard_snapshot_json)},
      {"levels", detail::multi_level_json(s.levels)},
      {"shard_levels", array_json(s.shard_levels, detail::multi_level_json)},
      {"load", array_json(s.load, load_json)},
      {"load_imbalance", s.load_imbalance()},
      {"alerts", array_json(s.alerts, detail::cache_alert_json)},
      {"alert_events", array_json(s.alert_events, detail::alert_transition_json)},
      {"analytics", detail::analytics_json(s.analytics)},
      {"counters", counters_json(s)},
      {"kv_events", kv_events_json(s.kv_events)}};
  return j.dump();
}

}  // namespace kvscope
