// Private: JSON building blocks shared by the metrics' to_json() members.
#pragma once

#include <chrono>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "kvscope/metrics/histogram.hpp"
#include "kvscope/prefix_cache_stats.hpp"
#include "kvscope/types.hpp"

namespace kvscope::detail {

/// {"count", "sum", "mean", "min", "max", "p50", "p90", "p99", "p999", "overflow"}.
nlohmann::json histogram_json(const Histogram& h);
/// {"requests", "queries", "hits", "query_blocks", "hit_blocks", "hit_rate", "block_hit_rate"}.
nlohmann::json query_counts_json(const QueryCounts& c);
/// 32 lowercase hex digits, high word first.
std::string hash_hex(const BlockHash& h);
double seconds(std::chrono::nanoseconds d) noexcept;
double ratio(std::uint64_t part, std::uint64_t whole) noexcept;

}  // namespace kvscope::detail
