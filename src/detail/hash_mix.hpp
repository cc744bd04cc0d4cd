// Private: 64-bit mixing used by kvscope's open-addressing tables.
#pragma once

#include <cstdint>

#include "kvscope/types.hpp"

namespace kvscope::detail {

/// 64-bit digest of a block hash, for table positions and ghost fingerprints.
/// One multiply (Fibonacci hashing): XXH3 output is uniform already, and the
/// multiply spreads dense caller ids (BlockHash::from_id) into the high bits,
/// which is where SlotTable takes its tag from. Bijective on hashes made by
/// BlockHash::from_id (high == 0).
constexpr std::uint64_t fold(const BlockHash& h) noexcept {
  return (h.low ^ ((h.high << 32) | (h.high >> 32))) * 0x9E3779B97F4A7C15ULL;
}

/// SplitMix64 (Steele, Lea, Flood 2014): advances `state` and returns the
/// next well-mixed 64-bit value. For samplers, never for hashing content.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace kvscope::detail
