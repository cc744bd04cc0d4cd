#include "kvscope/analytics/detectors.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace kvscope {

namespace {

/// Calls fn(figures, shard) for the global scope and, when asked, each shard.
template <class Fn>
void for_each_scope(const MergedSnapshot& snapshot, const AnalyticsReport& report, bool per_shard,
                    Fn&& fn) {
  if (report.interval.seconds <= 0) return;  // the first snapshot has no interval
  fn(report.interval, std::optional<std::uint32_t>{}, snapshot.global);
  if (!per_shard) return;
  for (std::uint32_t i = 0; i < report.shard_intervals.size() && i < snapshot.shards.size(); ++i)
    fn(report.shard_intervals[i], std::optional<std::uint32_t>{i}, snapshot.shards[i]);
}

/// Index of a scope in per-scope tables: 0 global, i + 1 shard i.
std::size_t scope_index(std::optional<std::uint32_t> shard) { return shard ? *shard + 1 : 0; }

std::string where(std::optional<std::uint32_t> shard) {
  return shard ? fmt::format("shard {}", *shard) : std::string("global");
}

Finding finding_from(std::string_view detector, std::string metric, const MonitorVerdict& v,
                     std::optional<std::uint32_t> shard, std::string message) {
  return Finding{.detector = std::string(detector),
                 .metric = std::move(metric),
                 .level = *v.level,
                 .shard = shard,
                 .value = v.value,
                 .baseline = v.baseline,
                 .threshold = v.threshold,
                 .message = std::move(message)};
}

MonitorConfig with_min_effect(MonitorConfig config, double floor) {
  config.min_effect = std::max(config.min_effect, floor);
  return config;
}

}  // namespace

SeriesMonitor& detail::ScopeMonitors::at(std::optional<std::uint32_t> shard) {
  const std::size_t index = scope_index(shard);
  if (index >= monitors_.size()) monitors_.resize(index + 1);
  if (!monitors_[index]) monitors_[index] = std::make_unique<SeriesMonitor>(side_, config_);
  return *monitors_[index];
}

// ---- hit-rate drop ----

HitRateDropDetector::HitRateDropDetector(const AnalyticsConfig& config)
    : config_((config.validate(), config)),
      monitors_(ShiftSide::drop, with_min_effect(config.monitor, config.hit_rate_min_drop)) {}

void HitRateDropDetector::inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
                                  std::vector<Finding>& findings) {
  for_each_scope(
      snapshot, analytics, config_.per_shard, [&](const IntervalFigures& f, auto shard, auto&) {
        if (f.requests < config_.min_interval_requests) return;
        SeriesMonitor& monitor = monitors_.at(shard);
        // Binomial noise of a ratio over this interval's requests, at the learnt level.
        const double p = monitor.observations() > 0 ? monitor.baseline() : f.hit_rate_tokens;
        const double floor =
            std::sqrt(std::max(p * (1 - p), 1e-4) / static_cast<double>(f.requests));
        const MonitorVerdict v = monitor.observe(f.hit_rate_tokens, floor);
        if (!v.level) return;
        findings.push_back(finding_from(
            name(), "hit_rate_tokens", v, shard,
            fmt::format("{} token hit rate fell to {:.1f}% from its usual {:.1f}% ({} requests in "
                        "the interval): a changed prompt template, new tenants or more cache "
                        "pressure are the usual causes",
                        where(shard), 100 * v.value, 100 * v.baseline, f.requests)));
      });
}

// ---- eviction storm ----

EvictionStormDetector::EvictionStormDetector(const AnalyticsConfig& config)
    : config_((config.validate(), config)),
      monitors_(ShiftSide::rise,
                with_min_effect(config.monitor, config.eviction_storm_min_turnover)) {}

void EvictionStormDetector::inspect(const MergedSnapshot& snapshot,
                                    const AnalyticsReport& analytics,
                                    std::vector<Finding>& findings) {
  for_each_scope(
      snapshot, analytics, config_.per_shard,
      [&](const IntervalFigures& f, auto shard, const ShardSnapshot& s) {
        if (s.num_blocks == 0) return;
        // Poisson noise of the eviction count, in turnover units.
        const double floor = std::sqrt(std::max<double>(static_cast<double>(f.evictions), 1.0)) /
                             f.seconds / static_cast<double>(s.num_blocks);
        const MonitorVerdict v = monitors_.at(shard).observe(f.pool_turnover, floor);
        if (!v.level) return;
        findings.push_back(finding_from(
            name(), "pool_turnover", v, shard,
            fmt::format("{} is evicting {:.0f} blocks/s ({:.1f}% of the pool per second; usually "
                        "{:.1f}%): a burst of unique prompts or a shrinking pool is churning the "
                        "cache",
                        where(shard), f.eviction_rate, 100 * v.value, 100 * v.baseline)));
      });
}

// ---- thrashing ----

ThrashingDetector::ThrashingDetector(const AnalyticsConfig& config)
    : config_((config.validate(), config)) {}

void ThrashingDetector::inspect(const MergedSnapshot& snapshot, const AnalyticsReport& analytics,
                                std::vector<Finding>& findings) {
  for_each_scope(
      snapshot, analytics, config_.per_shard, [&](const IntervalFigures& f, auto shard, auto&) {
        const std::size_t index = scope_index(shard);
        if (index >= spans_.size()) spans_.resize(index + 1);
        auto& span = spans_[index];
        span.push_back({static_cast<double>(f.misses_checked),
                        static_cast<double>(f.misses_checked) * f.sample_rate,
                        static_cast<double>(f.refaults_within_capacity)});
        if (span.size() > config_.thrashing_span) span.pop_front();
        double misses = 0, sampled = 0, refaults = 0;
        for (const Sample& s : span) {
          misses += s.misses;
          sampled += s.sampled_misses;
          refaults += s.refaults;
        }
        if (sampled < config_.thrashing_min_sampled_misses) return;
        const double share = std::min(1.0, refaults / misses);
        if (share < config_.thrashing_warning) return;
        const bool critical = share >= config_.thrashing_critical;
        const double bound = critical ? config_.thrashing_critical : config_.thrashing_warning;
        findings.push_back(Finding{
            .detector = std::string(name()),
            .metric = "thrash_share",
            .level = critical ? AlertLevel::critical : AlertLevel::warning,
            .shard = shard,
            .value = share,
            .baseline = bound,
            .threshold = bound,
            .message =
                fmt::format("{} thrashing: {:.0f}% of misses were evicted less than one "
                            "capacity ago; a somewhat larger cache (see the capacity advice) "
                            "would have hit them",
                            where(shard), 100 * share)});
      });
}

// ---- memory pressure ----

MemoryPressureDetector::MemoryPressureDetector(const AnalyticsConfig& config,
                                               double usage_threshold)
    : config_((config.validate(), config)), usage_threshold_(usage_threshold) {
  if (!(std::isfinite(usage_threshold) && usage_threshold > 0 && usage_threshold <= 1))
    throw std::invalid_argument(
        fmt::format("kvscope: MemoryPressureDetector usage threshold must be in (0, 1], got {}",
                    usage_threshold));
}

void MemoryPressureDetector::inspect(const MergedSnapshot& snapshot,
                                     const AnalyticsReport& analytics,
                                     std::vector<Finding>& findings) {
  for_each_scope(
      snapshot, analytics, config_.per_shard, [&](const IntervalFigures& f, auto shard, auto&) {
        if (f.usage >= usage_threshold_) {
          findings.push_back(Finding{
              .detector = std::string(name()),
              .metric = "usage",
              .level = AlertLevel::warning,
              .shard = shard,
              .value = f.usage,
              .baseline = usage_threshold_,
              .threshold = usage_threshold_,
              .message =
                  fmt::format("{} has {:.0f}% of its blocks in use (bound {:.0f}%): little is "
                              "left to keep cached prefixes or admit long prompts",
                              where(shard), 100 * f.usage, 100 * usage_threshold_)});
        }
        if (f.allocation_failures > 0) {
          findings.push_back(Finding{
              .detector = std::string(name()),
              .metric = "allocation_failures",
              .level = AlertLevel::critical,
              .shard = shard,
              .value = static_cast<double>(f.allocation_failures),
              .baseline = 0,
              .threshold = 0,
              .message =
                  fmt::format("{} refused {} allocations for lack of free blocks in the last "
                              "interval: requests are waiting or being preempted",
                              where(shard), f.allocation_failures)});
        }
      });
}

// ---- latency regression ----

LatencyRegressionDetector::LatencyRegressionDetector(const AnalyticsConfig& config)
    : config_((config.validate(), config)),
      monitors_(ShiftSide::rise,
                with_min_effect(config.monitor, std::log(config.latency_min_ratio))) {}

void LatencyRegressionDetector::inspect(const MergedSnapshot& snapshot,
                                        const AnalyticsReport& analytics,
                                        std::vector<Finding>& findings) {
  for_each_scope(
      snapshot, analytics, config_.per_shard, [&](const IntervalFigures& f, auto shard, auto&) {
        if (f.latency_samples < config_.latency_min_samples || f.latency_p99_us <= 0) return;
        // A p99 is noisy by a few percent at best: floor the log-scale noise at 5%.
        MonitorVerdict v = monitors_.at(shard).observe(std::log(f.latency_p99_us), 0.05);
        if (!v.level) return;
        v.value = std::exp(v.value);
        v.baseline = std::exp(v.baseline);
        v.threshold = std::exp(v.threshold);
        findings.push_back(finding_from(
            name(), "latency_p99_us", v, shard,
            fmt::format(
                "{} lookup latency p99 rose to {:.1f} us from its usual {:.1f} us: a slower "
                "cache level, contention or a larger working set",
                where(shard), v.value, v.baseline)));
      });
}

std::vector<std::shared_ptr<SnapshotDetector>> default_detectors(const AnalyticsConfig& config,
                                                                 double usage_threshold,
                                                                 std::uint32_t shards) {
  std::vector<std::shared_ptr<SnapshotDetector>> detectors{
      std::make_shared<HitRateDropDetector>(config),
      std::make_shared<EvictionStormDetector>(config), std::make_shared<ThrashingDetector>(config),
      std::make_shared<MemoryPressureDetector>(config, usage_threshold),
      std::make_shared<LatencyRegressionDetector>(config)};
  if (shards > 1) {
    // One hot prefix pins its shard: flag a shard doing most of the work.
    ThresholdDetector::Rule rule{.metric = WatchedMetric::load_share,
                                 .direction = ThresholdDetector::Direction::above,
                                 .threshold = std::min(0.9, 2.0 / shards),
                                 .per_shard = true};
    detectors.push_back(std::make_shared<ThresholdDetector>(std::vector{rule}));
  }
  return detectors;
}

}  // namespace kvscope
