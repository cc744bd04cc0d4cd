// TopPrefixes (space-saving heavy hitters) and PrefixMetrics (per-prefix,
// per-tenant, per-adapter and per-stop breakdowns of admissions), fed by a
// real PrefixCache. Pools are large enough that nothing is evicted;
// block_size is 4 and the default hit cap (num_tokens - 1) applies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvscope/export/json.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/metrics/prefix_metrics.hpp"
#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using nlohmann::json;
using testing_util::chain;
using testing_util::config;
using testing_util::seq;

constexpr std::uint32_t kBs = 4;

BlockHash P(std::uint64_t id) { return BlockHash::from_id(id); }

PrefixEntry entry(std::uint64_t id, std::uint32_t blocks, std::uint64_t hits, std::uint64_t error,
                  std::uint64_t hit_tokens) {
  PrefixEntry e;
  e.prefix = P(id);
  e.prefix_blocks = blocks;
  e.hits = hits;
  e.error = error;
  e.hit_tokens = hit_tokens;
  return e;
}

// ---------------------------------------------------------------- TopPrefixes

TEST(TopPrefixes, CapacityMustBeOneTo4096) {
  EXPECT_THROW(TopPrefixes(0), std::invalid_argument);
  EXPECT_THROW(TopPrefixes(4097), std::invalid_argument);
  EXPECT_EQ(TopPrefixes(1).capacity(), 1u);
  EXPECT_EQ(TopPrefixes(4096).capacity(), 4096u);
  EXPECT_TRUE(TopPrefixes(8).top().empty());
  EXPECT_EQ(TopPrefixes(8).records(), 0u);
}

// Three distinct prefixes, capacity 4: counts are exact (no error).
TEST(TopPrefixes, CountsAreExactWhileDistinctPrefixesFit) {
  TopPrefixes top(4);
  for (int i = 0; i < 3; ++i) top.record(P(1), 2, 8);
  top.record(P(2), 1, 4);
  for (int i = 0; i < 2; ++i) top.record(P(3), 3, 12);
  EXPECT_EQ(top.records(), 6u);
  EXPECT_EQ(top.top(), (std::vector<PrefixEntry>{entry(1, 2, 3, 0, 24), entry(3, 3, 2, 0, 24),
                                                 entry(2, 1, 1, 0, 4)}));
}

TEST(TopPrefixes, TiesPutTheLongerPrefixFirst) {
  TopPrefixes top(4);
  top.record(P(10), 2, 8);
  top.record(P(11), 5, 20);
  top.record(P(10), 2, 8);
  top.record(P(11), 5, 20);
  const auto t = top.top();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].prefix, P(11));
  EXPECT_EQ(t[1].prefix, P(10));
}

// Capacity 1: each new prefix replaces the only entry and inherits its count
// as error. A, A, B -> B with hits 3, error 2.
TEST(TopPrefixes, ReplacementInheritsTheSmallestCountAsError) {
  TopPrefixes top(1);
  top.record(P(1), 1, 4);
  top.record(P(1), 1, 4);
  top.record(P(2), 2, 8);
  const auto t = top.top();
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].prefix, P(2));
  EXPECT_EQ(t[0].prefix_blocks, 2u);
  EXPECT_EQ(t[0].hits, 3u);
  EXPECT_EQ(t[0].error, 2u);
  EXPECT_EQ(t[0].hits - t[0].error, 1u);
}

// Capacity K = 20 over a shuffled stream of N = 3,350 records: heavy
// prefixes 1..5 with 500, 400, 300, 200, 150 records and 900 light ones with
// 2 each. N / K = 167.5, so prefixes 1..4 must be tracked; every tracked
// entry brackets its true count; errors never exceed N / K; the counters sum
// to N; the list is sorted by hits.
TEST(TopPrefixes, SpaceSavingGuaranteesHoldOnASkewedStream) {
  constexpr std::uint32_t K = 20;
  std::map<std::uint64_t, std::uint64_t> truth;
  std::vector<std::uint64_t> stream;
  const std::uint64_t heavy[] = {500, 400, 300, 200, 150};
  for (std::uint64_t k = 0; k < 5; ++k) truth[k + 1] = heavy[k];
  for (std::uint64_t k = 100; k < 1000; ++k) truth[k] = 2;
  for (const auto& [key, n] : truth) stream.insert(stream.end(), n, key);
  std::mt19937_64 rng(2024);
  std::shuffle(stream.begin(), stream.end(), rng);
  const std::uint64_t N = stream.size();
  ASSERT_EQ(N, 3'350u);

  TopPrefixes top(K);
  for (const std::uint64_t key : stream) top.record(P(key), 1, 4);
  EXPECT_EQ(top.records(), N);
  const auto t = top.top();
  ASSERT_EQ(t.size(), K);
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const PrefixEntry& e = t[i];
    const std::uint64_t true_count = truth.at(e.prefix.low);
    EXPECT_LE(e.hits - e.error, true_count) << e.prefix.low;
    EXPECT_GE(e.hits, true_count) << e.prefix.low;
    EXPECT_LE(e.error * K, N) << e.prefix.low;
    if (i > 0) {
      EXPECT_GE(t[i - 1].hits, e.hits);
    }
    sum += e.hits;
  }
  EXPECT_EQ(sum, N);
  for (std::uint64_t key = 1; key <= 4; ++key) {
    EXPECT_TRUE(
        std::any_of(t.begin(), t.end(), [&](const PrefixEntry& e) { return e.prefix == P(key); }))
        << "prefix " << key << " has more than N/K records";
  }
  EXPECT_EQ(t[0].prefix, P(1)) << "500 > any other upper bound";
}

// ---------------------------------------------------------------- PrefixMetrics

CacheSalt salt(const char* name) { return CacheSalt::from_string(name); }

ExtraKeys tenant(const char* name) {
  ExtraKeys e;
  e.salt = salt(name);
  return e;
}

ExtraKeys adapter(std::uint64_t id) {
  ExtraKeys e;
  e.adapter_id = id;
  return e;
}

/// Admits `tokens` (allocate, record, free) and returns the allocation.
class Admitter {
 public:
  explicit Admitter(const MetricsConfig& cfg) : cache_(config(256, kBs)), metrics_(cfg) {}

  AllocateResult admit(const std::vector<TokenId>& tokens, ExtraKeys extras = {},
                       bool preempted = false) {
    Request r = Request::with_tokens(RequestId{next_id_++}, tokens, std::move(extras));
    r.preempted = preempted;
    const auto a = cache_.allocate(r);
    EXPECT_TRUE(a.ok()) << to_string(a.status());
    if (!a.ok()) return {};
    metrics_.record_admission(r, *a);
    EXPECT_TRUE(cache_.free(r.id).ok());
    return *a;
  }
  PrefixMetrics& metrics() { return metrics_; }

 private:
  PrefixCache cache_;
  PrefixMetrics metrics_;
  std::uint64_t next_id_ = 1;
};

MetricsConfig small_config() {
  MetricsConfig c;
  c.top_prefixes = 8;
  c.max_tenants = 2;
  c.max_adapters = 2;
  return c;
}

TEST(PrefixMetrics, ConstructorRejectsABadConfig) {
  MetricsConfig c;
  c.top_prefixes = 0;
  EXPECT_THROW(PrefixMetrics{c}, std::invalid_argument);
}

TEST(PrefixMetrics, EmptyTenantNameIsRejected) {
  PrefixMetrics m(small_config());
  EXPECT_THROW(m.set_tenant_name(salt("alice"), ""), std::invalid_argument);
}

// max_tenants = 2; alice and bob are named.
//   R1 alice 10 tokens: miss (3 blocks)         -> alice fresh
//   R2 alice same:      hits 2 blocks, 8 tokens -> alice fresh
//   R3 bob 5 tokens:    miss (2 blocks)         -> bob
//   R4 carol 3 tokens:  too short (1 block)     -> other (third salt)
//   R5 no salt 8 tokens: miss (2 blocks)        -> none
//   R6 alice same as R1, preempted: hits 2 blocks -> alice preempted
TEST(PrefixMetrics, CountsPerTenantWithNoneAndOtherBucketsAndPreemptedApart) {
  Admitter a(small_config());
  a.metrics().set_tenant_name(salt("alice"), "alice");
  a.metrics().set_tenant_name(salt("bob"), "bob");
  const auto prompt = seq(10, 100);
  EXPECT_EQ(a.admit(prompt, tenant("alice")).lookup.hit_blocks, 0u);
  EXPECT_EQ(a.admit(prompt, tenant("alice")).lookup.hit_blocks, 2u);
  EXPECT_EQ(a.admit(seq(5, 100), tenant("bob")).lookup.hit_blocks, 0u);
  EXPECT_EQ(a.admit(seq(3, 100), tenant("carol")).lookup.stop, LookupStop::too_short);
  EXPECT_EQ(a.admit(seq(8, 100)).lookup.hit_blocks, 0u);
  EXPECT_EQ(a.admit(prompt, tenant("alice"), true).lookup.hit_blocks, 2u);

  const PrefixSnapshot s = a.metrics().snapshot();
  std::vector<std::string> keys;
  for (const auto& [name, counts] : s.tenants) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"alice", "bob", "none", "other"}));
  EXPECT_EQ(s.tenants.at("alice").fresh, (QueryCounts{2, 20, 8, 6, 2}));
  EXPECT_EQ(s.tenants.at("alice").preempted, (QueryCounts{1, 10, 8, 3, 2}));
  EXPECT_EQ(s.tenants.at("bob").fresh, (QueryCounts{1, 5, 0, 2, 0}));
  EXPECT_EQ(s.tenants.at("other").fresh, (QueryCounts{1, 3, 0, 1, 0}));
  EXPECT_EQ(s.tenants.at("none").fresh, (QueryCounts{1, 8, 0, 2, 0}));
  EXPECT_EQ(s.tenants.at("none").preempted, QueryCounts{});
  // No adapter anywhere: everything under "none".
  ASSERT_EQ(s.adapters.size(), 1u);
  EXPECT_EQ(s.adapters.at("none").fresh, (QueryCounts{5, 36, 8, 11, 2}));
  EXPECT_EQ(s.adapters.at("none").preempted, (QueryCounts{1, 10, 8, 3, 2}));
}

// Stops of fresh admissions: R1, R3, R5 not_resident; R2 all_blocks_hit;
// R4 too_short (1 of 5: share 0.2). The preempted R6 is not counted. Only
// R2's hit (8 tokens) is in the hit-length histogram.
TEST(PrefixMetrics, CountsStopsAndHitLengthsOfFreshAdmissions) {
  Admitter a(small_config());
  const auto prompt = seq(10, 100);
  a.admit(prompt);
  a.admit(prompt);
  a.admit(seq(5, 500));
  a.admit(seq(3, 900));
  a.admit(seq(8, 700));
  a.admit(prompt, {}, true);
  const PrefixSnapshot s = a.metrics().snapshot();
  EXPECT_EQ(s.stop_count(LookupStop::not_resident), 3u);
  EXPECT_EQ(s.stop_count(LookupStop::all_blocks_hit), 1u);
  EXPECT_EQ(s.stop_count(LookupStop::too_short), 1u);
  EXPECT_EQ(s.stop_count(LookupStop::hit_cap), 0u);
  EXPECT_DOUBLE_EQ(s.too_short_share(), 0.2);
  EXPECT_EQ(s.hit_length_tokens.count(), 1u);
  EXPECT_EQ(s.hit_length_tokens.sum(), 8u);
}

// The 8-token prompt seen twice: the second may hit only 7 tokens -> 1 block
// (hit_cap), 4 tokens.
TEST(PrefixMetrics, CountsHitCapStops) {
  Admitter a(small_config());
  a.admit(seq(8, 100));
  const auto r = a.admit(seq(8, 100));
  EXPECT_EQ(r.lookup.stop, LookupStop::hit_cap);
  const PrefixSnapshot s = a.metrics().snapshot();
  EXPECT_EQ(s.stop_count(LookupStop::hit_cap), 1u);
  EXPECT_EQ(s.stop_count(LookupStop::not_resident), 1u);
  EXPECT_EQ(s.hit_length_tokens.sum(), 4u);
  EXPECT_EQ(PrefixSnapshot{}.too_short_share(), 0.0);
}

// max_adapters = 2: adapters 7 and 9 get their own counters, 11 goes to
// "other"; adapter 7's prompt seen twice hits 1 block (5 tokens, cap 4).
TEST(PrefixMetrics, CountsPerAdapterInDecimalWithAnOtherBucket) {
  Admitter a(small_config());
  a.admit(seq(5, 1000), adapter(7));
  a.admit(seq(5, 2000), adapter(9));
  a.admit(seq(5, 3000), adapter(11));
  EXPECT_EQ(a.admit(seq(5, 1000), adapter(7)).lookup.hit_tokens, 4u);
  const PrefixSnapshot s = a.metrics().snapshot();
  std::vector<std::string> keys;
  for (const auto& [name, counts] : s.adapters) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"7", "9", "other"}));
  EXPECT_EQ(s.adapters.at("7").fresh, (QueryCounts{2, 10, 4, 4, 1}));
  EXPECT_EQ(s.adapters.at("9").fresh, (QueryCounts{1, 5, 0, 2, 0}));
  EXPECT_EQ(s.adapters.at("other").fresh, (QueryCounts{1, 5, 0, 2, 0}));
  ASSERT_EQ(s.tenants.size(), 1u);
  EXPECT_EQ(s.tenants.at("none").fresh, (QueryCounts{4, 20, 4, 8, 1}));
}

TEST(PrefixMetrics, UnnamedTenantsAreNamedSaltAndSixteenHexDigits) {
  Admitter a(small_config());
  a.admit(seq(5, 100), tenant("dave"));
  const PrefixSnapshot s = a.metrics().snapshot();
  ASSERT_EQ(s.tenants.size(), 1u);
  const std::string name = s.tenants.begin()->first;
  ASSERT_EQ(name.size(), 5u + 16u) << name;
  EXPECT_EQ(name.substr(0, 5), "salt:");
  for (const char c : name.substr(5)) EXPECT_TRUE(std::isxdigit(static_cast<unsigned char>(c)));
}

// Prefix A = blocks 0..1 of seq(10, 100) serves 2 hits of 8 tokens; prefix
// B = block 0 of seq(5, 500) serves 1 hit of 4 tokens. Misses record none.
TEST(PrefixMetrics, TopPrefixesNameThePrefixesThatServedHits) {
  Admitter a(small_config());
  const auto pa = seq(10, 100);
  const auto pb = seq(5, 500);
  a.admit(pa);
  a.admit(pb);
  a.admit(pa);
  a.admit(pb);
  a.admit(pa);
  const PrefixSnapshot s = a.metrics().snapshot();
  EXPECT_EQ(s.top_capacity, 8u);
  PrefixEntry ea;
  ea.prefix = chain(kBs, pa)[1];
  ea.prefix_blocks = 2;
  ea.hits = 2;
  ea.hit_tokens = 16;
  PrefixEntry eb;
  eb.prefix = chain(kBs, pb)[0];
  eb.prefix_blocks = 1;
  eb.hits = 1;
  eb.hit_tokens = 4;
  EXPECT_EQ(s.top_prefixes, (std::vector<PrefixEntry>{ea, eb}));
}

// ---------------------------------------------------------------- PrefixSnapshot

// a: P1 5 hits, P2 3; b: P2 4, P3 1; capacity 2 -> P2 7, P1 5 (P3 dropped).
TEST(PrefixSnapshot, PlusEqualsCombinesTopListsByPrefixAndAddsEverythingElse) {
  PrefixSnapshot a, b;
  a.top_capacity = b.top_capacity = 2;
  a.top_prefixes = {entry(1, 2, 5, 0, 40), entry(2, 1, 3, 1, 12)};
  b.top_prefixes = {entry(2, 1, 4, 0, 16), entry(3, 3, 1, 0, 12)};
  a.stops = {1, 2, 3, 4};
  b.stops = {10, 20, 30, 40};
  a.hit_length_tokens.record(8);
  b.hit_length_tokens.record(16);
  a.tenants["alice"].fresh = QueryCounts{1, 10, 4, 3, 1};
  b.tenants["alice"].fresh = QueryCounts{2, 20, 8, 6, 2};
  b.tenants["bob"].preempted = QueryCounts{1, 5, 0, 2, 0};
  b.adapters["7"].fresh = QueryCounts{1, 1, 1, 1, 1};

  a += b;
  EXPECT_EQ(a.top_capacity, 2u);
  ASSERT_EQ(a.top_prefixes.size(), 2u);
  EXPECT_EQ(a.top_prefixes[0].prefix, P(2));
  EXPECT_EQ(a.top_prefixes[0].hits, 7u);
  EXPECT_EQ(a.top_prefixes[0].error, 1u);
  EXPECT_EQ(a.top_prefixes[0].hit_tokens, 28u);
  EXPECT_EQ(a.top_prefixes[0].prefix_blocks, 1u);
  EXPECT_EQ(a.top_prefixes[1].prefix, P(1));
  EXPECT_EQ(a.top_prefixes[1].hits, 5u);
  EXPECT_EQ(a.top_prefixes[1].hit_tokens, 40u);
  EXPECT_EQ(a.stops, (StopCounts{11, 22, 33, 44}));
  EXPECT_EQ(a.hit_length_tokens.count(), 2u);
  EXPECT_EQ(a.hit_length_tokens.sum(), 24u);
  EXPECT_EQ(a.tenants.at("alice").fresh, (QueryCounts{3, 30, 12, 9, 3}));
  EXPECT_EQ(a.tenants.at("bob").preempted, (QueryCounts{1, 5, 0, 2, 0}));
  EXPECT_EQ(a.adapters.at("7").fresh, (QueryCounts{1, 1, 1, 1, 1}));
}

TEST(LabelledCounts, PlusEqualsAddsFreshAndPreempted) {
  LabelledCounts a{QueryCounts{1, 2, 3, 4, 5}, QueryCounts{1, 1, 1, 1, 1}};
  a += LabelledCounts{QueryCounts{1, 1, 1, 1, 1}, QueryCounts{2, 2, 2, 2, 2}};
  EXPECT_EQ(a.fresh, (QueryCounts{2, 3, 4, 5, 6}));
  EXPECT_EQ(a.preempted, (QueryCounts{3, 3, 3, 3, 3}));
}

TEST(PrefixSnapshot, ToJsonParsesWithTheDocumentedKeys) {
  Admitter a(small_config());
  a.metrics().set_tenant_name(salt("alice"), "alice");
  const auto prompt = seq(10, 100);
  a.admit(prompt, tenant("alice"));
  a.admit(prompt, tenant("alice"));
  a.admit(seq(2, 900));
  const json j = json::parse(to_json(a.metrics().snapshot()));
  ASSERT_TRUE(j.is_object());
  for (const char* key :
       {"top_prefixes", "hit_length_tokens", "stops", "too_short_share", "tenants", "adapters"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  ASSERT_TRUE(j["top_prefixes"].is_array());
  ASSERT_EQ(j["top_prefixes"].size(), 1u);
  for (const char* key : {"prefix", "prefix_blocks", "hits", "error", "hit_tokens"}) {
    EXPECT_TRUE(j["top_prefixes"][0].contains(key)) << key;
  }
  EXPECT_EQ(j["top_prefixes"][0]["hits"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(j["top_prefixes"][0]["prefix_blocks"].get<std::uint32_t>(), 2u);
  EXPECT_DOUBLE_EQ(j["too_short_share"].get<double>(), 1.0 / 3.0);
  EXPECT_TRUE(j["tenants"].contains("alice"));
  EXPECT_TRUE(j["tenants"].contains("none"));
  EXPECT_TRUE(j["adapters"].contains("none"));
}

}  // namespace
}  // namespace kvscope
