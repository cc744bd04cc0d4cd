// Private to the export room: the JSON values behind kvscope/export/json.hpp,
// one builder per snapshot type, so composite snapshots nest them without a
// dump-and-parse trip. nlohmann::json stays out of the public headers.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "kvscope/metrics/histogram.hpp"
#include "kvscope/prefix_cache_stats.hpp"
#include "kvscope/types.hpp"

namespace kvscope {
struct CachingSnapshot;
struct MultiLevelSnapshot;
struct PrefixSnapshot;
struct ShardSnapshot;
struct ResidencySnapshot;
struct MissRatioCurve;
struct CacheAlert;
struct AlertTransition;
struct AnalyticsReport;
}  // namespace kvscope

namespace kvscope::detail {

/// {"count", "sum", "mean", "min", "max", "p50", "p90", "p99", "p999", "overflow"}.
nlohmann::json histogram_json(const Histogram& h);
/// {"requests", "queries", "hits", "query_blocks", "hit_blocks", "hit_rate", "block_hit_rate"}.
nlohmann::json query_counts_json(const QueryCounts& c);
nlohmann::json stats_json(const PrefixCacheStats& s);
nlohmann::json caching_snapshot_json(const CachingSnapshot& s);
nlohmann::json prefix_snapshot_json(const PrefixSnapshot& s);
nlohmann::json residency_json(const ResidencySnapshot& s);
nlohmann::json shard_snapshot_json(const ShardSnapshot& s);
nlohmann::json multi_level_json(const MultiLevelSnapshot& s);
nlohmann::json miss_ratio_json(const MissRatioCurve& c);
nlohmann::json cache_alert_json(const CacheAlert& a);
nlohmann::json alert_transition_json(const AlertTransition& t);
nlohmann::json analytics_json(const AnalyticsReport& r);
/// 32 lowercase hex digits, high word first.
std::string hash_hex(const BlockHash& h);

}  // namespace kvscope::detail
