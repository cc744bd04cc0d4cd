#include "kvscope/prefix_cache_stats.hpp"

#include <nlohmann/json.hpp>

namespace kvscope {
namespace {

double ratio(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

nlohmann::json to_json_object(const QueryCounts& c) {
  return nlohmann::json{{"requests", c.requests},
                        {"queries", c.query_tokens},
                        {"hits", c.hit_tokens},
                        {"query_blocks", c.query_blocks},
                        {"hit_blocks", c.hit_blocks},
                        {"hit_rate", c.token_hit_rate()},
                        {"block_hit_rate", c.block_hit_rate()}};
}

}  // namespace

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

double QueryCounts::token_hit_rate() const noexcept { return ratio(hit_tokens, query_tokens); }
double QueryCounts::block_hit_rate() const noexcept { return ratio(hit_blocks, query_blocks); }

PrefixCacheStats& PrefixCacheStats::operator+=(const PrefixCacheStats& other) noexcept {
  fresh += other.fresh;
  preempted += other.preempted;
  allocation_failures += other.allocation_failures;
  evictions += other.evictions;
  resets += other.resets;
  return *this;
}

std::string PrefixCacheStats::to_json() const {
  nlohmann::json j = to_json_object(fresh);
  j["preempted"] = to_json_object(preempted);
  j["allocation_failures"] = allocation_failures;
  j["evictions"] = evictions;
  j["resets"] = resets;
  return j.dump();
}

}  // namespace kvscope
