#include "kvscope/prefix_cache_stats.hpp"

#include "metrics/json_util.hpp"

namespace kvscope {

QueryCounts& QueryCounts::operator+=(const QueryCounts& other) noexcept {
  requests += other.requests;
  query_tokens += other.query_tokens;
  hit_tokens += other.hit_tokens;
  query_blocks += other.query_blocks;
  hit_blocks += other.hit_blocks;
  return *this;
}

QueryCounts& QueryCounts::operator-=(const QueryCounts& other) noexcept {
  requests -= other.requests;
  query_tokens -= other.query_tokens;
  hit_tokens -= other.hit_tokens;
  query_blocks -= other.query_blocks;
  hit_blocks -= other.hit_blocks;
  return *this;
}

double QueryCounts::token_hit_rate() const noexcept {
  return detail::ratio(hit_tokens, query_tokens);
}
double QueryCounts::block_hit_rate() const noexcept {
  return detail::ratio(hit_blocks, query_blocks);
}

PrefixCacheStats& PrefixCacheStats::operator+=(const PrefixCacheStats& other) noexcept {
  fresh += other.fresh;
  preempted += other.preempted;
  probes += other.probes;
  allocation_failures += other.allocation_failures;
  evictions += other.evictions;
  resets += other.resets;
  reset_evictions += other.reset_evictions;
  return *this;
}

PrefixCacheStats& PrefixCacheStats::operator-=(const PrefixCacheStats& other) noexcept {
  fresh -= other.fresh;
  preempted -= other.preempted;
  probes -= other.probes;
  allocation_failures -= other.allocation_failures;
  evictions -= other.evictions;
  resets -= other.resets;
  reset_evictions -= other.reset_evictions;
  return *this;
}

nlohmann::json detail::stats_json(const PrefixCacheStats& s) {
  nlohmann::json j = query_counts_json(s.fresh);
  j["preempted"] = query_counts_json(s.preempted);
  j["probes"] = query_counts_json(s.probes);
  j["allocation_failures"] = s.allocation_failures;
  j["evictions"] = s.evictions;
  j["resets"] = s.resets;
  j["reset_evictions"] = s.reset_evictions;
  return j;
}

std::string PrefixCacheStats::to_json() const { return detail::stats_json(*this).dump(); }

}  // namespace kvscope
