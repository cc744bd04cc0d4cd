#include "kvscope/analytics/cache_analytics.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "analytics/median.hpp"
#include "detail/units.hpp"

namespace kvscope {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double per_second(std::uint64_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0.0;
}

/// Median magnitude of the finite values; 0 when there are none.
double median_magnitude(const std::deque<double>& values) {
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(std::abs(v));
  return finite.empty() ? 0 : detail::median_in_place(finite);
}

}  // namespace

CacheAnalytics::CacheAnalytics(AnalyticsConfig config) : config_(std::move(config)) {
  config_.validate();
  // Trend gates: the smallest change over the horizon worth reporting.
  series_ = {{"hit_rate_tokens", 0.02, 0, {}},
             {"hit_rate_blocks", 0.02, 0, {}},
             {"usage", 0.05, 0, {}},
             {"pool_turnover", 0.005, 0.2, {}},
             {"allocation_failures", 1, 0.2, {}},
             {"latency_p99_us", 0.1, 0.2, {}}};
}

AnalyticsReport CacheAnalytics::measure(const MergedSnapshot& snapshot) {
  const double seconds = std::chrono::duration<double>(snapshot.interval).count();
  auto totals_of = [](const ShardSnapshot& s, const MultiLevelSnapshot& levels) {
    ScopeTotals t;
    t.stats = s.total;
    if (s.residency) {
      t.misses_checked = s.residency->misses_checked;
      t.refaults_within_capacity = s.residency->refaults_within_capacity;
      t.sampled_blocks = s.residency->sampled_blocks;
      t.estimated_allocations = s.residency->estimated_allocations;
    }
    for (const CachingSnapshot& level : levels.levels) {
      if (!t.latency) t.latency.emplace(level.latency.layout());
      if (level.latency.layout() == t.latency->layout()) t.latency->merge(level.latency);
    }
    return t;
  };
  auto figures_of = [&](const ScopeTotals& now, const ScopeTotals* before, const ShardSnapshot& s) {
    IntervalFigures f;
    f.usage = s.usage();
    f.sample_rate = s.residency ? s.residency->sample_rate : 0;
    if (before == nullptr) return f;
    PrefixCacheStats delta = now.stats;
    delta -= before->stats;
    f.seconds = seconds;
    f.requests = delta.fresh.requests;
    f.query_tokens = delta.fresh.query_tokens;
    f.hit_rate_tokens = delta.fresh.token_hit_rate();
    f.hit_rate_blocks = delta.fresh.block_hit_rate();
    f.evictions = delta.evictions;
    f.eviction_rate = per_second(delta.evictions, seconds);
    f.pool_turnover = s.num_blocks > 0 ? f.eviction_rate / static_cast<double>(s.num_blocks) : 0;
    f.allocation_failures = delta.allocation_failures;
    f.misses_checked = now.misses_checked - before->misses_checked;
    f.refaults_within_capacity = now.refaults_within_capacity - before->refaults_within_capacity;
    // The share sampled in the interval (the rate moves with the load).
    const std::uint64_t sampled = now.sampled_blocks - before->sampled_blocks;
    const std::uint64_t estimated = now.estimated_allocations - before->estimated_allocations;
    if (estimated > 0)
      f.sample_rate = static_cast<double>(sampled) / static_cast<double>(estimated);
    // The interval's latencies: now minus before (all of now when no level
    // existed before; none when the two cannot be differenced).
    const bool differenced = before->latency && now.latency &&
                             now.latency->layout() == before->latency->layout() &&
                             now.latency->count() >= before->latency->count();
    if (now.latency && (differenced || !before->latency)) {
      Histogram interval = *now.latency;
      if (differenced) interval.subtract(*before->latency);
      f.latency_samples = interval.count();
      if (f.latency_samples > 0)
        f.latency_p99_us = static_cast<double>(interval.quantile(0.99)) / 1e3;
    }
    return f;
  };

  const std::size_t scopes = snapshot.shards.size() + 1;
  const bool comparable = previous_.size() == scopes && seconds > 0;
  std::vector<ScopeTotals> current;
  current.reserve(scopes);
  current.push_back(totals_of(snapshot.global, snapshot.levels));
  for (std::size_t i = 0; i < snapshot.shards.size(); ++i) {
    const MultiLevelSnapshot empty;
    current.push_back(totals_of(
        snapshot.shards[i], i < snapshot.shard_levels.size() ? snapshot.shard_levels[i] : empty));
  }
  AnalyticsReport report;
  report.interval = figures_of(current[0], comparable ? &previous_[0] : nullptr, snapshot.global);
  for (std::size_t i = 0; i < snapshot.shards.size(); ++i)
    report.shard_intervals.push_back(
        figures_of(current[i + 1], comparable ? &previous_[i + 1] : nullptr, snapshot.shards[i]));
  previous_ = std::move(current);

  if (report.interval.seconds > 0) extend_series(report.interval);
  for (const Series& s : series_) {
    const std::vector<double> values(s.values.begin(), s.values.end());
    const double min_change =
        std::max(s.min_change_abs, s.min_change_rel * median_magnitude(s.values));
    report.trends.push_back({s.metric, analyze_trend(values, config_.trend, min_change)});
  }
  if (snapshot.global.miss_ratio)
    report.capacity = advise_capacity(*snapshot.global.miss_ratio, config_.target_hit_ratio,
                                      snapshot.global.total.hit_rate());
  return report;
}

void CacheAnalytics::extend_series(const IntervalFigures& f) {
  const bool judged = f.requests >= config_.min_interval_requests;
  const bool timed = f.latency_samples >= config_.latency_min_samples;
  const double values[] = {judged ? f.hit_rate_tokens : kNan,
                           judged ? f.hit_rate_blocks : kNan,
                           f.usage,
                           f.pool_turnover,
                           static_cast<double>(f.allocation_failures),
                           timed ? f.latency_p99_us : kNan};
  for (std::size_t i = 0; i < series_.size(); ++i) {
    series_[i].values.push_back(values[i]);
    if (series_[i].values.size() > config_.trend.horizon) series_[i].values.pop_front();
  }
}

// ---- capacity advice ----

namespace {

struct CurvePoint {
  double blocks;
  double ratio;
};

/// Linear interpolation of the ratio at `blocks` (points ascending, from 0).
double ratio_at(const std::vector<CurvePoint>& points, double blocks) {
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].blocks < blocks) continue;
    const CurvePoint& a = points[i - 1];
    const CurvePoint& b = points[i];
    if (b.blocks == a.blocks) return b.ratio;
    return a.ratio + (b.ratio - a.ratio) * (blocks - a.blocks) / (b.blocks - a.blocks);
  }
  return points.back().ratio;
}

}  // namespace

CapacityAdvice advise_capacity(const MissRatioCurve& curve, std::optional<double> target,
                               double measured) {
  CapacityAdvice advice;
  advice.current_blocks = curve.capacity_blocks;
  advice.measured_hit_ratio = measured;
  std::vector<CurvePoint> points{{0, 0}};
  for (const MrcPoint& p : curve.points)
    points.push_back({static_cast<double>(p.capacity_blocks), curve.token_hit_ratio(p)});
  const CurvePoint last = points.back();
  advice.best_hit_ratio = last.ratio;
  // The smallest point already at the best ratio: beyond it nothing is gained.
  const auto saturated = std::find_if(points.begin(), points.end(),
                                      [&](const CurvePoint& p) { return p.ratio >= last.ratio; });
  advice.best_blocks = static_cast<std::uint64_t>(saturated->blocks);
  advice.target_hit_ratio = target.value_or(0.95 * last.ratio);
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].ratio < advice.target_hit_ratio) continue;
    const CurvePoint& a = points[i - 1];
    const CurvePoint& b = points[i];
    const double at = b.ratio == a.ratio
                          ? b.blocks
                          : a.blocks + (advice.target_hit_ratio - a.ratio) / (b.ratio - a.ratio) *
                                           (b.blocks - a.blocks);
    advice.blocks_for_target = static_cast<std::uint64_t>(std::ceil(at));
    break;
  }
  // Knee (Kneedle): the point farthest above the chord from (0, 0) to the
  // last point, both axes scaled to [0, 1].
  double best_gap = -1;
  for (const CurvePoint& p : points) {
    const double x = last.blocks > 0 ? p.blocks / last.blocks : 0;
    const double y = last.ratio > 0 ? p.ratio / last.ratio : 0;
    if (y - x > best_gap) {
      best_gap = y - x;
      advice.knee_blocks = static_cast<std::uint64_t>(p.blocks);
      advice.knee_hit_ratio = p.ratio;
    }
  }
  advice.expected_hit_ratio = ratio_at(points, static_cast<double>(curve.capacity_blocks));
  return advice;
}

// ---- diagnosis ----

namespace {

std::vector<NamedHitRate> named_rates(const std::map<std::string, LabelledCounts>& labelled) {
  std::vector<NamedHitRate> out;
  for (const auto& [name, counts] : labelled)
    out.push_back({name, counts.fresh.requests, counts.fresh.token_hit_rate()});
  std::sort(out.begin(), out.end(),
            [](const NamedHitRate& a, const NamedHitRate& b) { return a.requests > b.requests; });
  return out;
}

int severity_rank(const std::string& severity) {
  return severity == "critical" ? 0 : severity == "warning" ? 1 : 2;
}

void add_capacity_issues(const std::optional<CapacityAdvice>& advice, PerformanceDiagnosis& d) {
  if (!advice) return;
  const CapacityAdvice& c = *advice;
  const double current = static_cast<double>(c.current_blocks);
  if (c.blocks_for_target && static_cast<double>(*c.blocks_for_target) > 1.1 * current) {
    d.issues.push_back(
        {"undersized", "warning", static_cast<double>(*c.blocks_for_target) / current,
         fmt::format("a cache of {} blocks ({:.1f}x the current {}) would reach a {:.0f}% token "
                     "hit ratio; the current size is predicted to reach {:.0f}%",
                     *c.blocks_for_target, static_cast<double>(*c.blocks_for_target) / current,
                     c.current_blocks, 100 * c.target_hit_ratio, 100 * c.expected_hit_ratio)});
  } else if (c.best_hit_ratio > 0 && static_cast<double>(c.best_blocks) < 0.5 * current) {
    d.issues.push_back(
        {"oversized", "info", static_cast<double>(c.best_blocks) / current,
         fmt::format("the hit ratio stops growing at {} blocks ({:.0f}% of the pool): for this "
                     "workload the rest of the pool buys no hits",
                     c.best_blocks, 100 * static_cast<double>(c.best_blocks) / current)});
  }
  const double gap = c.expected_hit_ratio - c.measured_hit_ratio;
  if (gap > 0.05) {
    d.issues.push_back(
        {"below_lru_model", "info", gap,
         fmt::format("the cache hits {:.0f}% of prompt tokens while an LRU cache of the same size "
                     "would hit {:.0f}%: blocks pinned by running requests or the eviction policy "
                     "cost {:.0f} points",
                     100 * c.measured_hit_ratio, 100 * c.expected_hit_ratio, 100 * gap)});
  }
}

void add_residency_issues(const ShardSnapshot& g, const AnalyticsConfig& config,
                          PerformanceDiagnosis& d) {
  if (!g.residency) return;
  const ResidencySnapshot& r = *g.residency;
  // The thrashing detector's bounds, over everything since start.
  const double sampled_misses = static_cast<double>(r.misses_checked) * r.effective_sample_rate();
  if (sampled_misses >= config.thrashing_min_sampled_misses &&
      r.thrash_share() >= config.thrashing_warning) {
    d.issues.push_back(
        {"thrashing", r.thrash_share() >= config.thrashing_critical ? "critical" : "warning",
         r.thrash_share(),
         fmt::format("thrashing: {:.0f}% of misses were evicted less than one capacity ago; a "
                     "somewhat larger cache would have hit them",
                     100 * r.thrash_share())});
  }
  if (r.evicted_blocks >= 100 && r.never_reused_share() >= 0.5) {
    d.issues.push_back(
        {"churn", "info", r.never_reused_share(),
         fmt::format("{:.0f}% of evicted blocks were never hit while cached: one-off prompt "
                     "content churns the cache (only shared prefixes benefit)",
                     100 * r.never_reused_share())});
  }
}

void add_traffic_issues(const MergedSnapshot& s, PerformanceDiagnosis& d) {
  const ShardSnapshot& g = s.global;
  const double too_short = g.prefixes.too_short_share();
  if (too_short >= 0.05) {
    d.issues.push_back(
        {"short_prompts", too_short >= 0.25 ? "warning" : "info", too_short,
         fmt::format("prefixes shorter than one block can never hit: {:.0f}% of requests are "
                     "shorter than one block",
                     100 * too_short)});
  }
  if (g.window.fresh.requests >= 100 && d.overall_hit_rate - d.recent_hit_rate > 0.05) {
    d.issues.push_back(
        {"recent_drop", "warning", d.overall_hit_rate - d.recent_hit_rate,
         fmt::format("the recent token hit rate ({:.0f}%) is below the overall {:.0f}%: the "
                     "workload or the cache's pressure changed",
                     100 * d.recent_hit_rate, 100 * d.overall_hit_rate)});
  }
  if (g.total.allocation_failures > 0) {
    d.issues.push_back({"allocation_failures", "warning",
                        static_cast<double>(g.total.allocation_failures),
                        fmt::format("{} allocations were refused for lack of free blocks: the "
                                    "pool is too small for the concurrent requests",
                                    g.total.allocation_failures)});
  }
  if (s.shards.size() > 1 && s.load_imbalance() > 1.5) {
    d.issues.push_back(
        {"load_imbalance", "warning", s.load_imbalance(),
         fmt::format("shard load is uneven (busiest shard {:.1f}x its fair share): a hot prefix "
                     "or tenant pins one shard",
                     s.load_imbalance())});
  }
  if (const std::uint64_t dropped = s.observations_dropped(); dropped > 0) {
    d.issues.push_back({"observations_dropped", "warning", static_cast<double>(dropped),
                        fmt::format("{} fire-and-forget observations were dropped by full "
                                    "queues: metrics undercount",
                                    dropped)});
  }
}

}  // namespace

PerformanceDiagnosis diagnose(const MergedSnapshot& s, const AnalyticsReport& analytics,
                              std::span<const CacheAlert> alerts, const AnalyticsConfig& config) {
  PerformanceDiagnosis d;
  const ShardSnapshot& g = s.global;
  d.overall_hit_rate = g.total.hit_rate();
  d.recent_hit_rate = g.window.hit_rate();
  d.request_window_hit_rate = g.request_window.token_hit_rate();
  d.by_tenant = named_rates(g.prefixes.tenants);
  d.by_adapter = named_rates(g.prefixes.adapters);
  for (const CachingSnapshot& level : s.levels.levels)
    d.by_level.push_back({std::string(level.type.name()),
                          level.total.hit_ops + level.total.miss_ops, level.total.hit_rate()});
  d.usage = g.usage();
  d.sharing_factor = g.sharing_factor();
  d.cached_share = detail::ratio(g.cached_blocks, g.num_blocks);
  if (analytics.capacity) d.recommended_blocks = analytics.capacity->blocks_for_target;

  add_traffic_issues(s, d);
  add_residency_issues(g, config, d);
  add_capacity_issues(analytics.capacity, d);
  for (const CacheAlert& a : alerts) {
    if (a.state != AlertState::firing) continue;
    d.issues.push_back(
        {"alert:" + a.detector, std::string(to_string(a.level)), a.value, a.message});
  }
  std::stable_sort(d.issues.begin(), d.issues.end(), [](const auto& a, const auto& b) {
    return severity_rank(a.severity) < severity_rank(b.severity);
  });
  return d;
}

}  // namespace kvscope
