#include "kvscope/analytics/detector.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kvscope {

std::string_view to_string(WatchedMetric metric) noexcept {
  switch (metric) {
    case WatchedMetric::window_hit_rate: return "window_hit_rate";
    case WatchedMetric::usage: return "usage";
    case WatchedMetric::window_eviction_rate: return "window_eviction_rate";
    case WatchedMetric::load_share: return "load_share";
    case WatchedMetric::observations_dropped: return "observations_dropped";
  }
  return "unknown";
}

namespace {

/// The rule's figure for one shard snapshot, or nullopt when it has too
/// little data to judge.
std::optional<double> cache_figure(const ThresholdDetector::Rule& rule, const ShardSnapshot& s) {
  switch (rule.metric) {
    case WatchedMetric::window_hit_rate:
      if (s.window.fresh.requests < rule.min_requests) return std::nullopt;
      return s.window.hit_rate();
    case WatchedMetric::usage: return s.usage();
    case WatchedMetric::window_eviction_rate: return s.window_eviction_rate();
    case WatchedMetric::load_share:
    case WatchedMetric::observations_dropped: return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

ThresholdDetector::ThresholdDetector(std::vector<Rule> rules) : rules_(std::move(rules)) {
  for (const Rule& rule : rules_) {
    const std::string name(to_string(rule.metric));
    if (!std::isfinite(rule.threshold))
      throw std::invalid_argument("kvscope: ThresholdDetector rule on " + name +
                                  ": threshold must be finite");
    if (rule.metric == WatchedMetric::load_share && !rule.per_shard)
      throw std::invalid_argument("kvscope: ThresholdDetector rule on load_share needs per_shard");
    if (rule.metric == WatchedMetric::observations_dropped && rule.per_shard)
      throw std::invalid_argument(
          "kvscope: ThresholdDetector rule on observations_dropped is global only");
  }
}

void ThresholdDetector::check(const Rule& rule, double value, std::optional<std::uint32_t> shard,
                              std::vector<Finding>& findings) const {
  const bool fires =
      rule.direction == Direction::above ? value > rule.threshold : value < rule.threshold;
  if (!fires) return;
  const std::string where = shard ? fmt::format("shard {}", *shard) : std::string("global");
  findings.push_back(Finding{
      .detector = std::string(name()),
      .metric = std::string(to_string(rule.metric)),
      .level = rule.level,
      .shard = shard,
      .value = value,
      .baseline = rule.threshold,
      .threshold = rule.threshold,
      .message =
          fmt::format("{} {} = {:.4g} is {} {:.4g}", where, to_string(rule.metric), value,
                      rule.direction == Direction::above ? "above" : "below", rule.threshold)});
}

void ThresholdDetector::inspect(const MergedSnapshot& snapshot, const AnalyticsReport&,
                                std::vector<Finding>& findings) {
  for (const Rule& rule : rules_) {
    if (rule.metric == WatchedMetric::observations_dropped) {
      check(rule, static_cast<double>(snapshot.observations_dropped()), std::nullopt, findings);
      continue;
    }
    if (rule.metric == WatchedMetric::load_share) {
      if (snapshot.interval.count() == 0) continue;  // no interval yet
      for (std::uint32_t i = 0; i < snapshot.load.size(); ++i)
        check(rule, snapshot.load[i].share, i, findings);
      continue;
    }
    if (auto value = cache_figure(rule, snapshot.global))
      check(rule, *value, std::nullopt, findings);
    if (!rule.per_shard) continue;
    for (std::uint32_t i = 0; i < snapshot.shards.size(); ++i)
      if (auto value = cache_figure(rule, snapshot.shards[i])) check(rule, *value, i, findings);
  }
}

}  // namespace kvscope
