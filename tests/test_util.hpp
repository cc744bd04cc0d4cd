// Shared helpers for the kvscope test suite: token generators, request
// builders and state snapshots used to prove that refused operations changed
// nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/eviction_policy.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/result.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

// Readable gtest output for the library's value types.
inline void PrintTo(Status s, std::ostream* os) { *os << to_string(s); }
inline void PrintTo(EvictionPolicyKind k, std::ostream* os) { *os << to_string(k); }
inline void PrintTo(BlockId b, std::ostream* os) { *os << "BlockId{" << b.value << "}"; }
inline void PrintTo(const BlockHash& h, std::ostream* os) {
  *os << "BlockHash{" << h.high << ", " << h.low << "}";
}
inline void PrintTo(LookupStop s, std::ostream* os) {
  switch (s) {
    case LookupStop::too_short: *os << "too_short"; return;
    case LookupStop::not_resident: *os << "not_resident"; return;
    case LookupStop::hit_cap: *os << "hit_cap"; return;
    case LookupStop::all_blocks_hit: *os << "all_blocks_hit"; return;
  }
  *os << "LookupStop?";
}

namespace testing_util {

/// `n` tokens starting at `first`: first, first+1, ... (distinct per stream).
inline std::vector<TokenId> seq(std::uint32_t n, TokenId first) {
  std::vector<TokenId> out(n);
  for (std::uint32_t i = 0; i < n; ++i) out[i] = first + i;
  return out;
}

/// Concatenation of two token lists.
inline std::vector<TokenId> cat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

/// Block ids as plain integers, so expectations read `{2, 3, 1, 0}`.
inline std::vector<std::uint32_t> ids(const std::vector<BlockId>& blocks) {
  std::vector<std::uint32_t> out;
  out.reserve(blocks.size());
  for (BlockId b : blocks) out.push_back(b.value);
  return out;
}

inline std::vector<std::uint32_t> table_of(const PrefixCache& cache, std::uint64_t id) {
  auto table = cache.block_table(RequestId{id});
  if (!table.ok()) return {};
  return ids(std::vector<BlockId>(table->begin(), table->end()));
}

inline std::vector<std::uint32_t> free_ids(const PrefixCache& cache) {
  return ids(cache.free_queue());
}

inline PrefixCacheConfig config(std::uint32_t num_blocks, std::uint32_t block_size,
                                EvictionPolicyKind policy = EvictionPolicyKind::lru) {
  PrefixCacheConfig c;
  c.num_blocks = num_blocks;
  c.block_size = block_size;
  c.policy = policy;
  return c;
}

/// A hash-mode request over caller ids; `max_hit` lifts the default cap so a
/// one-block request can hit (the default cap is num_tokens - 1).
inline Request hashed(std::uint64_t id, std::uint32_t num_tokens,
                      const std::vector<BlockHash>& hashes,
                      std::optional<std::uint32_t> max_hit = std::nullopt) {
  Request r = Request::with_hashes(RequestId{id}, num_tokens, hashes);
  r.max_hit_tokens = max_hit;
  return r;
}

inline std::vector<BlockHash> hash_ids(std::initializer_list<std::uint64_t> raw) {
  std::vector<BlockHash> out;
  for (std::uint64_t v : raw) out.push_back(BlockHash::from_id(v));
  return out;
}

/// Chained hashes of `tokens` as the cache computes them in token mode.
inline std::vector<BlockHash> chain(std::uint32_t block_size, const std::vector<TokenId>& tokens,
                                    const ExtraKeys& extras = {}, HashSeed seed = {}) {
  BlockHasher hasher(block_size, seed);
  std::vector<BlockHash> out;
  hasher.extend_hashes(tokens, extras, out);
  return out;
}

/// Everything an operation must leave untouched when it fails.
struct Snapshot {
  std::vector<std::uint32_t> free_queue;
  std::uint32_t num_free = 0;
  std::uint32_t num_cached = 0;
  std::size_t num_requests = 0;
  std::vector<std::optional<BlockHash>> hashes;
  std::vector<std::uint32_t> refs;
  PrefixCacheStats stats;

  static Snapshot of(const PrefixCache& cache) {
    Snapshot s;
    s.free_queue = free_ids(cache);
    s.num_free = cache.num_free_blocks();
    s.num_cached = cache.num_cached_blocks();
    s.num_requests = cache.num_requests();
    for (std::uint32_t b = 0; b < cache.num_blocks(); ++b) {
      s.hashes.push_back(cache.block_hash(BlockId{b}));
      s.refs.push_back(cache.ref_count(BlockId{b}));
    }
    s.stats = cache.stats();
    return s;
  }
};

/// Asserts that `after` equals `before` in every observable, ignoring
/// stats.allocation_failures (the one counter a refusal may bump).
inline void expect_unchanged(const Snapshot& before, const Snapshot& after) {
  EXPECT_EQ(before.free_queue, after.free_queue);
  EXPECT_EQ(before.num_free, after.num_free);
  EXPECT_EQ(before.num_cached, after.num_cached);
  EXPECT_EQ(before.num_requests, after.num_requests);
  EXPECT_EQ(before.hashes, after.hashes);
  EXPECT_EQ(before.refs, after.refs);
  PrefixCacheStats a = before.stats;
  PrefixCacheStats b = after.stats;
  a.allocation_failures = 0;
  b.allocation_failures = 0;
  EXPECT_EQ(a, b) << "before: " << to_json(before.stats) << "\nafter: " << to_json(after.stats);
}

inline const std::vector<EvictionPolicyKind>& all_policies() {
  static const std::vector<EvictionPolicyKind> kinds(kEvictionPolicies.begin(),
                                                     kEvictionPolicies.end());
  return kinds;
}

inline std::string policy_name(const ::testing::TestParamInfo<EvictionPolicyKind>& info) {
  return std::string(to_string(info.param));
}

}  // namespace testing_util
}  // namespace kvscope
