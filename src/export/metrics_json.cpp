// The JSON of the metrics floor's snapshots (kvscope/export/json.hpp).
#include "kvscope/export/json.hpp"

#include <fmt/format.h>

#include "detail/units.hpp"
#include "export/json_values.hpp"
#include "kvscope/metrics/block_residency.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/prefix_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"

namespace kvscope {

namespace {

nlohmann::json totals_json(const CachingTotals& t) {
  nlohmann::json evictions = nlohmann::json::object();
  for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
    const auto reason = static_cast<EvictionReason>(r);
    evictions[std::string(to_string(reason))] = {{"blocks", t.evictions.blocks_of(reason)},
                                                 {"bytes", t.evictions.bytes_of(reason)}};
  }
  return nlohmann::json{{"hit_ops", t.hit_ops},     {"miss_ops", t.miss_ops},
                        {"hits", t.hits},           {"misses", t.misses},
                        {"hit_bytes", t.hit_bytes}, {"miss_bytes", t.miss_bytes},
                        {"writes", t.writes},       {"write_bytes", t.write_bytes},
                        {"hit_rate", t.hit_rate()}, {"byte_hit_rate", t.byte_hit_rate()},
                        {"evictions", evictions}};
}

nlohmann::json eviction_json(const EvictionCounts& counts) {
  nlohmann::json out = nlohmann::json::object();
  for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
    out[std::string(to_string(static_cast<EvictionReason>(r)))] = counts.blocks[r];
  }
  return out;
}

nlohmann::json labelled_json(const std::map<std::string, LabelledCounts>& by_label) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [label, counts] : by_label) {
    out[label] = {{"fresh", detail::query_counts_json(counts.fresh)},
                  {"preempted", detail::query_counts_json(counts.preempted)}};
  }
  return out;
}

}  // namespace

nlohmann::json detail::histogram_json(const Histogram& h) {
  return nlohmann::json{{"count", h.count()},
                        {"sum", h.sum()},
                        {"mean", h.mean()},
                        {"min", h.min()},
                        {"max", h.max()},
                        {"p50", h.quantile(0.5)},
                        {"p90", h.quantile(0.9)},
                        {"p99", h.quantile(0.99)},
                        {"p999", h.quantile(0.999)},
                        {"overflow", h.overflow_count()}};
}

nlohmann::json detail::query_counts_json(const QueryCounts& c) {
  return nlohmann::json{{"requests", c.requests},
                        {"queries", c.query_tokens},
                        {"hits", c.hit_tokens},
                        {"query_blocks", c.query_blocks},
                        {"hit_blocks", c.hit_blocks},
                        {"hit_rate", c.token_hit_rate()},
                        {"block_hit_rate", c.block_hit_rate()}};
}

std::string detail::hash_hex(const BlockHash& h) {
  return fmt::format("{:016x}{:016x}", h.high, h.low);
}

nlohmann::json detail::stats_json(const PrefixCacheStats& s) {
  nlohmann::json j = query_counts_json(s.fresh);
  j["preempted"] = query_counts_json(s.preempted);
  j["probes"] = query_counts_json(s.probes);
  j["allocation_failures"] = s.allocation_failures;
  j["evictions"] = s.evictions;
  j["resets"] = s.resets;
  j["reset_evictions"] = s.reset_evictions;
  j["verification_failures"] = s.verification_failures;
  return j;
}

nlohmann::json detail::caching_snapshot_json(const CachingSnapshot& s) {
  return nlohmann::json{{"type", std::string(s.type.name())},
                        {"total", totals_json(s.total)},
                        {"window", totals_json(s.window)},
                        {"window_seconds", seconds(s.window_span)},
                        {"hit_rate", s.total.hit_rate()},
                        {"window_hit_rate", s.window.hit_rate()},
                        {"window_eviction_rate", s.window_eviction_rate()},
                        {"latency_ns", histogram_json(s.latency)},
                        {"window_latency_ns", histogram_json(s.window_latency)},
                        {"resident_bytes", s.resident_bytes},
                        {"capacity_bytes", s.capacity_bytes},
                        {"memory_efficiency", s.memory_efficiency()},
                        {"memory_pressure", s.memory_pressure()}};
}

nlohmann::json detail::multi_level_json(const MultiLevelSnapshot& s) {
  nlohmann::json by_level = nlohmann::json::object();
  for (const CachingSnapshot& level : s.levels) {
    by_level[std::string(level.type.name())] = detail::caching_snapshot_json(level);
  }
  nlohmann::json served = nlohmann::json::object();
  for (const auto& [type, n] : s.served_by) served[std::string(type.name())] = n;
  return nlohmann::json{{"levels", by_level},
                        {"requests", s.total.requests},
                        {"served", s.total.served},
                        {"combined_hit_rate", s.combined_hit_rate()},
                        {"window_requests", s.window.requests},
                        {"window_served", s.window.served},
                        {"window_combined_hit_rate", s.window_combined_hit_rate()},
                        {"served_by", served},
                        {"memory_pressure", s.memory_pressure()}};
}

nlohmann::json detail::shard_snapshot_json(const ShardSnapshot& s) {
  nlohmann::json j{{"at_s", detail::seconds(s.at)},
                   {"shards", s.shards},
                   {"total", detail::stats_json(s.total)},
                   {"window", detail::stats_json(s.window)},
                   {"window_seconds", detail::seconds(s.window_span)},
                   {"request_window", detail::query_counts_json(s.request_window)},
                   {"num_blocks", s.num_blocks},
                   {"used_blocks", s.used_blocks},
                   {"cached_blocks", s.cached_blocks},
                   {"block_references", s.block_references},
                   {"live_requests", s.live_requests},
                   {"usage", s.usage()},
                   {"sharing_factor", s.sharing_factor()},
                   {"evictions", eviction_json(s.evictions())},
                   {"window_evictions", eviction_json(s.window_evictions())},
                   {"window_eviction_rate", s.window_eviction_rate()},
                   {"metrics_memory_bytes", s.metrics_memory_bytes},
                   {"prefixes", detail::prefix_snapshot_json(s.prefixes)}};
  j["residency"] = s.residency ? detail::residency_json(*s.residency) : nlohmann::json(nullptr);
  j["miss_ratio_curve"] =
      s.miss_ratio ? detail::miss_ratio_json(*s.miss_ratio) : nlohmann::json(nullptr);
  if (!s.groups.empty()) {  // hybrid layouts only: one group's figures are the totals
    nlohmann::json groups = nlohmann::json::array();
    for (std::size_t g = 0; g < s.groups.size(); ++g) {
      const KvCacheGroupConfig& c = s.groups[g].config;
      const KvCacheGroupStats& st = s.groups[g].stats;
      groups.push_back({{"group", g},
                        {"kind", to_string(c.kind)},
                        {"block_size", c.block_size},
                        {"sliding_window", c.kind == AttentionKind::sliding_window
                                               ? nlohmann::json(c.sliding_window)
                                               : nlohmann::json(nullptr)},
                        {"num_layers", c.num_layers},
                        {"used_blocks", st.used_blocks},
                        {"cached_blocks", st.cached_blocks},
                        {"query_blocks", st.query_blocks},
                        {"hit_blocks", st.hit_blocks},
                        {"placeholder_blocks", st.placeholder_blocks},
                        {"evictions", st.evictions}});
    }
    j["kv_cache_groups"] = std::move(groups);
  }
  return j;
}

nlohmann::json detail::prefix_snapshot_json(const PrefixSnapshot& s) {
  nlohmann::json top = nlohmann::json::array();
  for (const PrefixEntry& e : s.top_prefixes) {
    top.push_back({{"prefix", hash_hex(e.prefix)},
                   {"prefix_blocks", e.prefix_blocks},
                   {"hits", e.hits},
                   {"error", e.error},
                   {"hit_tokens", e.hit_tokens}});
  }
  return nlohmann::json{{"top_prefixes", top},
                        {"hit_length_tokens", histogram_json(s.hit_length_tokens)},
                        {"stops",
                         {{"too_short", s.stop_count(LookupStop::too_short)},
                          {"not_resident", s.stop_count(LookupStop::not_resident)},
                          {"hit_cap", s.stop_count(LookupStop::hit_cap)},
                          {"all_blocks_hit", s.stop_count(LookupStop::all_blocks_hit)}}},
                        {"too_short_share", s.too_short_share()},
                        {"tenants", labelled_json(s.tenants)},
                        {"adapters", labelled_json(s.adapters)}};
}

nlohmann::json detail::residency_json(const ResidencySnapshot& s) {
  return nlohmann::json{{"sample_rate", s.sample_rate},
                        {"effective_sample_rate", s.effective_sample_rate()},
                        {"sampled_blocks", s.sampled_blocks},
                        {"estimated_allocations", s.estimated_allocations},
                        {"evicted_blocks", s.evicted_blocks},
                        {"estimated_evictions", s.estimated_evictions},
                        {"samples",
                         {{"lifetime", s.evicted_blocks},
                          {"idle", s.evicted_blocks},
                          {"idle_since_free", s.evicted_blocks},
                          {"reuse_count", s.evicted_blocks},
                          {"reuse_gap", s.reuse_gap_samples},
                          {"refault_distance", s.refault_samples}}},
                        {"released_uncached", s.released_uncached},
                        {"tracked_blocks", s.tracked_blocks},
                        {"never_reused", s.never_reused},
                        {"never_reused_share", s.never_reused_share()},
                        {"hot_blocks", s.hot_blocks},
                        {"hot_reuse_threshold", s.hot_reuse_threshold},
                        {"hot_share", s.hot_share()},
                        {"lifetime_ns", histogram_json(s.lifetime)},
                        {"idle_ns", histogram_json(s.idle)},
                        {"idle_since_free_ns", histogram_json(s.idle_since_free)},
                        {"reuse_gap_ns", histogram_json(s.reuse_gap)},
                        {"reuse_count", histogram_json(s.reuse_count)},
                        {"misses_checked", s.misses_checked},
                        {"refault_samples", s.refault_samples},
                        {"refaults", s.refaults},
                        {"refaults_within_capacity", s.refaults_within_capacity},
                        {"refault_distance", histogram_json(s.refault_distance)},
                        {"thrash_share", s.thrash_share()}};
}

nlohmann::json detail::miss_ratio_json(const MissRatioCurve& c) {
  nlohmann::json list = nlohmann::json::array();
  for (const MrcPoint& p : c.points) {
    nlohmann::json point{{"multiple", p.multiple},
                         {"capacity_blocks", p.capacity_blocks},
                         {"prefix_hit_blocks", p.prefix_hit_blocks},
                         {"any_hit_blocks", p.any_hit_blocks},
                         {"prefix_hit_tokens", p.prefix_hit_tokens},
                         {"block_hit_ratio", c.block_hit_ratio(p)},
                         {"token_hit_ratio", c.token_hit_ratio(p)},
                         {"any_hit_ratio", c.any_hit_ratio(p)}};
    if (c.has_aet) point["aet_hit_ratio"] = c.aet_hit_ratio(p);
    list.push_back(std::move(point));
  }
  return nlohmann::json{{"capacity_blocks", c.capacity_blocks},
                        {"bound_blocks", c.bound_blocks},
                        {"requests", c.requests},
                        {"references", c.references},
                        {"tokens", c.tokens},
                        {"shards", c.shards},
                        {"touch_order", to_string(c.touch_order)},
                        {"has_aet", c.has_aet},
                        {"points", std::move(list)}};
}

// ---- the public strings ----

std::string to_json(const Histogram& h) { return detail::histogram_json(h).dump(); }
std::string to_json(const PrefixCacheStats& s) { return detail::stats_json(s).dump(); }
std::string to_json(const CachingSnapshot& s) { return detail::caching_snapshot_json(s).dump(); }
std::string to_json(const MultiLevelSnapshot& s) { return detail::multi_level_json(s).dump(); }
std::string to_json(const PrefixSnapshot& s) { return detail::prefix_snapshot_json(s).dump(); }
std::string to_json(const ResidencySnapshot& s) { return detail::residency_json(s).dump(); }
std::string to_json(const ShardSnapshot& s) { return detail::shard_snapshot_json(s).dump(); }
std::string to_json(const MissRatioCurve& c) { return detail::miss_ratio_json(c).dump(); }

std::string eviction_events_json(std::span<const EvictionEvent> events) {
  nlohmann::json out = nlohmann::json::array();
  for (const EvictionEvent& e : events) {
    nlohmann::json gaps = nlohmann::json::array();
    for (std::uint8_t g = 0; g < e.reuse_gap_count; ++g) {
      gaps.push_back(detail::seconds(e.reuse_gaps[g]));
    }
    out.push_back({{"block", e.block.value},
                   {"hash", detail::hash_hex(e.hash)},
                   {"reason", std::string(to_string(e.reason))},
                   {"at_s", detail::seconds(e.at)},
                   {"lifetime_s", detail::seconds(e.lifetime)},
                   {"idle_s", detail::seconds(e.idle)},
                   {"idle_since_free_s", detail::seconds(e.idle_since_free)},
                   {"hits", e.hits},
                   {"reuse_gaps_s", gaps}});
  }
  return out.dump();
}

std::string eviction_events_csv(std::span<const EvictionEvent> events) {
  std::string csv =
      "block,hash,reason,at_s,lifetime_s,idle_s,idle_since_free_s,hits,reuse_gaps_s\n";
  for (const EvictionEvent& e : events) {
    std::string gaps;
    for (std::uint8_t g = 0; g < e.reuse_gap_count; ++g) {
      gaps += fmt::format("{}{:.9f}", g == 0 ? "" : ";", detail::seconds(e.reuse_gaps[g]));
    }
    csv += fmt::format("{},{},{},{:.9f},{:.9f},{:.9f},{:.9f},{},{}\n", e.block.value,
                       detail::hash_hex(e.hash), to_string(e.reason), detail::seconds(e.at),
                       detail::seconds(e.lifetime), detail::seconds(e.idle),
                       detail::seconds(e.idle_since_free), e.hits, gaps);
  }
  return csv;
}

}  // namespace kvscope
