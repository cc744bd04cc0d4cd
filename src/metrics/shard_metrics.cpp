#include "kvscope/metrics/shard_metrics.hpp"

#include <algorithm>
#include <stdexcept>

#include "detail/units.hpp"

namespace kvscope {
namespace {

EvictionCounts evictions_of(const PrefixCacheStats& stats) noexcept {
  EvictionCounts counts;
  counts.blocks_of(EvictionReason::capacity) = stats.evictions;
  counts.blocks_of(EvictionReason::reset) = stats.reset_evictions;
  return counts;
}

/// `a` += `b` for sections only some shards have (a missing side adds
/// nothing), into a copy: += may throw on mismatched layouts.
template <class T>
std::optional<T> merged(const std::optional<T>& a, const std::optional<T>& b) {
  if (!a || !b) return a ? a : b;
  T sum = *a;
  sum += *b;
  return sum;
}

}  // namespace

// ---------------------------------------------------------------- snapshot

double ShardSnapshot::usage() const noexcept { return detail::ratio(used_blocks, num_blocks); }

double ShardSnapshot::sharing_factor() const noexcept {
  return detail::ratio(block_references, used_blocks);
}

EvictionCounts ShardSnapshot::evictions() const noexcept { return evictions_of(total); }
EvictionCounts ShardSnapshot::window_evictions() const noexcept { return evictions_of(window); }

double ShardSnapshot::window_eviction_rate() const noexcept {
  const double span = detail::seconds(window_span);
  return span > 0.0 ? static_cast<double>(window_evictions().total_blocks()) / span : 0.0;
}

ShardSnapshot& ShardSnapshot::operator+=(const ShardSnapshot& other) {
  // The parts that can throw (layout mismatches) go first, into copies.
  PrefixSnapshot merged_prefixes = prefixes;
  merged_prefixes += other.prefixes;
  std::optional<ResidencySnapshot> merged_residency = merged(residency, other.residency);
  std::optional<MissRatioCurve> merged_curve = merged(miss_ratio, other.miss_ratio);
  std::vector<KvCacheGroupSnapshot> merged_groups = groups;
  if (merged_groups.empty()) {
    merged_groups = other.groups;
  } else if (!other.groups.empty()) {
    if (other.groups.size() != merged_groups.size())
      throw std::invalid_argument("kvscope: merging snapshots of different KV cache groups");
    for (std::size_t g = 0; g < merged_groups.size(); ++g)
      merged_groups[g].stats += other.groups[g].stats;
  }
  prefixes = std::move(merged_prefixes);
  residency = std::move(merged_residency);
  miss_ratio = std::move(merged_curve);
  groups = std::move(merged_groups);
  at = std::max(at, other.at);
  shards += other.shards;
  total += other.total;
  window += other.window;
  window_span = std::max(window_span, other.window_span);
  request_window += other.request_window;
  num_blocks += other.num_blocks;
  used_blocks += other.used_blocks;
  cached_blocks += other.cached_blocks;
  block_references += other.block_references;
  live_requests += other.live_requests;
  metrics_memory_bytes += other.metrics_memory_bytes;
  return *this;
}

// ---------------------------------------------------------------- ShardMetrics

ShardMetrics::ShardMetrics(PrefixCache& cache, const MetricsConfig& config)
    : cache_(&cache),
      config_((config.validate(), config)),
      window_(config.window),
      request_window_(config.request_window),
      prefixes_(config) {
  if (config_.track_residency) {
    residency_ = std::make_unique<BlockResidencyTracker>(cache, config_);
    cache.set_observer(residency_.get(), residency_->observer_options());
  }
  if (config_.miss_ratio.enabled) miss_ratio_.emplace(cache.num_blocks(), config_.miss_ratio);
  tick(config_.effective_clock().now());
}

ShardMetrics::~ShardMetrics() {
  if (residency_) cache_->set_observer(nullptr);
}

void ShardMetrics::record_admission(const Request& request, const AllocateResult& result) {
  prefixes_.record_admission(request, result);
  const LookupResult& lookup = result.lookup;
  if (!request.preempted) {
    request_window_.observe(QueryCounts{1, request.token_count(), lookup.hit_tokens,
                                        lookup.total_blocks, lookup.hit_blocks});
  }
  if (residency_ && lookup.stop == LookupStop::not_resident && !lookup.verification_failed) {
    residency_->check_refault(lookup.first_miss_hash);
  }
  if (miss_ratio_) {
    const std::span<const BlockHash> hashes = result.hashes;
    const auto hashed = static_cast<std::uint32_t>(hashes.size());
    miss_ratio_->record(hashes, request.token_count(), cache_->block_size(),
                        cache_->hit_cap_blocks(request, hashed));
  }
}

void ShardMetrics::record_reset() {
  if (miss_ratio_) miss_ratio_->clear_stack();
}

void ShardMetrics::tick(Timestamp now) {
  last_tick_ = std::max(last_tick_, now);
  window_.tick(last_tick_, cache_->stats());
  if (residency_) residency_->tick(last_tick_);
}

ShardSnapshot ShardMetrics::snapshot(Timestamp now) {
  tick(now);
  ShardSnapshot s;
  s.at = last_tick_;
  s.total = cache_->stats();
  s.window = window_.window(s.total);
  s.window_span = window_.covered(last_tick_, config_.window.window);
  s.request_window = request_window_.totals();
  s.num_blocks = cache_->num_blocks();
  s.used_blocks = cache_->num_used_blocks();
  s.cached_blocks = cache_->num_cached_blocks();
  s.block_references = cache_->num_block_references();
  s.live_requests = cache_->num_requests();
  s.metrics_memory_bytes = memory_bytes();
  s.prefixes = prefixes_.snapshot();
  if (residency_) s.residency = residency_->snapshot();
  if (miss_ratio_) s.miss_ratio = miss_ratio_->curve();
  if (cache_->has_groups()) {  // O(num_blocks): one pass per snapshot
    const std::vector<KvCacheGroupStats> stats = cache_->all_group_stats();
    for (std::size_t g = 0; g < stats.size(); ++g)
      s.groups.push_back({cache_->layout().groups()[g], stats[g]});
  }
  return s;
}

void ShardMetrics::set_tenant_name(const CacheSalt& salt, std::string name) {
  prefixes_.set_tenant_name(salt, std::move(name));
}

std::size_t ShardMetrics::memory_bytes() const noexcept {
  const std::size_t request_window_bytes = config_.request_window * sizeof(QueryCounts);
  return sizeof(*this) + window_.memory_bytes() + request_window_bytes + prefixes_.memory_bytes() +
         (residency_ ? residency_->memory_bytes() : 0) +
         (miss_ratio_ ? miss_ratio_->memory_bytes() : 0);
}

// ---------------------------------------------------------------- MeteredPrefixCache

MeteredPrefixCache::MeteredPrefixCache(const PrefixCacheConfig& cache_config,
                                       const MetricsConfig& metrics_config)
    : cache_(cache_config), metrics_(std::make_unique<ShardMetrics>(cache_, metrics_config)) {}

Result<AllocateResult> MeteredPrefixCache::allocate(const Request& request) {
  auto result = cache_.allocate(request);
  if (result) metrics_->record_admission(request, *result);
  return result;
}

Result<void> MeteredPrefixCache::reset() {
  auto result = cache_.reset();
  if (result) metrics_->record_reset();
  return result;
}

}  // namespace kvscope
