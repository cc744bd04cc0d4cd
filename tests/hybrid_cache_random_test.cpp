// Randomized operation sequences on a PrefixCache with KV cache groups,
// checked step by step against the reference model in
// tests/hybrid_cache_model.hpp: two and three groups, equal and different
// block sizes, windows shorter and longer than a scheduler block.
#include <gtest/gtest.h>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "hybrid_cache_model.hpp"

namespace kvscope {
namespace {

using testing_util::SeededChoices;

struct Layout {
  std::string name;
  std::uint32_t hash_block_size;
  std::vector<KvCacheGroupConfig> groups;
};

void PrintTo(const Layout& layout, std::ostream* os) { *os << layout.name; }

KvCacheGroupConfig full(std::uint32_t b) { return {AttentionKind::full_attention, b, 0, 1}; }
KvCacheGroupConfig sliding(std::uint32_t b, std::uint32_t w) {
  return {AttentionKind::sliding_window, b, w, 1};
}

std::vector<Layout> layouts() {
  return {
      {"full4_swa4w6", 4, {full(4), sliding(4, 6)}},
      {"full8_swa4w4", 4, {full(8), sliding(4, 4)}},
      {"full4_swa8w12", 4, {full(4), sliding(8, 12)}},
      {"full4_swa4w9_swa4w9", 4, {full(4), sliding(4, 9), sliding(4, 9)}},
      {"full6_swa4w5_swa2w3", 2, {full(6), sliding(4, 5), sliding(2, 3)}},
      {"swa4w6_swa4w13", 4, {sliding(4, 6), sliding(4, 13)}},
      {"full4_full8_swa4w6", 4, {full(4), full(8), sliding(4, 6)}},
      {"swa8w20_only", 4, {sliding(8, 20)}},
  };
}

class HybridRandomOpsTest : public ::testing::TestWithParam<std::tuple<Layout, std::uint32_t>> {};

TEST_P(HybridRandomOpsTest, MatchTheReferenceModelStepByStep) {
  const auto& [layout, seed] = GetParam();
  PrefixCacheConfig config;
  config.num_blocks = 24 + seed % 3 * 12;  // small: evictions within a few steps
  config.block_size = layout.hash_block_size;
  config.groups = layout.groups;
  SeededChoices choices(seed * 104'729u + 11u);
  testing_util::HybridRandomOps ops(config, choices);
  for (int step = 0; step < 3000; ++step)
    if (!ops.step(step)) return;
  ops.drain();
  const auto& cov = ops.coverage();
  // The run reached what it is meant to check.
  EXPECT_GT(cov.hits, 20);
  EXPECT_GT(cov.evictions, 20);
  EXPECT_GT(cov.not_enough, 0);
  if (layout.name != "full4_swa8w12") {
    EXPECT_GT(cov.twins, 0);
  }
  bool any_sliding_need_run = false;
  for (const auto& g : layout.groups)
    any_sliding_need_run = any_sliding_need_run || g.kind == AttentionKind::sliding_window;
  if (any_sliding_need_run) {
    EXPECT_GT(cov.released, 0) << "no block left a window";
    EXPECT_GT(cov.placeholder_hits, 0) << "no hit started after a placeholder";
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, HybridRandomOpsTest,
                         ::testing::Combine(::testing::ValuesIn(layouts()),
                                            ::testing::Values(1u, 2u, 3u)),
                         [](const auto& info) {
                           return std::get<0>(info.param).name + "_seed" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace kvscope
