// PrefixCache with KV cache groups: vLLM's hybrid scenarios (its
// tests/v1/core/test_prefix_caching.py at commit fa36f86d of ZJY0516/vllm,
// restated) on the real cache, block ids included. vLLM reserves block 0 as
// its null block, so its first request gets ids from 1; kvscope needs no
// such block (placeholders are kPlaceholderBlock), so ids start at 0: every
// id below is vLLM's minus one.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/prefix_cache.hpp"
#include "prometheus_parser.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::seq;

KvCacheGroupConfig full(std::uint32_t b) { return {AttentionKind::full_attention, b, 0, 1}; }
KvCacheGroupConfig sliding(std::uint32_t b, std::uint32_t w) {
  return {AttentionKind::sliding_window, b, w, 1};
}

PrefixCacheConfig hybrid(std::uint32_t num_blocks, std::uint32_t hash_block,
                         std::vector<KvCacheGroupConfig> groups) {
  PrefixCacheConfig c;
  c.num_blocks = num_blocks;
  c.block_size = hash_block;
  c.groups = std::move(groups);
  return c;
}

std::vector<std::uint32_t> ids(const Result<std::span<const BlockId>>& table) {
  std::vector<std::uint32_t> out;
  for (const BlockId b : *table) out.push_back(b.value);
  return out;
}

constexpr std::uint32_t P = kPlaceholderBlock.value;

std::vector<TokenId> with_tail(std::vector<TokenId> head, std::uint32_t n, TokenId first) {
  const auto tail = seq(n, first);
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

// vLLM test_prefill_hybrid_model: block size 16, groups [full, sliding
// window 32, sliding window 32].
TEST(HybridPrefixCache, PrefillOfThreeGroupsMatchesVllmsBlockTables) {
  PrefixCache cache(hybrid(21, 16, {full(16), sliding(16, 32), sliding(16, 32)}));
  const auto common = seq(48, 1);
  const auto first = with_tail(common, 7, 1'000);  // 55 tokens
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{0}, first)).ok());
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 0)), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 1)), (std::vector<std::uint32_t>{4, 5, 6, 7}));
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 2)), (std::vector<std::uint32_t>{8, 9, 10, 11}));
  EXPECT_EQ(cache.num_cached_blocks(), 9u) << "3 full blocks per group; the 4th is partial";

  const auto second = with_tail(common, 5, 2'000);  // 53 tokens
  const auto admitted = cache.allocate(Request::with_tokens(RequestId{1}, second));
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ(admitted->lookup.hit_tokens, 48u);
  EXPECT_EQ(ids(cache.block_table(RequestId{1}, 0)), (std::vector<std::uint32_t>{0, 1, 2, 12}));
  EXPECT_EQ(ids(cache.block_table(RequestId{1}, 1)), (std::vector<std::uint32_t>{P, 5, 6, 13}))
      << "vLLM: [null, 6, 7] + [14]";
  EXPECT_EQ(ids(cache.block_table(RequestId{1}, 2)), (std::vector<std::uint32_t>{P, 9, 10, 14}));
  for (const std::uint32_t b : {0u, 1u, 2u, 5u, 6u, 9u, 10u})
    EXPECT_EQ(cache.ref_count(BlockId{b}), 2u) << "block " << b;
  EXPECT_EQ(cache.ref_count(BlockId{4}), 1u) << "outside the window: not shared";
  const KvCacheGroupStats sliding_group = cache.group_stats(1);
  EXPECT_EQ(sliding_group.used_blocks, 5u) << "4, 5, 6, 7 and 13";
  EXPECT_EQ(sliding_group.cached_blocks, 3u);
  EXPECT_EQ(sliding_group.query_blocks, 8u);
  EXPECT_EQ(sliding_group.hit_blocks, 2u);
  EXPECT_EQ(sliding_group.placeholder_blocks, 1u);
  EXPECT_EQ(cache.group_stats(0).used_blocks, 5u) << "0, 1, 2, 3 and 12";
  EXPECT_EQ(cache.group_stats(3).used_blocks, 0u) << "no such group";
  cache.check_invariants();
}

// vLLM test_different_block_size: full attention in blocks of 32, a window
// of 32 in blocks of 16 (hash block 16, scheduler block 32).
TEST(HybridPrefixCache, DifferentBlockSizesCacheUpToTheSchedulerBlock) {
  PrefixCache cache(hybrid(100, 16, {full(32), sliding(16, 32)}));
  const auto prompt = seq(160, 1);
  const std::vector<TokenId> first(prompt.begin(), prompt.begin() + 112);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{0}, first)).ok());
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 0)), (std::vector<std::uint32_t>{0, 1, 2, 3}));
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 1)),
            (std::vector<std::uint32_t>{4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(cache.num_cached_blocks(), 9u) << "96 of 112 tokens: 3 full blocks, 6 sliding";
  for (const std::uint32_t length : {113u, 97u}) {
    const std::vector<TokenId> again(prompt.begin(), prompt.begin() + length);
    const auto hit = cache.lookup(Request::with_tokens(RequestId{1}, again));
    ASSERT_TRUE(hit.ok());
    EXPECT_EQ(hit->hit_tokens, 96u) << length << " tokens";
  }
}

// vLLM test_hybrid_cache_blocks_swa_tail_window_only: a window of 8 in
// blocks of 8 beside full attention in blocks of 32 caches only the last
// sliding block of each scheduler block.
TEST(HybridPrefixCache, SlidingBlocksNoHitCanUseAreNotCached) {
  PrefixCache cache(hybrid(40, 8, {full(32), sliding(8, 8)}));
  const auto prompt = seq(64, 1);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{0}, prompt)).ok());
  BlockHasher hasher(8);
  std::vector<BlockHash> fine;
  hasher.extend_hashes(prompt, {}, fine);
  std::vector<std::uint32_t> cached;
  for (std::uint32_t i = 0; i < 8; ++i)
    if (cache.find(fine[i], 1)) cached.push_back(i);
  EXPECT_EQ(cached, (std::vector<std::uint32_t>{3, 7}));
  EXPECT_TRUE(cache.find(fine[3], 0)) << "full block 0 is keyed by fine hash 3";
  EXPECT_TRUE(cache.find(fine[7], 0));
  EXPECT_FALSE(cache.find(fine[3], 2)) << "no such group";
  EXPECT_EQ(cache.num_cached_blocks(), 4u);
}

// vLLM test_sliding_window_remove_skipped_blocks, on the cache: window 4,
// block size 2; after 0, 4, 5, 6, 7, 11 computed tokens the next step
// releases the blocks wholly before the window, which stay hittable.
TEST(HybridPrefixCache, DecodeReleasesBlocksThatLeftTheWindowAndTheyStayHittable) {
  PrefixCache cache(hybrid(64, 2, {full(2), sliding(2, 4)}));
  const auto tokens = seq(40, 1);
  ASSERT_TRUE(
      cache.allocate(Request::with_tokens(RequestId{0}, {tokens.begin(), tokens.begin() + 1}))
          .ok());
  std::uint32_t computed = 1;
  auto placeholders = [&] {
    const auto table = ids(cache.block_table(RequestId{0}, 1));
    return static_cast<std::uint32_t>(std::count(table.begin(), table.end(), P));
  };
  // computed tokens before the step -> placeholders after it
  const std::vector<std::pair<std::uint32_t, std::uint32_t>> expected = {
      {4, 0}, {5, 1}, {6, 1}, {7, 2}, {11, 4}};
  for (const auto& [before, nulls] : expected) {
    const std::vector<TokenId> more(tokens.begin() + computed, tokens.begin() + before);
    if (!more.empty()) {
      ASSERT_TRUE(cache.append(RequestId{0}, more).ok());
    }
    computed = before;
    ASSERT_TRUE(
        cache.append(RequestId{0}, {tokens.begin() + computed, tokens.begin() + computed + 1})
            .ok());
    ++computed;
    EXPECT_EQ(placeholders(), nulls) << before << " computed";
  }
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 0)).size(), 6u) << "full attention keeps all";
  cache.check_invariants();
  // The released sliding blocks kept their keys: a new request with the same
  // first 10 tokens hits them.
  const std::vector<TokenId> again(tokens.begin(), tokens.begin() + 11);
  const auto hit = cache.lookup(Request::with_tokens(RequestId{1}, again));
  ASSERT_TRUE(hit.ok());
  EXPECT_EQ(hit->hit_tokens, 10u);
}

// A 32k-token conversation decoded token by token at window 4,096 (blocks
// of 16): the sliding group holds at most ceil(4096 / 16) + 1 blocks, the
// full-attention group all 2,048 (the docs' figure).
TEST(HybridPrefixCache, ADecodeHeavyConversationKeepsItsWindowBounded) {
  PrefixCache cache(hybrid(4'600, 16, {full(16), sliding(16, 4'096)}));
  const auto tokens = seq(32'768, 1);
  ASSERT_TRUE(
      cache.allocate(Request::with_tokens(RequestId{0}, {tokens.begin(), tokens.begin() + 512}))
          .ok());
  std::uint32_t most_sliding = 0;
  for (std::uint32_t t = 512; t < tokens.size(); ++t) {
    ASSERT_TRUE(cache.append(RequestId{0}, {tokens.begin() + t, tokens.begin() + t + 1}).ok()) << t;
    const auto table = ids(cache.block_table(RequestId{0}, 1));
    const auto live = table.size() - std::count(table.begin(), table.end(), P);
    most_sliding = std::max(most_sliding, static_cast<std::uint32_t>(live));
  }
  EXPECT_EQ(most_sliding, 4'096u / 16 + 1);
  EXPECT_EQ(ids(cache.block_table(RequestId{0}, 0)).size(), 2'048u);
  EXPECT_EQ(cache.num_used_blocks(), 2'048u + 4'096u / 16) << "after the last step";
  cache.check_invariants();
}

TEST(HybridPrefixCache, EventsNameTheGroupItsKindAndWindow) {
  PrefixCache cache(hybrid(64, 4, {full(4), sliding(4, 8)}));
  CacheEventLog log;
  cache.set_event_log(&log);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{0}, seq(17, 1))).ok());
  for (const KvEventFormat format : {KvEventFormat::map, KvEventFormat::array}) {
    const std::string payload = encode_kv_event_batch(log, 0, 0, format, KvHashEncoding::uint64);
    const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
    ASSERT_EQ(batch.events.size(), 2u) << "one store per group";
    EXPECT_EQ(batch.events[0].group_idx, 0);
    EXPECT_EQ(batch.events[0].kv_cache_spec_kind, "full_attention");
    EXPECT_FALSE(batch.events[0].kv_cache_spec_sliding_window.has_value());
    EXPECT_EQ(batch.events[1].group_idx, 1);
    EXPECT_EQ(batch.events[1].kv_cache_spec_kind, "sliding_window");
    EXPECT_EQ(batch.events[1].kv_cache_spec_sliding_window, 8);
    EXPECT_EQ(batch.events[1].block_hashes.size(), 4u);
    EXPECT_EQ(batch.events[1].block_size, 4u);
  }
}

// The metered cache exports each group: JSON "kv_cache_groups" and
// Prometheus families with `group` and `kind` labels (parsed strictly); one
// full-attention group exports none of them (its figures are the totals).
TEST(HybridPrefixCache, SnapshotsExportEveryGroup) {
  MeteredPrefixCache cache(hybrid(64, 16, {full(16), sliding(16, 32)}));
  const auto common = seq(48, 1);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{0}, with_tail(common, 7, 1'000))).ok());
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, with_tail(common, 5, 2'000))).ok());
  const ShardSnapshot snapshot = cache.metrics().snapshot(Timestamp{std::chrono::seconds(1)});
  ASSERT_EQ(snapshot.groups.size(), 2u);
  EXPECT_EQ(snapshot.groups[1].stats.hit_blocks, 2u);
  EXPECT_EQ(snapshot.groups[1].stats.placeholder_blocks, 1u);
  EXPECT_EQ(snapshot.groups[0].stats.hit_blocks, 3u);

  const auto j = nlohmann::json::parse(to_json(snapshot));
  ASSERT_EQ(j["kv_cache_groups"].size(), 2u);
  EXPECT_EQ(j["kv_cache_groups"][1]["kind"], "sliding_window");
  EXPECT_EQ(j["kv_cache_groups"][1]["sliding_window"], 32);
  EXPECT_EQ(j["kv_cache_groups"][0]["used_blocks"], 5);

  const std::vector<ShardSnapshot> shards{snapshot};
  const auto families = testing_util::PromParser::parse(to_prometheus(shards));
  double sliding_hits = -1;
  for (const auto& f : families)
    for (const auto& sample : f.samples)
      if (sample.name == "kvscope_kv_cache_group_hit_blocks_total" &&
          sample.labels.at("group") == "1" && sample.labels.at("kind") == "sliding_window")
        sliding_hits = sample.value;
  EXPECT_EQ(sliding_hits, 2.0);

  MeteredPrefixCache plain(testing_util::config(64, 16));
  const ShardSnapshot one = plain.metrics().snapshot(Timestamp{std::chrono::seconds(1)});
  EXPECT_TRUE(one.groups.empty());
  EXPECT_EQ(to_prometheus(std::vector<ShardSnapshot>{one}).find("kv_cache_group"),
            std::string::npos);
}

TEST(HybridPrefixCache, BadGroupConfigurationThrowsNamingTheField) {
  auto message = [](PrefixCacheConfig c) {
    try {
      PrefixCache cache(c);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message(hybrid(64, 16, {full(16), sliding(16, 0)})).find("groups[1].sliding_window"),
            std::string::npos);
  EXPECT_NE(message(hybrid(64, 8, {full(16), sliding(12, 32)})).find("block_size (8"),
            std::string::npos);
  EXPECT_NE(message(hybrid(2, 16, {full(32), sliding(16, 32)})).find("num_blocks (2)"),
            std::string::npos);
  PrefixCacheConfig verify = hybrid(64, 16, {full(16), sliding(16, 32)});
  verify.verify_tokens = true;
  EXPECT_NE(message(verify).find("verify_tokens"), std::string::npos);
}

}  // namespace
}  // namespace kvscope
