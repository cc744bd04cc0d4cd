// ShardMetrics / MeteredPrefixCache / ShardSnapshot: every admission is
// recorded, the time window over the cache's own counters follows ticks,
// vLLM's last-N request window, gauges (usage, sharing), evictions by
// reason, merging shards, and metric memory fixed by configuration.
//
// Windows are 10 s in 1 s slots on a ManualClock starting at 0: the
// constructor's first tick is at 0 s; snapshot(t) ticks at t first.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvscope/clock.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::cat;
using testing_util::config;
using testing_util::seq;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::uint32_t kBs = 4;

MetricsConfig shard_config(const Clock* clock) {
  MetricsConfig c;
  c.window.window = 10s;
  c.window.resolution = 1s;
  c.residency_sample_rate = 1.0;
  c.clock = clock;
  return c;
}

Request req(std::uint64_t id, const std::vector<TokenId>& tokens, ExtraKeys extras = {}) {
  return Request::with_tokens(RequestId{id}, tokens, std::move(extras));
}

Request preempted(std::uint64_t id, const std::vector<TokenId>& tokens) {
  Request r = req(id, tokens);
  r.preempted = true;
  return r;
}

AllocateResult admit(MeteredPrefixCache& mc, const Request& r) {
  const auto a = mc.allocate(r);
  EXPECT_TRUE(a.ok()) << to_string(a.status());
  return a.ok() ? *a : AllocateResult{};
}

void admit_and_free(MeteredPrefixCache& mc, const Request& r) {
  admit(mc, r);
  EXPECT_TRUE(mc.free(r.id).ok());
}

// ---------------------------------------------------------------- admissions

// Lookups, fresh and preempted admissions, a refused allocation, frees and a
// reset: the snapshot's totals are the cache's own counters, and every
// successful admission (only those) reached the per-prefix metrics.
TEST(MeteredPrefixCache, RecordsEveryAdmissionAndItsTotalsAreTheCacheStats) {
  ManualClock clock;
  MeteredPrefixCache mc(config(8, kBs), shard_config(&clock));
  const auto a = seq(10, 100);
  ASSERT_TRUE(mc.lookup(req(1, a)).ok());
  admit_and_free(mc, req(1, a));
  admit_and_free(mc, req(2, a));
  admit_and_free(mc, preempted(3, a));
  admit(mc, req(4, seq(3, 500)));
  EXPECT_EQ(mc.allocate(req(5, seq(32, 900))).status(), Status::not_enough_blocks);
  ASSERT_TRUE(mc.free(RequestId{4}).ok());
  ASSERT_TRUE(mc.reset().ok());

  const ShardSnapshot s = mc.metrics().snapshot(1s);
  EXPECT_EQ(s.total, mc.cache().stats());
  EXPECT_EQ(s.total.fresh.requests, 3u);
  EXPECT_EQ(s.total.preempted.requests, 1u);
  EXPECT_EQ(s.total.probes.requests, 1u);
  EXPECT_EQ(s.total.allocation_failures, 1u);
  std::uint64_t stops = 0;
  for (const std::uint64_t n : s.prefixes.stops) stops += n;
  EXPECT_EQ(stops, 3u) << "fresh admissions only";
  EXPECT_EQ(s.prefixes.stop_count(LookupStop::too_short), 1u);
  EXPECT_EQ(s.prefixes.tenants.at("none").fresh, s.total.fresh);
  EXPECT_EQ(s.prefixes.tenants.at("none").preempted, s.total.preempted);
  EXPECT_EQ(s.at, 1s);
  EXPECT_EQ(s.shards, 1u);
}

// Rate 1.0: every allocated block is sampled; the snapshot carries the
// tracker's figures.
TEST(MeteredPrefixCache, ResidencyFollowsEveryAllocatedBlockAtRateOne) {
  ManualClock clock;
  MeteredPrefixCache mc(config(4, kBs), shard_config(&clock));
  ASSERT_NE(mc.metrics().residency(), nullptr);
  admit_and_free(mc, req(1, seq(8, 100)));   // blocks 0,1
  admit_and_free(mc, req(2, seq(16, 500)));  // 4 blocks, evicts 2
  const ShardSnapshot s = mc.metrics().snapshot(1s);
  ASSERT_TRUE(s.residency.has_value());
  EXPECT_EQ(s.residency->sampled_blocks, 6u);
  EXPECT_EQ(s.residency->evicted_blocks, 2u);
  EXPECT_EQ(s.residency->sample_rate, 1.0);
}

TEST(MeteredPrefixCache, ResidencyOffLeavesNoTracker) {
  ManualClock clock;
  MetricsConfig c = shard_config(&clock);
  c.track_residency = false;
  MeteredPrefixCache mc(config(4, kBs), c);
  EXPECT_EQ(mc.metrics().residency(), nullptr);
  admit_and_free(mc, req(1, seq(8, 100)));
  EXPECT_FALSE(mc.metrics().snapshot(1s).residency.has_value());
}

// An admission that stops at a non-resident block is checked against the
// ghosts; hits and too-short prompts are not.
TEST(MeteredPrefixCache, MissedAdmissionsAreCheckedForRefaults) {
  ManualClock clock;
  MeteredPrefixCache mc(config(4, kBs), shard_config(&clock));
  const auto a = seq(8, 100);
  admit_and_free(mc, req(1, a));             // miss
  admit_and_free(mc, req(2, a));             // hit_cap: 1 block
  admit_and_free(mc, req(3, seq(2, 700)));   // too short
  admit_and_free(mc, req(4, seq(16, 500)));  // miss; evicts A's blocks 1 then 0
  admit_and_free(mc, req(5, a));             // miss on A's block 0: a refault
  const ShardSnapshot s = mc.metrics().snapshot(1s);
  ASSERT_TRUE(s.residency.has_value());
  EXPECT_EQ(s.residency->misses_checked, 3u);
  EXPECT_EQ(s.residency->refaults, 1u);
  EXPECT_EQ(s.residency->refaults_within_capacity, 1u);
}

// ---------------------------------------------------------------- window

// First tick 0 s. A (10 tokens, miss) counted in slot 0; snapshot at 5 s:
// window = total, covering 5 s. B (A again, 8 tokens hit) counted in slot 5;
// snapshot at 10 s: the window (slots 1..10) holds B only. At 15 s (slots
// 6..15) it holds nothing; totals keep both.
TEST(ShardMetrics, WindowOverTheCacheCountersFollowsTicks) {
  ManualClock clock;
  MeteredPrefixCache mc(config(8, kBs), shard_config(&clock));
  const auto a = seq(10, 100);
  admit_and_free(mc, req(1, a));
  ShardSnapshot s = mc.metrics().snapshot(5s);
  EXPECT_EQ(s.window.fresh, (QueryCounts{1, 10, 0, 3, 0}));
  EXPECT_EQ(s.window, s.total);
  EXPECT_EQ(s.window_span, 5s);

  admit_and_free(mc, req(2, a));
  s = mc.metrics().snapshot(10s);
  EXPECT_EQ(s.window.fresh, (QueryCounts{1, 10, 8, 3, 2}));
  EXPECT_EQ(s.total.fresh, (QueryCounts{2, 20, 8, 6, 2}));
  EXPECT_EQ(s.window_span, 9s);

  s = mc.metrics().snapshot(15s);
  EXPECT_EQ(s.window.fresh, QueryCounts{});
  EXPECT_EQ(s.total.fresh, (QueryCounts{2, 20, 8, 6, 2}));
}

// tick() alone moves the window the same way snapshot() does.
TEST(ShardMetrics, ExplicitTicksMoveTheWindow) {
  ManualClock clock;
  MeteredPrefixCache mc(config(8, kBs), shard_config(&clock));
  admit_and_free(mc, req(1, seq(10, 100)));
  mc.metrics().tick(3s);
  admit_and_free(mc, req(2, seq(10, 500)));
  mc.metrics().tick(10s);  // slots 1..10: only the second admission
  const ShardSnapshot s = mc.metrics().snapshot(10s);
  EXPECT_EQ(s.window.fresh.requests, 1u);
  EXPECT_EQ(s.window.fresh.query_tokens, 10u);
}

// request_window = 2: R1 (10 tokens, miss), R2 (same, 8 hit), R3 (5 tokens,
// 4 hit) -> the window holds R2 + R3. A preempted admission changes nothing.
TEST(ShardMetrics, RequestWindowIsVllmsLastNFreshRequests) {
  ManualClock clock;
  MetricsConfig c = shard_config(&clock);
  c.request_window = 2;
  MeteredPrefixCache mc(config(8, kBs), c);
  const auto a = seq(10, 100);
  admit_and_free(mc, req(1, a));
  admit_and_free(mc, req(2, a));
  admit_and_free(mc, req(3, seq(5, 100)));
  EXPECT_EQ(mc.metrics().snapshot(1s).request_window, (QueryCounts{2, 15, 12, 5, 3}));
  admit_and_free(mc, preempted(4, a));
  EXPECT_EQ(mc.metrics().snapshot(1s).request_window, (QueryCounts{2, 15, 12, 5, 3}));
}

// ---------------------------------------------------------------- gauges

// A (10 tokens) -> [0,1,2]; B = A's 8 tokens + 3 -> [0,1,3]: 4 of 8 blocks in
// use, 6 references (sharing 1.5), 2 cached blocks, 2 live requests.
TEST(ShardMetrics, GaugesGiveUsageAndSharingFactor) {
  ManualClock clock;
  MeteredPrefixCache mc(config(8, kBs), shard_config(&clock));
  admit(mc, req(1, seq(10, 100)));
  admit(mc, req(2, cat(seq(8, 100), seq(3, 900))));
  const ShardSnapshot s = mc.metrics().snapshot(1s);
  EXPECT_EQ(s.num_blocks, 8u);
  EXPECT_EQ(s.used_blocks, 4u);
  EXPECT_EQ(s.cached_blocks, 2u);
  EXPECT_EQ(s.block_references, 6u);
  EXPECT_EQ(s.live_requests, 2u);
  EXPECT_DOUBLE_EQ(s.usage(), 0.5);
  EXPECT_DOUBLE_EQ(s.sharing_factor(), 1.5);
  EXPECT_EQ(ShardSnapshot{}.sharing_factor(), 0.0);
}

// Pool 2: A (8 tokens) freed; B (8 fresh) evicts 2 for capacity; B freed;
// reset drops 2. All within the window of the snapshot at 4 s: 4 / 4 s.
TEST(ShardMetrics, EvictionsAreCountedByReasonTotalAndInTheWindow) {
  ManualClock clock;
  MeteredPrefixCache mc(config(2, kBs), shard_config(&clock));
  admit_and_free(mc, req(1, seq(8, 100)));
  admit_and_free(mc, req(2, seq(8, 500)));
  ASSERT_TRUE(mc.reset().ok());
  const ShardSnapshot s = mc.metrics().snapshot(4s);
  EXPECT_EQ(s.evictions().blocks_of(EvictionReason::capacity), 2u);
  EXPECT_EQ(s.evictions().blocks_of(EvictionReason::reset), 2u);
  EXPECT_EQ(s.evictions().total_blocks(), 4u);
  EXPECT_EQ(s.window_evictions(), s.evictions());
  EXPECT_DOUBLE_EQ(s.window_eviction_rate(), 1.0);
  // Ten seconds later the window is empty.
  const ShardSnapshot later = mc.metrics().snapshot(14s);
  EXPECT_EQ(later.window_evictions().total_blocks(), 0u);
  EXPECT_EQ(later.window_eviction_rate(), 0.0);
  EXPECT_EQ(later.evictions().total_blocks(), 4u);
  EXPECT_EQ(ShardSnapshot{}.window_eviction_rate(), 0.0);
}

// ---------------------------------------------------------------- merge

/// Two independent traffic streams (disjoint tokens and request ids).
void traffic_one(MeteredPrefixCache& mc) {
  const auto a = seq(10, 100);
  admit_and_free(mc, req(1, a));
  admit_and_free(mc, req(2, a));
  admit(mc, req(3, a));  // stays live
}
void traffic_two(MeteredPrefixCache& mc) {
  const auto b = seq(12, 5000);
  admit_and_free(mc, req(11, b));
  admit_and_free(mc, req(12, b));
  admit(mc, req(13, seq(2, 9000)));  // too short, stays live
  admit_and_free(mc, preempted(14, b));
}

// Shards of 16 blocks each against one cache of 32 with the same traffic
// (nothing is evicted): every counter and gauge of the merged snapshot
// equals the combined one.
TEST(ShardSnapshot, MergedShardsEqualOneCacheWithTheCombinedTraffic) {
  ManualClock clock;
  MeteredPrefixCache one(config(16, kBs), shard_config(&clock));
  MeteredPrefixCache two(config(16, kBs), shard_config(&clock));
  MeteredPrefixCache both(config(32, kBs), shard_config(&clock));
  traffic_one(one);
  traffic_two(two);
  traffic_one(both);
  traffic_two(both);

  ShardSnapshot merged = one.metrics().snapshot(5s);
  merged += two.metrics().snapshot(5s);
  const ShardSnapshot expected = both.metrics().snapshot(5s);
  EXPECT_EQ(merged.shards, 2u);
  EXPECT_EQ(merged.at, 5s);
  EXPECT_EQ(merged.total, expected.total);
  EXPECT_EQ(merged.window, expected.window);
  EXPECT_EQ(merged.request_window, expected.request_window);
  EXPECT_EQ(merged.num_blocks, expected.num_blocks);
  EXPECT_EQ(merged.used_blocks, expected.used_blocks);
  EXPECT_EQ(merged.cached_blocks, expected.cached_blocks);
  EXPECT_EQ(merged.block_references, expected.block_references);
  EXPECT_EQ(merged.live_requests, expected.live_requests);
  EXPECT_EQ(merged.prefixes.stops, expected.prefixes.stops);
  EXPECT_EQ(merged.prefixes.tenants, expected.prefixes.tenants);
  EXPECT_EQ(merged.prefixes.adapters, expected.prefixes.adapters);
  EXPECT_EQ(merged.prefixes.hit_length_tokens.count(), expected.prefixes.hit_length_tokens.count());
  EXPECT_EQ(merged.prefixes.hit_length_tokens.sum(), expected.prefixes.hit_length_tokens.sum());
  auto by_prefix = [](std::vector<PrefixEntry> v) {
    std::sort(v.begin(), v.end(),
              [](const PrefixEntry& x, const PrefixEntry& y) { return x.prefix < y.prefix; });
    return v;
  };
  EXPECT_EQ(by_prefix(merged.prefixes.top_prefixes), by_prefix(expected.prefixes.top_prefixes));
  ASSERT_TRUE(merged.residency.has_value());
  ASSERT_TRUE(expected.residency.has_value());
  EXPECT_EQ(merged.residency->sampled_blocks, expected.residency->sampled_blocks);
  EXPECT_EQ(merged.residency->released_uncached, expected.residency->released_uncached);
  EXPECT_EQ(merged.residency->tracked_blocks, expected.residency->tracked_blocks);
  EXPECT_DOUBLE_EQ(merged.usage(), expected.usage());
  EXPECT_DOUBLE_EQ(merged.sharing_factor(), expected.sharing_factor());
}

TEST(ShardSnapshot, MergeKeepsTheLaterTimeAndTheLongerSpan) {
  ShardSnapshot a, b;
  a.at = 5s;
  a.window_span = 8s;
  b.at = 7s;
  b.window_span = 6s;
  a += b;
  EXPECT_EQ(a.at, 7s);
  EXPECT_EQ(a.window_span, 8s);
  EXPECT_EQ(a.shards, 2u);
  ShardSnapshot c;
  c.at = 9s;
  c.window_span = 10s;
  c.shards = 3;
  a += c;
  EXPECT_EQ(a.at, 9s);
  EXPECT_EQ(a.window_span, 10s);
  EXPECT_EQ(a.shards, 5u);
}

TEST(ShardSnapshot, ToJsonParses) {
  ManualClock clock;
  MeteredPrefixCache mc(config(8, kBs), shard_config(&clock));
  traffic_one(mc);
  const json j = json::parse(to_json(mc.metrics().snapshot(2s)));
  ASSERT_TRUE(j.is_object());
  EXPECT_FALSE(j.empty());
}

// ---------------------------------------------------------------- lifecycle

struct CountingObserver : PrefixCacheObserver {
  int allocated = 0;
  void on_block_allocated(BlockId, Timestamp) override { ++allocated; }
};

TEST(ShardMetrics, BadConfigThrowsAndLeavesTheCacheUntouched) {
  PrefixCache cache(config(4, kBs));
  CountingObserver obs;
  cache.set_observer(&obs);
  MetricsConfig bad;
  bad.top_prefixes = 0;
  EXPECT_THROW(ShardMetrics(cache, bad), std::invalid_argument);
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 100))).ok());
  EXPECT_EQ(obs.allocated, 2) << "the previous observer is still installed";
  EXPECT_THROW(MeteredPrefixCache(config(4, kBs), bad), std::invalid_argument);
}

/// Counts reads; the cache reads the clock only when a watched block has an event.
class CountingClock final : public Clock {
 public:
  Timestamp now() const noexcept override {
    ++reads_;
    return 1s;
  }
  std::uint64_t reads() const noexcept { return reads_; }

 private:
  mutable std::uint64_t reads_ = 0;
};

// While attached at rate 1 every allocation reads the clock once; after the
// ShardMetrics is destroyed no hook runs, so nothing reads it.
TEST(ShardMetrics, DestructionRemovesTheObserver) {
  PrefixCache cache(config(4, kBs));
  CountingClock clock;
  {
    ShardMetrics m(cache, shard_config(&clock));
    const std::uint64_t before = clock.reads();
    ASSERT_TRUE(cache.allocate(req(1, seq(8, 100))).ok());
    EXPECT_EQ(clock.reads(), before + 1);
    ASSERT_TRUE(cache.free(RequestId{1}).ok());
  }
  const std::uint64_t after = clock.reads();
  ASSERT_TRUE(cache.allocate(req(2, seq(16, 500))).ok());
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(clock.reads(), after);
}

// ---------------------------------------------------------------- memory

/// Requests from 6 tenants and 6 adapters over many distinct prefixes, with
/// hits, misses, evictions and too-short prompts.
void mixed_traffic(MeteredPrefixCache& mc, std::uint64_t first_id, std::uint64_t count) {
  for (std::uint64_t i = first_id; i < first_id + count; ++i) {
    ExtraKeys extras;
    extras.salt = CacheSalt::from_string("tenant" + std::to_string(i % 6));
    if (i % 2 == 0) extras.adapter_id = i % 6;
    const auto tokens = seq(i % 5 == 0 ? 3 : 12, static_cast<TokenId>((i % 40) * 100));
    const Request r = req(i, tokens, extras);
    const auto a = mc.allocate(r);
    ASSERT_TRUE(a.ok()) << to_string(a.status());
    ASSERT_TRUE(mc.free(r.id).ok());
    if (i % 50 == 0) mc.metrics().tick(std::chrono::seconds(i / 50));
  }
}

MetricsConfig small_tables(const Clock* clock) {
  MetricsConfig c = shard_config(clock);
  c.top_prefixes = 4;
  c.max_tenants = 2;
  c.max_adapters = 2;
  c.eviction_event_capacity = 8;
  c.ghost_entries = 8;
  c.request_window = 16;
  return c;
}

// After a warm-up that fills every bounded table, 10x more traffic adds no
// metric memory; the snapshot reports the same figure.
TEST(ShardMetrics, MemoryIsFixedByConfigurationNotByTraffic) {
  ManualClock clock;
  MeteredPrefixCache mc(config(16, kBs), small_tables(&clock));
  EXPECT_GT(mc.metrics().memory_bytes(), 0u);
  mixed_traffic(mc, 1, 400);
  const std::size_t warm = mc.metrics().memory_bytes();
  mixed_traffic(mc, 401, 4000);
  EXPECT_EQ(mc.metrics().memory_bytes(), warm);
  EXPECT_EQ(mc.metrics().snapshot(100s).metrics_memory_bytes, mc.metrics().memory_bytes());
}

// A longer window (more slots) costs more memory.
TEST(ShardMetrics, MemoryGrowsWithTheWindowsSlots) {
  ManualClock clock;
  MetricsConfig small = small_tables(&clock);
  MetricsConfig large = small;
  large.window.window = 600s;
  MeteredPrefixCache a(config(16, kBs), small);
  MeteredPrefixCache b(config(16, kBs), large);
  EXPECT_GT(b.metrics().memory_bytes(), a.metrics().memory_bytes());
}

}  // namespace
}  // namespace kvscope
