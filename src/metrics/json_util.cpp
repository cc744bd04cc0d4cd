#include "metrics/json_util.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace kvscope::detail {

nlohmann::json histogram_json(const Histogram& h) {
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

nlohmann::json query_counts_json(const QueryCounts& c) {
  return nlohmann::json{{"requests", c.requests},
                        {"queries", c.query_tokens},
                        {"hits", c.hit_tokens},
                        {"query_blocks", c.query_blocks},
                        {"hit_blocks", c.hit_blocks},
                        {"hit_rate", c.token_hit_rate()},
                        {"block_hit_rate", c.block_hit_rate()}};
}

std::string hash_hex(const BlockHash& h) { return fmt::format("{:016x}{:016x}", h.high, h.low); }

double seconds(std::chrono::nanoseconds d) noexcept {
  return std::chrono::duration<double>(d).count();
}

std::uint64_t nanos(std::chrono::nanoseconds d) noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
}

double ratio(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace kvscope::detail
