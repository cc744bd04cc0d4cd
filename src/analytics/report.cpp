#include "kvscope/analytics/report.hpp"

#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include "metrics/json_util.hpp"

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

}  // namespace

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

std::string PerformanceDiagnosis::to_text() const {
  std::string out = fmt::format(
      "token hit rate: {:.1f}% overall, {:.1f}% recent (time window), {:.1f}% over the last "
      "requests\n"
      "memory: {:.1f}% of blocks in use, {:.1f}% hold cached KV, {:.2f} references per used "
      "block\n",
      100 * overall_hit_rate, 100 * recent_hit_rate, 100 * request_window_hit_rate, 100 * usage,
      100 * cached_share, sharing_factor);
  auto breakdown = [&](const char* what, const std::vector<NamedHitRate>& rates) {
    if (rates.empty()) return;
    out += fmt::format("by {}:", what);
    for (const NamedHitRate& r : rates)
      out += fmt::format(" {} {:.1f}% ({} requests);", r.name, 100 * r.hit_rate, r.requests);
    out += '\n';
  };
  breakdown("tenant", by_tenant);
  breakdown("adapter", by_adapter);
  breakdown("level", by_level);
  if (recommended_blocks)
    out += fmt::format("recommended capacity: {} blocks\n", *recommended_blocks);
  if (issues.empty()) out += "no issues found\n";
  for (const DiagnosisIssue& i : issues) out += fmt::format("[{}] {}\n", i.severity, i.message);
  return out;
}

}  // namespace kvscope
