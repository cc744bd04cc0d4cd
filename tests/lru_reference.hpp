// A literal LRU replay by the trace README's rules, the reference the
// miss-ratio curve and the trace replay are checked against.
#pragma once

#include <algorithm>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/trace/mooncake_trace.hpp"

namespace kvscope::testing_util {

/// One request of a replay: its block chain, prompt tokens, hittable blocks.
struct ChainRequest {
  std::vector<BlockHash> blocks;
  std::uint32_t tokens = 0;
  std::uint32_t hittable = 0;
};

inline std::vector<ChainRequest> trace_requests(const MooncakeTrace& trace) {
  std::vector<ChainRequest> out;
  for (const TraceRequest& r : trace.requests) {
    const auto blocks = trace.blocks_of(r);
    out.push_back({{blocks.begin(), blocks.end()}, r.input_length, r.block_count});
  }
  return out;
}

/// The README's rules, literally: an LRU list of `capacity` hashes; per
/// request, count resident blocks before touching anything, then touch.
inline MrcPoint brute_force_lru(const std::vector<ChainRequest>& requests, std::uint64_t capacity,
                                TouchOrder order, std::uint32_t block_tokens) {
  std::list<BlockHash> lru;  // front = most recent
  struct Hash {
    std::size_t operator()(const BlockHash& h) const { return h.low * 31 + h.high; }
  };
  std::unordered_map<BlockHash, std::list<BlockHash>::iterator, Hash> where;
  MrcPoint point;
  point.capacity_blocks = capacity;
  for (const ChainRequest& r : requests) {
    bool prefix = true;
    std::uint64_t tokens_left = r.tokens;
    for (std::uint32_t i = 0; i < r.blocks.size(); ++i) {
      const std::uint64_t weight = std::min<std::uint64_t>(block_tokens, tokens_left);
      tokens_left -= weight;
      if (i >= r.hittable) break;
      const bool resident = where.count(r.blocks[i]) > 0;
      point.any_hit_blocks += resident;
      prefix = prefix && resident;
      if (prefix) {
        ++point.prefix_hit_blocks;
        point.prefix_hit_tokens += weight;
      }
    }
    auto touch = [&](const BlockHash& h) {
      if (auto it = where.find(h); it != where.end()) {
        lru.splice(lru.begin(), lru, it->second);
        return;
      }
      if (lru.size() == capacity) {
        where.erase(lru.back());
        lru.pop_back();
      }
      lru.push_front(h);
      where[h] = lru.begin();
    };
    if (order == TouchOrder::root_to_leaf)
      for (const BlockHash& h : r.blocks) touch(h);
    else
      for (auto it = r.blocks.rbegin(); it != r.blocks.rend(); ++it) touch(*it);
  }
  return point;
}

}  // namespace kvscope::testing_util
