// The request workload shared by the core and runtime request-cycle
// benchmarks: 64 prompts of 2,048 tokens (block_size 16 -> 128 blocks);
// even prompts share a 1,024-token prefix; the rest of every prompt is
// unique. Cycling through them touches 6,144 distinct blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvscope/types.hpp"

namespace kvscope::bench {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPromptTokens = 2048;
constexpr std::uint32_t kSharedTokens = 1024;
constexpr std::uint32_t kPoolBlocks = 4096;  ///< per cache (per shard in the runtime)
constexpr std::size_t kPrompts = 64;

/// Deterministic prompts: even ones start with the shared prefix.
inline std::vector<std::vector<TokenId>> make_prompts() {
  std::vector<std::vector<TokenId>> prompts(kPrompts, std::vector<TokenId>(kPromptTokens));
  std::uint32_t next_unique = 1'000'000;
  for (std::size_t p = 0; p < kPrompts; ++p) {
    for (std::uint32_t t = 0; t < kPromptTokens; ++t) {
      const bool shared = p % 2 == 0 && t < kSharedTokens;
      prompts[p][t] = shared ? t : next_unique++;
    }
  }
  return prompts;
}

}  // namespace kvscope::bench
