#include "kvscope/trace/trace_replay.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "detail/hash_mix.hpp"
#include "kvscope/prefix_cache.hpp"

namespace kvscope {

std::string_view to_string(ReplayMode mode) noexcept {
  return mode == ReplayMode::vllm ? "vllm" : "simple";
}

std::optional<ReplayMode> parse_replay_mode(std::string_view name) noexcept {
  if (name == "vllm") return ReplayMode::vllm;
  if (name == "simple") return ReplayMode::simple;
  return std::nullopt;
}

void ReplayConfig::validate() const {
  if (shards < 1 || shards > 1024)
    throw std::invalid_argument(fmt::format("replay: shards must be 1 .. 1024, got {}", shards));
  if (capacity < shards)
    throw std::invalid_argument(
        fmt::format("replay: capacity must be >= shards ({}), got {}", shards, capacity));
  if (block_tokens < 1) throw std::invalid_argument("replay: block_tokens must be >= 1");
  if (route_depth < 1) throw std::invalid_argument("replay: route_depth must be >= 1");
  if (!groups.empty() && mode == ReplayMode::simple)
    throw std::invalid_argument(
        "replay: KV cache groups need the vllm mode (simple hashes partial blocks)");
}

double ReplayResult::block_hit_ratio() const noexcept {
  return total_blocks == 0
             ? 0.0
             : static_cast<double>(prefix_hit_blocks) / static_cast<double>(total_blocks);
}

double ReplayResult::token_hit_ratio() const noexcept {
  return total_tokens == 0
             ? 0.0
             : static_cast<double>(prefix_hit_tokens) / static_cast<double>(total_tokens);
}

std::string ReplayResult::to_json() const {
  const nlohmann::json j = {
      {"mode", to_string(config.mode)},
      {"policy", to_string(config.policy)},
      {"capacity", config.capacity},
      {"block_tokens", config.block_tokens},
      {"shards", config.shards},
      {"route_depth", config.route_depth},
      {"requests", requests},
      {"total_blocks", total_blocks},
      {"total_tokens", total_tokens},
      {"prefix_hit_blocks", prefix_hit_blocks},
      {"prefix_hit_tokens", prefix_hit_tokens},
      {"any_hit_blocks", any_hit_blocks},
      {"block_hit_ratio", block_hit_ratio()},
      {"token_hit_ratio", token_hit_ratio()},
      {"evictions", evictions},
      {"rejected", rejected},
      {"shard_requests", shard_requests},
      {"seconds", seconds},
  };
  return j.dump();
}

std::uint32_t trace_shard(std::span<const BlockHash> ids, std::uint32_t shards,
                          std::uint32_t route_depth) noexcept {
  if (shards <= 1 || ids.empty()) return 0;
  const std::size_t at = std::min<std::size_t>(std::max(route_depth, 1u), ids.size()) - 1;
  std::uint64_t key = detail::fold(ids[at]);
  return static_cast<std::uint32_t>(detail::splitmix64(key) % shards);
}

namespace {

std::vector<PrefixCache> make_shards(const ReplayConfig& config) {
  std::vector<PrefixCache> caches;
  caches.reserve(config.shards);
  for (std::uint32_t s = 0; s < config.shards; ++s) {
    PrefixCacheConfig cache;
    cache.num_blocks = config.capacity / config.shards + (s < config.capacity % config.shards);
    cache.block_size = config.block_tokens;
    cache.policy = config.policy;
    cache.groups = config.groups;
    caches.emplace_back(cache);
  }
  return caches;
}

/// One request: counts what is resident, admits it, releases it.
void replay_one(PrefixCache& cache, const MooncakeTrace& trace, const TraceRequest& r, RequestId id,
                ReplayResult& out) {
  const ReplayConfig& config = out.config;
  const bool simple = config.mode == ReplayMode::simple;
  const auto ids = trace.blocks_of(r);
  std::uint64_t resident = 0;  // before the request touches anything
  for (const BlockHash& h : ids) resident += cache.find(h).has_value();
  // vllm: only blocks fully covered by the prompt carry a hash.
  const auto hashed = simple ? ids : trace.full_blocks_of(r, config.block_tokens);
  Request request = Request::with_hashes(id, r.input_length, hashed);
  if (simple) request.max_hit_tokens = r.input_length;  // no hit cap
  const auto admitted = cache.allocate(request);
  if (!admitted) {
    if (admitted.status() != Status::request_too_large)
      throw std::logic_error(fmt::format("replay: trace line {}: unexpected {}", r.line,
                                         to_string(admitted.status())));
    ++out.rejected;
    return;
  }
  out.any_hit_blocks += resident;
  out.prefix_hit_blocks += admitted->lookup.hit_blocks;
  out.prefix_hit_tokens += admitted->lookup.hit_tokens;
  out.evictions += admitted->evicted_blocks;
  (void)cache.free(id, simple ? FreeOrder::forward : FreeOrder::reverse);
}

}  // namespace

ReplayResult replay_trace(const MooncakeTrace& trace, const ReplayConfig& config) {
  config.validate();
  ReplayResult out;
  out.config = config;
  out.shard_requests.assign(config.shards, 0);
  std::vector<PrefixCache> caches = make_shards(config);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t next_id = 0;
  for (const TraceRequest& r : trace.requests) {
    const auto ids = trace.blocks_of(r);
    const std::uint32_t shard = trace_shard(ids, config.shards, config.route_depth);
    ++out.requests;
    ++out.shard_requests[shard];
    out.total_blocks += ids.size();
    out.total_tokens += r.input_length;
    replay_one(caches[shard], trace, r, RequestId{next_id++}, out);
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace kvscope
