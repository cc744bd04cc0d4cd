// QueryCounts / PrefixCacheStats: merging, rates and the JSON form.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kvscope/export/json.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/prefix_cache_stats.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

QueryCounts counts(std::uint64_t req, std::uint64_t qt, std::uint64_t ht, std::uint64_t qb,
                   std::uint64_t hb) {
  QueryCounts c;
  c.requests = req;
  c.query_tokens = qt;
  c.hit_tokens = ht;
  c.query_blocks = qb;
  c.hit_blocks = hb;
  return c;
}

PrefixCacheStats sample_stats() {
  PrefixCacheStats s;
  s.fresh = counts(4, 100, 25, 10, 2);
  s.preempted = counts(1, 40, 30, 4, 3);
  s.allocation_failures = 5;
  s.evictions = 6;
  s.resets = 7;
  return s;
}

TEST(QueryCounts, MergeAddsEveryField) {
  QueryCounts a = counts(1, 2, 3, 4, 5);
  const QueryCounts b = counts(10, 20, 30, 40, 50);
  QueryCounts& ref = (a += b);
  EXPECT_EQ(&ref, &a);
  EXPECT_EQ(a, counts(11, 22, 33, 44, 55));
}

TEST(QueryCounts, HitRatesAreZeroWhenNothingWasQueried) {
  const QueryCounts empty;
  EXPECT_EQ(empty.token_hit_rate(), 0.0);
  EXPECT_EQ(empty.block_hit_rate(), 0.0);
}

TEST(QueryCounts, HitRatesDivideHitsByQueries) {
  const QueryCounts c = counts(3, 200, 50, 8, 6);
  EXPECT_DOUBLE_EQ(c.token_hit_rate(), 0.25);
  EXPECT_DOUBLE_EQ(c.block_hit_rate(), 0.75);
}

TEST(PrefixCacheStatsStruct, MergeAddsEveryCounter) {
  PrefixCacheStats a = sample_stats();
  PrefixCacheStats b = sample_stats();
  b.resets = 1;
  PrefixCacheStats& ref = (a += b);
  EXPECT_EQ(&ref, &a);
  EXPECT_EQ(a.fresh, counts(8, 200, 50, 20, 4));
  EXPECT_EQ(a.preempted, counts(2, 80, 60, 8, 6));
  EXPECT_EQ(a.allocation_failures, 10u);
  EXPECT_EQ(a.evictions, 12u);
  EXPECT_EQ(a.resets, 8u);
}

TEST(PrefixCacheStatsStruct, HitRateIsTheFreshTokenHitRate) {
  const PrefixCacheStats s = sample_stats();
  EXPECT_DOUBLE_EQ(s.hit_rate(), 0.25);  // preempted 30/40 does not count
  EXPECT_EQ(PrefixCacheStats{}.hit_rate(), 0.0);
}

TEST(PrefixCacheStatsStruct, ToJsonIsOneObjectWithTheDocumentedFields) {
  const PrefixCacheStats s = sample_stats();
  const nlohmann::json j = nlohmann::json::parse(to_json(s));
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("requests").get<std::uint64_t>(), 4u);
  EXPECT_EQ(j.at("queries").get<std::uint64_t>(), 100u);
  EXPECT_EQ(j.at("hits").get<std::uint64_t>(), 25u);
  EXPECT_EQ(j.at("query_blocks").get<std::uint64_t>(), 10u);
  EXPECT_EQ(j.at("hit_blocks").get<std::uint64_t>(), 2u);
  EXPECT_DOUBLE_EQ(j.at("hit_rate").get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j.at("block_hit_rate").get<double>(), 0.2);
  EXPECT_EQ(j.at("allocation_failures").get<std::uint64_t>(), 5u);
  EXPECT_EQ(j.at("evictions").get<std::uint64_t>(), 6u);
  EXPECT_EQ(j.at("resets").get<std::uint64_t>(), 7u);
  const nlohmann::json& p = j.at("preempted");
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p.at("requests").get<std::uint64_t>(), 1u);
  EXPECT_EQ(p.at("queries").get<std::uint64_t>(), 40u);
  EXPECT_EQ(p.at("hits").get<std::uint64_t>(), 30u);
  EXPECT_EQ(p.at("query_blocks").get<std::uint64_t>(), 4u);
  EXPECT_EQ(p.at("hit_blocks").get<std::uint64_t>(), 3u);
}

TEST(PrefixCacheStatsStruct, ToJsonOfEmptyStatsHasZeroRates) {
  const nlohmann::json j = nlohmann::json::parse(to_json(PrefixCacheStats{}));
  EXPECT_EQ(j.at("requests").get<std::uint64_t>(), 0u);
  EXPECT_EQ(j.at("hit_rate").get<double>(), 0.0);
  EXPECT_EQ(j.at("block_hit_rate").get<double>(), 0.0);
}

TEST(PrefixCacheStatsStruct, ToJsonKeepsLargeCountersExact) {
  PrefixCacheStats s;
  s.fresh.query_tokens = 0xFFFF'FFFF'FFFF'FFF0ULL;
  s.evictions = (1ULL << 53) + 1;  // not representable as a double
  const nlohmann::json j = nlohmann::json::parse(to_json(s));
  EXPECT_EQ(j.at("queries").get<std::uint64_t>(), 0xFFFF'FFFF'FFFF'FFF0ULL);
  EXPECT_EQ(j.at("evictions").get<std::uint64_t>(), (1ULL << 53) + 1);
}

// Two caches' stats merge into what one cache doing both workloads reports.
TEST(PrefixCacheStatsStruct, MergingShardStatsEqualsTheSumOfTheirWork) {
  PrefixCache one(testing_util::config(8, 4));
  PrefixCache two(testing_util::config(8, 4));
  const auto t = testing_util::seq(10, 1);
  ASSERT_TRUE(one.allocate(Request::with_tokens(RequestId{1}, t)).ok());
  ASSERT_TRUE(one.allocate(Request::with_tokens(RequestId{2}, t)).ok());
  ASSERT_TRUE(two.allocate(Request::with_tokens(RequestId{1}, t)).ok());
  PrefixCacheStats merged = one.stats();
  merged += two.stats();
  EXPECT_EQ(merged.fresh.requests, 3u);
  EXPECT_EQ(merged.fresh.query_tokens, 30u);
  EXPECT_EQ(merged.fresh.hit_tokens, 8u);
  EXPECT_EQ(merged.fresh.query_blocks, 9u);
  EXPECT_EQ(merged.fresh.hit_blocks, 2u);
}

}  // namespace
}  // namespace kvscope
