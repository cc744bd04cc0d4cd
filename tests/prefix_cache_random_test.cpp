// Randomized operation sequences checked against a reference model.
//
// The model knows, for every policy, which requests are live with which
// tokens, every block's ref count and hash, the exact order of the uncached
// free blocks, and the set of evictable cached blocks (for LRU also their
// exact order). It predicts the outcome of every operation (status, hits,
// shared/new/evicted block counts, stats); where a non-LRU policy picks a
// victim, the model takes the victim the cache chose and checks that it was
// a legal one (a free cached block not touched by the operation).
//
// After every operation: check_invariants(), free + used = N, ref counts and
// hashes per block, find(hash(b)) == b, block tables, free queue (uncached
// part exact, cached part as a set / exact for LRU), stats and observer
// counts. At the end everything is freed and nothing may be in use.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "prefix_cache_model.hpp"

namespace kvscope {
namespace {

using testing_util::RandomOps;

using testing_util::SeededChoices;

struct RandomCase {
  EvictionPolicyKind policy;
  std::uint32_t seed;
};

class RandomOpsTest : public ::testing::TestWithParam<RandomCase> {};

TEST_P(RandomOpsTest, MatchTheReferenceModelAndKeepEveryInvariant) {
  const RandomCase rc = GetParam();
  SeededChoices choices(rc.seed * 7919u + 17u);
  PrefixCacheConfig config =
      testing_util::config(rc.seed % 2 == 0 ? 24 : 16, rc.seed % 2 == 0 ? 4 : 3, rc.policy);
  if (rc.seed % 3 == 0) config.hash_seed = HashSeed{0xC0FFEEULL + rc.seed};
  config.s3fifo_small_ratio = rc.seed % 4 == 1 ? 0.25 : 0.1;
  RandomOps ops(config, choices);
  constexpr int kOps = 8000;
  for (int step = 0; step < kOps; ++step) {
    if (!ops.step(step)) return;
    // Every so often the scheduler drains: free everything, then reset.
    if (step % 750 == 749) {
      ops.drain();
      if (HasFailure()) return;
    }
  }
  // The run must have exercised the interesting paths.
  const PrefixCacheStats& s = ops.cache().stats();
  EXPECT_GT(s.fresh.hit_tokens, 0u);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_GT(s.allocation_failures, 0u);
  EXPECT_GT(s.preempted.requests, 0u);
  const RandomOps::Coverage& cov = ops.coverage();
  EXPECT_GT(cov.allocated, 0);
  EXPECT_GT(cov.duplicates, 0);
  EXPECT_GT(cov.too_large, 0);
  EXPECT_GT(cov.not_enough, 0);
  EXPECT_GT(cov.reused, 0);
  EXPECT_GT(cov.appended_cached, 0);
  EXPECT_GT(cov.append_private, 0);
  EXPECT_GT(cov.twins_promoted, 0);
  EXPECT_GT(cov.resets, 0);
  EXPECT_GT(cov.reset_refused, 0);
  ops.drain();
}

std::vector<RandomCase> random_cases() {
  std::vector<RandomCase> out;
  for (EvictionPolicyKind kind : testing_util::all_policies())
    for (std::uint32_t seed : {1u, 2u, 3u, 4u}) out.push_back({kind, seed});
  return out;
}

std::string random_case_name(const ::testing::TestParamInfo<RandomCase>& info) {
  return std::string(to_string(info.param.policy)) + "_seed" + std::to_string(info.param.seed);
}

INSTANTIATE_TEST_SUITE_P(PolicySeeds, RandomOpsTest, ::testing::ValuesIn(random_cases()),
                         random_case_name);

}  // namespace
}  // namespace kvscope
