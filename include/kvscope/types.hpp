// kvscope/types.hpp - strong vocabulary types shared by every component.
//
// Plain value types, no behaviour beyond comparison and hashing support.
// Any thread may use them; all are trivially copyable.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>

namespace kvscope {

/// A token id as produced by the engine's tokenizer.
using TokenId = std::uint32_t;

/// 128-bit chained block hash (XXH3-128). Equal hashes mean equal whole
/// prefixes: the hash covers the parent hash, the block's tokens and its
/// extra keys.
struct BlockHash {
  std::uint64_t high = 0;
  std::uint64_t low = 0;

  friend constexpr bool operator==(const BlockHash&, const BlockHash&) = default;
  friend constexpr auto operator<=>(const BlockHash&, const BlockHash&) = default;

  /// A hash made from a caller's own 64-bit block id (trace replay, engines
  /// that hash themselves). Distinct ids give distinct hashes.
  static constexpr BlockHash from_id(std::uint64_t id) noexcept { return BlockHash{0, id}; }
};

/// Index of a block in a shard's pool, 0 .. num_blocks-1.
struct BlockId {
  std::uint32_t value = 0;
  friend constexpr bool operator==(BlockId, BlockId) = default;
  friend constexpr auto operator<=>(BlockId, BlockId) = default;
};

/// A shard of a Runtime, 0 .. shards-1 (Runtime::route() gives a request's).
struct ShardId {
  std::uint32_t value = 0;
  friend constexpr bool operator==(ShardId, ShardId) = default;
  friend constexpr auto operator<=>(ShardId, ShardId) = default;
};

/// The caller's request id; unique among the requests a cache currently holds.
struct RequestId {
  std::uint64_t value = 0;
  friend constexpr bool operator==(RequestId, RequestId) = default;
  friend constexpr auto operator<=>(RequestId, RequestId) = default;
};

}  // namespace kvscope

template <>
struct std::hash<kvscope::BlockHash> {
  std::size_t operator()(const kvscope::BlockHash& h) const noexcept {
    return static_cast<std::size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ULL));
  }
};
template <>
struct std::hash<kvscope::RequestId> {
  std::size_t operator()(kvscope::RequestId id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value);
  }
};
