// GhostTable and BlockResidencyTracker: sampled block lifetimes, idle times,
// reuse gaps and refault distances on scripted timelines through a real
// PrefixCache (LRU, block_size 4, sample rate 1.0, a ManualClock).
//
// vLLM's definitions (GUIDE section 2): accesses are hits (the allocation is
// the birth, not an access); lifetime = eviction - birth; idle = eviction -
// last access (birth if none); reuse gaps = differences of consecutive
// accesses among the last 4. kvscope adds idle_since_free = eviction - last
// release to the pool.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvscope/clock.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/metrics/block_residency.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/prefix_cache.hpp"
#include "test_util.hpp"

namespace kvscope {

// Readable failure output (found by ADL, so outside the unnamed namespace).
static void PrintTo(const EvictionEvent& e, std::ostream* os) {
  *os << "{block " << e.block.value << ", reason " << to_string(e.reason) << ", at " << e.at.count()
      << ", lifetime " << e.lifetime.count() << ", idle " << e.idle.count() << ", idle_since_free "
      << e.idle_since_free.count() << ", hits " << e.hits << ", gaps " << int{e.reuse_gap_count}
      << ": " << e.reuse_gaps[0].count() << " " << e.reuse_gaps[1].count() << " "
      << e.reuse_gaps[2].count() << "}";
}

namespace {

using testing_util::cat;
using testing_util::chain;
using testing_util::config;
using testing_util::free_ids;
using testing_util::seq;
using testing_util::table_of;
using V = std::vector<std::uint32_t>;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::uint32_t kBs = 4;

BlockHash H(std::uint64_t id) { return BlockHash::from_id(id); }

// ---------------------------------------------------------------- GhostTable

TEST(GhostTable, RejectsZeroCapacity) { EXPECT_THROW(GhostTable(0), std::invalid_argument); }

TEST(GhostTable, DistanceIsEvictionsSinceTheStamp) {
  GhostTable g(4);
  EXPECT_EQ(g.capacity(), 4u);
  EXPECT_EQ(g.size(), 0u);
  g.record(H(1), 10);
  EXPECT_EQ(g.size(), 1u);
  EXPECT_EQ(g.refault_distance(H(1), 10), 0u);
  EXPECT_EQ(g.refault_distance(H(1), 17), 7u);
  EXPECT_EQ(g.refault_distance(H(2), 17), std::nullopt);
  EXPECT_GT(g.memory_bytes(), 0u);
}

// Capacity 3: h1, h2, h3 fill it; h4 forgets the oldest, h1.
TEST(GhostTable, ForgetsTheOldestEntryWhenFull) {
  GhostTable g(3);
  g.record(H(1), 1);
  g.record(H(2), 2);
  g.record(H(3), 3);
  EXPECT_EQ(g.size(), 3u);
  g.record(H(4), 4);
  EXPECT_EQ(g.size(), 3u);
  EXPECT_EQ(g.refault_distance(H(1), 10), std::nullopt);
  EXPECT_EQ(g.refault_distance(H(2), 10), 8u);
  EXPECT_EQ(g.refault_distance(H(3), 10), 7u);
  EXPECT_EQ(g.refault_distance(H(4), 10), 6u);
  g.record(H(5), 5);
  EXPECT_EQ(g.refault_distance(H(2), 10), std::nullopt);
  EXPECT_EQ(g.refault_distance(H(5), 10), 5u);
}

TEST(GhostTable, RecordingAPresentHashRestampsIt) {
  GhostTable g(3);
  g.record(H(1), 1);
  g.record(H(2), 2);
  g.record(H(1), 7);
  EXPECT_EQ(g.size(), 2u);
  EXPECT_EQ(g.refault_distance(H(1), 10), 3u);
  EXPECT_EQ(g.refault_distance(H(2), 10), 8u);
}

// Restamping adds no entry, so even in a full table it forgets nothing.
// The table covers the last `capacity` records: restamping H(2) is a new
// record, which pushes out the oldest record (H(1)); H(2)'s old record just
// stops counting.
TEST(GhostTable, RestampingIsANewRecordThatPushesOutTheOldest) {
  GhostTable g(3);
  g.record(H(1), 1);
  g.record(H(2), 2);
  g.record(H(3), 3);
  g.record(H(2), 7);
  EXPECT_EQ(g.size(), 2u);
  EXPECT_EQ(g.refault_distance(H(1), 10), std::nullopt);
  EXPECT_EQ(g.refault_distance(H(2), 10), 3u);
  EXPECT_EQ(g.refault_distance(H(3), 10), 7u);
}

// Erasing forgets one hash; its record's place in the FIFO stays used until
// it ages out, so the next record still pushes out the oldest record.
TEST(GhostTable, EraseForgetsOneHashWithoutFreeingItsPlace) {
  GhostTable g(3);
  g.record(H(1), 1);
  g.record(H(2), 2);
  g.record(H(3), 3);
  g.erase(H(2));
  EXPECT_EQ(g.size(), 2u);
  EXPECT_EQ(g.refault_distance(H(2), 10), std::nullopt);
  g.erase(H(2));  // absent: no-op
  g.erase(H(99));
  EXPECT_EQ(g.size(), 2u);
  g.record(H(4), 4);
  EXPECT_EQ(g.size(), 2u);
  EXPECT_EQ(g.refault_distance(H(1), 10), std::nullopt);
  EXPECT_EQ(g.refault_distance(H(3), 10), 7u);
  EXPECT_EQ(g.refault_distance(H(4), 10), 6u);
  g.record(H(5), 5);  // pushes out H(2)'s dead record: nothing live is lost
  EXPECT_EQ(g.size(), 3u);
  EXPECT_EQ(g.refault_distance(H(3), 10), 7u);
}

// Many more hashes than capacity: only the newest `capacity` stay.
TEST(GhostTable, KeepsExactlyTheNewestCapacityHashes) {
  GhostTable g(64);
  for (std::uint64_t i = 1; i <= 1000; ++i) g.record(H(i), i);
  EXPECT_EQ(g.size(), 64u);
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    const auto d = g.refault_distance(H(i), 1000);
    if (i > 1000 - 64) {
      EXPECT_EQ(d, 1000 - i) << i;
    } else {
      EXPECT_EQ(d, std::nullopt) << i;
    }
  }
}

// ---------------------------------------------------------------- tracker rig

MetricsConfig tracker_config(const Clock* clock) {
  MetricsConfig c;
  c.residency_sample_rate = 1.0;
  c.clock = clock;
  c.hot_reuse_threshold = 2;
  c.ghost_entries = 16;
  c.eviction_event_capacity = 16;
  return c;
}

/// A pool of 4 blocks watched by a tracker at rate 1.0 on a ManualClock.
struct Rig {
  explicit Rig(std::uint32_t event_capacity = 16, std::uint32_t pool = 4)
      : cache(config(pool, kBs)), tracker(cache, with_capacity(event_capacity)) {
    cache.set_observer(&tracker, tracker.observer_options());
  }
  MetricsConfig with_capacity(std::uint32_t n) {
    MetricsConfig c = tracker_config(&clock);
    c.eviction_event_capacity = n;
    return c;
  }
  void at(std::chrono::nanoseconds t) { clock.set(t); }
  AllocateResult allocate(std::uint64_t id, const std::vector<TokenId>& tokens) {
    const auto r = cache.allocate(Request::with_tokens(RequestId{id}, tokens));
    EXPECT_TRUE(r.ok()) << to_string(r.status());
    return r.ok() ? *r : AllocateResult{};
  }
  void free(std::uint64_t id) { EXPECT_TRUE(cache.free(RequestId{id}).ok()); }

  ManualClock clock;
  PrefixCache cache;
  BlockResidencyTracker tracker;
};

EvictionEvent event(std::uint32_t block, BlockHash hash, EvictionReason reason, Timestamp at,
                    std::chrono::nanoseconds lifetime, std::chrono::nanoseconds idle,
                    std::chrono::nanoseconds idle_since_free, std::uint32_t hits,
                    std::vector<std::chrono::nanoseconds> gaps = {}) {
  EvictionEvent e;
  e.block = BlockId{block};
  e.hash = hash;
  e.reason = reason;
  e.at = at;
  e.lifetime = lifetime;
  e.idle = idle;
  e.idle_since_free = idle_since_free;
  e.hits = hits;
  for (std::size_t i = 0; i < gaps.size(); ++i) e.reuse_gaps[i] = gaps[i];
  e.reuse_gap_count = static_cast<std::uint8_t>(gaps.size());
  return e;
}

TEST(BlockResidencyTracker, ObserverOptionsCarryTheConfiguredRateSeedAndClock) {
  ManualClock clock;
  PrefixCache cache(config(4, kBs));
  MetricsConfig c = tracker_config(&clock);
  c.residency_sample_rate = 0.25;
  c.residency_seed = 77;
  BlockResidencyTracker t(cache, c);
  const ObserverOptions o = t.observer_options();
  EXPECT_EQ(o.sample_rate, 0.25);
  EXPECT_EQ(o.sample_seed, 77u);
  EXPECT_EQ(o.clock, &clock);
  EXPECT_EQ(t.snapshot().sample_rate, 0.25);
  EXPECT_EQ(t.snapshot().hot_reuse_threshold, 2u);
}

TEST(BlockResidencyTracker, ConstructorRejectsABadConfig) {
  PrefixCache cache(config(4, kBs));
  MetricsConfig c;
  c.residency_sample_rate = 0.0;
  EXPECT_THROW(BlockResidencyTracker(cache, c), std::invalid_argument);
  c = MetricsConfig{};
  c.hot_reuse_threshold = 0;
  EXPECT_THROW(BlockResidencyTracker(cache, c), std::invalid_argument);
}

// The main timeline (seconds):
//   1  A = 8 tokens -> [0,1] (born at 1)
//   2  free A (0 and 1 released at 2)
//   3  B = A + 1 token: hits 0 and 1, block 2 for the tail (born at 3)
//   4  free B: 2 released without a hash (its story ends); 1, 0 released at 4
//   6  C = A's first 4 tokens + 1: hits 0 only; block 2 again (born at 6)
//   7  free C: 2 released without a hash; 0 released at 7
//  10  D = 16 fresh tokens: takes 2, 3, evicts 1 then 0 (capacity):
//        block 1: lifetime 9, idle 10-3 = 7, idle_since_free 10-4 = 6, 1 hit
//        block 0: lifetime 9, idle 10-6 = 4, idle_since_free 10-7 = 3,
//                 2 hits, one reuse gap 6-3 = 3
//  12  free D (all four released at 12)
//  15  reset drops D's four blocks: lifetime 5, idle 5, idle_since_free 3, 0 hits
TEST(BlockResidencyTracker, ScriptedTimelineGivesExactResidencyFigures) {
  Rig rig;
  const auto a = seq(8, 100);
  const auto ha = chain(kBs, a);
  rig.at(1s);
  rig.allocate(1, a);
  EXPECT_EQ(rig.tracker.snapshot().tracked_blocks, 2u);
  rig.at(2s);
  rig.free(1);
  rig.at(3s);
  EXPECT_EQ(rig.allocate(2, cat(a, seq(1, 900))).lookup.hit_blocks, 2u);
  EXPECT_EQ(rig.tracker.snapshot().tracked_blocks, 3u);
  rig.at(4s);
  rig.free(2);
  EXPECT_EQ(rig.tracker.snapshot().released_uncached, 1u);
  EXPECT_EQ(rig.tracker.snapshot().tracked_blocks, 2u);
  rig.at(6s);
  EXPECT_EQ(rig.allocate(3, cat(seq(4, 100), seq(1, 901))).lookup.hit_blocks, 1u);
  rig.at(7s);
  rig.free(3);
  ASSERT_EQ(free_ids(rig.cache), (V{2, 3, 1, 0}));
  rig.at(10s);
  const auto d = seq(16, 5000);
  const auto hd = chain(kBs, d);
  EXPECT_EQ(rig.allocate(4, d).evicted_blocks, 2u);
  ASSERT_EQ(table_of(rig.cache, 4), (V{2, 3, 1, 0}));

  const std::vector<EvictionEvent> capacity_events = {
      event(1, ha[1], EvictionReason::capacity, 10s, 9s, 7s, 6s, 1),
      event(0, ha[0], EvictionReason::capacity, 10s, 9s, 4s, 3s, 2, {3s}),
  };
  EXPECT_EQ(rig.tracker.recent_events(), capacity_events);
  EXPECT_EQ(rig.tracker.snapshot().tracked_blocks, 4u);
  EXPECT_EQ(rig.tracker.snapshot().evicted_blocks, 2u);

  rig.at(12s);
  rig.free(4);
  rig.at(15s);
  ASSERT_TRUE(rig.cache.reset().ok());

  const auto events = rig.tracker.recent_events();
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0], capacity_events[0]);
  EXPECT_EQ(events[1], capacity_events[1]);
  // D's table [2,3,1,0] held hd[0..3]; reset order is not part of the contract.
  const std::map<std::uint32_t, BlockHash> d_hash = {
      {2, hd[0]}, {3, hd[1]}, {1, hd[2]}, {0, hd[3]}};
  std::vector<std::uint32_t> reset_blocks;
  for (std::size_t i = 2; i < events.size(); ++i) {
    const std::uint32_t b = events[i].block.value;
    reset_blocks.push_back(b);
    EXPECT_EQ(events[i], event(b, d_hash.at(b), EvictionReason::reset, 15s, 5s, 5s, 3s, 0));
  }
  std::sort(reset_blocks.begin(), reset_blocks.end());
  EXPECT_EQ(reset_blocks, (V{0, 1, 2, 3}));

  const ResidencySnapshot& s = rig.tracker.snapshot();
  EXPECT_EQ(s.sample_rate, 1.0);
  EXPECT_EQ(s.sampled_blocks, 8u);  // A 2, B 1, C 1, D 4
  EXPECT_EQ(s.evicted_blocks, 6u);
  EXPECT_EQ(s.released_uncached, 2u);
  EXPECT_EQ(s.never_reused, 4u);
  EXPECT_EQ(s.hot_blocks, 1u);
  EXPECT_EQ(s.tracked_blocks, 0u);
  EXPECT_DOUBLE_EQ(s.never_reused_share(), 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(s.hot_share(), 1.0 / 6.0);
  constexpr std::uint64_t kSec = 1'000'000'000;
  EXPECT_EQ(s.lifetime.count(), 6u);
  EXPECT_EQ(s.lifetime.sum(), 38 * kSec);
  EXPECT_EQ(s.lifetime.min(), 5 * kSec);
  EXPECT_EQ(s.lifetime.max(), 9 * kSec);
  EXPECT_EQ(s.idle.count(), 6u);
  EXPECT_EQ(s.idle.sum(), 31 * kSec);
  EXPECT_EQ(s.idle.min(), 4 * kSec);
  EXPECT_EQ(s.idle.max(), 7 * kSec);
  EXPECT_EQ(s.idle_since_free.count(), 6u);
  EXPECT_EQ(s.idle_since_free.sum(), 21 * kSec);
  EXPECT_EQ(s.reuse_gap.count(), 1u);
  EXPECT_EQ(s.reuse_gap.sum(), 3 * kSec);
  EXPECT_EQ(s.reuse_count.count(), 6u);
  EXPECT_EQ(s.reuse_count.sum(), 3u);
  EXPECT_EQ(s.reuse_count.max(), 2u);
}

// Block 0 (A alive from 0 s) is hit at 1, 2, 4, 7 and 11 s. The ring keeps
// the last 4 accesses (2, 4, 7, 11): gaps 2, 3, 4. A freed at 12 s; E (16
// fresh tokens) at 20 s evicts 1 and 0.
TEST(BlockResidencyTracker, ReuseGapsComeFromTheLastFourAccesses) {
  Rig rig;
  const auto a = seq(8, 100);
  rig.at(0s);
  rig.allocate(1, a);
  std::uint64_t id = 10;
  for (const auto t : {1s, 2s, 4s, 7s, 11s}) {
    rig.at(t);
    EXPECT_EQ(rig.allocate(id, cat(seq(4, 100), seq(1, 900 + static_cast<TokenId>(id))))
                  .lookup.hit_blocks,
              1u);
    rig.free(id++);
  }
  rig.at(12s);
  rig.free(1);
  rig.at(20s);
  rig.allocate(2, seq(16, 5000));
  const auto events = rig.tracker.recent_events();
  ASSERT_EQ(events.size(), 2u);
  const auto ha = chain(kBs, a);
  EXPECT_EQ(events[0], event(1, ha[1], EvictionReason::capacity, 20s, 20s, 20s, 8s, 0));
  EXPECT_EQ(events[1],
            event(0, ha[0], EvictionReason::capacity, 20s, 20s, 9s, 8s, 5, {2s, 3s, 4s}));
  const ResidencySnapshot& s = rig.tracker.snapshot();
  EXPECT_EQ(s.reuse_gap.count(), 3u);
  EXPECT_EQ(s.reuse_gap.sum(), 9'000'000'000u);
  EXPECT_EQ(s.released_uncached, 5u);
  EXPECT_EQ(s.hot_blocks, 1u);
  EXPECT_EQ(s.never_reused, 1u);
}

// ---------------------------------------------------------------- refaults

// A (8 tokens) cached in 0,1 and freed; B (16 fresh) evicts 1 (eviction #1)
// then 0 (#2); B freed; D (16 fresh) evicts four more (#3..#6).
//   A miss on A's block 0 at 6 evictions: distance 6 - 2 = 4 <= pool 4.
//   A miss on a hash never evicted: checked, no refault.
//   E evicts four more (#7..#10); a miss on A's block 1: 10 - 1 = 9 > 4.
TEST(BlockResidencyTracker, RefaultDistancesCountEvictionsSinceTheMissedHashWasEvicted) {
  Rig rig;
  const auto a = seq(8, 100);
  rig.allocate(1, a);
  rig.free(1);
  rig.allocate(2, seq(16, 500));
  ASSERT_EQ(rig.cache.stats().evictions, 2u);
  rig.free(2);
  rig.allocate(3, seq(16, 900));
  ASSERT_EQ(rig.cache.stats().evictions, 6u);

  const auto probe = rig.cache.lookup(Request::with_tokens(RequestId{9}, a));
  ASSERT_TRUE(probe.ok());
  ASSERT_EQ(probe->stop, LookupStop::not_resident);
  ASSERT_EQ(probe->first_miss_hash, chain(kBs, a)[0]);
  rig.tracker.check_refault(probe->first_miss_hash);
  EXPECT_EQ(rig.tracker.snapshot().misses_checked, 1u);
  EXPECT_EQ(rig.tracker.snapshot().refaults, 1u);
  EXPECT_EQ(rig.tracker.snapshot().refaults_within_capacity, 1u);

  rig.tracker.check_refault(H(12345));
  EXPECT_EQ(rig.tracker.snapshot().misses_checked, 2u);
  EXPECT_EQ(rig.tracker.snapshot().refaults, 1u);

  rig.free(3);
  rig.allocate(4, seq(16, 1300));
  ASSERT_EQ(rig.cache.stats().evictions, 10u);
  rig.tracker.check_refault(chain(kBs, a)[1]);

  const ResidencySnapshot& s = rig.tracker.snapshot();
  EXPECT_EQ(s.misses_checked, 3u);
  EXPECT_EQ(s.refaults, 2u);
  EXPECT_EQ(s.refaults_within_capacity, 1u);
  EXPECT_EQ(s.refault_distance.count(), 2u);
  EXPECT_EQ(s.refault_distance.sum(), 13u);
  EXPECT_EQ(s.refault_distance.min(), 4u);
  EXPECT_EQ(s.refault_distance.max(), 9u);
  EXPECT_DOUBLE_EQ(s.thrash_share(), 1.0 / 3.0);
}

// ---------------------------------------------------------------- event output

// Pool 4: A (16 tokens) fills it and is freed (LRU victims 3, 2, 1, 0);
// B and C (8 fresh tokens each, both kept) evict 3, 2 then 1, 0.
std::vector<EvictionEvent> four_evictions(Rig& rig) {
  rig.allocate(1, seq(16, 100));
  rig.free(1);
  rig.at(5s);
  rig.allocate(2, seq(8, 500));
  rig.allocate(3, seq(8, 900));
  return rig.tracker.recent_events();
}

TEST(BlockResidencyTracker, EventCapacityKeepsTheNewestEventsOldestFirst) {
  Rig all(16);
  const auto every = four_evictions(all);
  ASSERT_EQ(every.size(), 4u);
  std::vector<std::uint32_t> order;
  for (const auto& e : every) order.push_back(e.block.value);
  EXPECT_EQ(order, (V{3, 2, 1, 0}));

  Rig two(2);
  const auto kept = four_evictions(two);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0], every[2]);
  EXPECT_EQ(kept[1], every[3]);
  EXPECT_EQ(two.tracker.snapshot().evicted_blocks, 4u);

  Rig none(0);
  EXPECT_TRUE(four_evictions(none).empty());
  EXPECT_EQ(none.tracker.snapshot().evicted_blocks, 4u);
  EXPECT_EQ(none.tracker.snapshot().lifetime.count(), 4u);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(s);
  while (std::getline(in, item, sep)) out.push_back(item);
  return out;
}

TEST(BlockResidencyTracker, EventsJsonAndCsvHaveOneEntryPerEvent) {
  Rig rig;
  rig.at(1s);
  rig.allocate(1, seq(16, 100));
  rig.at(3s);
  rig.free(1);
  rig.at(10s);
  rig.allocate(2, seq(8, 500));  // evicts 3 then 2: lifetime 9 s, idle 9 s, 0 hits
  const auto events = rig.tracker.recent_events();
  ASSERT_EQ(events.size(), 2u);

  const json j = json::parse(eviction_events_json(rig.tracker.recent_events()));
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 2u);
  EXPECT_TRUE(j[0].is_object());

  const auto lines = split(eviction_events_csv(rig.tracker.recent_events()), '\n');
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "block,hash,reason,at_s,lifetime_s,idle_s,idle_since_free_s,hits,reuse_gaps_s");
  const auto first = split(lines[1], ',');
  ASSERT_GE(first.size(), 8u) << lines[1];
  EXPECT_EQ(first[0], "3");
  EXPECT_EQ(first[2], "capacity");
  EXPECT_DOUBLE_EQ(std::stod(first[3]), 10.0);
  EXPECT_DOUBLE_EQ(std::stod(first[4]), 9.0);
  EXPECT_DOUBLE_EQ(std::stod(first[5]), 9.0);
  EXPECT_DOUBLE_EQ(std::stod(first[6]), 7.0);
  EXPECT_EQ(first[7], "0");
  EXPECT_EQ(split(lines[2], ',')[0], "2");

  Rig empty;
  EXPECT_EQ(json::parse(eviction_events_json(empty.tracker.recent_events())), json::array());
  EXPECT_EQ(split(eviction_events_csv(empty.tracker.recent_events()), '\n').size(), 1u);
}

TEST(BlockResidencyTracker, MemoryIsBoundedByThePoolNotByTraffic) {
  Rig rig(16, 64);
  const std::size_t before = rig.tracker.memory_bytes();
  EXPECT_GT(before, 0u);
  // Warm-up: every block watched, the event ring and ghost table filled.
  for (std::uint64_t r = 0; r < 20; ++r) {
    rig.allocate(r, seq(256, static_cast<TokenId>(r * 1000)));
    rig.free(r);
  }
  const std::size_t warm = rig.tracker.memory_bytes();
  for (std::uint64_t r = 20; r < 200; ++r) {
    rig.allocate(r, seq(256, static_cast<TokenId>(r * 1000)));
    rig.free(r);
  }
  EXPECT_EQ(rig.tracker.memory_bytes(), warm);
}

// ---------------------------------------------------------------- steering

/// A 64-block pool (block size 4) fed prompts of 8 unique blocks, each freed
/// right away, on a ManualClock: every request allocates 8 blocks and, once
/// the pool is full, evicts 8. The tracker steers to `per_second` and is
/// ticked once a simulated second, as ShardMetrics does in a runtime.
struct SteeredRig {
  explicit SteeredRig(double per_second, double max_rate = 1.0, std::uint32_t max_watched = 65536,
                      std::uint32_t pool = 64, std::uint32_t blocks_per_request = 8)
      : cache(config(pool, kBs)),
        tracker(cache, steered(per_second, max_rate, max_watched)),
        prompt_tokens(blocks_per_request * kBs) {
    cache.set_observer(&tracker, tracker.observer_options());
  }
  MetricsConfig steered(double per_second, double max_rate, std::uint32_t max_watched) {
    MetricsConfig c = tracker_config(&clock);
    c.residency_watched_per_second = per_second;
    c.residency_sample_rate = max_rate;
    c.residency_max_watched_blocks = max_watched;
    return c;
  }
  /// `n` requests, one every `gap`.
  void run(std::uint64_t n, std::chrono::nanoseconds gap) {
    std::vector<TokenId> prompt(prompt_tokens);
    for (std::uint64_t i = 0; i < n; ++i) {
      clock.advance(gap);
      for (TokenId& t : prompt) t = static_cast<TokenId>(next_token++);
      ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{next_id}, prompt)).ok());
      ASSERT_TRUE(cache.free(RequestId{next_id}).ok());
      ++next_id;
      if (clock.now() >= next_tick) {
        tracker.tick(clock.now());
        next_tick = clock.now() + 1s;
      }
    }
  }
  ManualClock clock;
  PrefixCache cache;
  BlockResidencyTracker tracker;
  std::uint32_t prompt_tokens;
  std::uint64_t next_id = 0;
  std::uint64_t next_token = 1;
  Timestamp next_tick{1s};
};

// 800,000 allocations/s (a request of 8 blocks every 10 us) against a target
// of 1,000 watched/s: the rate settles within 2x of 1,000 / 800,000, and the
// weighted figures estimate the true totals although the rate moved from 1
// down to ~2^-10 on the way.
TEST(ResidencySteering, UnderHeavyLoadTheRateSettlesNearTheTargetAndEstimatesStayUnbiased) {
  SteeredRig rig(1000);
  rig.run(200'000, 10us);  // two simulated seconds
  const double wanted = 1000.0 / 800'000.0;
  EXPECT_GE(rig.tracker.sample_rate(), wanted / 2);
  EXPECT_LE(rig.tracker.sample_rate(), wanted * 2);
  const ResidencySnapshot& s = rig.tracker.snapshot();
  EXPECT_EQ(s.sample_rate, rig.tracker.sample_rate());
  // ~1,000 samples a second, each weighing ~1,000 allocations.
  EXPECT_GT(s.sampled_blocks, 1'000u);
  EXPECT_LT(s.sampled_blocks, 8'000u);
  const double allocations = 200'000.0 * 8;
  EXPECT_NEAR(static_cast<double>(s.estimated_allocations) / allocations, 1.0, 0.1);
  const auto evictions = static_cast<double>(rig.cache.stats().evictions);
  EXPECT_NEAR(static_cast<double>(s.estimated_evictions) / evictions, 1.0, 0.1);
  EXPECT_EQ(s.lifetime.count(), s.estimated_evictions);  // histograms carry the weights
  EXPECT_LT(s.effective_sample_rate(), 0.01);
  // Each block lives 8 requests (a 64-block pool, 8 blocks a request): 80 us.
  EXPECT_NEAR(static_cast<double>(s.lifetime.quantile(0.5)), 80e3, 80e3 * 0.05);
}

// After the heavy phase, one request every 10 ms (800 allocations/s, under
// the target): within a few periods the sampler is back to watching every
// allocation. With no traffic at all, the periodic tick raises it alone: the
// first quiet period still holds the heavy phase's last samples, the second
// holds none.
TEST(ResidencySteering, WhenTheLoadDropsTheRateRisesBackToTheHighest) {
  SteeredRig rig(1000);
  rig.run(50'000, 10us);
  ASSERT_LT(rig.tracker.sample_rate(), 0.01);
  rig.run(300, 10ms);
  EXPECT_EQ(rig.tracker.sample_rate(), 1.0);

  rig.run(50'000, 10us);
  ASSERT_LT(rig.tracker.sample_rate(), 0.01);
  rig.clock.advance(1s);
  rig.tracker.tick(rig.clock.now());
  rig.clock.advance(1s);
  rig.tracker.tick(rig.clock.now());
  EXPECT_EQ(rig.tracker.sample_rate(), 1.0);
}

// Blocks watched while the rate was high are thinned when it drops: a
// shared prefix held by a live request (8 blocks, watched at rate 1) keeps
// each block with probability 2^-j after a drop of 2^j, so under heavy load
// it soon stops reporting its hits; the estimates stay unbiased.
TEST(ResidencySteering, LoweringTheRateThinsBlocksWatchedBefore) {
  SteeredRig rig(1000);
  const std::vector<TokenId> prefix = seq(32, 1'000'000);
  ASSERT_TRUE(rig.cache.allocate(Request::with_tokens(RequestId{999'999'999}, prefix)).ok());
  EXPECT_EQ(rig.tracker.snapshot().tracked_blocks, 8u);
  rig.run(100'000, 10us);
  ASSERT_LT(rig.tracker.sample_rate(), 0.01);
  EXPECT_LE(rig.tracker.snapshot().tracked_blocks, 4u);  // ~2 from the churn, the prefix gone
  const auto evictions = static_cast<double>(rig.cache.stats().evictions);
  EXPECT_NEAR(static_cast<double>(rig.tracker.snapshot().estimated_evictions) / evictions, 1.0,
              0.15);
}

// A light load of large requests: 128 blocks every 200 ms (640 a second,
// under the target). Every block of one request carries one timestamp, so
// the burst must not read as a flood: the sampler keeps watching them all.
TEST(ResidencySteering, LargeRequestsAtALightLoadKeepEveryBlockWatched) {
  SteeredRig rig(1000, 1.0, 65536, 4096, 128);
  rig.run(50, 200ms);  // 10 simulated seconds
  EXPECT_EQ(rig.tracker.sample_rate(), 1.0);
  EXPECT_EQ(rig.tracker.snapshot().sampled_blocks, 50u * 128);
}

// Steering off: the rate stays at residency_sample_rate rounded down to a
// power of two (0.01 -> 1/128), and each sample weighs 128.
TEST(ResidencySteering, OffKeepsTheConfiguredRateRoundedDownToAPowerOfTwo) {
  SteeredRig rig(0, 0.01);
  EXPECT_EQ(rig.tracker.sample_rate(), 1.0 / 128);
  EXPECT_EQ(rig.tracker.observer_options().sample_rate, 1.0 / 128);
  rig.run(20'000, 10us);
  EXPECT_EQ(rig.tracker.sample_rate(), 1.0 / 128);
  const ResidencySnapshot& s = rig.tracker.snapshot();
  EXPECT_EQ(s.estimated_allocations, 128 * s.sampled_blocks);
  EXPECT_EQ(s.estimated_evictions, 128 * s.evicted_blocks);
}

// A light load that keeps every block cached (a 64-block pool, one request a
// second) would watch the whole pool; a limit of 16 watched blocks lowers
// the rate instead.
TEST(ResidencySteering, TooManyWatchedBlocksLowerTheRate) {
  SteeredRig rig(1000, 1.0, 16);
  rig.run(8, 1s);  // 64 blocks allocated, all cached
  EXPECT_LT(rig.tracker.sample_rate(), 1.0);
  EXPECT_LE(rig.tracker.snapshot().tracked_blocks, 24u);
}

TEST(ResidencySteering, BadSteeringSettingsAreRejected) {
  PrefixCache cache(config(4, kBs));
  MetricsConfig c;
  c.residency_watched_per_second = -1;
  EXPECT_THROW(BlockResidencyTracker(cache, c), std::invalid_argument);
  c.residency_watched_per_second = std::numeric_limits<double>::infinity();
  EXPECT_THROW(BlockResidencyTracker(cache, c), std::invalid_argument);
  c = MetricsConfig{};
  c.residency_max_watched_blocks = 0;
  EXPECT_THROW(BlockResidencyTracker(cache, c), std::invalid_argument);
}

// ---------------------------------------------------------------- snapshot merge

TEST(ResidencySnapshot, PlusEqualsAddsCountsAndMergesHistograms) {
  ResidencySnapshot a, b;
  a.sample_rate = b.sample_rate = 0.5;
  a.sampled_blocks = 3;
  b.sampled_blocks = 4;
  a.estimated_allocations = 6;
  b.estimated_allocations = 8;
  a.evicted_blocks = 2;
  b.evicted_blocks = 5;
  a.estimated_evictions = 4;
  b.estimated_evictions = 10;
  a.reuse_gap_samples = 1;
  b.refault_samples = 2;
  a.never_reused = 1;
  b.hot_blocks = 2;
  a.misses_checked = 10;
  b.refaults = 3;
  a.lifetime.record(100);
  b.lifetime.record(300);
  b.refault_distance.record(7);
  a += b;
  EXPECT_EQ(a.sampled_blocks, 7u);
  EXPECT_EQ(a.estimated_allocations, 14u);
  EXPECT_EQ(a.evicted_blocks, 7u);
  EXPECT_EQ(a.estimated_evictions, 14u);
  EXPECT_EQ(a.reuse_gap_samples, 1u);
  EXPECT_EQ(a.refault_samples, 2u);
  EXPECT_DOUBLE_EQ(a.effective_sample_rate(), 0.5);
  EXPECT_EQ(a.never_reused, 1u);
  EXPECT_EQ(a.hot_blocks, 2u);
  EXPECT_EQ(a.misses_checked, 10u);
  EXPECT_EQ(a.refaults, 3u);
  EXPECT_EQ(a.lifetime.count(), 2u);
  EXPECT_EQ(a.lifetime.sum(), 400u);
  EXPECT_EQ(a.refault_distance.count(), 1u);
  EXPECT_DOUBLE_EQ(a.never_reused_share(), 1.0 / 14.0);  // estimates over estimated evictions
  EXPECT_DOUBLE_EQ(a.hot_share(), 2.0 / 14.0);
}

TEST(ResidencySnapshot, PlusEqualsRejectsAnotherLayout) {
  ResidencySnapshot a;
  const ResidencySnapshot b(HistogramLayout{1'000'000, 5});
  EXPECT_THROW(a += b, std::invalid_argument);
}

TEST(ResidencySnapshot, ThrashShareIsCappedAtOne) {
  ResidencySnapshot s;
  s.misses_checked = 10;
  s.refaults = 500;
  s.refaults_within_capacity = 500;  // five refaults sampled at 0.01: 500 / 10 -> 1
  EXPECT_DOUBLE_EQ(s.thrash_share(), 1.0);
  s.refaults_within_capacity = 0;
  EXPECT_EQ(s.thrash_share(), 0.0);
}

TEST(ResidencySnapshot, ToJsonParses) {
  Rig rig;
  four_evictions(rig);
  const json j = json::parse(to_json(rig.tracker.snapshot()));
  EXPECT_TRUE(j.is_object());
  EXPECT_FALSE(j.empty());
}

}  // namespace
}  // namespace kvscope
