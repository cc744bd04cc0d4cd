// Security: tenant isolation (same tokens, different cache salts, never a
// hit across tenants: in the cache, through the runtime's routing and
// through the refault ghost table) and collision resistance (the secret
// seed, and content verification catching collisions crafted with a weak
// test hash).
// g++ 12 false positive in Asio's use_future inlined into this file under
// ASan at -O1: -Wmaybe-uninitialized on the async_completion (GCC bug 105562).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <asio/use_future.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using testing_util::all_policies;
using testing_util::cat;
using testing_util::chain;
using testing_util::config;
using testing_util::policy_name;
using testing_util::seq;

constexpr std::uint32_t kBs = 4;

ExtraKeys tenant(std::string_view salt) {
  ExtraKeys extras;
  extras.salt = CacheSalt::from_string(salt);
  return extras;
}

Request with_tokens(std::uint64_t id, const std::vector<TokenId>& tokens, ExtraKeys extras = {}) {
  return Request::with_tokens(RequestId{id}, tokens, std::move(extras));
}

// ---------------------------------------------------------------- tenant isolation

class TenantIsolation : public testing::TestWithParam<EvictionPolicyKind> {};

// Tenant A caches a prompt; tenant B sends the same tokens: B never hits,
// whatever the policy, while A (and an unsalted caller) keep their own hits.
TEST_P(TenantIsolation, SameTokensUnderAnotherSaltNeverHit) {
  PrefixCache cache(config(64, kBs, GetParam()));
  const auto prompt = seq(17, 100);  // 4 full blocks + 1 token
  ASSERT_TRUE(cache.allocate(with_tokens(1, prompt, tenant("tenant-a"))).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());

  const auto b_probe = cache.lookup(with_tokens(2, prompt, tenant("tenant-b")));
  ASSERT_TRUE(b_probe.ok());
  EXPECT_EQ(b_probe->hit_blocks, 0u);
  const auto b = cache.allocate(with_tokens(2, prompt, tenant("tenant-b")));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->lookup.hit_blocks, 0u);
  EXPECT_EQ(b->reused_blocks, 0u);  // not even shared past the prefix
  const auto unsalted = cache.allocate(with_tokens(3, prompt));
  ASSERT_TRUE(unsalted.ok());
  EXPECT_EQ(unsalted->lookup.hit_blocks, 0u);
  EXPECT_EQ(unsalted->reused_blocks, 0u);

  const auto a_again = cache.allocate(with_tokens(4, prompt, tenant("tenant-a")));
  ASSERT_TRUE(a_again.ok());
  EXPECT_EQ(a_again->lookup.hit_blocks, 4u);  // the test can tell a hit from a miss
  const auto b_again = cache.lookup(with_tokens(5, prompt, tenant("tenant-b")));
  ASSERT_TRUE(b_again.ok());
  EXPECT_EQ(b_again->hit_blocks, 4u);  // B's own copy serves B
  cache.check_invariants();
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, TenantIsolation, testing::ValuesIn(all_policies()),
                         policy_name);

RuntimeConfig one_shard_with_ghosts(std::uint32_t shards, std::uint32_t blocks) {
  RuntimeConfig config;
  config.shards = shards;
  config.cache = {.num_blocks = blocks, .block_size = kBs};
  config.metrics.residency_sample_rate = 1.0;  // every eviction reaches the ghost table
  config.metrics.ghost_entries = 64;
  config.snapshot_interval = 1h;
  return config;
}

Result<AllocateResult> allocate_on(Runtime& runtime, ShardId shard, const Request& request) {
  return runtime.allocate(shard, request, asio::use_future).get();
}

void free_on(Runtime& runtime, ShardId shard, std::uint64_t id) {
  ASSERT_TRUE(runtime.free(shard, RequestId{id}, FreeOrder::reverse, asio::use_future).get().ok());
}

// Routing follows the salted first block, and even a caller that forces B's
// request onto A's shard gets no hit there.
TEST(TenantIsolationRuntime, NoHitThroughTheRouteOrAForcedShard) {
  Runtime runtime(one_shard_with_ghosts(4, 256));
  runtime.start();
  const auto prompt = seq(17, 100);
  const Request a = with_tokens(1, prompt, tenant("tenant-a"));
  const ShardId a_shard = runtime.route(a);
  ASSERT_TRUE(allocate_on(runtime, a_shard, a).ok());
  free_on(runtime, a_shard, 1);

  const Request b = with_tokens(2, prompt, tenant("tenant-b"));
  const auto routed = allocate_on(runtime, runtime.route(b), b);
  ASSERT_TRUE(routed.ok());
  EXPECT_EQ(routed->lookup.hit_blocks, 0u);
  free_on(runtime, runtime.route(b), 2);
  const Request b_forced = with_tokens(3, prompt, tenant("tenant-b"));
  if (runtime.route(b) != a_shard) {
    const auto forced = allocate_on(runtime, a_shard, b_forced);
    ASSERT_TRUE(forced.ok());
    EXPECT_EQ(forced->lookup.hit_blocks, 0u);
    free_on(runtime, a_shard, 3);
  }
  const auto a_again = allocate_on(runtime, a_shard, with_tokens(4, prompt, tenant("tenant-a")));
  ASSERT_TRUE(a_again.ok());
  EXPECT_EQ(a_again->lookup.hit_blocks, 4u);
  runtime.stop();
}

// A's evicted blocks are remembered as ghosts; B's miss on the same tokens is
// not a refault of A's blocks (the ghosts are keyed by salted hashes), A's is.
TEST(TenantIsolationRuntime, AnotherTenantsMissIsNoRefaultOfItsGhosts) {
  Runtime runtime(one_shard_with_ghosts(1, 8));
  runtime.start();
  const auto prompt = seq(9, 100);  // 2 full blocks + 1 token: 3 blocks
  ASSERT_TRUE(allocate_on(runtime, ShardId{0}, with_tokens(1, prompt, tenant("tenant-a"))).ok());
  free_on(runtime, ShardId{0}, 1);
  // Fill the pool with unrelated prompts: A's cached blocks are evicted.
  ASSERT_TRUE(allocate_on(runtime, ShardId{0}, with_tokens(2, seq(32, 5000))).ok());
  free_on(runtime, ShardId{0}, 2);

  const auto b = allocate_on(runtime, ShardId{0}, with_tokens(3, prompt, tenant("tenant-b")));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->lookup.hit_blocks, 0u);
  free_on(runtime, ShardId{0}, 3);
  const auto a = allocate_on(runtime, ShardId{0}, with_tokens(4, prompt, tenant("tenant-a")));
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->lookup.hit_blocks, 0u);  // evicted: a miss, and a refault of its own ghost
  runtime.stop();                       // publishes the final snapshot with the residency figures
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last && last->global.residency.has_value());
  EXPECT_EQ(last->global.residency->misses_checked, 4u);  // every admission here missed
  EXPECT_EQ(last->global.residency->refaults, 1u);        // A's second one alone
}

// ---------------------------------------------------------------- the secret seed

TEST(HashSecret, ASecretChangesEveryHashAndIsReproducible) {
  const auto prompt = seq(16, 1);
  const auto public_chain = chain(kBs, prompt);
  const auto secret_chain = chain(kBs, prompt, {}, HashSeed{0x5eed});
  ASSERT_EQ(public_chain.size(), 4u);
  for (std::size_t i = 0; i < public_chain.size(); ++i)
    EXPECT_NE(public_chain[i], secret_chain[i]) << "block " << i;
  EXPECT_EQ(secret_chain, chain(kBs, prompt, {}, HashSeed{0x5eed}));

  // A cache keyed with the secret stores the secret chain, not the public one.
  PrefixCacheConfig keyed = config(16, kBs);
  keyed.hash_seed = HashSeed{0x5eed};
  PrefixCache cache(keyed);
  ASSERT_TRUE(cache.allocate(with_tokens(1, prompt)).ok());
  EXPECT_TRUE(cache.find(secret_chain[0]).has_value());
  EXPECT_FALSE(cache.find(public_chain[0]).has_value());
}

// ---------------------------------------------------------------- weak test hash

TEST(WeakTestHash, KeepsOnlyTheLowBitsAndRejectsOtherWidths) {
  const auto tokens = seq(kBs, 7);
  BlockHasher full(kBs);
  BlockHasher weak16(kBs, {}, 16);
  BlockHasher weak72(kBs, {}, 72);
  const BlockHash h = full.hash_block(full.root(), tokens, {}, 0);
  // The root is not truncated, so compare one block hashed from the same parent.
  const BlockHash w16 = weak16.hash_block(full.root(), tokens, {}, 0);
  const BlockHash w72 = weak72.hash_block(full.root(), tokens, {}, 0);
  EXPECT_EQ(w16, (BlockHash{0, h.low & 0xffff}));
  EXPECT_EQ(w72, (BlockHash{h.high & 0xff, h.low}));
  EXPECT_THROW(BlockHasher(kBs, {}, 7), std::invalid_argument);
  EXPECT_THROW(BlockHasher(kBs, {}, 129), std::invalid_argument);
  PrefixCacheConfig bad = config(16, kBs);
  bad.hash_bits = 0;
  EXPECT_THROW(PrefixCache{bad}, std::invalid_argument);
}

/// Searches token blocks (4 tokens from `first` on) for one whose weak hash
/// under `parent` equals `target` but whose tokens differ from `avoid`.
std::optional<std::vector<TokenId>> craft_collision(std::uint32_t hash_bits, BlockHash parent,
                                                    BlockHash target, std::uint32_t block_index,
                                                    const std::vector<TokenId>& avoid,
                                                    const ExtraKeys& extras = {}) {
  BlockHasher weak(kBs, {}, hash_bits);
  for (TokenId first = 1'000'000; first < 1'000'000 + (1u << 24); ++first) {
    const auto candidate = seq(kBs, first);
    if (candidate == avoid) continue;
    if (weak.hash_block(parent, candidate, extras, block_index) == target) return candidate;
  }
  return std::nullopt;
}

std::vector<BlockHash> weak_chain(std::uint32_t hash_bits, const std::vector<TokenId>& tokens,
                                  const ExtraKeys& extras = {}) {
  BlockHasher weak(kBs, {}, hash_bits);
  std::vector<BlockHash> out;
  weak.extend_hashes(tokens, extras, out);
  return out;
}

PrefixCacheConfig weak_config(bool verify) {
  PrefixCacheConfig c = config(64, kBs);
  c.hash_bits = 16;
  c.verify_tokens = verify;
  return c;
}

/// A cached victim prompt and an attacker prompt whose first block collides
/// with the victim's under the 16-bit test hash.
struct FirstBlockCollision {
  std::vector<TokenId> victim = seq(9, 100);  // blocks 0, 1 + 1 token
  std::vector<TokenId> attacker;

  FirstBlockCollision() {
    const auto victim_chain = weak_chain(16, victim);
    const auto block =
        craft_collision(16, BlockHasher(kBs, {}, 16).root(), victim_chain[0], 0, seq(kBs, 100));
    if (block) attacker = cat(*block, seq(5, 7000));  // own block 1 and tail
  }
};

TEST(ContentVerification, WithoutItACraftedCollisionServesAnotherPromptsBlock) {
  FirstBlockCollision c;
  ASSERT_FALSE(c.attacker.empty()) << "no collision found in 2^24 tries";
  PrefixCache cache(weak_config(false));
  ASSERT_TRUE(cache.allocate(with_tokens(1, c.victim)).ok());
  const auto probe = cache.lookup(with_tokens(2, c.attacker));
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->hit_blocks, 1u);  // the threat: a wrong hit on the victim's KV
  EXPECT_EQ(cache.stats().verification_failures, 0u);
}

TEST(ContentVerification, ACraftedCollisionIsCountedAndTreatedAsAMiss) {
  FirstBlockCollision c;
  ASSERT_FALSE(c.attacker.empty()) << "no collision found in 2^24 tries";
  PrefixCache cache(weak_config(true));
  ASSERT_TRUE(cache.allocate(with_tokens(1, c.victim)).ok());
  const std::vector<BlockId> victim_blocks(cache.block_table(RequestId{1})->begin(),
                                           cache.block_table(RequestId{1})->end());

  const auto probe = cache.lookup(with_tokens(2, c.attacker));
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(probe->hit_blocks, 0u);
  EXPECT_EQ(probe->stop, LookupStop::not_resident);
  EXPECT_TRUE(probe->verification_failed);
  EXPECT_EQ(cache.stats().verification_failures, 1u);

  const auto admitted = cache.allocate(with_tokens(2, c.attacker));
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ(admitted->lookup.hit_blocks, 0u);
  EXPECT_EQ(admitted->reused_blocks, 0u);
  EXPECT_EQ(cache.stats().verification_failures, 2u);  // counted once per probe
  const auto table = *cache.block_table(RequestId{2});
  EXPECT_NE(table[0], victim_blocks[0]);
  EXPECT_EQ(cache.ref_count(victim_blocks[0]), 1u);      // the victim's alone
  EXPECT_FALSE(cache.block_hash(table[0]).has_value());  // private: the hash stays the victim's
  cache.check_invariants();

  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  const auto victim_again = cache.lookup(with_tokens(3, c.victim));
  ASSERT_TRUE(victim_again.ok());
  EXPECT_EQ(victim_again->hit_blocks, 2u);  // the victim's cache is intact
  cache.check_invariants();
}

// The collision is on block 1, past the prefix: the block must not be shared
// either, and the mismatch is counted once.
TEST(ContentVerification, ACollisionPastThePrefixIsNotShared) {
  const auto victim = seq(9, 100);
  const auto victim_chain = weak_chain(16, victim);
  const auto block1 = craft_collision(16, victim_chain[0], victim_chain[1], 1, seq(kBs, 104));
  ASSERT_TRUE(block1.has_value()) << "no collision found in 2^24 tries";
  const auto attacker = cat(cat(seq(kBs, 100), *block1), seq(1, 9000));

  PrefixCache cache(weak_config(true));
  ASSERT_TRUE(cache.allocate(with_tokens(1, victim)).ok());
  const auto admitted = cache.allocate(with_tokens(2, attacker));
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ(admitted->lookup.hit_blocks, 1u);  // block 0 is genuinely shared
  EXPECT_TRUE(admitted->lookup.verification_failed);
  EXPECT_EQ(admitted->reused_blocks, 0u);
  EXPECT_EQ(cache.stats().verification_failures, 1u);
  EXPECT_NE((*cache.block_table(RequestId{2}))[1], (*cache.block_table(RequestId{1}))[1]);
  cache.check_invariants();
}

// Two tenants whose salted first blocks collide under the weak hash: the
// fingerprint covers the salt too, so verification keeps them apart.
TEST(ContentVerification, ACrossTenantCollisionIsCaught) {
  const auto prompt = seq(9, 100);
  const ExtraKeys victim_salt = tenant("victim");
  const BlockHash target = weak_chain(16, prompt, victim_salt)[0];
  std::optional<ExtraKeys> attacker_salt;
  BlockHasher weak(kBs, {}, 16);
  for (int n = 0; n < (1 << 22) && !attacker_salt; ++n) {
    ExtraKeys candidate = tenant("attacker-" + std::to_string(n));
    if (weak.hash_block(weak.root(), seq(kBs, 100), candidate, 0) == target)
      attacker_salt = candidate;
  }
  ASSERT_TRUE(attacker_salt.has_value()) << "no colliding salt found in 2^22 tries";

  for (const bool verify : {false, true}) {
    PrefixCache cache(weak_config(verify));
    ASSERT_TRUE(cache.allocate(with_tokens(1, prompt, victim_salt)).ok());
    const auto probe = cache.lookup(with_tokens(2, prompt, *attacker_salt));
    ASSERT_TRUE(probe.ok());
    // Unverified, the whole chain follows the colliding first block: the
    // salt enters block 0 only, so block 1 (same parent, same tokens) matches too.
    EXPECT_EQ(probe->hit_blocks, verify ? 0u : 2u) << "verify " << verify;
    EXPECT_EQ(cache.stats().verification_failures, verify ? 1u : 0u);
  }
}

// A request that grows into a block whose hash collides with a resident one
// keeps that block private (no duplicate index entry), and later requests
// for the grown content are refused the victim's block.
TEST(ContentVerification, DecodeGrowthIntoACollidingBlockStaysPrivate) {
  FirstBlockCollision c;
  ASSERT_FALSE(c.attacker.empty());
  PrefixCache cache(weak_config(true));
  ASSERT_TRUE(cache.allocate(with_tokens(1, c.victim)).ok());
  const std::vector<TokenId> start(c.attacker.begin(), c.attacker.begin() + 2);
  ASSERT_TRUE(cache.allocate(with_tokens(2, start)).ok());
  const std::vector<TokenId> rest(c.attacker.begin() + 2, c.attacker.begin() + kBs);
  const auto grown = cache.append(RequestId{2}, rest);
  ASSERT_TRUE(grown.ok());
  EXPECT_EQ(grown->cached_blocks, 0u);  // its hash is the victim's: stays private
  cache.check_invariants();
}

// With real 128-bit hashes, verification changes no outcome: the same
// operations give the same results with and without it, and nothing fails.
TEST(ContentVerification, WithoutCollisionsItChangesNothing) {
  PrefixCacheConfig plain = config(32, kBs);
  PrefixCacheConfig verified = plain;
  verified.verify_tokens = true;
  PrefixCache a(plain), b(verified);
  std::uint64_t seed = 12345;
  const auto next = [&seed](std::uint64_t bound) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % bound;
  };
  std::vector<std::uint64_t> live;
  for (std::uint64_t id = 1; id <= 3000; ++id) {
    if (!live.empty() && next(2) == 0) {
      const std::size_t k = next(live.size());
      const auto fa = a.free(RequestId{live[k]});
      const auto fb = b.free(RequestId{live[k]});
      ASSERT_EQ(fa.ok(), fb.ok());
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
      continue;
    }
    // Prompts share prefixes: a few stems, a random tail.
    auto tokens = cat(
        seq(4 * static_cast<std::uint32_t>(1 + next(3)), static_cast<TokenId>(100 * (1 + next(4)))),
        seq(static_cast<std::uint32_t>(1 + next(9)), static_cast<TokenId>(next(50))));
    const auto ra = a.allocate(with_tokens(id, tokens));
    const auto rb = b.allocate(with_tokens(id, tokens));
    ASSERT_EQ(ra.status(), rb.status());
    if (ra.ok()) {
      EXPECT_EQ(ra->lookup.hit_blocks, rb->lookup.hit_blocks);
      EXPECT_EQ(ra->reused_blocks, rb->reused_blocks);
      live.push_back(id);
      if (next(3) == 0) {
        const auto tail = seq(static_cast<std::uint32_t>(next(6)), static_cast<TokenId>(next(99)));
        ASSERT_EQ(a.append(RequestId{id}, tail).status(), b.append(RequestId{id}, tail).status());
      }
    }
  }
  EXPECT_EQ(a.stats(), b.stats());
  EXPECT_EQ(b.stats().verification_failures, 0u);
  EXPECT_EQ(b.metadata_bytes(), a.metadata_bytes() + 32 * sizeof(std::uint64_t));
  b.check_invariants();
}

}  // namespace
}  // namespace kvscope
