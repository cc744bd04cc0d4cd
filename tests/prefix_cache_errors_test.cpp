// Bad configuration throws std::invalid_argument; bad input is an expected
// outcome (a Result with a Status) that leaves the cache unchanged: same free
// queue, same hashes and ref counts, same stats (allocation_failures aside,
// which counts not_enough_blocks refusals).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <stdexcept>
#include <vector>

#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::config;
using testing_util::expect_unchanged;
using testing_util::hash_ids;
using testing_util::hashed;
using testing_util::seq;
using testing_util::Snapshot;
using testing_util::table_of;
using V = std::vector<std::uint32_t>;

constexpr std::uint32_t kBs = 4;

// ---------------------------------------------------------------- configuration

TEST(PrefixCacheConfig, ValidConfigurationsPass) {
  EXPECT_NO_THROW(config(1, 1).validate());
  EXPECT_NO_THROW(config(1024, 16).validate());
  PrefixCacheConfig c = config(10, 16, EvictionPolicyKind::s3fifo);
  c.s3fifo_small_ratio = 0.5;
  EXPECT_NO_THROW(c.validate());
  EXPECT_NO_THROW(PrefixCache{c});
}

TEST(PrefixCacheConfig, ZeroBlocksThrowsInvalidArgument) {
  EXPECT_THROW(config(0, 16).validate(), std::invalid_argument);
  EXPECT_THROW(PrefixCache{config(0, 16)}, std::invalid_argument);
  // The default-constructed config has no pool.
  EXPECT_THROW(PrefixCacheConfig{}.validate(), std::invalid_argument);
}

TEST(PrefixCacheConfig, ZeroBlockSizeThrowsInvalidArgument) {
  EXPECT_THROW(config(8, 0).validate(), std::invalid_argument);
  EXPECT_THROW(PrefixCache{config(8, 0)}, std::invalid_argument);
}

TEST(PrefixCacheConfig, PoolAboveTwoToThe31ThrowsInvalidArgument) {
  EXPECT_THROW(config((1u << 31) + 1, 16).validate(), std::invalid_argument);
  EXPECT_THROW(config(std::numeric_limits<std::uint32_t>::max(), 16).validate(),
               std::invalid_argument);
}

TEST(PrefixCacheConfig, SmallQueueRatioOutsideOpenUnitIntervalThrows) {
  for (double bad : {0.0, 1.0, -0.1, 1.5, std::nan("")}) {
    PrefixCacheConfig c = config(10, 4, EvictionPolicyKind::s3fifo);
    c.s3fifo_small_ratio = bad;
    EXPECT_THROW(c.validate(), std::invalid_argument) << "ratio " << bad;
    EXPECT_THROW(PrefixCache{c}, std::invalid_argument) << "ratio " << bad;
  }
}

// ---------------------------------------------------------------- bad input

// Builds a cache with live requests, cached free blocks and a partly used
// pool so that "unchanged" is a meaningful statement:
//   pool 8, block size 4
//   A  (id 1, 10 tokens, live)        -> blocks 0,1,2 (0,1 cached)
//   B  (id 2, 8 tokens, freed)        -> blocks 3,4 cached and free
//   H  (id 3, hash mode, 6 tokens, 1 hash, live) -> blocks 5,6 (5 cached)
//   free: block 7 (uncached) + blocks 3,4 (cached)
class BadInput : public ::testing::TestWithParam<EvictionPolicyKind> {
 protected:
  void SetUp() override {
    cache_ = std::make_unique<PrefixCache>(config(8, kBs, GetParam()));
    ASSERT_TRUE(cache_->allocate(Request::with_tokens(RequestId{1}, a_)).ok());
    ASSERT_TRUE(cache_->allocate(Request::with_tokens(RequestId{2}, b_)).ok());
    ASSERT_TRUE(cache_->free(RequestId{2}).ok());
    ASSERT_TRUE(cache_->allocate(hashed(3, 6, h_)).ok());
    ASSERT_EQ(cache_->num_free_blocks(), 3u);
    ASSERT_EQ(cache_->num_cached_blocks(), 5u);
    before_ = Snapshot::of(*cache_);
  }

  void expect_nothing_changed(bool allocation_failure = false) {
    const Snapshot after = Snapshot::of(*cache_);
    expect_unchanged(before_, after);
    EXPECT_EQ(after.stats.allocation_failures,
              before_.stats.allocation_failures + (allocation_failure ? 1u : 0u));
    EXPECT_EQ(table_of(*cache_, 1), (V{0, 1, 2}));
    EXPECT_EQ(table_of(*cache_, 3), (V{5, 6}));
    EXPECT_EQ(cache_->num_tokens(RequestId{1}).value(), 10u);
    EXPECT_EQ(cache_->num_tokens(RequestId{3}).value(), 6u);
    EXPECT_NO_THROW(cache_->check_invariants());
  }

  PrefixCache& cache() { return *cache_; }

  std::vector<TokenId> a_ = seq(10, 100);
  std::vector<TokenId> b_ = seq(8, 200);
  std::vector<BlockHash> h_ = hash_ids({77});
  std::unique_ptr<PrefixCache> cache_;
  Snapshot before_;
};

TEST_P(BadInput, AllocateWithoutTokensIsAnEmptyRequest) {
  const std::vector<TokenId> none;
  EXPECT_EQ(cache().allocate(Request::with_tokens(RequestId{9}, none)).status(),
            Status::empty_request);
  EXPECT_EQ(cache().lookup(Request::with_tokens(RequestId{9}, none)).status(),
            Status::empty_request);
  expect_nothing_changed();
}

// 8 tokens with block size 4 take 2 hashes (floor = ceil = 2); 9 tokens take
// 2 (floor) or 3 (ceil, sealed). Anything else is invalid_hashes.
TEST_P(BadInput, HashCountThatMatchesNeitherFloorNorCeilIsInvalid) {
  const auto one = hash_ids({10});
  const auto three = hash_ids({10, 11, 12});
  const auto four = hash_ids({10, 11, 12, 13});
  EXPECT_EQ(cache().allocate(hashed(9, 8, one)).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().allocate(hashed(9, 8, three)).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().allocate(hashed(9, 9, one)).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().allocate(hashed(9, 9, four)).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().lookup(hashed(9, 8, three)).status(), Status::invalid_hashes);
  expect_nothing_changed();
  EXPECT_EQ(cache().block_table(RequestId{9}).status(), Status::unknown_request);
}

TEST_P(BadInput, AllocateWithALiveIdIsADuplicate) {
  const auto other = seq(4, 5000);
  EXPECT_EQ(cache().allocate(Request::with_tokens(RequestId{1}, other)).status(),
            Status::duplicate_request);
  EXPECT_EQ(cache().allocate(Request::with_tokens(RequestId{3}, a_)).status(),
            Status::duplicate_request);
  expect_nothing_changed();
}

TEST_P(BadInput, AllocateLargerThanThePoolIsTooLarge) {
  const auto big = seq(33, 5000);  // 9 blocks > 8
  EXPECT_EQ(cache().allocate(Request::with_tokens(RequestId{9}, big)).status(),
            Status::request_too_large);
  std::vector<BlockHash> nine;
  for (std::uint64_t v = 0; v < 9; ++v) nine.push_back(BlockHash::from_id(500 + v));
  EXPECT_EQ(cache().allocate(hashed(9, 36, nine)).status(), Status::request_too_large);
  const Snapshot after = Snapshot::of(cache());
  expect_unchanged(before_, after);
}

// 16 fresh tokens need 4 blocks; 3 are free.
TEST_P(BadInput, AllocateBeyondTheFreeBlocksFailsAndCountsOneFailure) {
  const auto t = seq(16, 5000);
  EXPECT_EQ(cache().allocate(Request::with_tokens(RequestId{9}, t)).status(),
            Status::not_enough_blocks);
  expect_nothing_changed(/*allocation_failure=*/true);
}

TEST_P(BadInput, UnknownIdsAreRefusedByEveryOperation) {
  const auto t = seq(2, 1);
  const auto hs = hash_ids({1});
  EXPECT_EQ(cache().append(RequestId{2}, t).status(), Status::unknown_request);  // freed
  EXPECT_EQ(cache().append(RequestId{42}, t).status(), Status::unknown_request);
  EXPECT_EQ(cache().append_hashes(RequestId{42}, 2, hs).status(), Status::unknown_request);
  EXPECT_EQ(cache().free(RequestId{42}).status(), Status::unknown_request);
  EXPECT_EQ(cache().free(RequestId{2}, FreeOrder::forward).status(), Status::unknown_request);
  EXPECT_EQ(cache().block_table(RequestId{42}).status(), Status::unknown_request);
  EXPECT_EQ(cache().num_tokens(RequestId{42}).status(), Status::unknown_request);
  expect_nothing_changed();
}

TEST_P(BadInput, FreeingTwiceIsAnUnknownRequestTheSecondTime) {
  ASSERT_TRUE(cache().free(RequestId{1}).ok());
  const Snapshot mid = Snapshot::of(cache());
  EXPECT_EQ(cache().free(RequestId{1}).status(), Status::unknown_request);
  expect_unchanged(mid, Snapshot::of(cache()));
}

TEST_P(BadInput, TokenAppendToAHashModeRequestIsInvalidHashes) {
  const auto t = seq(2, 1);
  EXPECT_EQ(cache().append(RequestId{3}, t).status(), Status::invalid_hashes);
  expect_nothing_changed();
}

TEST_P(BadInput, AppendHashesToATokenModeRequestIsInvalidHashes) {
  const auto hs = hash_ids({1});
  EXPECT_EQ(cache().append_hashes(RequestId{1}, 2, hs).status(), Status::invalid_hashes);
  expect_nothing_changed();
}

// H has 6 tokens and 1 hash. +2 tokens (8) completes block 1: exactly 1 hash.
// +7 tokens (13): 2 completed blocks, plus optionally the partial tail: 2 or 3.
TEST_P(BadInput, AppendHashesWithAWrongCountIsInvalidHashes) {
  const auto none = std::vector<BlockHash>{};
  const auto two = hash_ids({90, 91});
  const auto one = hash_ids({90});
  const auto four = hash_ids({90, 91, 92, 93});
  EXPECT_EQ(cache().append_hashes(RequestId{3}, 2, none).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().append_hashes(RequestId{3}, 2, two).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().append_hashes(RequestId{3}, 7, one).status(), Status::invalid_hashes);
  EXPECT_EQ(cache().append_hashes(RequestId{3}, 7, four).status(), Status::invalid_hashes);
  expect_nothing_changed();
}

// A has 10 tokens in 3 blocks; 23 more tokens make 33 -> 9 blocks > 8.
TEST_P(BadInput, AppendBeyondThePoolIsTooLarge) {
  const auto t = seq(23, 7000);
  EXPECT_EQ(cache().append(RequestId{1}, t).status(), Status::request_too_large);
  const Snapshot after = Snapshot::of(cache());
  expect_unchanged(before_, after);
  EXPECT_EQ(cache().num_tokens(RequestId{1}).value(), 10u);
}

// A has 10 tokens in 3 blocks; 18 more make 28 -> 7 blocks: 4 new > 3 free.
// All or nothing: block 2 is not even filled.
TEST_P(BadInput, AppendBeyondTheFreeBlocksFailsAndCountsOneFailure) {
  const auto t = seq(18, 7000);
  EXPECT_EQ(cache().append(RequestId{1}, t).status(), Status::not_enough_blocks);
  expect_nothing_changed(/*allocation_failure=*/true);
  // 14 more tokens make 24 -> 6 blocks: exactly the 3 free ones.
  const auto fits = seq(14, 7000);
  auto r = cache().append(RequestId{1}, fits);
  ASSERT_TRUE(r.ok()) << to_string(r.status());
  EXPECT_EQ(r->new_blocks, 3u);
  EXPECT_EQ(cache().num_free_blocks(), 0u);
}

TEST_P(BadInput, ResetWhileRequestsAreLiveIsRefused) {
  EXPECT_EQ(cache().reset().status(), Status::blocks_in_use);
  expect_nothing_changed();
}

TEST_P(BadInput, LookupOfAGoodRequestChangesNothing) {
  auto r = cache().lookup(Request::with_tokens(RequestId{9}, b_));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 1u);  // 8 tokens: cap 7 -> 1 block
  auto again = cache().lookup(Request::with_tokens(RequestId{1}, a_));  // live id is fine
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->hit_blocks, 2u);
  EXPECT_EQ(cache().stats().probes.requests, 2u);
  before_.stats.probes = cache().stats().probes;  // the one counter a probe bumps
  expect_nothing_changed();
}

INSTANTIATE_TEST_SUITE_P(Policies, BadInput, ::testing::ValuesIn(testing_util::all_policies()),
                         testing_util::policy_name);

}  // namespace
}  // namespace kvscope
