// PrefixCacheObserver with sampling (ObserverOptions): which blocks are
// watched, when a block stops being watched, the timestamps hooks carry and
// how often the cache reads its clock. Also the block-reference count, the
// hashes a lookup names (prefix_hash, first_miss_hash) and reset_evictions.
//
// Pools are small and block_size is 4 unless a test says otherwise; "A"
// usually is seq(10, 100): blocks [0,1,2], 0 and 1 cached, 2 a partial tail.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <utility>
#include <vector>

#include "kvscope/clock.hpp"
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
using namespace std::chrono_literals;

constexpr std::uint32_t kBs = 4;

Request req(std::uint64_t id, const std::vector<TokenId>& tokens) {
  return Request::with_tokens(RequestId{id}, tokens);
}

enum class Kind { allocated, cached, hit, released, uncached };

struct Event {
  Kind kind;
  std::uint32_t block;
  Timestamp at;
  bool flag = false;  // released: cached; uncached: watched
  UncacheCause cause = UncacheCause::reused;
  BlockHash hash{};
};

/// Records every hook call in order.
struct Recorder : PrefixCacheObserver {
  std::vector<Event> events;

  void on_block_allocated(BlockId b, Timestamp now) override {
    events.push_back({Kind::allocated, b.value, now});
  }
  void on_block_cached(BlockId b, const BlockHash& h, Timestamp now) override {
    events.push_back({Kind::cached, b.value, now, false, UncacheCause::reused, h});
  }
  void on_block_hit(BlockId b, Timestamp now) override {
    events.push_back({Kind::hit, b.value, now});
  }
  void on_block_released(BlockId b, bool cached, Timestamp now) override {
    events.push_back({Kind::released, b.value, now, cached});
  }
  void on_block_uncached(BlockId b, const BlockHash& h, UncacheCause cause, bool watched,
                         Timestamp now) override {
    events.push_back({Kind::uncached, b.value, now, watched, cause, h});
  }

  /// Block ids of the events of one kind, in order.
  V blocks(Kind kind) const {
    V out;
    for (const Event& e : events) {
      if (e.kind == kind) out.push_back(e.block);
    }
    return out;
  }
  std::size_t count(Kind kind) const { return blocks(kind).size(); }
  void clear() { events.clear(); }
};

/// A clock that counts its reads.
class CountingClock final : public Clock {
 public:
  Timestamp now() const noexcept override {
    ++reads_;
    return 42s;
  }
  std::uint64_t reads() const noexcept { return reads_; }

 private:
  mutable std::uint64_t reads_ = 0;
};

ObserverOptions rate(double sample_rate, std::uint64_t seed = ObserverOptions{}.sample_seed) {
  ObserverOptions o;
  o.sample_rate = sample_rate;
  o.sample_seed = seed;
  return o;
}

// ---------------------------------------------------------------- options

TEST(ObserverOptions, DefaultsWatchEveryAllocationWithTheSteadyClock) {
  const ObserverOptions o;
  EXPECT_EQ(o.sample_rate, 1.0);
  EXPECT_FALSE(o.every_uncache);
  EXPECT_EQ(o.clock, nullptr);
  EXPECT_NO_THROW(o.validate());
}

TEST(ObserverOptions, ValidateRejectsRatesOutsideZeroExclusiveToOne) {
  for (const double bad : {0.0, -1.0, 1.5, std::numeric_limits<double>::quiet_NaN(),
                           std::numeric_limits<double>::infinity(), -0.0}) {
    EXPECT_THROW(rate(bad).validate(), std::invalid_argument) << bad;
  }
  for (const double good : {1.0, 0.5, 0.01, 1e-9}) {
    EXPECT_NO_THROW(rate(good).validate()) << good;
  }
}

// A is allocated under `first` (rate 1): its blocks are watched. Every bad
// set_observer call throws and changes nothing: `first` stays installed,
// A's blocks stay watched (their releases reach it), `second` hears nothing.
TEST(ObserverSampling, BadOptionsThrowAndKeepTheInstalledObserverAndItsWatchedBlocks) {
  PrefixCache cache(config(8, kBs));
  Recorder first, second;
  cache.set_observer(&first);
  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());
  ASSERT_EQ(first.blocks(Kind::allocated), (V{0, 1, 2}));

  for (const double bad : {0.0, -1.0, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_THROW(cache.set_observer(&second, rate(bad)), std::invalid_argument) << bad;
    EXPECT_THROW(cache.set_observer(nullptr, rate(bad)), std::invalid_argument) << bad;
  }

  first.clear();
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(first.blocks(Kind::released), (V{2, 1, 0}));
  ASSERT_TRUE(cache.allocate(req(2, seq(4, 900))).ok());
  EXPECT_EQ(first.blocks(Kind::allocated), (V{2}));
  EXPECT_TRUE(second.events.empty());
  EXPECT_NO_THROW(cache.check_invariants());
}

// ---------------------------------------------------------------- sampling

// Rate 1: A = 10 tokens takes blocks 0,1,2 (all reported allocated), caches
// 0 and 1.
TEST(ObserverSampling, RateOneReportsEveryAllocation) {
  PrefixCache cache(config(8, kBs));
  Recorder obs;
  cache.set_observer(&obs, rate(1.0));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  EXPECT_EQ(obs.blocks(Kind::allocated), (V{0, 1, 2}));
  EXPECT_EQ(obs.blocks(Kind::cached), (V{0, 1}));
  const auto h = chain(kBs, a);
  std::vector<BlockHash> cached_hashes;
  for (const Event& e : obs.events) {
    if (e.kind == Kind::cached) cached_hashes.push_back(e.hash);
  }
  EXPECT_EQ(cached_hashes, h);
  // A second request of 6 fresh tokens takes 3 and 4: both reported.
  ASSERT_TRUE(cache.allocate(req(2, seq(6, 500))).ok());
  EXPECT_EQ(obs.blocks(Kind::allocated), (V{0, 1, 2, 3, 4}));
}

/// Runs `rounds` rounds of one request taking the whole pool (block_size 1,
/// fresh hashes each round, so every round evicts the previous one) under
/// `options`; returns the allocation ordinal (round * pool + position in the
/// request's block table) of each watched allocation, in hook order, and
/// checks that hook order is allocation order.
std::vector<std::uint64_t> watched_allocations(std::uint32_t pool, std::uint32_t rounds,
                                               const ObserverOptions& options) {
  PrefixCache cache(config(pool, 1));
  Recorder obs;
  cache.set_observer(&obs, options);
  std::vector<std::uint64_t> out;
  std::vector<BlockHash> hashes(pool);
  std::vector<std::uint32_t> position_of(pool);
  for (std::uint32_t r = 0; r < rounds; ++r) {
    for (std::uint32_t i = 0; i < pool; ++i) {
      hashes[i] = BlockHash::from_id(std::uint64_t{r} * pool + i + 1);
    }
    obs.clear();
    const auto a = cache.allocate(Request::with_hashes(RequestId{r}, pool, hashes));
    EXPECT_TRUE(a.ok());
    if (a.ok()) {
      EXPECT_EQ(a->new_blocks, pool);
    }
    const auto table = cache.block_table(RequestId{r});
    EXPECT_TRUE(table.ok());
    if (!table.ok()) return out;
    for (std::uint32_t i = 0; i < pool; ++i) position_of[(*table)[i].value] = i;
    const std::size_t round_start = out.size();
    for (const std::uint32_t b : obs.blocks(Kind::allocated)) {
      out.push_back(std::uint64_t{r} * pool + position_of[b]);
    }
    EXPECT_TRUE(std::is_sorted(out.begin() + static_cast<std::ptrdiff_t>(round_start), out.end()))
        << "hooks in allocation order, round " << r;
    EXPECT_TRUE(cache.free(RequestId{r}).ok());
  }
  return out;
}

// 100 rounds x 1000 blocks = 100,000 allocations at rate 0.1: the watched
// count is binomial(100000, 0.1): mean 10,000, sd sqrt(9,000) = 94.9; accept
// 4 sd (|x - 10000| <= 379).
TEST(ObserverSampling, RateOneTenthWatchesTenPercentWithinFourSigma) {
  const auto watched = watched_allocations(1000, 100, rate(0.1));
  const double n = 100'000, p = 0.1;
  const double sd = std::sqrt(n * p * (1 - p));
  EXPECT_LE(std::abs(static_cast<double>(watched.size()) - n * p), 4 * sd)
      << "watched " << watched.size();
}

// Gaps between consecutive watched allocations are geometric with p = 0.1:
// mean 1/p = 10 with sd sqrt(1-p)/p = 9.49 per gap, so the mean of ~10,000
// gaps has sd ~0.095 (accept 4 sd); and P(gap = 1) = p (binomial, 4 sd).
TEST(ObserverSampling, GapsBetweenWatchedAllocationsAreGeometric) {
  const auto positions = watched_allocations(1000, 100, rate(0.1));
  ASSERT_GT(positions.size(), 9000u);
  const double n = static_cast<double>(positions.size() - 1), p = 0.1;
  double sum = 0, ones = 0;
  for (std::size_t i = 1; i < positions.size(); ++i) {
    const auto gap = static_cast<double>(positions[i] - positions[i - 1]);
    sum += gap;
    ones += gap == 1 ? 1 : 0;
  }
  EXPECT_NEAR(sum / n, 1 / p, 4 * std::sqrt(1 - p) / p / std::sqrt(n));
  EXPECT_NEAR(ones / n, p, 4 * std::sqrt(p * (1 - p) / n));
}

TEST(ObserverSampling, SameSeedWatchesTheSameBlocksAnotherSeedOthers) {
  const auto a = watched_allocations(64, 20, rate(0.1, 7));
  const auto b = watched_allocations(64, 20, rate(0.1, 7));
  const auto c = watched_allocations(64, 20, rate(0.1, 8));
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// set_observer_sample_rate changes the share watched from the next
// allocation on and, unlike set_observer, keeps watched blocks watched. A
// bad rate throws and changes nothing.
TEST(ObserverSampling, ChangingTheRateKeepsWatchedBlocksAndAppliesToLaterAllocations) {
  PrefixCache cache(config(8, kBs));
  Recorder obs;
  cache.set_observer(&obs, rate(1.0));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 10))).ok());  // blocks 0, 1 watched and cached
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(obs.count(Kind::allocated), 2u);

  for (const double bad : {0.0, -1.0, 1.5, std::nan("")}) {
    EXPECT_THROW(cache.set_observer_sample_rate(bad), std::invalid_argument) << bad;
  }
  cache.set_observer_sample_rate(1e-12);  // practically never
  obs.clear();
  ASSERT_TRUE(cache.allocate(req(2, seq(8, 10))).ok());  // hits 0 and 1: still watched
  EXPECT_EQ(obs.blocks(Kind::hit), (V{0, 1}));
  ASSERT_TRUE(cache.allocate(req(3, seq(16, 50))).ok());  // 4 new blocks, none watched
  EXPECT_EQ(obs.count(Kind::allocated), 0u);
  ASSERT_TRUE(cache.free(RequestId{3}).ok());

  cache.set_observer_sample_rate(1.0);  // the bad calls above did not stick either
  ASSERT_TRUE(cache.allocate(req(4, seq(4, 90))).ok());
  EXPECT_EQ(obs.count(Kind::allocated), 1u);
}

TEST(ObserverSampling, UnwatchSilencesABlockUntilItIsSampledAgain) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  cache.set_observer(&obs, rate(1.0));
  ASSERT_TRUE(cache.allocate(req(1, seq(8, 10))).ok());  // blocks 0, 1 watched
  EXPECT_THROW(cache.unwatch(BlockId{4}), std::out_of_range);
  cache.unwatch(BlockId{0});
  obs.clear();
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(obs.blocks(Kind::released), (V{1}));  // 0 no longer reports
  EXPECT_NO_THROW(cache.check_invariants());
}

// Re-installing with the same seed restarts the sampler: the same traffic
// after each install watches the same allocations.
TEST(ObserverSampling, ReinstallingRestartsTheSamplerFromItsSeed) {
  PrefixCache cache(config(32, 1));
  Recorder obs;
  std::vector<BlockHash> hashes(32);
  auto run = [&](std::uint64_t id) {
    for (std::uint32_t i = 0; i < 32; ++i) hashes[i] = BlockHash::from_id(id * 100 + i + 1);
    obs.clear();
    EXPECT_TRUE(cache.allocate(Request::with_hashes(RequestId{id}, 32, hashes)).ok());
    V watched = obs.blocks(Kind::allocated);
    EXPECT_TRUE(cache.free(RequestId{id}).ok());
    return watched;
  };
  cache.set_observer(&obs, rate(0.3, 99));
  const V first = run(1);
  cache.set_observer(&obs, rate(0.3, 99));
  // The pool's free order changed, so compare positions, not block ids:
  // the second run takes the free queue front to back.
  const V order_before = free_ids(cache);
  const V second = run(2);
  ASSERT_FALSE(first.empty());
  ASSERT_EQ(first.size(), second.size());
  for (std::size_t k = 0; k < first.size(); ++k) {
    // first run took blocks 0..31 in id order: position == id.
    EXPECT_EQ(order_before[first[k]], second[k]) << k;
  }
}

// ---------------------------------------------------------------- timestamps

// Every hook of one operation carries the ManualClock's value at that
// operation.
TEST(ObserverTimestamps, EveryHookCarriesTheManualClockValue) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  ManualClock clock(5s);
  ObserverOptions o;
  o.clock = &clock;
  cache.set_observer(&obs, o);
  const auto a = seq(10, 100);

  auto expect_all_at = [&](Timestamp t, std::size_t expected_events) {
    EXPECT_EQ(obs.events.size(), expected_events);
    for (const Event& e : obs.events) EXPECT_EQ(e.at, t);
    obs.clear();
  };

  ASSERT_TRUE(cache.allocate(req(1, a)).ok());  // allocated 0,1,2; cached 0,1
  expect_all_at(5s, 5);
  clock.set(7s);
  ASSERT_TRUE(cache.allocate(req(2, cat(seq(8, 100), seq(1, 900)))).ok());  // hits 0,1; allocates 3
  expect_all_at(7s, 3);
  clock.set(9s);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());  // releases 2 (0 and 1 still held by 2)
  ASSERT_TRUE(cache.free(RequestId{2}).ok());  // releases 3, 1, 0
  expect_all_at(9s, 4);
  clock.set(11s);
  // 16 fresh tokens: free queue [3,2,1,0] -> takes 3, 2, evicts 1, 0; caches all 4.
  ASSERT_EQ(free_ids(cache), (V{3, 2, 1, 0}));
  ASSERT_TRUE(cache.allocate(req(3, seq(16, 5000))).ok());
  EXPECT_EQ(obs.blocks(Kind::uncached), (V{1, 0}));
  expect_all_at(11s, 4 + 2 + 4);
  clock.set(13s);
  ASSERT_TRUE(cache.free(RequestId{3}).ok());
  obs.clear();
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(obs.count(Kind::uncached), 4u);
  expect_all_at(13s, 4);
}

// ---------------------------------------------------------------- clock reads

TEST(ObserverClock, ReadsTheClockOncePerOperationWithWatchedEvents) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  CountingClock clock;
  ObserverOptions o;
  o.clock = &clock;
  cache.set_observer(&obs, o);
  const std::uint64_t r0 = clock.reads();

  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());  // 5 events
  EXPECT_EQ(obs.events.size(), 5u);
  EXPECT_EQ(clock.reads() - r0, 1u);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());  // 3 releases
  EXPECT_EQ(clock.reads() - r0, 2u);
  ASSERT_TRUE(cache.allocate(req(2, seq(16, 500))).ok());  // evictions + allocations + caching
  EXPECT_EQ(clock.reads() - r0, 3u);
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(clock.reads() - r0, 4u);
  ASSERT_TRUE(cache.reset().ok());  // 4 watched blocks uncached
  EXPECT_EQ(clock.reads() - r0, 5u);
  for (const Event& e : obs.events) EXPECT_EQ(e.at, 42s);
}

// A (10 tokens) is allocated watched, then the observer is re-installed:
// nothing is watched any more. Operations that fire no hook read no clock:
// a probe, a refused allocation, freeing unwatched blocks, and an admission
// that only touches unwatched blocks (A's 8 tokens: hits block 0, shares
// block 1, takes no new block). With no observer, nothing reads the clock.
TEST(ObserverClock, OperationsWithoutWatchedEventsReadNoClock) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  CountingClock clock;
  ObserverOptions o;
  o.clock = &clock;
  cache.set_observer(&obs, o);
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  cache.set_observer(&obs, o);
  obs.clear();
  const std::uint64_t r0 = clock.reads();

  ASSERT_TRUE(cache.lookup(req(9, a)).ok());
  // One block (3) is free; 8 fresh tokens need two.
  EXPECT_EQ(cache.allocate(req(8, seq(8, 7000))).status(), Status::not_enough_blocks);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  const auto shared = cache.allocate(req(2, seq(8, 100)));
  ASSERT_TRUE(shared.ok());
  ASSERT_EQ(shared->new_blocks, 0u);
  ASSERT_EQ(shared->lookup.hit_blocks, 1u);
  ASSERT_EQ(shared->reused_blocks, 1u);
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_TRUE(obs.events.empty());
  EXPECT_EQ(clock.reads(), r0);

  cache.set_observer(nullptr, o);
  ASSERT_TRUE(cache.allocate(req(3, seq(16, 500))).ok());
  ASSERT_TRUE(cache.free(RequestId{3}).ok());
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(clock.reads(), r0);
  EXPECT_TRUE(obs.events.empty());
}

// ---------------------------------------------------------------- every_uncache

// Pool 2: A (8 tokens) -> [0,1], freed -> LRU victims 1 then 0. After a
// re-install nothing is watched; B (8 fresh tokens) evicts 1 and 0.
// With every_uncache the evictions are reported with watched = false.
TEST(ObserverEveryUncache, ReportsUnwatchedEvictionsAsNotWatched) {
  for (const bool every : {false, true}) {
    SCOPED_TRACE(every ? "every_uncache" : "watched only");
    PrefixCache cache(config(2, kBs));
    Recorder obs;
    cache.set_observer(&obs);
    const auto a = seq(8, 100);
    const auto ha = chain(kBs, a);
    ASSERT_TRUE(cache.allocate(req(1, a)).ok());
    ASSERT_TRUE(cache.free(RequestId{1}).ok());
    ObserverOptions o;
    o.every_uncache = every;
    cache.set_observer(&obs, o);
    obs.clear();

    ASSERT_TRUE(cache.allocate(req(2, seq(8, 500))).ok());
    EXPECT_EQ(obs.blocks(Kind::allocated), (V{1, 0}));
    if (every) {
      ASSERT_EQ(obs.blocks(Kind::uncached), (V{1, 0}));
      std::vector<Event> un;
      for (const Event& e : obs.events) {
        if (e.kind == Kind::uncached) un.push_back(e);
      }
      EXPECT_EQ(un[0].hash, ha[1]);
      EXPECT_EQ(un[1].hash, ha[0]);
      for (const Event& e : un) {
        EXPECT_FALSE(e.flag) << "not watched";
        EXPECT_EQ(e.cause, UncacheCause::reused);
      }
    } else {
      EXPECT_EQ(obs.count(Kind::uncached), 0u);
    }

    // B's blocks are watched: their eviction by C says watched = true.
    ASSERT_TRUE(cache.free(RequestId{2}).ok());
    obs.clear();
    ASSERT_TRUE(cache.allocate(req(3, seq(8, 900))).ok());
    ASSERT_EQ(obs.count(Kind::uncached), 2u);
    for (const Event& e : obs.events) {
      if (e.kind == Kind::uncached) {
        EXPECT_TRUE(e.flag);
      }
    }
  }
}

// Reset of unwatched cached blocks: reported with cause reset and watched =
// false only under every_uncache.
TEST(ObserverEveryUncache, ReportsUnwatchedResetDropsWithCauseReset) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  ASSERT_TRUE(cache.allocate(req(1, seq(12, 100))).ok());  // 3 cached, no observer
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ObserverOptions o;
  o.every_uncache = true;
  cache.set_observer(&obs, o);
  ASSERT_TRUE(cache.reset().ok());
  ASSERT_EQ(obs.events.size(), 3u);
  V blocks = obs.blocks(Kind::uncached);
  std::sort(blocks.begin(), blocks.end());
  EXPECT_EQ(blocks, (V{0, 1, 2}));
  for (const Event& e : obs.events) {
    EXPECT_EQ(e.cause, UncacheCause::reset);
    EXPECT_FALSE(e.flag);
  }
}

// ---------------------------------------------------------------- watching

// A pool of one block, rate 0.5. Each cycle:
//   R1 (2 tokens) takes block 0 [sampled or not], free R1 releases it
//   without a hash; R2 (2 tokens) takes block 0 again [sampled or not],
//   append 2 tokens caches it, free R2 releases it cached.
// R1's release ends block 0's story: whether R2 reports anything depends on
// R2's own sampling only, never on R1's.
TEST(ObserverWatching, BlockReleasedUncachedStopsBeingWatchedUntilResampled) {
  PrefixCache cache(config(1, kBs));
  Recorder obs;
  cache.set_observer(&obs, rate(0.5, 12345));
  int first_only = 0, second_only = 0;
  TokenId next = 1;
  bool previous_r2_watched = false;
  for (std::uint64_t cycle = 0; cycle < 200; ++cycle) {
    SCOPED_TRACE(cycle);
    obs.clear();
    ASSERT_TRUE(cache.allocate(req(1, seq(2, next))).ok());
    next += 2;
    const bool s1 = obs.count(Kind::allocated) == 1;
    // The previous R2 left block 0 cached: R1's allocation evicts it, reported
    // iff that R2 was watched.
    EXPECT_EQ(obs.count(Kind::uncached), previous_r2_watched ? 1u : 0u);
    obs.clear();
    ASSERT_TRUE(cache.free(RequestId{1}).ok());
    ASSERT_EQ(obs.events.size(), s1 ? 1u : 0u);
    if (s1) {
      EXPECT_FALSE(obs.events[0].flag) << "released without a hash";
    }

    obs.clear();
    ASSERT_TRUE(cache.allocate(req(2, seq(2, next))).ok());
    next += 2;
    const bool s2 = obs.count(Kind::allocated) == 1;
    EXPECT_EQ(obs.events.size(), s2 ? 1u : 0u);
    const auto tail = seq(2, next);
    next += 2;
    ASSERT_TRUE(cache.append(RequestId{2}, tail).ok());
    ASSERT_EQ(cache.num_cached_blocks(), 1u);
    ASSERT_TRUE(cache.free(RequestId{2}).ok());
    EXPECT_EQ(obs.count(Kind::cached), s2 ? 1u : 0u);
    EXPECT_EQ(obs.count(Kind::released), s2 ? 1u : 0u);
    EXPECT_EQ(obs.events.size(), s2 ? 3u : 0u);
    first_only += s1 && !s2;
    second_only += !s1 && s2;
    previous_r2_watched = s2;
    EXPECT_NO_THROW(cache.check_invariants());
  }
  EXPECT_GT(first_only, 0) << "the case that shows the story ended";
  EXPECT_GT(second_only, 0);
}

// Rate 1: A (10 tokens) cached in 0,1 and freed. After set_observer(nullptr)
// and a re-install, B (A's 8 tokens + 5 fresh = 13 tokens) hits 0 and 1
// without events and takes new blocks 2 and 3 (watched; 2 gets cached).
// Freeing B reports only 3 and 2; evicting 0 and 1 later reports nothing.
TEST(ObserverWatching, BlocksCachedBeforeAReinstallAreNotWatched) {
  PrefixCache cache(config(4, kBs));
  Recorder obs;
  cache.set_observer(&obs);
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  cache.set_observer(nullptr);
  cache.set_observer(&obs);
  obs.clear();

  const auto b = cache.allocate(req(2, cat(seq(8, 100), seq(5, 900))));
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->lookup.hit_blocks, 2u);
  ASSERT_EQ(table_of(cache, 2), (V{0, 1, 2, 3}));
  EXPECT_EQ(obs.blocks(Kind::allocated), (V{2, 3}));
  EXPECT_EQ(obs.blocks(Kind::cached), (V{2}));
  EXPECT_EQ(obs.count(Kind::hit), 0u);
  obs.clear();
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(obs.blocks(Kind::released), (V{3, 2}));
  obs.clear();
  // Free queue [3,2,1,0]: 16 fresh tokens take 3 and evict 2 (watched:
  // reported), 1 and 0 (unwatched: silent).
  ASSERT_EQ(free_ids(cache), (V{3, 2, 1, 0}));
  ASSERT_TRUE(cache.allocate(req(3, seq(16, 5000))).ok());
  EXPECT_EQ(obs.blocks(Kind::uncached), (V{2}));
  EXPECT_EQ(obs.count(Kind::allocated), 4u);
}

// A watched cached block hit by another request reports the hit; freed
// cached it stays watched (its eviction is reported with watched = true).
TEST(ObserverWatching, CachedBlockStaysWatchedAcrossReleaseUntilEvicted) {
  PrefixCache cache(config(2, kBs));
  Recorder obs;
  cache.set_observer(&obs);
  const auto a = seq(8, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());  // [0,1]
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  obs.clear();
  ASSERT_TRUE(cache.allocate(req(2, a)).ok());  // hits 0 (cap 7 tokens), shares 1
  EXPECT_EQ(obs.blocks(Kind::hit), (V{0, 1}));
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  obs.clear();
  ASSERT_TRUE(cache.allocate(req(3, seq(8, 500))).ok());
  EXPECT_EQ(obs.count(Kind::uncached), 2u);
  for (const Event& e : obs.events) {
    if (e.kind == Kind::uncached) {
      EXPECT_TRUE(e.flag);
    }
  }
}

// ---------------------------------------------------------------- references

// A = 10 tokens -> [0,1,2]; B = A's 8 tokens + 3 -> [0,1,3]: 6 references on
// 4 used blocks. Freeing A leaves B's 3; freeing B leaves none.
TEST(PrefixCacheReferences, CountBlockTableEntriesOfLiveRequests) {
  PrefixCache cache(config(8, kBs));
  EXPECT_EQ(cache.num_block_references(), 0u);
  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());
  EXPECT_EQ(cache.num_block_references(), 3u);
  ASSERT_TRUE(cache.allocate(req(2, cat(seq(8, 100), seq(3, 900)))).ok());
  ASSERT_EQ(table_of(cache, 2), (V{0, 1, 3}));
  EXPECT_EQ(cache.num_block_references(), 6u);
  EXPECT_EQ(cache.num_used_blocks(), 4u);
  std::uint64_t sum = 0;
  for (std::uint32_t b = 0; b < cache.num_blocks(); ++b) sum += cache.ref_count(BlockId{b});
  EXPECT_EQ(sum, 6u);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  EXPECT_EQ(cache.num_block_references(), 3u);
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  EXPECT_EQ(cache.num_block_references(), 0u);
}

// Appending a block and refused operations keep the count exact.
TEST(PrefixCacheReferences, FollowAppendsAndIgnoreRefusedAllocations) {
  PrefixCache cache(config(4, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(4, 100))).ok());
  EXPECT_EQ(cache.num_block_references(), 1u);
  const auto more = seq(1, 500);
  ASSERT_TRUE(cache.append(RequestId{1}, more).ok());
  EXPECT_EQ(cache.num_block_references(), 2u);
  EXPECT_EQ(cache.allocate(req(2, seq(12, 900))).status(), Status::not_enough_blocks);
  EXPECT_EQ(cache.num_block_references(), 2u);
}

// ---------------------------------------------------------------- lookup hashes

// Hash mode. A = ids {1,2,3} (12 tokens) resident.
//  {1,2,9,10} (16 tokens): hits 1,2 -> prefix_hash = 2, first miss 9.
//  {7,8} (8 tokens): no hit -> first miss 7.
//  {1,2,3} (12 tokens, cap 11 -> 2 blocks): hit_cap, prefix_hash = 2.
TEST(LookupResultHashes, NameTheLastHitBlockAndTheFirstMissedBlock) {
  PrefixCache cache(config(16, kBs));
  ASSERT_TRUE(cache.allocate(hashed(1, 12, hash_ids({1, 2, 3}))).ok());

  const auto partial = cache.lookup(hashed(2, 16, hash_ids({1, 2, 9, 10})));
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->hit_blocks, 2u);
  EXPECT_EQ(partial->stop, LookupStop::not_resident);
  EXPECT_EQ(partial->prefix_hash, BlockHash::from_id(2));
  EXPECT_EQ(partial->first_miss_hash, BlockHash::from_id(9));

  const auto miss = cache.lookup(hashed(3, 8, hash_ids({7, 8})));
  ASSERT_TRUE(miss.ok());
  EXPECT_EQ(miss->hit_blocks, 0u);
  EXPECT_EQ(miss->stop, LookupStop::not_resident);
  EXPECT_EQ(miss->first_miss_hash, BlockHash::from_id(7));

  const auto capped = cache.lookup(hashed(4, 12, hash_ids({1, 2, 3})));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->hit_blocks, 2u);
  EXPECT_EQ(capped->stop, LookupStop::hit_cap);
  EXPECT_EQ(capped->prefix_hash, BlockHash::from_id(2));

  // allocate() reports the same lookup.
  const auto admitted = cache.allocate(hashed(5, 16, hash_ids({1, 2, 9, 10})));
  ASSERT_TRUE(admitted.ok());
  EXPECT_EQ(admitted->lookup.prefix_hash, BlockHash::from_id(2));
  EXPECT_EQ(admitted->lookup.first_miss_hash, BlockHash::from_id(9));
}

// Token mode: A = 12 tokens cached; B = A's first 8 tokens + 5 others (3 full
// blocks): prefix = A's block 1, first miss = B's block 2.
TEST(LookupResultHashes, TokenModeNamesChainedHashes) {
  PrefixCache cache(config(16, kBs));
  const auto a = seq(12, 100);
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  const auto b = cat(seq(8, 100), seq(5, 900));
  const auto r = cache.lookup(req(2, b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hit_blocks, 2u);
  EXPECT_EQ(r->prefix_hash, chain(kBs, a)[1]);
  EXPECT_EQ(r->first_miss_hash, chain(kBs, b)[2]);
}

// ---------------------------------------------------------------- stats

// A (10 tokens, 2 cached) and C (5 tokens, 1 cached) freed; reset drops 3
// cached blocks. A second reset drops none. Refused resets count nothing.
TEST(PrefixCacheStatsCounters, ResetEvictionsCountCachedBlocksDroppedByReset) {
  PrefixCache cache(config(8, kBs));
  ASSERT_TRUE(cache.allocate(req(1, seq(10, 100))).ok());
  ASSERT_TRUE(cache.allocate(req(2, seq(5, 500))).ok());
  EXPECT_EQ(cache.reset().status(), Status::blocks_in_use);
  EXPECT_EQ(cache.stats().resets, 0u);
  EXPECT_EQ(cache.stats().reset_evictions, 0u);
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  ASSERT_EQ(cache.num_cached_blocks(), 3u);
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(cache.stats().resets, 1u);
  EXPECT_EQ(cache.stats().reset_evictions, 3u);
  EXPECT_EQ(cache.stats().evictions, 0u);
  ASSERT_TRUE(cache.reset().ok());
  EXPECT_EQ(cache.stats().resets, 2u);
  EXPECT_EQ(cache.stats().reset_evictions, 3u);
}

// Probes are counted apart: two lookups and one allocate of A (10 tokens).
TEST(PrefixCacheStatsCounters, ProbesCountLookupCallsOnly) {
  PrefixCache cache(config(8, kBs));
  const auto a = seq(10, 100);
  ASSERT_TRUE(cache.lookup(req(1, a)).ok());
  ASSERT_TRUE(cache.allocate(req(1, a)).ok());
  ASSERT_TRUE(cache.lookup(req(2, a)).ok());
  EXPECT_EQ(cache.stats().probes, (QueryCounts{2, 20, 8, 6, 2}));
  EXPECT_EQ(cache.stats().fresh, (QueryCounts{1, 10, 0, 3, 0}));
}

}  // namespace
}  // namespace kvscope
