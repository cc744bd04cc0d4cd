// The hybrid allocator's rules (kvscope/kv_cache_groups.hpp) against the
// scenarios of vLLM's own tests at commit fa36f86d of ZJY0516/vllm
// (tests/v1/core/test_single_type_kv_cache_manager.py,
// test_prefix_caching.py), restated with their expected numbers.

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/kv_cache_groups.hpp"

namespace kvscope {
namespace {

using Kind = AttentionKind;

KvCacheGroupConfig full(std::uint32_t block_size) {
  return {Kind::full_attention, block_size, 0, 1};
}
KvCacheGroupConfig sliding(std::uint32_t block_size, std::uint32_t window) {
  return {Kind::sliding_window, block_size, window, 1};
}

/// "TTF...": T = block cached.
auto pattern(const std::string& p) {
  return [p](std::uint32_t i) { return i < p.size() && p[i] == 'T'; };
}

// vLLM test_sliding_window_possible_cached_prefix: window 4, block size 2
// (a hit needs 2 contiguous blocks), the hit may cover every block.
TEST(SlidingWindowHit, FindsTheRightmostRunOfWindowBlocksOrTheRunFromTheStart) {
  struct Case {
    std::string cached;
    std::uint32_t blocks;
    std::uint32_t placeholders;
  };
  const std::vector<Case> cases = {
      {"FFFFFFFFFF", 0, 0},  {"T", 1, 0},
      {"TF", 1, 0},          {"TT", 2, 0},
      {"TTF", 2, 0},         {"TTT", 3, 1},
      {"TTTF", 3, 1},        {"TTFTFFTTFTTT", 12, 10},
      {"TTFTFFTTFFF", 8, 6}, {"TTFTFFTTFFFT", 8, 6},
  };
  for (const Case& c : cases) {
    const auto n = static_cast<std::uint32_t>(c.cached.size());
    const GroupHit hit =
        sliding_window_hit(n * 2, 2, /*need=*/2, /*alignment=*/2, pattern(c.cached));
    EXPECT_EQ(hit.blocks, c.blocks) << c.cached;
    EXPECT_EQ(hit.placeholders, c.placeholders) << c.cached;
  }
}

TEST(FullAttentionHit, StopsAtTheFirstMissAndRoundsDownToTheAlignment) {
  EXPECT_EQ(full_attention_hit(64, 16, 16, pattern("TTFT")).blocks, 2u);
  EXPECT_EQ(full_attention_hit(47, 16, 16, pattern("TTTT")).blocks, 2u) << "cap: 47 / 16";
  EXPECT_EQ(full_attention_hit(64, 16, 32, pattern("TTTF")).blocks, 2u)
      << "48 is not a multiple of 32";
  EXPECT_EQ(full_attention_hit(64, 16, 32, pattern("TFTT")).blocks, 0u);
}

// vLLM test_sliding_window_remove_skipped_blocks: window 4, block size 2.
TEST(KvCacheLayout, ASlidingGroupSkipsTheBlocksWhollyBeforeTheWindow) {
  const KvCacheLayout layout({sliding(2, 4)});
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> computed_to_skipped = {
      {0, 0}, {4, 0}, {5, 1}, {6, 1}, {7, 2}, {11, 4}};
  for (const auto& [computed, skipped] : computed_to_skipped)
    EXPECT_EQ(layout.skipped_blocks(0, computed), skipped) << computed << " computed";
  const KvCacheLayout with_full({full(2), sliding(2, 4)});
  EXPECT_EQ(with_full.skipped_blocks(0, 11), 0u) << "full attention keeps every block";
}

// vLLM test_prefill_hybrid_model: block size 16, groups [full, sliding w32,
// sliding w32]; a 55-token prompt cached 3 full blocks per group; a 53-token
// prompt sharing its first 48 tokens then looks up (cap 52).
TEST(HybridHit, ThreeGroupsOfOneBlockSizeMatchVllmsPrefillScenario) {
  const KvCacheLayout layout({full(16), sliding(16, 32), sliding(16, 32)});
  EXPECT_EQ(layout.scheduler_block_size(), 16u);
  EXPECT_EQ(layout.blocks_for_window(1), 2u);
  // evicted[g] = blocks of group g no longer cached (of blocks 0, 1, 2).
  auto hit_with = [&](std::vector<std::set<std::uint32_t>> evicted) {
    return layout.longest_hit(
        52, [&](std::uint32_t g, std::uint32_t i) { return i < 3 && !evicted[g].contains(i); });
  };
  const HybridHit all = hit_with({{}, {}, {}});
  EXPECT_EQ(all.tokens, 48u);
  EXPECT_EQ(all.groups[0].blocks, 3u);
  EXPECT_EQ(all.groups[0].placeholders, 0u);
  EXPECT_EQ(all.groups[1].blocks, 3u);
  EXPECT_EQ(all.groups[1].placeholders, 1u) << "vLLM: [null, 6, 7]";
  EXPECT_EQ(all.groups[2].placeholders, 1u) << "vLLM: [null, 10, 11]";
  EXPECT_EQ(hit_with({{}, {0}, {0}}).tokens, 48u) << "block 0 is outside the window";
  EXPECT_EQ(hit_with({{0}, {}, {}}).tokens, 0u);
  EXPECT_EQ(hit_with({{2}, {2}, {2}}).tokens, 32u);
  EXPECT_EQ(hit_with({{2}, {}, {}}).tokens, 32u);
  EXPECT_EQ(hit_with({{}, {2}, {}}).tokens, 32u);
  EXPECT_EQ(hit_with({{}, {}, {2}}).tokens, 32u) << "equal specs are looked up together";
  EXPECT_EQ(hit_with({{2}, {0}, {0}}).tokens, 0u)
      << "full gives 2 blocks; the sliding run {1} neither starts at 0 nor reaches 2 blocks";
}

// vLLM test_prefill_hybrid_model_combinations (no Mamba): 3 cached blocks
// of 16, a 53-token request hits 48 with every mix, a 64-token window
// (needs 4 blocks, 3 exist) by the run-from-the-start rule.
TEST(HybridHit, EveryCombinationOfFullAndSlidingGroupsHits48) {
  const std::vector<std::vector<KvCacheGroupConfig>> combinations = {
      {full(16), sliding(16, 32)},
      {sliding(16, 32), sliding(16, 64)},
      {full(16), sliding(16, 32), sliding(16, 32)},
      {full(16), sliding(16, 32), sliding(16, 64)},
      {full(16), full(16), sliding(16, 32)},
      {full(16), sliding(16, 32), full(16), sliding(16, 64)},
  };
  for (const auto& groups : combinations) {
    const KvCacheLayout layout(groups);
    const HybridHit hit =
        layout.longest_hit(52, [](std::uint32_t, std::uint32_t i) { return i < 3; });
    EXPECT_EQ(hit.tokens, 48u) << groups.size() << " groups";
    for (std::uint32_t g = 0; g < layout.group_count(); ++g) EXPECT_EQ(hit.groups[g].blocks, 3u);
  }
}

// vLLM test_different_block_size: full attention in blocks of 32, a sliding
// window of 32 in blocks of 16; hash block 16, scheduler block 32.
TEST(HybridHit, DifferentBlockSizesAlignToTheSchedulerBlock) {
  const KvCacheLayout layout({full(32), sliding(16, 32)});
  EXPECT_EQ(layout.hash_block_size(), 16u);
  EXPECT_EQ(layout.scheduler_block_size(), 32u);
  EXPECT_EQ(layout.hashes_per_block(0), 2u);
  // A 112-token prompt caches up to 96 tokens: 3 full blocks, 6 sliding.
  EXPECT_EQ(layout.cacheable_tokens(112), 96u);
  std::set<std::uint32_t> sliding_cached = {0, 1, 2, 3, 4, 5};
  auto cached = [&](std::uint32_t g, std::uint32_t i) {
    return g == 0 ? i < 3 : sliding_cached.contains(i);
  };
  const HybridHit before = layout.longest_hit(112, cached);  // a 113-token request
  EXPECT_EQ(before.tokens, 96u);
  EXPECT_EQ(before.groups[0].blocks, 3u);
  EXPECT_EQ(before.groups[1].blocks, 6u);
  EXPECT_EQ(layout.longest_hit(96, cached).tokens, 96u) << "a 97-token request";
  // vLLM removes the sliding keys of fine hashes 5 and 6: the sliding group
  // alone would hit 80 tokens, not a multiple of 32, so the hit is 64.
  sliding_cached.erase(5);
  const HybridHit after = layout.longest_hit(112, cached);
  EXPECT_EQ(after.tokens, 64u);
  EXPECT_EQ(after.groups[0].blocks, 2u);
  EXPECT_EQ(after.groups[1].blocks, 4u);
}

// Two full-attention groups of different block sizes are two spec groups:
// each is looked up (the second is not taken for the first's prefix).
TEST(HybridHit, EachFullAttentionGroupIsLookedUp) {
  const KvCacheLayout layout({full(16), full(32)});
  const HybridHit hit = layout.longest_hit(100, [](std::uint32_t g, std::uint32_t i) {
    return g == 0 ? i < 6 : i < 1;  // 96 tokens cached for blocks of 16, 32 for blocks of 32
  });
  EXPECT_EQ(hit.tokens, 32u);
  EXPECT_EQ(hit.groups[0].blocks, 2u);
  EXPECT_EQ(hit.groups[1].blocks, 1u);
}

// Three specs: a later group can shrink the candidate below what an earlier
// one served, so rounds repeat (a single pass would answer 48 here).
TEST(HybridHit, RoundsRepeatUntilNoGroupShrinksTheCandidate) {
  const KvCacheLayout layout({full(16), sliding(16, 32), sliding(16, 20)});
  const std::string a = "TFTTFT", b = "TTTFTT";
  const HybridHit hit = layout.longest_hit(100, [&](std::uint32_t g, std::uint32_t i) {
    if (g == 0) return i < 6;
    return i < 6 && (g == 1 ? a : b)[i] == 'T';
  });
  // Round 1: full 96, window 32 finds run {2,3} (64), window 20 (needs 2)
  // finds {1,2} within 4 blocks (48). Round 2 at 48: window 32 has only the
  // run from the start, {0} (16). Round 3 at 16: both 16.
  EXPECT_EQ(hit.tokens, 16u);
  EXPECT_EQ(hit.groups[0].blocks, 1u);
  EXPECT_EQ(hit.groups[1].blocks, 1u);
  EXPECT_EQ(hit.groups[2].blocks, 1u);
}

// vLLM test_hybrid_cache_blocks_swa_tail_window_only and
// _clamped_to_lcm: what a sliding group caches.
TEST(KvCacheLayout, ASlidingGroupCachesOnlyBlocksAHitCanUse) {
  const KvCacheLayout tail({full(32), sliding(8, 8)});  // need 1 of 4 per scheduler block
  std::vector<std::uint32_t> cached;
  for (std::uint32_t i = 0; i < tail.cacheable_tokens(64) / 8; ++i)
    if (tail.caches_block(1, i)) cached.push_back(i);
  EXPECT_EQ(cached, (std::vector<std::uint32_t>{3, 7}));
  EXPECT_TRUE(tail.caches_block(0, 0)) << "full attention caches every block";

  const KvCacheLayout clamped({full(32), sliding(16, 32)});  // need 2 of 2: every block
  EXPECT_EQ(clamped.cacheable_tokens(112), 96u) << "sliding blocks 0-5 cached, 6 not";
  for (std::uint32_t i = 0; i < 6; ++i) EXPECT_TRUE(clamped.caches_block(1, i));
}

TEST(KvCacheLayout, TheKindsCarryVllmsEventNames) {
  EXPECT_EQ(to_string(AttentionKind::full_attention), "full_attention");
  EXPECT_EQ(to_string(AttentionKind::sliding_window), "sliding_window");
}

TEST(KvCacheLayout, BadConfigurationNamesTheField) {
  auto message = [](auto make) {
    try {
      make();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message([] { KvCacheLayout({}); }).find("at least one group"), std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({full(16), sliding(16, 0)});
            }).find("groups[1].sliding_window must be >= 1"),
            std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({sliding(16, 64), {Kind::full_attention, 16, 8, 1}});
            }).find("groups[1].sliding_window must be 0"),
            std::string::npos);
  EXPECT_NE(message([] { KvCacheLayout({full(0)}); }).find("groups[0].block_size"),
            std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({{Kind::full_attention, 16, 0, 0}});
            }).find("groups[0].num_layers"),
            std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({full(32), sliding(16, 64)}, 32);
            }).find("hash_block_size (32) must divide groups[1].block_size (16)"),
            std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({full(65'537), sliding(65'539, 64)});
            }).find("least common multiple above 2^31"),
            std::string::npos);
  EXPECT_NE(message([] {
              KvCacheLayout({full(32), sliding(16, 64)}, 0, 2);
            }).find("num_blocks (2)"),
            std::string::npos);
  EXPECT_NO_THROW(KvCacheLayout({full(32), sliding(16, 64)}, 0, 3));
  EXPECT_NE(message([] {
              KvCacheLayout(std::vector<KvCacheGroupConfig>(17, full(16)));
            }).find("at most 16"),
            std::string::npos);
}

}  // namespace
}  // namespace kvscope
