// The reference semantics (GUIDE section 2, vLLM v1 prefix caching) on small
// hand-worked examples. Every test spells out the block ids and the free
// queue after each step; "free queue" means PrefixCache::free_queue():
// uncached free blocks first (reuse order), then the policy's victims.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <vector>

#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::cat;
using testing_util::chain;
using testing_util::config;
using testing_util::free_ids;
using testing_util::hash_ids;
using testing_util::hashed;
using testing_util::seq;
using testing_util::table_of;
using V = std::vector<std::uint32_t>;

constexpr std::uint32_t kBs = 4;

Request req(std::uint64_t id, const std::vector<TokenId>& tokens, ExtraKeys extras = {}) {
  return Request::with_tokens(RequestId{id}, tokens, std::move(extras));
}

// ---------------------------------------------------------------- basics

TEST(PrefixCacheBasics, FreshCacheHasEveryBlockFreeUncachedInIdOrder) {
  PrefixCache cache(config(5, kBs));
  EXPECT_EQ(cache.num_blocks(), 5u);
  EXPECT_EQ(cache.block_size(), kBs);
  EXPECT_EQ(free_ids(cache), (V{0, 1, 2, 3, 4}));
  EXPECT_EQ(cache.num_free_blocks(), 5u);
  EXPECT_EQ(cache.num_used_blocks(), 0u);
  EXPECT_EQ(cache.num_cached_blocks(), 0u);
  EXPECT_EQ(cache.num_requests(), 0u);
  EXPECT_DOUBLE_EQ(cache.usage(), 0.0);
  for (std::uint32_t b = 0; b < 5; ++b) {
    EXPECT_EQ(cache.ref_count(BlockId{b}), 0u);
    EXPECT_FALSE(cache.block_hash(BlockId{b}).has_value());
  }
  EXPECT_EQ(cache.stats(), PrefixCacheStats{});
  EXPECT_NO_THROW(cache.check_invariants());
}

TEST(PrefixCacheBasics, ConfigIsKeptAsGiven) {
  PrefixCacheConfig c = config(7, 3, EvictionPolicyKind::lfu);
  c.hash_seed = HashSeed{99};
  PrefixCache cache(c);
  EXPECT_EQ(cache.config().num_blocks, 7u);
  EXPECT_EQ(cache.config().block_size, 3u);
  EXPECT_EQ(cache.config().policy, EvictionPolicyKind::lfu);
  EXPECT_EQ(cache.config().hash_seed.secret, 99u);
}

TEST(PrefixCacheBasics, RequestBuildersSetModeAndTokenCount) {
  const auto tokens = seq(10, 1);
  const Request t = Request::with_tokens(RequestId{3}, tokens);
  EXPECT_FALSE(t.hash_mode());
  EXPECT_EQ(t.token_count(), 10u);
  EXPECT_EQ(t.id, RequestId{3});
  EXPECT_FALSE(t.max_hit_tokens.has_value());
  EXPECT_FALSE(t.preempted);
  const auto hs = hash_ids({1, 2});
  const Request h = Request::with_hashes(RequestId{4}, 9, hs);
  EXPECT_TRUE(h.hash_mode());
  EXPECT_EQ(h.token_count(), 9u);
  EXPECT_EQ(h.block_hashes.size(), 2u);
}

// Pool of 6, block size 4, prompt of 10 tokens: blocks 0,1 full, block 2
// holds tokens 8..9 (partial, never hashed). New blocks come from the front
// of the free queue 0,1,2,3,4,5 -> table [0,1,2], free queue [3,4,5].
TEST(PrefixCacheAllocate, TakesBlocksFromTheFrontAndCachesOnlyFullBlocks) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  const auto hashes = chain(kBs, a);
  ASSERT_EQ(hashes.size(), 2u);

  auto r = cache.allocate(req(1, a));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->lookup.hit_blocks, 0u);
  EXPECT_EQ(r->lookup.hit_tokens, 0u);
  EXPECT_EQ(r->lookup.total_blocks, 3u);
  EXPECT_EQ(r->lookup.hashed_blocks, 2u);
  EXPECT_EQ(r->lookup.stop, LookupStop::not_resident);
  EXPECT_EQ(r->new_blocks, 3u);
  EXPECT_EQ(r->reused_blocks, 0u);
  EXPECT_EQ(r->evicted_blocks, 0u);

  EXPECT_EQ(table_of(cache, 1), (V{0, 1, 2}));
  EXPECT_EQ(free_ids(cache), (V{3, 4, 5}));
  EXPECT_EQ(cache.num_free_blocks(), 3u);
  EXPECT_EQ(cache.num_used_blocks(), 3u);
  EXPECT_DOUBLE_EQ(cache.usage(), 0.5);
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  EXPECT_EQ(cache.num_requests(), 1u);
  EXPECT_EQ(cache.num_tokens(RequestId{1}).value(), 10u);
  EXPECT_EQ(cache.block_hash(BlockId{0}), hashes[0]);
  EXPECT_EQ(cache.block_hash(BlockId{1}), hashes[1]);
  EXPECT_FALSE(cache.block_hash(BlockId{2}).has_value());
  EXPECT_EQ(cache.find(hashes[0]), BlockId{0});
  EXPECT_EQ(cache.find(hashes[1]), BlockId{1});
  for (std::uint32_t b = 0; b < 3; ++b) EXPECT_EQ(cache.ref_count(BlockId{b}), 1u);
  EXPECT_EQ(cache.ref_count(BlockId{3}), 0u);
  EXPECT_NO_THROW(cache.check_invariants());
}

// Continuing the example above, free() releases in reverse: block 2
// (uncached) goes to the front of the uncached part -> [2,3,4,5]; block 1
// then block 0 (cached) are appended to the LRU tail -> [..,1,0].
TEST(PrefixCacheFree, ReverseOrderPutsUncachedTailFirstAndChainTailBeforePrefix) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  auto f = cache.free(RequestId{1});
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->released_blocks, 3u);
  EXPECT_EQ(f->cached_free_blocks, 2u);
  EXPECT_EQ(free_ids(cache), (V{2, 3, 4, 5, 1, 0}));
  EXPECT_EQ(cache.num_free_blocks(), 6u);
  EXPECT_EQ(cache.num_requests(), 0u);
  // Freed blocks keep their hash and stay hittable.
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  const auto hashes = chain(kBs, a);
  EXPECT_EQ(cache.find(hashes[0]), BlockId{0});
  EXPECT_EQ(cache.find(hashes[1]), BlockId{1});
  EXPECT_EQ(cache.block_table(RequestId{1}).status(), Status::unknown_request);
  EXPECT_NO_THROW(cache.check_invariants());
}

// Forward order: block 0 then block 1 are appended to the LRU tail -> [..,0,1];
// block 2 still goes to the front of the uncached part.
TEST(PrefixCacheFree, ForwardOrderReleasesTheFirstBlockFirst) {
  PrefixCache cache(config(6, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());
  auto f = cache.free(RequestId{1}, FreeOrder::forward);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->released_blocks, 3u);
  EXPECT_EQ(f->cached_free_blocks, 2u);
  EXPECT_EQ(free_ids(cache), (V{2, 3, 4, 5, 0, 1}));
}

// Two uncached blocks freed: A = 2 tokens in pool of 4 -> [0]; B = 3 tokens
// -> [1]. free queue [2,3]. Free A: [0,2,3]. Free B: [1,0,2,3] (most recently
// freed uncached block is reused first).
TEST(PrefixCacheFree, FreedUncachedBlocksGoToTheFrontOfTheUncachedPart) {
  PrefixCache cache(config(4, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(2, 10))).ok());
  ASSERT_TRUE(cache.allocate(req(2, seq(3, 20))).ok());
  EXPECT_EQ(free_ids(cache), (V{2, 3}));
  auto fa = cache.free(RequestId{1});
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(fa->released_blocks, 1u);
  EXPECT_EQ(fa->cached_free_blocks, 0u);
  EXPECT_EQ(free_ids(cache), (V{0, 2, 3}));
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(free_ids(cache), (V{1, 0, 2, 3}));
  EXPECT_EQ(cache.num_cached_blocks(), 0u);
}

// After freeing A (10 tokens) the free queue is [2,3,4,5,1,0]. B (20 fresh
// tokens, 5 blocks) takes the 4 uncached blocks 2,3,4,5 first, then evicts
// the LRU victim 1 (A's chain tail). A's prefix block 0 survives.
TEST(PrefixCacheAllocate, ReusesUncachedFreeBlocksBeforeEvictingCachedOnes) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  const auto b = seq(20, 500);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 3, 4, 5, 1, 0}));

  auto r = cache.allocate(req(2, b));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->new_blocks, 5u);
  EXPECT_EQ(r->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{2, 3, 4, 5, 1}));
  EXPECT_EQ(free_ids(cache), (V{0}));
  const auto ha = chain(kBs, a);
  const auto hb = chain(kBs, b);
  EXPECT_EQ(cache.find(ha[0]), BlockId{0});
  EXPECT_FALSE(cache.find(ha[1]).has_value());
  EXPECT_EQ(cache.block_hash(BlockId{1}), hb[4]);
  EXPECT_EQ(cache.find(hb[4]), BlockId{1});
  EXPECT_EQ(cache.num_cached_blocks(), 6u);
  EXPECT_EQ(cache.stats().evictions, 1u);
}

// ---------------------------------------------------------------- lookup

TEST(PrefixCacheLookup, PromptShorterThanOneBlockIsTooShort) {
  PrefixCache cache(config(4, kBs));
  auto r = cache.lookup(req(1, seq(3, 1)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stop, LookupStop::too_short);
  EXPECT_EQ(r->hit_blocks, 0u);
  EXPECT_EQ(r->hit_tokens, 0u);
  EXPECT_EQ(r->hashed_blocks, 0u);
  EXPECT_EQ(r->total_blocks, 1u);
}

// A = 12 tokens (3 full blocks) cached. B shares tokens 0..3 then diverges
// (13 tokens: hashed 3, total 4): block 0 hits, block 1 misses.
TEST(PrefixCacheLookup, StopsAtTheFirstBlockThatIsNotResident) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(12, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  const auto b = cat(seq(4, 100), seq(9, 900));
  auto r = cache.lookup(req(2, b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 1u);
  EXPECT_EQ(r->hit_tokens, 4u);
  EXPECT_EQ(r->hashed_blocks, 3u);
  EXPECT_EQ(r->total_blocks, 4u);
  EXPECT_EQ(r->stop, LookupStop::not_resident);
}

// Exactly k = 2 full blocks cached; the same 8-token prompt may hit at most
// num_tokens - 1 = 7 tokens -> floor(7/4) = 1 block.
TEST(PrefixCacheLookup, DefaultCapLetsAPromptOfKFullBlocksHitAtMostKMinusOne) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  auto r = cache.lookup(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 1u);
  EXPECT_EQ(r->hit_tokens, 4u);
  EXPECT_EQ(r->hashed_blocks, 2u);
  EXPECT_EQ(r->total_blocks, 2u);
  EXPECT_EQ(r->stop, LookupStop::hit_cap);
}

// One full block cached; the same 4-token prompt has cap 3 -> 0 blocks even
// though block 0 is resident: the cap stops it, not a miss.
TEST(PrefixCacheLookup, SingleFullBlockPromptNeverHitsUnderTheDefaultCap) {
  PrefixCache cache(config(4, kBs));
  const auto a = seq(4, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  auto r = cache.lookup(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 0u);
  EXPECT_EQ(r->hit_tokens, 0u);
  EXPECT_EQ(r->stop, LookupStop::hit_cap);
}

// 10 tokens: cap 9 -> up to 2 blocks; both hashed blocks are resident, the
// partial tail is never hashed.
TEST(PrefixCacheLookup, EveryHashedBlockHitWhenThePromptEndsInAPartialBlock) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  auto r = cache.lookup(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 2u);
  EXPECT_EQ(r->hit_tokens, 8u);
  EXPECT_EQ(r->hashed_blocks, 2u);
  EXPECT_EQ(r->total_blocks, 3u);
  EXPECT_EQ(r->stop, LookupStop::all_blocks_hit);
}

// 8-token prompt, both blocks resident: max_hit_tokens = 8 allows 2 blocks,
// 5 allows floor(5/4) = 1, 0 allows none.
TEST(PrefixCacheLookup, MaxHitTokensOverridesTheDefaultCap) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());

  Request full = req(2, a);
  full.max_hit_tokens = 8;
  auto r8 = cache.lookup(full);
  ASSERT_TRUE(r8.ok());
  EXPECT_EQ(r8->hit_blocks, 2u);
  EXPECT_EQ(r8->hit_tokens, 8u);
  EXPECT_EQ(r8->stop, LookupStop::all_blocks_hit);

  Request five = req(2, a);
  five.max_hit_tokens = 5;
  auto r5 = cache.lookup(five);
  ASSERT_TRUE(r5.ok());
  EXPECT_EQ(r5->hit_blocks, 1u);
  EXPECT_EQ(r5->hit_tokens, 4u);
  EXPECT_EQ(r5->stop, LookupStop::hit_cap);

  // A cap beyond the prompt is limited by the hashed blocks.
  Request huge = req(2, a);
  huge.max_hit_tokens = 1000;
  auto rh = cache.lookup(huge);
  ASSERT_TRUE(rh.ok());
  EXPECT_EQ(rh->hit_blocks, 2u);
  EXPECT_EQ(rh->hit_tokens, 8u);
  EXPECT_EQ(rh->stop, LookupStop::all_blocks_hit);

  Request none = req(2, a);
  none.max_hit_tokens = 0;
  auto r0 = cache.lookup(none);
  ASSERT_TRUE(r0.ok());
  EXPECT_EQ(r0->hit_blocks, 0u);
  EXPECT_EQ(r0->hit_tokens, 0u);
  EXPECT_EQ(r0->stop, LookupStop::hit_cap);
}

// A probe of 10 tokens hitting 2 blocks (8 tokens) of 3: counted in
// stats.probes only, nothing else changes.
TEST(PrefixCacheLookup, ChangesNothingButCountsTheProbe) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  const auto before = testing_util::Snapshot::of(cache);
  auto r = cache.lookup(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 2u);
  EXPECT_EQ(r->prefix_hash, chain(kBs, a)[1]) << "names the last hit block";
  auto expected = before;
  expected.stats.probes = QueryCounts{1, 10, 8, 3, 2};
  const auto after = testing_util::Snapshot::of(cache);
  testing_util::expect_unchanged(expected, after);
  EXPECT_EQ(before.stats.allocation_failures, after.stats.allocation_failures);
}

// Hash mode, 10 tokens with 3 hashes: the partial tail is named, so it is
// cached too. With the cap lifted to the whole prompt the hit covers all 3
// blocks but only min(3*4, 10) = 10 tokens.
TEST(PrefixCacheLookup, HitTokensNeverExceedThePromptLength) {
  PrefixCache cache(config(8, kBs));
  const auto hs = hash_ids({1, 2, 3});
  ASSERT_TRUE(cache.allocate(hashed(1, 10, hs)).ok());
  EXPECT_EQ(cache.num_cached_blocks(), 3u);
  auto r = cache.lookup(hashed(2, 10, hs, 10));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hashed_blocks, 3u);
  EXPECT_EQ(r->total_blocks, 3u);
  EXPECT_EQ(r->hit_blocks, 3u);
  EXPECT_EQ(r->hit_tokens, 10u);
  EXPECT_EQ(r->stop, LookupStop::all_blocks_hit);
}

// ---------------------------------------------------------------- allocate

// A = 10 tokens -> [0,1,2], freed -> free queue [2,3,4,5,1,0]. B = same 10
// tokens hits blocks 0,1 (ref 0 -> 1, leave the pool) and takes block 2 for
// its tail. Free queue [3,4,5].
TEST(PrefixCacheAllocate, PrefixHitReusesTheCachedBlocks) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  auto r = cache.allocate(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 2u);
  EXPECT_EQ(r->lookup.hit_tokens, 8u);
  EXPECT_EQ(r->lookup.stop, LookupStop::all_blocks_hit);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(r->reused_blocks, 0u);
  EXPECT_EQ(r->evicted_blocks, 0u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 1, 2}));
  EXPECT_EQ(free_ids(cache), (V{3, 4, 5}));
}

// Two live requests share the prefix: ref counts 2. Freeing one keeps the
// shared blocks in use; freeing the other releases them.
TEST(PrefixCacheAllocate, LiveRequestsShareBlocksThroughRefCounts) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  const auto b = cat(seq(8, 100), seq(5, 700));  // same blocks 0,1; 13 tokens
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  auto r = cache.allocate(req(2, b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 2u);
  EXPECT_EQ(r->new_blocks, 2u);
  // A = [0,1,2]; B hits 0,1 and takes 3,4 (block 3 of B = tokens 12.. partial).
  EXPECT_EQ(table_of(cache, 2), (V{0, 1, 3, 4}));
  EXPECT_EQ(cache.ref_count(BlockId{0}), 2u);
  EXPECT_EQ(cache.ref_count(BlockId{1}), 2u);
  EXPECT_EQ(cache.ref_count(BlockId{2}), 1u);
  EXPECT_EQ(cache.num_used_blocks(), 5u);

  auto fa = cache.free(RequestId{1});
  ASSERT_TRUE(fa.ok());
  EXPECT_EQ(fa->released_blocks, 1u);  // only A's private tail
  EXPECT_EQ(fa->cached_free_blocks, 0u);
  EXPECT_EQ(cache.ref_count(BlockId{0}), 1u);
  EXPECT_EQ(free_ids(cache), (V{2, 5, 6, 7}));

  auto fb = cache.free(RequestId{2});
  ASSERT_TRUE(fb.ok());
  EXPECT_EQ(fb->released_blocks, 4u);
  EXPECT_EQ(fb->cached_free_blocks, 3u);  // blocks 0, 1 and B's full block 2 (id 3)
  // Reverse: 4 (uncached) to the front; then 3, 1, 0 appended to the LRU tail.
  EXPECT_EQ(free_ids(cache), (V{4, 2, 5, 6, 7, 3, 1, 0}));
  EXPECT_EQ(cache.num_used_blocks(), 0u);
}

// Exactly 2 full blocks again: the cap stops the hit at block 0, block 1 is
// still resident, so it is shared (reused), never duplicated.
TEST(PrefixCacheAllocate, ResidentBlockBeyondTheHitCapIsSharedNotDuplicated) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 3, 4, 5, 6, 7, 1, 0}));
  auto r = cache.allocate(req(2, a));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 1u);
  EXPECT_EQ(r->lookup.stop, LookupStop::hit_cap);
  EXPECT_EQ(r->reused_blocks, 1u);
  EXPECT_EQ(r->new_blocks, 0u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 1}));
  EXPECT_EQ(free_ids(cache), (V{2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  // Stats count the prefix hit only: 1 block, 4 tokens.
  EXPECT_EQ(cache.stats().fresh.requests, 2u);
  EXPECT_EQ(cache.stats().fresh.query_tokens, 16u);
  EXPECT_EQ(cache.stats().fresh.hit_tokens, 4u);
  EXPECT_EQ(cache.stats().fresh.query_blocks, 4u);
  EXPECT_EQ(cache.stats().fresh.hit_blocks, 1u);
}

// Hash mode: A names blocks {1,2,3} -> [0,1,2]. B names {9,2,3}: block 0
// misses (stop not_resident), blocks 2 and 3 are resident -> shared. B takes
// one new block (3): table [3,1,2].
TEST(PrefixCacheAllocate, ResidentBlocksAfterTheFirstMissAreShared) {
  PrefixCache cache(config(6, kBs));
  ASSERT_TRUE(cache.allocate(hashed(1, 12, hash_ids({1, 2, 3}))).ok());
  auto r = cache.allocate(hashed(2, 12, hash_ids({9, 2, 3})));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 0u);
  EXPECT_EQ(r->lookup.stop, LookupStop::not_resident);
  EXPECT_EQ(r->reused_blocks, 2u);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{3, 1, 2}));
  EXPECT_EQ(cache.ref_count(BlockId{1}), 2u);
  EXPECT_EQ(cache.ref_count(BlockId{2}), 2u);
  EXPECT_EQ(cache.ref_count(BlockId{3}), 1u);
  EXPECT_EQ(cache.find(BlockHash::from_id(9)), BlockId{3});
  EXPECT_EQ(cache.num_cached_blocks(), 4u);
  EXPECT_EQ(free_ids(cache), (V{4, 5}));
}

// Pool of 4. A (8 tokens) -> [0,1], freed forward -> [2,3,0,1]: the prefix
// block 0 is now the LRU victim. B, C (4 fresh tokens each, kept) take 2, 3;
// D (4 fresh tokens) evicts block 0 and is freed -> [1,0]. A again: block 0
// misses (hit 0), but A's block 1 is still resident and is shared (reused,
// ref 0 -> 1, costs one free block); one new block evicts D's block 0.
TEST(PrefixCacheAllocate, ForwardFreeLosesThePrefixFirstAndTheOrphanedTailIsStillShared) {
  PrefixCache cache(config(4, kBs));
  const auto a = seq(8, 100);
  const auto ha = chain(kBs, a);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}, FreeOrder::forward).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 3, 0, 1}));
  ASSERT_TRUE(cache.allocate(req(2, seq(4, 200))).ok());
  ASSERT_TRUE(cache.allocate(req(3, seq(4, 300))).ok());
  ASSERT_TRUE(cache.allocate(req(4, seq(4, 400))).ok());
  EXPECT_EQ(table_of(cache, 4), (V{0}));
  EXPECT_FALSE(cache.find(ha[0]).has_value());
  EXPECT_EQ(cache.find(ha[1]), BlockId{1});
  ASSERT_TRUE(cache.free(RequestId{4}).ok());
  ASSERT_EQ(free_ids(cache), (V{1, 0}));

  auto r = cache.allocate(req(5, a));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->lookup.hit_blocks, 0u);
  EXPECT_EQ(r->lookup.stop, LookupStop::not_resident);
  EXPECT_EQ(r->reused_blocks, 1u);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(r->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 5), (V{0, 1}));
  EXPECT_EQ(cache.find(ha[0]), BlockId{0});
  EXPECT_EQ(cache.find(ha[1]), BlockId{1});
  EXPECT_TRUE(free_ids(cache).empty());
}

// Pool of 3. A (8 tokens) -> [0,1], freed forward -> free queue [2,0,1].
// B = A's first 4 tokens + 5 others (9 tokens): hits block 0 (ref 0), needs 2
// new blocks: 1 + 2 = 3 <= 3 free. The hit must be taken out of the pool
// before new blocks are taken: new blocks are 2 (uncached) and 1 (evicted),
// never block 0.
TEST(PrefixCacheAllocate, HitBlocksLeaveThePoolBeforeNewBlocksAreTaken) {
  PrefixCache cache(config(3, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}, FreeOrder::forward).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 0, 1}));
  const auto b = cat(seq(4, 100), seq(5, 800));
  auto r = cache.allocate(req(2, b));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->lookup.hit_blocks, 1u);
  EXPECT_EQ(r->new_blocks, 2u);
  EXPECT_EQ(r->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 2, 1}));
  EXPECT_TRUE(free_ids(cache).empty());
  const auto hb = chain(kBs, b);
  EXPECT_EQ(cache.find(hb[0]), BlockId{0});
  EXPECT_EQ(cache.find(hb[1]), BlockId{2});
  EXPECT_FALSE(cache.find(chain(kBs, a)[1]).has_value());
}

// Pool of 4. A (8 tokens) -> [0,1], freed -> [2,3,1,0]. C, D (3 fresh tokens
// each, one partial uncached block, kept) take 2 and 3 -> free queue [1,0]. B = A's 8 tokens + 4
// (12 tokens, cap 11 -> 2 blocks): hits 0,1 with ref 0 and needs 1 new block: needed = 1 + 2 = 3 >
// 2 free -> not_enough_blocks although only 1 block is "new". After C is freed (free queue [2,1,0])
// it fits: table [0,1,2].
TEST(PrefixCacheAllocate, HitBlocksWithRefZeroConsumeFreeCapacity) {
  PrefixCache cache(config(4, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_TRUE(cache.allocate(req(3, seq(3, 300))).ok());
  ASSERT_TRUE(cache.allocate(req(4, seq(3, 400))).ok());
  ASSERT_EQ(free_ids(cache), (V{1, 0}));

  const auto b = cat(a, seq(4, 900));
  const auto before = testing_util::Snapshot::of(cache);
  auto refused = cache.allocate(req(2, b));
  EXPECT_EQ(refused.status(), Status::not_enough_blocks);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  EXPECT_EQ(cache.stats().allocation_failures, before.stats.allocation_failures + 1);

  ASSERT_TRUE(cache.free(RequestId{3}).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 1, 0}));
  auto r = cache.allocate(req(2, b));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->lookup.hit_blocks, 2u);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 1, 2}));
  EXPECT_TRUE(free_ids(cache).empty());
}

// Hit blocks held by a live request (ref >= 1) cost no free capacity: pool
// of 3, A (8 tokens) live -> [0,1], free [2]. B = A + 4 tokens hits 0,1 and
// needs exactly the one free block.
TEST(PrefixCacheAllocate, HitBlocksInUseCostNoFreeCapacity) {
  PrefixCache cache(config(3, kBs));
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  auto r = cache.allocate(req(2, cat(a, seq(4, 900))));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->lookup.hit_blocks, 2u);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 1, 2}));
}

// The pool has 4 blocks; 17 tokens need 5: too large even for an empty pool.
TEST(PrefixCacheAllocate, RequestNeedingMoreBlocksThanThePoolIsTooLarge) {
  PrefixCache cache(config(4, kBs));
  const auto before = testing_util::Snapshot::of(cache);
  auto r = cache.allocate(req(1, seq(17, 1)));
  EXPECT_EQ(r.status(), Status::request_too_large);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  // 16 tokens fit exactly.
  EXPECT_TRUE(cache.allocate(req(1, seq(16, 1))).ok());
  EXPECT_EQ(cache.num_free_blocks(), 0u);
}

// Pool of 4: A holds [0,1]; B (12 fresh tokens) needs 3 > 2 free. Nothing
// may change: no partially taken blocks, no cached hashes of B.
TEST(PrefixCacheAllocate, AllOrNothingWhenThePoolIsShort) {
  PrefixCache cache(config(4, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 100))).ok());
  const auto before = testing_util::Snapshot::of(cache);
  const auto b = seq(12, 500);
  auto r = cache.allocate(req(2, b));
  EXPECT_EQ(r.status(), Status::not_enough_blocks);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  EXPECT_EQ(cache.stats().allocation_failures, 1u);
  for (const BlockHash& h : chain(kBs, b)) EXPECT_FALSE(cache.find(h).has_value());
  EXPECT_EQ(cache.block_table(RequestId{2}).status(), Status::unknown_request);
  EXPECT_NO_THROW(cache.check_invariants());
}

// ---------------------------------------------------------------- salts, seeds

// Same tokens under different salts never hit each other; same salt hits.
TEST(PrefixCacheSalt, SameTokensWithDifferentSaltsDoNotHit) {
  PrefixCache cache(config(16, kBs));
  const auto t = seq(10, 100);
  ExtraKeys sa;
  sa.salt = CacheSalt::from_string("tenant-a");
  ExtraKeys sb;
  sb.salt = CacheSalt::from_string("tenant-b");
  ASSERT_TRUE(cache.allocate(req(1, t, sa)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());

  auto other = cache.lookup(req(2, t, sb));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->hit_blocks, 0u);
  EXPECT_EQ(other->stop, LookupStop::not_resident);
  auto unsalted = cache.lookup(req(2, t));
  ASSERT_TRUE(unsalted.ok());
  EXPECT_EQ(unsalted->hit_blocks, 0u);
  auto same = cache.lookup(req(2, t, sa));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->hit_blocks, 2u);

  // Allocating under salt b shares nothing: 3 new blocks, 4 cached in total.
  auto r = cache.allocate(req(2, t, sb));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->reused_blocks, 0u);
  EXPECT_EQ(r->new_blocks, 3u);
  EXPECT_EQ(cache.num_cached_blocks(), 4u);
  EXPECT_EQ(cache.find(chain(kBs, t, sb)[1]), cache.block_table(RequestId{2}).value()[1]);
}

// Token-mode hashes are BlockHasher's chain keyed by config.hash_seed.
TEST(PrefixCacheSalt, HashSeedKeysTheCacheChain) {
  PrefixCacheConfig c = config(8, kBs);
  c.hash_seed = HashSeed{0xfeedULL};
  PrefixCache cache(c);
  const auto t = seq(8, 1);
  ASSERT_TRUE(cache.allocate(req(1, t)).ok());
  const auto keyed = chain(kBs, t, {}, HashSeed{0xfeedULL});
  const auto pub = chain(kBs, t);
  EXPECT_EQ(cache.find(keyed[0]), BlockId{0});
  EXPECT_EQ(cache.find(keyed[1]), BlockId{1});
  EXPECT_FALSE(cache.find(pub[0]).has_value());
  EXPECT_FALSE(cache.find(pub[1]).has_value());
}

// Adapter ids isolate like salts, on every block.
TEST(PrefixCacheSalt, DifferentAdapterDoesNotHit) {
  PrefixCache cache(config(16, kBs));
  const auto t = seq(10, 100);
  ExtraKeys l1;
  l1.adapter_id = 1;
  ExtraKeys l2;
  l2.adapter_id = 2;
  ASSERT_TRUE(cache.allocate(req(1, t, l1)).ok());
  auto other = cache.lookup(req(2, t, l2));
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->hit_blocks, 0u);
  auto same = cache.lookup(req(2, t, l1));
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->hit_blocks, 2u);
}

// ---------------------------------------------------------------- append

// Pool of 6. A = 6 tokens -> [0,1] (block 0 cached, block 1 partial).
//  +2 tokens (8): block 1 completes, no new block.
//  +1 token  (9): new block 2 (partial).
//  +7 tokens (16): block 2 completes, new block 3 completes too.
TEST(PrefixCacheAppend, DecodeGrowthTakesBlocksAndCachesCompletedOnes) {
  PrefixCache cache(config(6, kBs));
  const auto all = seq(16, 100);
  const std::span<const TokenId> s(all);
  const auto h = chain(kBs, all);
  ASSERT_TRUE(cache.allocate(req(1, std::vector<TokenId>(all.begin(), all.begin() + 6))).ok());
  EXPECT_EQ(cache.num_cached_blocks(), 1u);

  auto r1 = cache.append(RequestId{1}, s.subspan(6, 2));
  ASSERT_TRUE(r1.ok()) << to_string(r1.status());
  EXPECT_EQ(r1->new_blocks, 0u);
  EXPECT_EQ(r1->cached_blocks, 1u);
  EXPECT_EQ(r1->evicted_blocks, 0u);
  EXPECT_EQ(r1->num_tokens, 8u);
  EXPECT_EQ(cache.find(h[1]), BlockId{1});
  EXPECT_EQ(table_of(cache, 1), (V{0, 1}));

  auto r2 = cache.append(RequestId{1}, s.subspan(8, 1));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->new_blocks, 1u);
  EXPECT_EQ(r2->cached_blocks, 0u);
  EXPECT_EQ(r2->num_tokens, 9u);
  EXPECT_EQ(table_of(cache, 1), (V{0, 1, 2}));
  EXPECT_FALSE(cache.block_hash(BlockId{2}).has_value());

  auto r3 = cache.append(RequestId{1}, s.subspan(9, 7));
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->new_blocks, 1u);
  EXPECT_EQ(r3->cached_blocks, 2u);
  EXPECT_EQ(r3->num_tokens, 16u);
  EXPECT_EQ(table_of(cache, 1), (V{0, 1, 2, 3}));
  EXPECT_EQ(cache.num_tokens(RequestId{1}).value(), 16u);
  EXPECT_EQ(cache.find(h[2]), BlockId{2});
  EXPECT_EQ(cache.find(h[3]), BlockId{3});
  EXPECT_EQ(cache.num_cached_blocks(), 4u);
  EXPECT_EQ(free_ids(cache), (V{4, 5}));
  EXPECT_NO_THROW(cache.check_invariants());
}

// Blocks completed by decode are hittable by later requests: 17 tokens that
// start with A's 16 hit all 4 blocks (cap 16 -> 4 blocks).
TEST(PrefixCacheAppend, BlocksCompletedByDecodeAreHitByLaterRequests) {
  PrefixCache cache(config(8, kBs));
  const auto all = seq(16, 100);
  const std::span<const TokenId> s(all);
  ASSERT_TRUE(cache.allocate(req(1, std::vector<TokenId>(all.begin(), all.begin() + 5))).ok());
  ASSERT_TRUE(cache.append(RequestId{1}, s.subspan(5, 11)).ok());
  auto r = cache.allocate(req(2, cat(all, seq(1, 9000))));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 4u);
  EXPECT_EQ(r->lookup.stop, LookupStop::all_blocks_hit);
  EXPECT_EQ(r->new_blocks, 1u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 1, 2, 3, 4}));
}

// A = 8 tokens -> [0,1] cached, live. B = A's first 6 tokens: hits block 0
// (cap 5 -> 1 block), new partial block 2. Appending A's tokens 6,7 to B
// completes a block whose hash A's block 1 already holds.
class PrivateTwin : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cache.allocate(req(1, a)).ok());
    ASSERT_TRUE(cache.allocate(req(2, std::vector<TokenId>(a.begin(), a.begin() + 6))).ok());
    ASSERT_EQ(table_of(cache, 2), (V{0, 2}));
  }
  PrefixCache cache{config(5, kBs)};
  const std::vector<TokenId> a = seq(8, 100);
  const std::span<const TokenId> s{a};
  const std::vector<BlockHash> h = chain(kBs, a);
};

// The completed block stays private (uncached); when B is freed it goes to
// the front of the uncached part.
TEST_F(PrivateTwin, CompletedBlockWhoseHashIsResidentStaysPrivate) {
  auto r = cache.append(RequestId{2}, s.subspan(6, 2));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cached_blocks, 0u);
  EXPECT_EQ(r->new_blocks, 0u);
  EXPECT_EQ(cache.find(h[1]), BlockId{1});
  EXPECT_FALSE(cache.block_hash(BlockId{2}).has_value());
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  EXPECT_EQ(table_of(cache, 2), (V{0, 2}));

  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  // Block 2 (uncached) -> front; block 0 still held by A.
  EXPECT_EQ(free_ids(cache), (V{2, 3, 4}));
  EXPECT_EQ(cache.ref_count(BlockId{0}), 1u);
}

// Then A is freed and its blocks reclaimed: when block 1 (holder of h[1])
// is reused, B's private twin, block 2, takes h[1] over, so the hash stays
// cached (vLLM keeps both blocks under one hash), and B's free returns
// block 2 to the cached part of the queue.
TEST_F(PrivateTwin, TakesTheHashOverWhenItsHolderIsReclaimed) {
  ASSERT_TRUE(cache.append(RequestId{2}, s.subspan(6, 2)).ok());
  ASSERT_FALSE(cache.block_hash(BlockId{2}).has_value());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());  // block 1 evictable; block 0 still B's
  EXPECT_EQ(free_ids(cache), (V{3, 4, 1}));

  auto c = cache.allocate(req(3, seq(12, 900)));  // 3 new blocks: 3, 4, then block 1
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 3), (V{3, 4, 1}));
  EXPECT_EQ(cache.find(h[1]), BlockId{2});
  EXPECT_EQ(cache.block_hash(BlockId{2}), h[1]);
  EXPECT_EQ(cache.num_cached_blocks(), 5u);  // h[0], h[1] (now block 2), C's three
  cache.check_invariants();
  EXPECT_EQ(cache.lookup(req(9, a))->hit_blocks, 1u);  // hit cap: 7 tokens -> 1 block
  EXPECT_EQ(cache.lookup(req(9, cat(a, seq(1, 7000))))->hit_blocks, 2u);

  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(free_ids(cache), (V{2, 0})) << "block 2 is cached now: it joins the evictable part";
  cache.check_invariants();
}

TEST(PrefixCacheAppend, AppendingNoTokensIsANoOp) {
  PrefixCache cache(config(4, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(5, 1))).ok());
  const auto before = testing_util::Snapshot::of(cache);
  auto r = cache.append(RequestId{1}, std::span<const TokenId>{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->new_blocks, 0u);
  EXPECT_EQ(r->cached_blocks, 0u);
  EXPECT_EQ(r->num_tokens, 5u);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
}

// Hash mode: A = 6 tokens with 1 hash -> [0,1]. append_hashes(2 tokens, {h2})
// completes block 1 and caches it; (3 tokens, {h3}) names the new partial
// tail (11 tokens, blocks 0..2): block 2 is cached and A is sealed.
TEST(PrefixCacheAppend, AppendHashesCachesNamedBlocksAndSealsOnAPartialTail) {
  PrefixCache cache(config(6, kBs));
  ASSERT_TRUE(cache.allocate(hashed(1, 6, hash_ids({1}))).ok());
  EXPECT_EQ(cache.num_cached_blocks(), 1u);
  EXPECT_EQ(table_of(cache, 1), (V{0, 1}));

  const auto h2 = hash_ids({2});
  auto r1 = cache.append_hashes(RequestId{1}, 2, h2);
  ASSERT_TRUE(r1.ok()) << to_string(r1.status());
  EXPECT_EQ(r1->new_blocks, 0u);
  EXPECT_EQ(r1->cached_blocks, 1u);
  EXPECT_EQ(r1->num_tokens, 8u);
  EXPECT_EQ(cache.find(BlockHash::from_id(2)), BlockId{1});

  const auto h3 = hash_ids({3});
  auto r2 = cache.append_hashes(RequestId{1}, 3, h3);
  ASSERT_TRUE(r2.ok()) << to_string(r2.status());
  EXPECT_EQ(r2->new_blocks, 1u);
  EXPECT_EQ(r2->num_tokens, 11u);
  EXPECT_EQ(cache.find(BlockHash::from_id(3)), BlockId{2});
  EXPECT_EQ(table_of(cache, 1), (V{0, 1, 2}));

  const auto before = testing_util::Snapshot::of(cache);
  const auto h4 = hash_ids({4});
  EXPECT_EQ(cache.append_hashes(RequestId{1}, 1, h4).status(), Status::request_sealed);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  EXPECT_EQ(cache.num_tokens(RequestId{1}).value(), 11u);
}

// A hash-mode request given ceil(10/4) = 3 hashes is sealed at admission.
TEST(PrefixCacheAppend, HashModeRequestWithCeilHashesIsSealed) {
  PrefixCache cache(config(6, kBs));
  ASSERT_TRUE(cache.allocate(hashed(1, 10, hash_ids({1, 2, 3}))).ok());
  EXPECT_EQ(cache.num_cached_blocks(), 3u);
  EXPECT_EQ(cache.find(BlockHash::from_id(3)), BlockId{2});
  const auto before = testing_util::Snapshot::of(cache);
  // 2 more tokens would complete block 2 (12 tokens) but the tail is sealed.
  const auto h4 = hash_ids({4});
  EXPECT_EQ(cache.append_hashes(RequestId{1}, 2, h4).status(), Status::request_sealed);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  // The floor form (2 hashes) is not sealed: 2 more tokens complete block 2.
  ASSERT_TRUE(cache.allocate(hashed(2, 10, hash_ids({7, 8}))).ok());
  const auto h9 = hash_ids({9});
  auto r = cache.append_hashes(RequestId{2}, 2, h9);
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->cached_blocks, 1u);
  EXPECT_EQ(r->num_tokens, 12u);
}

// ---------------------------------------------------------------- reset

TEST(PrefixCacheReset, DropsEveryHashKeepsTheFreeQueueOrderAndCountsTheReset) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_EQ(free_ids(cache), (V{2, 3, 4, 5, 1, 0}));
  ASSERT_EQ(cache.num_cached_blocks(), 2u);
  const std::uint64_t evictions = cache.stats().evictions;

  auto r = cache.reset();
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(cache.num_cached_blocks(), 0u);
  EXPECT_EQ(cache.stats().resets, 1u);
  EXPECT_EQ(cache.stats().evictions, evictions);  // a reset is not an eviction
  EXPECT_EQ(free_ids(cache), (V{2, 3, 4, 5, 1, 0}));
  EXPECT_EQ(cache.num_free_blocks(), 6u);
  for (const BlockHash& h : chain(kBs, a)) EXPECT_FALSE(cache.find(h).has_value());
  for (std::uint32_t b = 0; b < 6; ++b) EXPECT_FALSE(cache.block_hash(BlockId{b}).has_value());
  auto l = cache.lookup(req(2, a));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->hit_blocks, 0u);
  EXPECT_EQ(l->stop, LookupStop::not_resident);
  EXPECT_NO_THROW(cache.check_invariants());
  // Reused after a reset, former cached blocks are not evictions.
  ASSERT_TRUE(cache.allocate(req(3, seq(24, 5000))).ok());
  EXPECT_EQ(cache.stats().evictions, evictions);
}

TEST(PrefixCacheReset, IsRefusedWhileAnyRequestHoldsBlocks) {
  PrefixCache cache(config(6, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());
  ASSERT_TRUE(cache.allocate(req(2, seq(3, 500))).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  const auto before = testing_util::Snapshot::of(cache);
  auto r = cache.reset();
  EXPECT_EQ(r.status(), Status::blocks_in_use);
  testing_util::expect_unchanged(before, testing_util::Snapshot::of(cache));
  EXPECT_EQ(cache.stats().resets, 0u);
  EXPECT_EQ(cache.stats().allocation_failures, 0u);
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_TRUE(cache.reset().ok());
  EXPECT_EQ(cache.stats().resets, 1u);
}

TEST(PrefixCacheReset, OfAnEmptyCacheSucceedsAndIsCounted) {
  PrefixCache cache(config(3, kBs));
  EXPECT_TRUE(cache.reset().ok());
  EXPECT_TRUE(cache.reset().ok());
  EXPECT_EQ(cache.stats().resets, 2u);
  EXPECT_EQ(free_ids(cache), (V{0, 1, 2}));
}

// ---------------------------------------------------------------- stats

// A (10 tokens, 3 blocks, no hit) then B = A (hit 2 blocks = 8 tokens).
TEST(PrefixCacheStats, AdmissionsAreCountedInTokensAndBlocks) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.allocate(req(2, a)).ok());
  const auto& s = cache.stats();
  EXPECT_EQ(s.fresh.requests, 2u);
  EXPECT_EQ(s.fresh.query_tokens, 20u);
  EXPECT_EQ(s.fresh.hit_tokens, 8u);
  EXPECT_EQ(s.fresh.query_blocks, 6u);
  EXPECT_EQ(s.fresh.hit_blocks, 2u);
  EXPECT_EQ(s.preempted, QueryCounts{});
  EXPECT_DOUBLE_EQ(s.hit_rate(), 8.0 / 20.0);
  EXPECT_EQ(s.allocation_failures, 0u);
  EXPECT_EQ(s.evictions, 0u);
}

TEST(PrefixCacheStats, PreemptedRequestsAreCountedSeparately) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  Request again = req(1, a);
  again.preempted = true;
  ASSERT_TRUE(cache.allocate(again).ok());
  const auto& s = cache.stats();
  EXPECT_EQ(s.fresh.requests, 1u);
  EXPECT_EQ(s.fresh.query_tokens, 10u);
  EXPECT_EQ(s.fresh.hit_tokens, 0u);
  EXPECT_EQ(s.preempted.requests, 1u);
  EXPECT_EQ(s.preempted.query_tokens, 10u);
  EXPECT_EQ(s.preempted.hit_tokens, 8u);
  EXPECT_EQ(s.preempted.query_blocks, 3u);
  EXPECT_EQ(s.preempted.hit_blocks, 2u);
  EXPECT_DOUBLE_EQ(s.hit_rate(), 0.0);  // recomputation does not inflate it
}

// Failed allocations count in allocation_failures only (not as queries).
TEST(PrefixCacheStats, RefusedAllocationIsNotAQuery) {
  PrefixCache cache(config(2, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 100))).ok());
  EXPECT_EQ(cache.allocate(req(2, seq(4, 500))).status(), Status::not_enough_blocks);
  EXPECT_EQ(cache.allocate(req(3, seq(4, 600))).status(), Status::not_enough_blocks);
  EXPECT_EQ(cache.stats().fresh.requests, 1u);
  EXPECT_EQ(cache.stats().fresh.query_tokens, 8u);
  EXPECT_EQ(cache.stats().allocation_failures, 2u);
}

// Pool of 2: A (8 tokens) cached and freed; B (8 fresh tokens) evicts both.
TEST(PrefixCacheStats, EvictionsCountCachedBlocksUnhashedForReuse) {
  PrefixCache cache(config(2, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 100))).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  auto r = cache.allocate(req(2, seq(8, 500)));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted_blocks, 2u);
  EXPECT_EQ(cache.stats().evictions, 2u);
  // Reverse free made block 1 the LRU victim: B = [1, 0].
  EXPECT_EQ(table_of(cache, 2), (V{1, 0}));
}

// ---------------------------------------------------------------- observer

struct CountingObserver : PrefixCacheObserver {
  int allocated = 0;
  int cached = 0;
  int hit = 0;
  int released_cached = 0;
  int released_uncached = 0;
  int uncached_reused = 0;
  int uncached_reset = 0;
  std::vector<std::uint32_t> cached_blocks;
  std::vector<std::uint32_t> evicted_blocks;

  void on_block_allocated(BlockId, Timestamp) override { ++allocated; }
  void on_block_cached(BlockId b, const BlockHash&, Timestamp) override {
    ++cached;
    cached_blocks.push_back(b.value);
  }
  void on_block_hit(BlockId, Timestamp) override { ++hit; }
  void on_block_released(BlockId, bool c, Timestamp) override {
    ++(c ? released_cached : released_uncached);
  }
  void on_block_uncached(BlockId b, const BlockHash&, UncacheCause cause, bool,
                         Timestamp) override {
    if (cause == UncacheCause::reused) {
      ++uncached_reused;
      evicted_blocks.push_back(b.value);
    } else {
      ++uncached_reset;
    }
  }
};

// Pool of 4, block size 4.
//  A (10 tokens): 3 blocks allocated [0,1,2], 2 cached (0,1).
//  B (A's 8 tokens + 1): hits live blocks 0,1 (2 hits), allocates block 3.
//  free A: only block 2 reaches ref 0 (uncached). free B: 3 (uncached), 1, 0
//  (cached). C (16 fresh tokens): 4 allocations, 2 evictions (1 then 0),
//  4 cached. free C, reset: 4 uncached by reset.
TEST(PrefixCacheObserver, SeesEveryBlockLifecycleEvent) {
  PrefixCache cache(config(4, kBs));
  CountingObserver obs;
  cache.set_observer(&obs);
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  EXPECT_EQ(obs.allocated, 3);
  EXPECT_EQ(obs.cached, 2);
  EXPECT_EQ(obs.cached_blocks, (V{0, 1}));
  ASSERT_TRUE(cache.allocate(req(2, cat(seq(8, 100), seq(1, 700)))).ok());
  EXPECT_EQ(obs.hit, 2);
  EXPECT_EQ(obs.allocated, 4);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(obs.released_uncached, 1);
  EXPECT_EQ(obs.released_cached, 0);
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(obs.released_uncached, 2);
  EXPECT_EQ(obs.released_cached, 2);
  ASSERT_EQ(free_ids(cache), (V{3, 2, 1, 0}));

  ASSERT_TRUE(cache.allocate(req(3, seq(16, 5000))).ok());
  EXPECT_EQ(obs.allocated, 8);
  EXPECT_EQ(obs.uncached_reused, 2);
  EXPECT_EQ(obs.evicted_blocks, (V{1, 0}));
  EXPECT_EQ(obs.cached, 6);
  ASSERT_TRUE(cache.free(RequestId{3}).ok());
  EXPECT_EQ(obs.released_cached, 6);
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(obs.uncached_reset, 4);
  EXPECT_EQ(obs.uncached_reused, 2);

  // Removed observer sees nothing more.
  cache.set_observer(nullptr);
  ASSERT_TRUE(cache.allocate(req(4, seq(4, 1))).ok());
  EXPECT_EQ(obs.allocated, 8);
}

// ---------------------------------------------------------------- misc

TEST(PrefixCacheMisc, MoveKeepsTheWholeState) {
  PrefixCache cache(config(6, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  PrefixCache moved(std::move(cache));
  EXPECT_EQ(table_of(moved, 1), (V{0, 1, 2}));
  EXPECT_EQ(free_ids(moved), (V{3, 4, 5}));
  EXPECT_EQ(moved.find(chain(kBs, a)[0]), BlockId{0});
  PrefixCache assigned(config(2, kBs));
  assigned = std::move(moved);
  EXPECT_EQ(assigned.num_blocks(), 6u);
  ASSERT_TRUE(assigned.free(RequestId{1}).ok());
  EXPECT_EQ(free_ids(assigned), (V{2, 3, 4, 5, 1, 0}));
  EXPECT_NO_THROW(assigned.check_invariants());
}

TEST(PrefixCacheMisc, MetadataBytesGrowWithThePool) {
  PrefixCache small(config(16, kBs));
  PrefixCache large(config(4096, kBs));
  EXPECT_GT(small.metadata_bytes(), 0u);
  EXPECT_GT(large.metadata_bytes(), small.metadata_bytes());
}

TEST(PrefixCacheMisc, UsageCountsCachedButFreeBlocksAsFree) {
  PrefixCache cache(config(4, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 1))).ok());
  ASSERT_TRUE(cache.allocate(req(2, seq(3, 100))).ok());
  EXPECT_DOUBLE_EQ(cache.usage(), 0.75);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  EXPECT_DOUBLE_EQ(cache.usage(), 0.25);
  EXPECT_EQ(cache.num_used_blocks(), 1u);
}

}  // namespace
}  // namespace kvscope
