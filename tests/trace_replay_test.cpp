// Trace replay through the cache core: the simple mode is the trace README's
// LRU (exact against a literal replay and the reference table), the vllm
// mode follows the engine's rules (partial tail, hit cap, reverse free).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <numeric>
#include <stdexcept>
#include <string>

#include "kvscope/trace/trace_replay.hpp"
#include "lru_reference.hpp"
#include "tiny_trace.hpp"
#include "trace_util.hpp"

namespace kvscope {
namespace {

ReplayConfig simple_lru(std::uint32_t capacity) {
  ReplayConfig config;
  config.mode = ReplayMode::simple;
  config.capacity = capacity;
  return config;
}

TEST(TraceReplay, SimpleLruReproducesTheReadmeTable) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  struct Row {
    std::uint32_t capacity;
    std::uint64_t prefix_blocks, any_blocks, prefix_tokens;
  };
  // ../shared/traces/README.md, "Reference LRU replay (exact counts)".
  const Row rows[] = {
      {1'000, 12'831, 12'845, 6'567'267},     {5'000, 31'840, 32'209, 16'290'777},
      {10'000, 60'921, 61'042, 31'174'981},   {20'000, 82'939, 83'034, 42'444'254},
      {30'000, 93'967, 93'977, 48'088'108},   {50'000, 102'290, 102'290, 52'347'371},
      {100'000, 104'924, 104'924, 53'695'979}};
  for (const Row& row : rows) {
    const ReplayResult r = replay_trace(*trace, simple_lru(row.capacity));
    EXPECT_EQ(r.requests, 12'031u);
    EXPECT_EQ(r.total_blocks, 288'500u);
    EXPECT_EQ(r.total_tokens, 144'793'823u);
    EXPECT_EQ(r.prefix_hit_blocks, row.prefix_blocks) << "N = " << row.capacity;
    EXPECT_EQ(r.any_hit_blocks, row.any_blocks) << "N = " << row.capacity;
    EXPECT_EQ(r.prefix_hit_tokens, row.prefix_tokens) << "N = " << row.capacity;
    EXPECT_EQ(r.rejected, 0u);
  }
}

TEST(TraceReplay, SimpleLruEqualsALiteralLruOnASliceAtSmallCapacities) {
  KVSCOPE_TRACE_OR_SKIP(trace, 400);
  const auto chains = testing_util::trace_requests(*trace);
  // Down to below the longest request: rejections make the two part ways,
  // so stop at the largest request of the slice.
  std::uint32_t largest = 0;
  for (const auto& r : trace->requests) largest = std::max(largest, r.block_count);
  for (std::uint32_t capacity : {largest, largest + 1, 300u, 500u, 1'000u, 2'000u, 5'000u}) {
    if (capacity < largest) continue;
    const MrcPoint expected =
        testing_util::brute_force_lru(chains, capacity, TouchOrder::root_to_leaf, 512);
    const ReplayResult r = replay_trace(*trace, simple_lru(capacity));
    EXPECT_EQ(r.prefix_hit_blocks, expected.prefix_hit_blocks) << "capacity " << capacity;
    EXPECT_EQ(r.any_hit_blocks, expected.any_hit_blocks) << "capacity " << capacity;
    EXPECT_EQ(r.prefix_hit_tokens, expected.prefix_hit_tokens) << "capacity " << capacity;
  }
}

using testing_util::kTinyTrace;

MooncakeTrace tiny_trace() {
  TraceReadOptions options;
  options.block_tokens = 4;
  return parse_mooncake_trace(kTinyTrace, "tiny", options);
}

TEST(TraceReplay, VllmModeFollowsTheEngineRules) {
  ReplayConfig config;
  config.capacity = 4;
  config.block_tokens = 4;
  const ReplayResult r = replay_trace(tiny_trace(), config);
  // 1: [1 2 | 3 partial] cold.      2: hits 1 2 (cap 8 tokens = 2 blocks), 5 partial.
  // 3: 8 tokens, cap 7: hits 1 only; 2 resident but past the cap.
  // 4: 5 blocks > 4: rejected.      5: hits 1; needs 3 blocks: 2 uncached + evicts 2.
  // 6: 1 resident, 2 evicted, 3 never hashed (a partial tail in 1): hits 1; evicts
  //    14 and 13 (freed last-first, so the chain's tail goes first), keeps 12.
  // 7: hits 1 and 12 (12 survived only because 5 was freed last-first; freed
  //    first-first, 12 would have gone in 6); evicts 3 for 15.
  EXPECT_EQ(r.requests, 7u);
  EXPECT_EQ(r.total_blocks, 23u);
  EXPECT_EQ(r.total_tokens, 87u);
  EXPECT_EQ(r.prefix_hit_blocks, 7u);
  EXPECT_EQ(r.prefix_hit_tokens, 28u);
  EXPECT_EQ(r.any_hit_blocks, 8u);
  EXPECT_EQ(r.evictions, 4u);
  EXPECT_EQ(r.rejected, 1u);
  EXPECT_DOUBLE_EQ(r.block_hit_ratio(), 7.0 / 23.0);
  EXPECT_DOUBLE_EQ(r.token_hit_ratio(), 28.0 / 87.0);
}

TEST(TraceReplay, SimpleModeCachesEveryIdWithoutACap) {
  ReplayConfig config = simple_lru(4);
  config.block_tokens = 4;
  const ReplayResult r = replay_trace(tiny_trace(), config);
  // 2: hits 1 2.  3: hits 1 2 (no cap).  5: hits 1; evicts 3, 5 and 2 (LRU,
  // freed in request order).  6: 1 resident; 2 and 3 were evicted: hits 1;
  // evicts 12 and 13.  7: hits 1 (12 is gone).
  // Every id of request 1 is cached, 3 included; request 2's 5 too.
  EXPECT_EQ(r.prefix_hit_blocks, 2u + 2u + 1u + 1u + 1u);
  EXPECT_EQ(r.prefix_hit_tokens, 8u + 8u + 4u + 4u + 4u);
  EXPECT_EQ(r.any_hit_blocks, 2u + 2u + 1u + 1u + 1u);
  EXPECT_EQ(r.rejected, 1u);
  const auto chains = testing_util::trace_requests(tiny_trace());
  std::vector<testing_util::ChainRequest> admitted;
  for (const auto& c : chains)
    if (c.blocks.size() <= 4) admitted.push_back(c);
  const MrcPoint expected = testing_util::brute_force_lru(admitted, 4, TouchOrder::root_to_leaf, 4);
  EXPECT_EQ(r.prefix_hit_blocks, expected.prefix_hit_blocks);
  EXPECT_EQ(r.any_hit_blocks, expected.any_hit_blocks);
}

TEST(TraceReplay, ShardsSplitTheCapacityAndRouteByTheChosenDepth) {
  KVSCOPE_TRACE_OR_SKIP(trace, 2'000);
  ReplayConfig config;
  config.capacity = 10'001;
  config.shards = 4;
  const ReplayResult first = replay_trace(*trace, config);
  // Every request starts with id 0: the first block sends all to one shard.
  EXPECT_EQ(*std::max_element(first.shard_requests.begin(), first.shard_requests.end()),
            first.requests);
  config.route_depth = 2;
  const ReplayResult second = replay_trace(*trace, config);
  EXPECT_EQ(std::accumulate(second.shard_requests.begin(), second.shard_requests.end(), 0ull),
            second.requests);
  for (const auto n : second.shard_requests) EXPECT_GT(n, second.requests / 10);
}

TEST(TraceReplay, EveryPolicyReplaysAndKeepsTotals) {
  KVSCOPE_TRACE_OR_SKIP(trace, 1'000);
  for (const EvictionPolicyKind policy : kEvictionPolicies) {
    ReplayConfig config;
    config.policy = policy;
    config.capacity = 2'000;
    const ReplayResult r = replay_trace(*trace, config);
    EXPECT_EQ(r.requests, 1'000u);
    EXPECT_LE(r.prefix_hit_blocks, r.any_hit_blocks);
    EXPECT_LE(r.prefix_hit_tokens, r.total_tokens);
    EXPECT_GT(r.prefix_hit_blocks, 0u) << to_string(policy);
  }
}

TEST(TraceReplay, JsonHasEveryField) {
  ReplayConfig config;
  config.capacity = 4;
  config.block_tokens = 4;
  const auto j = nlohmann::json::parse(replay_trace(tiny_trace(), config).to_json());
  for (const char* key : {"requests", "total_blocks", "prefix_hit_blocks", "any_hit_blocks",
                          "prefix_hit_tokens", "total_tokens", "block_hit_ratio", "token_hit_ratio",
                          "evictions", "rejected", "mode", "policy", "capacity", "seconds"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["mode"], "vllm");
  EXPECT_EQ(j["policy"], "lru");
  EXPECT_EQ(j["prefix_hit_blocks"], 7);
}

TEST(TraceReplay, BadConfigurationThrowsWithAMessage) {
  const MooncakeTrace trace = tiny_trace();
  auto expect_bad = [&](ReplayConfig config, const std::string& field) {
    try {
      (void)replay_trace(trace, config);
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  ReplayConfig c;
  c.capacity = 0;
  expect_bad(c, "capacity");
  c = {};
  c.shards = 0;
  expect_bad(c, "shards");
  c = {};
  c.block_tokens = 0;
  expect_bad(c, "block_tokens");
  c = {};
  c.route_depth = 0;
  expect_bad(c, "route_depth");
  EXPECT_EQ(parse_replay_mode("simple"), ReplayMode::simple);
  EXPECT_EQ(parse_replay_mode("fifo"), std::nullopt);
}

}  // namespace
}  // namespace kvscope
