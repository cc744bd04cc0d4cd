// The miss-ratio curve is exact: it equals a literal LRU replay at every
// capacity, reproduces the trace README's reference table, and merges
// across shards. AET is checked for closeness, not equality.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <list>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "kvscope/export/json.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "lru_reference.hpp"
#include "trace_util.hpp"

namespace kvscope {
namespace {

using testing_util::brute_force_lru;
using testing_util::ChainRequest;
using testing_util::trace_requests;

StackDistanceTracker replay(const std::vector<ChainRequest>& requests, std::uint32_t capacity,
                            MissRatioConfig config, std::uint32_t block_tokens) {
  StackDistanceTracker tracker(capacity, config);
  for (const ChainRequest& r : requests)
    tracker.record(r.blocks, r.tokens, block_tokens, r.hittable);
  return tracker;
}

void expect_equals_brute_force_at_every_capacity(const std::vector<ChainRequest>& requests,
                                                 std::uint32_t capacity, TouchOrder order,
                                                 std::uint32_t block_tokens) {
  MissRatioConfig config;
  config.touch_order = order;
  const StackDistanceTracker tracker = replay(requests, capacity, config, block_tokens);
  std::vector<std::uint64_t> every;
  for (std::uint64_t c = 1; c <= tracker.bound(); ++c) every.push_back(c);
  const auto points = tracker.points_at(every);
  for (std::uint64_t c = 1; c <= tracker.bound(); ++c) {
    const MrcPoint expected = brute_force_lru(requests, c, order, block_tokens);
    ASSERT_EQ(points[c - 1], expected) << "capacity " << c << ", order " << to_string(order);
  }
}

TEST(MissRatioCurve, EqualsBruteForceLruAtEveryCapacityOnATraceSlice) {
  KVSCOPE_TRACE_OR_SKIP(trace, 150);
  const auto requests = trace_requests(*trace);
  // Bound 4 x 100 = 400 positions: far fewer than the slice's distinct blocks,
  // so deep blocks are dropped all along and exactness below the bound is tested.
  expect_equals_brute_force_at_every_capacity(requests, 100, TouchOrder::root_to_leaf, 512);
  expect_equals_brute_force_at_every_capacity(requests, 100, TouchOrder::leaf_to_root, 512);
}

/// Random chains over a tree of shared prefixes, some with a vLLM-style cap.
std::vector<ChainRequest> random_tree_requests(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<BlockHash>> chains;  // earlier chains to branch from
  std::uint64_t next_id = 1;
  std::vector<ChainRequest> out;
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<BlockHash> blocks;
    if (!chains.empty() && rng() % 4 != 0) {  // share a prefix of an earlier chain
      const auto& base = chains[rng() % chains.size()];
      blocks.assign(base.begin(),
                    base.begin() + static_cast<std::ptrdiff_t>(rng() % (base.size() + 1)));
    }
    const std::size_t extra = rng() % 12;
    for (std::size_t k = 0; k < extra; ++k) blocks.push_back(BlockHash::from_id(next_id++));
    if (blocks.empty()) blocks.push_back(BlockHash::from_id(next_id++));
    chains.push_back(blocks);
    const auto m = static_cast<std::uint32_t>(blocks.size());
    const std::uint32_t tokens = m * 16 - static_cast<std::uint32_t>(rng() % 16);
    const std::uint32_t hittable = rng() % 3 == 0 ? (tokens - 1) / 16 : m;
    out.push_back({std::move(blocks), tokens, hittable});
  }
  return out;
}

TEST(MissRatioCurve, EqualsBruteForceOnRandomPrefixTreesWithCapsAndPartialBlocks) {
  for (unsigned seed = 1; seed <= 3; ++seed) {
    const auto requests = random_tree_requests(1'500, seed);  // > 1,024 pushes: slots compact
    expect_equals_brute_force_at_every_capacity(requests, 40, TouchOrder::leaf_to_root, 16);
    expect_equals_brute_force_at_every_capacity(requests, 40, TouchOrder::root_to_leaf, 16);
  }
}

TEST(MissRatioCurve, ReproducesTheTraceReadmeReferenceTable) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  MissRatioConfig config;
  config.touch_order = TouchOrder::root_to_leaf;
  config.capacity_multiples = {1, 2};
  config.bound_multiple = 2;  // 200,000 positions > 182,790 distinct ids: nothing dropped
  const auto tracker = replay(trace_requests(*trace), 100'000, config, 512);
  const std::uint64_t capacities[] = {1'000,  5'000,  10'000,  20'000,
                                      30'000, 50'000, 100'000, 200'000};
  const MrcPoint expected[] = {
      {0, 1'000, 12'831, 12'845, 6'567'267, 0},      {0, 5'000, 31'840, 32'209, 16'290'777, 0},
      {0, 10'000, 60'921, 61'042, 31'174'981, 0},    {0, 20'000, 82'939, 83'034, 42'444'254, 0},
      {0, 30'000, 93'967, 93'977, 48'088'108, 0},    {0, 50'000, 102'290, 102'290, 52'347'371, 0},
      {0, 100'000, 104'924, 104'924, 53'695'979, 0}, {0, 200'000, 105'710, 105'710, 54'098'411, 0},
  };
  const auto points = tracker.points_at(capacities);
  for (std::size_t i = 0; i < points.size(); ++i)
    EXPECT_EQ(points[i], expected[i]) << "N = " << capacities[i];
  const MissRatioCurve curve = tracker.curve();
  EXPECT_EQ(curve.references, 288'500u);
  EXPECT_EQ(curve.tokens, 144'793'823u);
  EXPECT_EQ(curve.requests, 12'031u);
}

TEST(MissRatioCurve, AetEstimateIsCloseToTheExactCurveOnTheTrace) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  MissRatioConfig config;
  config.estimate_aet = true;
  const auto tracker = replay(trace_requests(*trace), 20'000, config, 512);
  const MissRatioCurve curve = tracker.curve();
  ASSERT_TRUE(curve.has_aet);
  double total_error = 0;
  for (const MrcPoint& p : curve.points)
    total_error += std::abs(curve.aet_hit_ratio(p) - curve.any_hit_ratio(p));
  const double mean_error = total_error / static_cast<double>(curve.points.size());
  RecordProperty("aet_mean_abs_error", std::to_string(mean_error));
  EXPECT_LT(mean_error, 0.02);
}

TEST(MissRatioCurve, AetOnAKnownLoopPattern) {
  // A cyclic scan over 10 blocks: every reuse time is 10. An LRU cache of
  // fewer than 10 blocks never hits; one of 10 or more always does (after
  // the cold start).
  Histogram reuse(HistogramLayout{(std::uint64_t{1} << 40) - 1, 7});
  reuse.record_n(10, 990);
  const std::uint64_t capacities[] = {5, 9, 10, 20};
  const auto hits = aet_hit_ratios(reuse, 1'000, capacities);
  EXPECT_NEAR(hits[0], 0.0, 1e-9);
  EXPECT_LT(hits[1], 0.2);
  EXPECT_NEAR(hits[2], 0.99, 1e-9);
  EXPECT_NEAR(hits[3], 0.99, 1e-9);
}

TEST(MissRatioCurve, ShardCurvesMergeIntoTheShardedCachesCurve) {
  const auto requests = random_tree_requests(600, 7);
  MissRatioConfig config;
  config.capacity_multiples = {0.5, 1, 2};
  StackDistanceTracker a(30, config), b(50, config);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto& shard = (requests[i].blocks[0].low % 2 == 0) ? a : b;
    shard.record(requests[i].blocks, requests[i].tokens, 16, requests[i].hittable);
  }
  MissRatioCurve merged = a.curve();
  merged += b.curve();
  EXPECT_EQ(merged.capacity_blocks, 80u);
  EXPECT_EQ(merged.shards, 2u);
  ASSERT_EQ(merged.points.size(), 3u);
  EXPECT_EQ(merged.points[1].capacity_blocks, 80u);
  EXPECT_EQ(merged.points[1].prefix_hit_blocks,
            a.curve().points[1].prefix_hit_blocks + b.curve().points[1].prefix_hit_blocks);
  EXPECT_EQ(merged.references, a.curve().references + b.curve().references);

  MissRatioConfig other = config;
  other.capacity_multiples = {0.5, 1};
  StackDistanceTracker c(30, other);
  EXPECT_THROW(merged += c.curve(), std::invalid_argument);
}

TEST(MissRatioCurve, ClearStackMakesEverythingColdButKeepsCounts) {
  StackDistanceTracker tracker(8, MissRatioConfig{});
  const std::vector<BlockHash> chain{BlockHash::from_id(1), BlockHash::from_id(2)};
  tracker.record(chain, 32, 16, 2);
  tracker.record(chain, 32, 16, 2);
  tracker.clear_stack();
  tracker.record(chain, 32, 16, 2);
  const std::uint64_t capacities[] = {8};
  const auto points = tracker.points_at(capacities);
  EXPECT_EQ(points[0].prefix_hit_blocks, 2u);  // only the second record hit
  EXPECT_EQ(tracker.curve().references, 6u);
  EXPECT_EQ(tracker.tracked_blocks(), 2u);
}

TEST(MissRatioCurve, JsonHasThePoints) {
  StackDistanceTracker tracker(4, MissRatioConfig{.capacity_multiples = {1, 2}});
  const std::vector<BlockHash> chain{BlockHash::from_id(1)};
  tracker.record(chain, 16, 16, 1);
  tracker.record(chain, 16, 16, 1);
  const std::string json = to_json(tracker.curve());
  for (const char* key : {"\"points\"", "\"capacity_blocks\":4", "\"block_hit_ratio\":0.5",
                          "\"touch_order\":\"leaf_to_root\"", "\"references\":2"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
}

TEST(MissRatioCurve, ConfigIsValidated) {
  auto bad = [](MissRatioConfig c) { EXPECT_THROW(c.validate(), std::invalid_argument); };
  bad(MissRatioConfig{.bound_multiple = 0});
  bad(MissRatioConfig{.bound_multiple = std::nan("")});
  bad(MissRatioConfig{.capacity_multiples = {}});
  bad(MissRatioConfig{.capacity_multiples = {1, 1}});
  bad(MissRatioConfig{.capacity_multiples = {5}});  // beyond the bound
  EXPECT_THROW(StackDistanceTracker(0, MissRatioConfig{}), std::invalid_argument);
}

}  // namespace
}  // namespace kvscope
