// Eviction order of each policy (eviction_policy.hpp), observed through
// find(), block_hash() and free_queue(). Requests here are hash-mode, one
// block of 4 tokens each, with the hit cap lifted to the whole prompt so a
// repeated hash hits ("touches") its block.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::config;
using testing_util::free_ids;
using testing_util::hash_ids;
using testing_util::hashed;
using testing_util::seq;
using testing_util::table_of;
using V = std::vector<std::uint32_t>;

constexpr std::uint32_t kBs = 4;

BlockHash h(std::uint64_t v) { return BlockHash::from_id(v); }

/// Allocates a one-block request naming hash `v` (hit if resident), keeps it.
void hold(PrefixCache& cache, std::uint64_t id, std::uint64_t v) {
  const std::vector<BlockHash> hs = {h(v)};
  auto r = cache.allocate(hashed(id, kBs, hs, kBs));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
}

/// Allocates then frees a one-block request naming hash `v`: one touch
/// (allocation or hit) followed by one release.
void touch(PrefixCache& cache, std::uint64_t v) {
  static std::uint64_t next_id = 1'000'000;
  const std::uint64_t id = next_id++;
  hold(cache, id, v);
  ASSERT_TRUE(cache.free(RequestId{id}).ok());
}

bool resident(const PrefixCache& cache, std::uint64_t v) { return cache.find(h(v)).has_value(); }

PrefixCacheConfig policy_config(std::uint32_t n, EvictionPolicyKind kind, double small = 0.1) {
  PrefixCacheConfig c = config(n, kBs, kind);
  c.s3fifo_small_ratio = small;
  return c;
}

// ---------------------------------------------------------------- LRU

// Pool of 4: hashes 1..4 held in blocks 0..3, released in order 3,1,4,2 ->
// free queue [2,0,3,1]. Touching hash 1 again moves block 0 to the tail:
// [2,3,1,0]. A new hash evicts the head, block 2 (hash 3).
TEST(LruPolicy, EvictsTheLeastRecentlyReleasedBlockFirst) {
  PrefixCache cache(config(4, kBs, EvictionPolicyKind::lru));
  for (std::uint64_t v = 1; v <= 4; ++v) hold(cache, v, v);
  for (std::uint64_t id : {3, 1, 4, 2}) ASSERT_TRUE(cache.free(RequestId{id}).ok());
  EXPECT_EQ(free_ids(cache), (V{2, 0, 3, 1}));
  touch(cache, 1);
  EXPECT_EQ(free_ids(cache), (V{2, 3, 1, 0}));
  hold(cache, 10, 50);
  EXPECT_EQ(table_of(cache, 10), (V{2}));
  EXPECT_FALSE(resident(cache, 3));
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
  EXPECT_TRUE(resident(cache, 4));
  EXPECT_EQ(cache.block_hash(BlockId{2}), h(50));
  EXPECT_EQ(free_ids(cache), (V{3, 1, 0}));
}

// LRU ignores frequency: a block hit many times but released long ago goes
// before a once-used block released later.
TEST(LruPolicy, IgnoresHowOftenABlockWasHit) {
  PrefixCache cache(config(3, kBs, EvictionPolicyKind::lru));
  for (int i = 0; i < 5; ++i) touch(cache, 1);  // block 0
  touch(cache, 2);                              // block 1
  EXPECT_EQ(free_ids(cache), (V{2, 0, 1}));
  hold(cache, 1, 3);  // takes uncached block 2
  hold(cache, 2, 4);  // evicts block 0 (hash 1)
  EXPECT_FALSE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
}

// ---------------------------------------------------------------- LFU

// Pool of 4: hashes 1,2,3 cached in blocks 0,1,2 (one touch each, released
// in that order) -> ties by release order: [3, 0,1,2]. Then hash 1 is hit
// twice (3 touches) and hash 2 once (2 touches): [3, 2(h3:1), 1(h2:2), 0(h1:3)].
// LRU would say [3, 2, 0, 1] (hash 2 was released last).
TEST(LfuPolicy, EvictsTheBlockWithFewestTouchesFirst) {
  PrefixCache cache(config(4, kBs, EvictionPolicyKind::lfu));
  touch(cache, 1);
  touch(cache, 2);
  touch(cache, 3);
  EXPECT_EQ(free_ids(cache), (V{3, 0, 1, 2}));
  touch(cache, 1);
  touch(cache, 1);
  touch(cache, 2);
  EXPECT_EQ(free_ids(cache), (V{3, 2, 1, 0}));
  // Two new blocks: the uncached block 3, then the victim block 2 (hash 3).
  const auto hs = hash_ids({70, 71});
  auto r = cache.allocate(hashed(9, 8, hs));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 9), (V{3, 2}));
  EXPECT_FALSE(resident(cache, 3));
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
  EXPECT_EQ(free_ids(cache), (V{1, 0}));
}

// Equal counts: least recently released first, whatever the block ids.
TEST(LfuPolicy, BreaksTiesByReleaseOrder) {
  PrefixCache cache(config(3, kBs, EvictionPolicyKind::lfu));
  for (std::uint64_t v = 1; v <= 3; ++v) hold(cache, v, v);  // blocks 0,1,2
  for (std::uint64_t id : {2, 3, 1}) ASSERT_TRUE(cache.free(RequestId{id}).ok());
  EXPECT_EQ(free_ids(cache), (V{1, 2, 0}));
}

// Hash 1 is touched 71 times, hash 2 66 times (released after hash 1): both
// counts saturate at 63, so the tie is broken by release order and hash 1
// (block 0) goes first. Without saturation hash 2 (66 < 71) would go first.
TEST(LfuPolicy, CountsSaturateAt63) {
  PrefixCache cache(config(3, kBs, EvictionPolicyKind::lfu));
  for (int i = 0; i < 71; ++i) touch(cache, 1);
  for (int i = 0; i < 66; ++i) touch(cache, 2);
  EXPECT_EQ(free_ids(cache), (V{2, 0, 1}));
  // Below saturation the counts decide: hash 2 touched 62 times and released
  // last still goes before hash 1 touched 63 times.
  PrefixCache small(config(3, kBs, EvictionPolicyKind::lfu));
  for (int i = 0; i < 63; ++i) touch(small, 1);  // count 63
  for (int i = 0; i < 62; ++i) touch(small, 2);  // count 62, released later
  EXPECT_EQ(free_ids(small), (V{2, 1, 0}));
}

// ---------------------------------------------------------------- ARC

// Pool of 4. Hash 1 (block 0) is touched twice -> T2. A scan of once-touched
// hashes 11.. fills blocks 1,2,3 and then keeps evicting from T1 (|T1| > p = 0
// with no ghost hits), so hash 1 survives. Under LRU it would be the first
// victim (released before the scan started).
TEST(ArcPolicy, BlockTouchedTwiceSurvivesAScanOfOnceTouchedBlocks) {
  PrefixCache cache(config(4, kBs, EvictionPolicyKind::arc));
  touch(cache, 1);
  touch(cache, 1);
  for (std::uint64_t v = 11; v <= 16; ++v) touch(cache, v);
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_EQ(cache.find(h(1)), BlockId{0});
  EXPECT_FALSE(resident(cache, 11));
  EXPECT_FALSE(resident(cache, 12));
  EXPECT_FALSE(resident(cache, 13));
  EXPECT_TRUE(resident(cache, 16));
  EXPECT_EQ(cache.stats().evictions, 3u);
}

// Pool of 4. Hashes 1,2,3,4 fill T1; hash 5 evicts hash 1 into the ghost B1.
// Hash 1 comes back: a ghost hit, so it is re-cached into T2 (and p grows to
// at least 1). A scan of six new hashes then evicts from T1 (|T1| = 3 > p) and
// hash 1 survives; without the ghost it would sit at T1's tail and be gone
// after four of them.
TEST(ArcPolicy, GhostHitRecachesIntoT2AndSurvivesAScan) {
  PrefixCache cache(config(4, kBs, EvictionPolicyKind::arc));
  for (std::uint64_t v = 1; v <= 5; ++v) touch(cache, v);
  ASSERT_FALSE(resident(cache, 1));
  touch(cache, 1);
  ASSERT_TRUE(resident(cache, 1));
  for (std::uint64_t v = 21; v <= 26; ++v) touch(cache, v);
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 26));
}

// ---------------------------------------------------------------- S3-FIFO

// Pool of 4, small queue 25% (1 block). Hash 1 (block 0) is released into S
// and hit while there. A scan of one-time hashes: when the pool runs out,
// eviction from S finds hash 1 touched and promotes it to M, then evicts the
// untouched scan blocks. Under LRU hash 1 would be the first victim.
TEST(S3FifoPolicy, BlockTouchedWhileInSmallQueueSurvivesAScan) {
  PrefixCache cache(policy_config(4, EvictionPolicyKind::s3fifo, 0.25));
  touch(cache, 1);
  touch(cache, 1);
  for (std::uint64_t v = 11; v <= 16; ++v) touch(cache, v);
  EXPECT_EQ(cache.find(h(1)), BlockId{0});
  EXPECT_FALSE(resident(cache, 11));
  EXPECT_FALSE(resident(cache, 12));
  EXPECT_FALSE(resident(cache, 13));
  EXPECT_TRUE(resident(cache, 16));
}

// Pool of 4, small queue 25%. Hashes 1..4 enter S; hash 5 evicts hash 1
// (untouched) from S into the ghost. Hash 1 comes back: its hash is in the
// ghost, so it enters M. A scan of six one-time hashes is absorbed by S and
// hash 1 survives; had it re-entered S it would be gone after four.
TEST(S3FifoPolicy, HashInTheGhostReentersTheMainQueue) {
  PrefixCache cache(policy_config(4, EvictionPolicyKind::s3fifo, 0.25));
  for (std::uint64_t v = 1; v <= 5; ++v) touch(cache, v);
  ASSERT_FALSE(resident(cache, 1));
  touch(cache, 1);
  ASSERT_TRUE(resident(cache, 1));
  for (std::uint64_t v = 21; v <= 26; ++v) touch(cache, v);
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 26));
}

// One-time blocks in S are evicted in release order (FIFO).
TEST(S3FifoPolicy, UntouchedBlocksLeaveTheSmallQueueInReleaseOrder) {
  PrefixCache cache(policy_config(4, EvictionPolicyKind::s3fifo, 0.25));
  for (std::uint64_t v = 1; v <= 4; ++v) hold(cache, v, v);  // blocks 0..3
  for (std::uint64_t id : {3, 1, 4, 2}) ASSERT_TRUE(cache.free(RequestId{id}).ok());
  touch(cache, 50);  // evicts hash 3 (block 2), released first
  EXPECT_FALSE(resident(cache, 3));
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
  EXPECT_TRUE(resident(cache, 4));
  EXPECT_EQ(cache.find(h(50)), BlockId{2});
}

// ---------------------------------------------------------------- every policy

class EveryPolicy : public ::testing::TestWithParam<EvictionPolicyKind> {
 protected:
  PrefixCacheConfig cfg(std::uint32_t n) const { return policy_config(n, GetParam()); }
};

// A (10 tokens) freed: uncached tail block 2 and the never-used blocks come
// first in the free queue; the two cached blocks follow in policy order.
TEST_P(EveryPolicy, UncachedFreeBlocksAreReusedBeforeAnyCachedOne) {
  PrefixCache cache(cfg(6));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  const V q = free_ids(cache);
  ASSERT_EQ(q.size(), 6u);
  EXPECT_EQ((V{q[0], q[1], q[2], q[3]}), (V{2, 3, 4, 5}));
  EXPECT_EQ((std::set<std::uint32_t>{q[4], q[5]}), (std::set<std::uint32_t>{0, 1}));
  const auto b = seq(16, 900);
  auto r = cache.allocate(Request::with_tokens(RequestId{2}, b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted_blocks, 0u);
  EXPECT_EQ(table_of(cache, 2), (V{2, 3, 4, 5}));
  EXPECT_EQ(cache.num_cached_blocks(), 6u);
  EXPECT_EQ(cache.stats().evictions, 0u);
}

// Pool of 4: A holds blocks 0,1 (cached), B's cached block 2 is free, block 3
// never used. C needs 2 blocks: 3, then B's block 2 (the only evictable
// cached block). A is never touched; a further request cannot be served.
TEST_P(EveryPolicy, BlocksInUseAreNeverEvicted) {
  PrefixCache cache(cfg(4));
  hold(cache, 1, 1);
  hold(cache, 2, 2);
  hold(cache, 3, 3);
  ASSERT_TRUE(cache.free(RequestId{3}).ok());
  auto r = cache.allocate(hashed(4, 8, hash_ids({40, 41})));
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->evicted_blocks, 1u);
  EXPECT_EQ(table_of(cache, 4), (V{3, 2}));
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
  EXPECT_FALSE(resident(cache, 3));
  EXPECT_EQ(cache.allocate(hashed(5, 4, hash_ids({50}))).status(), Status::not_enough_blocks);
  EXPECT_NO_THROW(cache.check_invariants());
}

TEST_P(EveryPolicy, FreedCachedBlocksStayHittableUntilReused) {
  PrefixCache cache(cfg(4));
  touch(cache, 1);
  touch(cache, 2);
  EXPECT_TRUE(resident(cache, 1));
  EXPECT_TRUE(resident(cache, 2));
  EXPECT_EQ(cache.num_cached_blocks(), 2u);
  // A hit on a free cached block takes it back without any eviction.
  auto r = cache.allocate(hashed(7, kBs, hash_ids({1}), kBs));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lookup.hit_blocks, 1u);
  EXPECT_EQ(r->new_blocks, 0u);
  EXPECT_EQ(table_of(cache, 7), (V{0}));
  EXPECT_EQ(cache.ref_count(BlockId{0}), 1u);
  EXPECT_EQ(cache.stats().evictions, 0u);
}

// A full scan through a pool of 4 with 12 distinct hashes: exactly 4 stay
// resident, every reuse of a cached block is one eviction.
TEST_P(EveryPolicy, EvictionsAccountForEveryReusedCachedBlock) {
  PrefixCache cache(cfg(4));
  for (std::uint64_t v = 1; v <= 12; ++v) touch(cache, v);
  EXPECT_EQ(cache.num_cached_blocks(), 4u);
  EXPECT_EQ(cache.stats().evictions, 8u);
  EXPECT_TRUE(resident(cache, 12));  // the newest block was just cached
  int count = 0;
  for (std::uint64_t v = 1; v <= 12; ++v) count += resident(cache, v) ? 1 : 0;
  EXPECT_EQ(count, 4);
  EXPECT_NO_THROW(cache.check_invariants());
}

TEST_P(EveryPolicy, FreeQueueHoldsEachFreeBlockOnceWithUncachedFirst) {
  PrefixCache cache(cfg(8));
  touch(cache, 1);
  touch(cache, 2);
  hold(cache, 3, 3);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{4}, seq(2, 1))).ok());
  ASSERT_TRUE(cache.free(RequestId{4}).ok());
  const V q = free_ids(cache);
  EXPECT_EQ(q.size(), cache.num_free_blocks());
  EXPECT_EQ(q.size(), 7u);
  std::set<std::uint32_t> seen(q.begin(), q.end());
  EXPECT_EQ(seen.size(), q.size());
  bool in_cached_part = false;
  for (std::uint32_t b : q) {
    EXPECT_EQ(cache.ref_count(BlockId{b}), 0u);
    const bool cached = cache.block_hash(BlockId{b}).has_value();
    if (cached) in_cached_part = true;
    EXPECT_FALSE(in_cached_part && !cached) << "uncached block " << b << " after a cached one";
  }
  // The uncached tail of request 4 (block 3) is reused first.
  EXPECT_EQ(q.front(), 3u);
}

TEST_P(EveryPolicy, ResetForgetsEveryHashAndPolicyState) {
  PrefixCache cache(cfg(4));
  for (std::uint64_t v = 1; v <= 3; ++v) touch(cache, v);
  touch(cache, 1);
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(cache.num_cached_blocks(), 0u);
  for (std::uint64_t v = 1; v <= 3; ++v) EXPECT_FALSE(resident(cache, v));
  // After the reset every block is uncached: no reuse is an eviction.
  for (std::uint64_t v = 10; v <= 13; ++v) hold(cache, v, v);
  EXPECT_EQ(cache.stats().evictions, 0u);
  EXPECT_EQ(cache.num_free_blocks(), 0u);
  EXPECT_NO_THROW(cache.check_invariants());
}

INSTANTIATE_TEST_SUITE_P(Policies, EveryPolicy, ::testing::ValuesIn(testing_util::all_policies()),
                         testing_util::policy_name);

}  // namespace
}  // namespace kvscope
