// CacheType, EvictionReason, EvictionCounts, CachingTotals, CachingSnapshot
// and CachingMetrics (one cache level's hit/miss/write/eviction metrics),
// plus SnapshotWindow, the tick-driven window those metrics read.
//
// Window arithmetic (10 s window, 1 s slots): slot(t) = floor(t / 1 s). A tick
// at t stamps the start of every slot begun since the previous tick with the
// running totals, so whatever is observed after a tick counts in that
// tick's slot. After a tick in slot n the window holds slots n-9 .. n.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "kvscope/export/json.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/sliding_window.hpp"
#include "kvscope/prefix_cache_stats.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const WindowConfig k10s = WindowConfig{10s, 1s};

// ---------------------------------------------------------------- CacheType

TEST(CacheType, BuiltInsAreNamedPrefixBlockAndKv) {
  EXPECT_EQ(CacheType::prefix().name(), "prefix");
  EXPECT_EQ(CacheType::block().name(), "block");
  EXPECT_EQ(CacheType::kv().name(), "kv");
  EXPECT_NE(CacheType::prefix(), CacheType::kv());
  static_assert(std::is_trivially_copyable_v<CacheType>);
}

TEST(CacheType, UserNamesOfLowercaseDigitsAndUnderscoreAreAccepted) {
  EXPECT_EQ(CacheType::user("cpu_offload").name(), "cpu_offload");
  EXPECT_EQ(CacheType::user("tier2").name(), "tier2");
  EXPECT_EQ(CacheType::user("_").name(), "_");
  const std::string longest(23, 'a');
  EXPECT_EQ(CacheType::user(longest).name(), longest);
  // Equality and order are by name.
  EXPECT_EQ(CacheType::user("kv"), CacheType::kv());
  EXPECT_LT(CacheType::user("disk"), CacheType::prefix());
  EXPECT_GT(CacheType::user("zz"), CacheType::prefix());
}

TEST(CacheType, UserRejectsEmptyLongUppercaseAndPunctuatedNames) {
  EXPECT_THROW(CacheType::user(""), std::invalid_argument);
  EXPECT_THROW(CacheType::user(std::string(24, 'a')), std::invalid_argument);
  EXPECT_THROW(CacheType::user("CPU"), std::invalid_argument);
  EXPECT_THROW(CacheType::user("cpuOffload"), std::invalid_argument);
  EXPECT_THROW(CacheType::user("cpu-offload"), std::invalid_argument);
  EXPECT_THROW(CacheType::user("cpu offload"), std::invalid_argument);
  EXPECT_THROW(CacheType::user("cpu.offload"), std::invalid_argument);
  EXPECT_THROW(CacheType::user("\"x\""), std::invalid_argument);
}

// ---------------------------------------------------------------- EvictionReason

TEST(EvictionReason, ToStringNamesEveryReason) {
  EXPECT_EQ(to_string(EvictionReason::capacity), "capacity");
  EXPECT_EQ(to_string(EvictionReason::explicit_), "explicit");
  EXPECT_EQ(to_string(EvictionReason::reset), "reset");
  EXPECT_EQ(to_string(EvictionReason::preemption), "preemption");
  EXPECT_EQ(to_string(EvictionReason::ttl), "ttl");
  EXPECT_EQ(to_string(EvictionReason::other), "other");
}

// ---------------------------------------------------------------- EvictionCounts

TEST(EvictionCounts, CountPerReasonAndInTotalAndAddAndSubtract) {
  EvictionCounts a;
  a.blocks_of(EvictionReason::capacity) = 3;
  a.bytes_of(EvictionReason::capacity) = 300;
  a.blocks_of(EvictionReason::ttl) = 2;
  a.bytes_of(EvictionReason::ttl) = 50;
  EXPECT_EQ(a.total_blocks(), 5u);
  EXPECT_EQ(a.total_bytes(), 350u);
  EvictionCounts b;
  b.blocks_of(EvictionReason::capacity) = 1;
  b.blocks_of(EvictionReason::reset) = 4;
  b.bytes_of(EvictionReason::reset) = 40;
  EvictionCounts sum = a;
  sum += b;
  EXPECT_EQ(sum.blocks_of(EvictionReason::capacity), 4u);
  EXPECT_EQ(sum.blocks_of(EvictionReason::reset), 4u);
  EXPECT_EQ(sum.blocks_of(EvictionReason::ttl), 2u);
  EXPECT_EQ(sum.total_blocks(), 10u);
  EXPECT_EQ(sum.total_bytes(), 390u);
  sum -= b;
  EXPECT_EQ(sum, a);
}

// ---------------------------------------------------------------- CachingTotals

TEST(CachingTotals, RatesAreZeroWhenNothingWasLookedUp) {
  const CachingTotals t;
  EXPECT_EQ(t.hit_rate(), 0.0);
  EXPECT_EQ(t.byte_hit_rate(), 0.0);
}

TEST(CachingTotals, AddAndSubtractEveryCounter) {
  CachingTotals a;
  a.hit_ops = 1;
  a.miss_ops = 2;
  a.hits = 3;
  a.misses = 4;
  a.hit_bytes = 5;
  a.miss_bytes = 6;
  a.writes = 7;
  a.write_bytes = 8;
  a.evictions.blocks_of(EvictionReason::other) = 9;
  CachingTotals sum = a;
  sum += a;
  EXPECT_EQ(sum.hit_ops, 2u);
  EXPECT_EQ(sum.miss_ops, 4u);
  EXPECT_EQ(sum.hits, 6u);
  EXPECT_EQ(sum.misses, 8u);
  EXPECT_EQ(sum.hit_bytes, 10u);
  EXPECT_EQ(sum.miss_bytes, 12u);
  EXPECT_EQ(sum.writes, 14u);
  EXPECT_EQ(sum.write_bytes, 16u);
  EXPECT_EQ(sum.evictions.blocks_of(EvictionReason::other), 18u);
  sum -= a;
  EXPECT_EQ(sum, a);
}

// ---------------------------------------------------------------- CachingMetrics totals

// hit 3 items/300 B, hit 1/100, miss 1/1400 -> hit rate 4/5, byte hit rate
// 400/1800; writes 4/400; evictions 2 capacity (200 B) + 1 ttl (100 B).
TEST(CachingMetrics, ObservationsAddUpToExactTotalsAndRates) {
  CachingMetrics m(CacheType::user("cpu_offload"), k10s);
  EXPECT_EQ(m.type(), CacheType::user("cpu_offload"));
  EXPECT_EQ(m.totals(), CachingTotals{});
  EXPECT_EQ(m.hit_rate(), 0.0);
  m.observe_hit(3, 300);
  m.observe_hit(1, 100);
  m.observe_miss(1, 1400);
  m.observe_write(4, 400);
  m.observe_eviction(2, EvictionReason::capacity, 200);
  m.observe_eviction(1, EvictionReason::ttl, 100);
  const CachingTotals& t = m.totals();
  EXPECT_EQ(t.hit_ops, 2u);
  EXPECT_EQ(t.miss_ops, 1u);
  EXPECT_EQ(t.hits, 4u);
  EXPECT_EQ(t.misses, 1u);
  EXPECT_EQ(t.hit_bytes, 400u);
  EXPECT_EQ(t.miss_bytes, 1400u);
  EXPECT_EQ(t.writes, 4u);
  EXPECT_EQ(t.write_bytes, 400u);
  EXPECT_EQ(t.evictions.blocks_of(EvictionReason::capacity), 2u);
  EXPECT_EQ(t.evictions.bytes_of(EvictionReason::capacity), 200u);
  EXPECT_EQ(t.evictions.blocks_of(EvictionReason::ttl), 1u);
  EXPECT_EQ(t.evictions.bytes_of(EvictionReason::ttl), 100u);
  EXPECT_EQ(t.evictions.total_blocks(), 3u);
  EXPECT_DOUBLE_EQ(m.hit_rate(), 0.8);
  EXPECT_DOUBLE_EQ(t.hit_rate(), 0.8);
  EXPECT_DOUBLE_EQ(t.byte_hit_rate(), 400.0 / 1800.0);
}

TEST(CachingMetrics, ConstructorRejectsBadWindowOrLayout) {
  EXPECT_THROW(CachingMetrics(CacheType::kv(), WindowConfig{10s, 3s}), std::invalid_argument);
  EXPECT_THROW(CachingMetrics(CacheType::kv(), k10s, HistogramLayout{0, 7}), std::invalid_argument);
}

// ---------------------------------------------------------------- CachingMetrics window

// tick 0 s; hit 4 (slot 0); tick 1.5 s; miss 4 (slot 1); tick 2 s.
// Both are in the window until tick 10 s drops slot 0 (the hit); tick 11.5 s
// drops slot 1 (the miss). Totals never change.
TEST(CachingMetrics, ObservationsCountInTheSlotOfTheLastTickAndExpireAfterTheWindow) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(0s);
  m.observe_hit(4, 40);
  m.tick(1'500ms);
  m.observe_miss(4, 40);
  m.tick(2s);
  EXPECT_EQ(m.window_totals().hits, 4u);
  EXPECT_EQ(m.window_totals().misses, 4u);
  EXPECT_DOUBLE_EQ(m.window_hit_rate(), 0.5);
  m.tick(9'999ms);
  EXPECT_EQ(m.window_totals().hits, 4u);
  EXPECT_EQ(m.window_totals().misses, 4u);
  m.tick(10s);
  EXPECT_EQ(m.window_totals().hits, 0u);
  EXPECT_EQ(m.window_totals().hit_ops, 0u);
  EXPECT_EQ(m.window_totals().misses, 4u);
  EXPECT_EQ(m.window_hit_rate(), 0.0);
  m.tick(11'500ms);
  EXPECT_EQ(m.window_totals(), CachingTotals{});
  EXPECT_EQ(m.totals().hits, 4u);
  EXPECT_EQ(m.totals().misses, 4u);
  EXPECT_DOUBLE_EQ(m.hit_rate(), 0.5);
}

// Ticks skip slots 1..3: the hit observed after tick 0.5 s stays in slot 0
// (it was counted before slot 1's start was stamped at 3.7 s).
TEST(CachingMetrics, SkippedSlotsStampedByTheNextTickKeepEarlierCountsInTheOldSlot) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(500ms);
  m.observe_hit(1, 1);
  m.tick(3'700ms);
  m.observe_miss(2, 2);
  m.tick(10'200ms);  // window: slots 1..10
  EXPECT_EQ(m.window_totals().hits, 0u);
  EXPECT_EQ(m.window_totals().misses, 2u);
}

// Slot k (k = 0..20) holds k evicted blocks (observed right after the tick
// at k + 0.5 s). Asked at 21 s, the end of slot 20: the newest 5 slots hold
// 16+...+20 = 90 blocks over 5 s; a 20 s span is clamped to the 10 s window:
// 11+...+20 = 155 over 10 s; 1 s: slot 20 alone.
TEST(CachingMetrics, EvictionRateCountsWholeSlotsOverTheSpanClampedToTheWindow) {
  CachingMetrics m(CacheType::prefix(), k10s);
  for (int k = 0; k <= 20; ++k) {
    m.tick(std::chrono::milliseconds(1000 * k + 500));
    if (k > 0) m.observe_eviction(k, EvictionReason::capacity, 0);
  }
  EXPECT_DOUBLE_EQ(m.eviction_rate(21s, 5s), 90.0 / 5.0);
  EXPECT_DOUBLE_EQ(m.eviction_rate(21s, 10s), 155.0 / 10.0);
  EXPECT_DOUBLE_EQ(m.eviction_rate(21s, 20s), 155.0 / 10.0);
  EXPECT_DOUBLE_EQ(m.eviction_rate(21s, 1s), 20.0);
  EXPECT_EQ(m.totals().evictions.total_blocks(), 210u);
}

TEST(CachingMetrics, EvictionRateRejectsNonPositiveSpans) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(1s);
  EXPECT_THROW(m.eviction_rate(1s, 0s), std::invalid_argument);
  EXPECT_THROW(m.eviction_rate(1s, -1s), std::invalid_argument);
}

// ---------------------------------------------------------------- latency

// Lookups with a latency record it; without, they do not. Eviction
// latencies go to their own histogram.
TEST(CachingMetrics, LatencyHistogramsRecordOnlyMeasuredLookups) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(0s);
  m.observe_hit(1, 10, 100ns);
  m.observe_miss(1, 10, 300ns);
  m.observe_hit(1, 10);
  m.observe_miss(1, 10, std::nullopt);
  m.observe_write(1, 10);
  m.observe_eviction(1, EvictionReason::capacity, 10, 50ns);
  m.observe_eviction(1, EvictionReason::capacity, 10);
  EXPECT_EQ(m.latency().count(), 2u);
  EXPECT_EQ(m.latency().sum(), 400u);
  EXPECT_EQ(m.latency().min(), 100u);
  EXPECT_EQ(m.latency().max(), 300u);
  EXPECT_EQ(m.eviction_latency().count(), 1u);
  EXPECT_EQ(m.eviction_latency().sum(), 50u);
}

// A latency observed after the tick at 0.5 s is in the window's histogram
// until the window drops slot 0 (tick at 10 s); the total keeps it.
TEST(CachingMetrics, WindowLatencyExpiresWithItsSlot) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(500ms);
  m.observe_hit(1, 10, 250ns);
  m.tick(5s);
  const CachingSnapshot at5 = m.snapshot(5s);
  EXPECT_EQ(at5.window_latency.count(), 1u);
  EXPECT_EQ(at5.window_latency.max(), 250u);
  EXPECT_EQ(at5.latency.count(), 1u);
  m.tick(10s);
  const CachingSnapshot at10 = m.snapshot(10s);
  EXPECT_EQ(at10.window_latency.count(), 0u);
  EXPECT_EQ(at10.latency.count(), 1u);
}

// ---------------------------------------------------------------- snapshot

// tick 0 s; hit 2 items / 500 B; eviction of 3 blocks; memory 250 of 1000 B;
// snapshot at 5 s: the window covers 0..5 s.
//   memory_efficiency = window hit bytes / resident = 500 / 250 = 2
//   memory_pressure = 250 / 1000 = 0.25
//   window_eviction_rate = 3 blocks / 5 s = 0.6
TEST(CachingMetrics, SnapshotCarriesTotalsWindowGaugesAndDerivedFigures) {
  CachingMetrics m(CacheType::kv(), k10s);
  m.tick(0s);
  m.observe_hit(2, 500, 1'000ns);
  m.observe_eviction(3, EvictionReason::capacity, 300);
  m.set_memory(250, 1000);
  m.tick(5s);
  const CachingSnapshot s = m.snapshot(5s);
  EXPECT_EQ(s.type, CacheType::kv());
  EXPECT_EQ(s.total, m.totals());
  EXPECT_EQ(s.window, m.window_totals());
  EXPECT_EQ(s.window.hit_bytes, 500u);
  EXPECT_EQ(s.window_span, 5s);
  EXPECT_EQ(s.resident_bytes, 250u);
  EXPECT_EQ(s.capacity_bytes, 1000u);
  EXPECT_EQ(s.latency.count(), 1u);
  EXPECT_DOUBLE_EQ(s.memory_efficiency(), 2.0);
  EXPECT_DOUBLE_EQ(s.memory_pressure(), 0.25);
  EXPECT_DOUBLE_EQ(s.window_eviction_rate(), 0.6);
  // set_memory replaces the gauges.
  m.set_memory(100, 0);
  const CachingSnapshot later = m.snapshot(5s);
  EXPECT_EQ(later.resident_bytes, 100u);
  EXPECT_EQ(later.memory_pressure(), 0.0) << "capacity unknown";
}

// Long after the first tick the window covers from its oldest slot's start:
// tick 30 s -> slots 21..30 -> 9 s.
TEST(CachingMetrics, SnapshotWindowSpanIsTheTimeTheWindowCovers) {
  CachingMetrics m(CacheType::prefix(), k10s);
  for (int t = 0; t <= 30; ++t) m.tick(std::chrono::seconds(t));
  EXPECT_EQ(m.snapshot(30s).window_span, 9s);
}

TEST(CachingSnapshot, DerivedFiguresAreZeroWithoutTheirDenominators) {
  CachingSnapshot s;
  s.window.hit_bytes = 100;
  s.window.evictions.blocks_of(EvictionReason::capacity) = 5;
  s.resident_bytes = 0;
  s.capacity_bytes = 0;
  s.window_span = 0s;
  EXPECT_EQ(s.memory_efficiency(), 0.0);
  EXPECT_EQ(s.memory_pressure(), 0.0);
  EXPECT_EQ(s.window_eviction_rate(), 0.0);
}

CachingSnapshot snapshot_of(CacheType type, std::uint64_t hits, std::uint64_t resident,
                            std::uint64_t capacity, std::uint64_t latency) {
  CachingSnapshot s;
  s.type = type;
  s.total.hits = hits;
  s.total.hit_ops = 1;
  s.window.hits = hits;
  s.resident_bytes = resident;
  s.capacity_bytes = capacity;
  s.latency.record(latency);
  s.window_latency.record(latency);
  return s;
}

TEST(CachingSnapshot, PlusEqualsSumsCountsMergesHistogramsAndAddsMemory) {
  CachingSnapshot a = snapshot_of(CacheType::prefix(), 3, 100, 1000, 10);
  const CachingSnapshot b = snapshot_of(CacheType::prefix(), 5, 300, 1000, 30);
  a += b;
  EXPECT_EQ(a.type, CacheType::prefix());
  EXPECT_EQ(a.total.hits, 8u);
  EXPECT_EQ(a.total.hit_ops, 2u);
  EXPECT_EQ(a.window.hits, 8u);
  EXPECT_EQ(a.resident_bytes, 400u);
  EXPECT_EQ(a.capacity_bytes, 2000u);
  EXPECT_DOUBLE_EQ(a.memory_pressure(), 0.2);
  EXPECT_EQ(a.latency.count(), 2u);
  EXPECT_EQ(a.latency.sum(), 40u);
  EXPECT_EQ(a.window_latency.count(), 2u);
  EXPECT_EQ(a.window_latency.max(), 30u);
}

TEST(CachingSnapshot, PlusEqualsRejectsAnotherTypeOrLayout) {
  CachingSnapshot a = snapshot_of(CacheType::prefix(), 3, 100, 1000, 10);
  const CachingSnapshot before = a;
  EXPECT_THROW(a += snapshot_of(CacheType::kv(), 5, 300, 1000, 30), std::invalid_argument);
  EXPECT_EQ(a.total, before.total);
  CachingSnapshot other_layout = snapshot_of(CacheType::prefix(), 5, 300, 1000, 30);
  other_layout.latency = Histogram(HistogramLayout{1'000'000, 5});
  EXPECT_THROW(a += other_layout, std::invalid_argument);
}

TEST(CachingSnapshot, ToJsonParsesWithTheDocumentedKeys) {
  CachingMetrics m(CacheType::user("cpu_offload"), k10s);
  m.tick(0s);
  m.observe_hit(3, 600, 100ns);
  m.observe_miss(1, 200);
  m.observe_eviction(2, EvictionReason::capacity, 10);
  m.set_memory(300, 1200);
  m.tick(4s);
  const CachingSnapshot s = m.snapshot(4s);
  const json j = json::parse(to_json(s));
  ASSERT_TRUE(j.is_object());
  for (const char* key :
       {"type", "total", "window", "window_seconds", "hit_rate", "window_hit_rate",
        "window_eviction_rate", "latency_ns", "window_latency_ns", "resident_bytes",
        "capacity_bytes", "memory_efficiency", "memory_pressure"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["type"], "cpu_offload");
  EXPECT_TRUE(j["total"].is_object());
  EXPECT_TRUE(j["window"].is_object());
  EXPECT_TRUE(j["latency_ns"].is_object());
  EXPECT_DOUBLE_EQ(j["window_seconds"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(j["hit_rate"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["window_hit_rate"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(j["window_eviction_rate"].get<double>(), 0.5);
  EXPECT_EQ(j["resident_bytes"].get<std::uint64_t>(), 300u);
  EXPECT_EQ(j["capacity_bytes"].get<std::uint64_t>(), 1200u);
  EXPECT_DOUBLE_EQ(j["memory_efficiency"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["memory_pressure"].get<double>(), 0.25);
}

TEST(CachingMetrics, MemoryBytesIsFixedByConfigurationNotTraffic) {
  CachingMetrics m(CacheType::prefix(), k10s);
  m.tick(0s);
  const std::size_t before = m.memory_bytes();
  EXPECT_GT(before, 0u);
  for (int t = 1; t <= 50; ++t) {
    for (int k = 0; k < 100; ++k) m.observe_hit(1, 1, std::chrono::nanoseconds(k * 1000 + t));
    m.tick(std::chrono::seconds(t));
  }
  EXPECT_EQ(m.memory_bytes(), before);
}

// ---------------------------------------------------------------- SnapshotWindow

struct Count {
  std::uint64_t n = 0;
  Count& operator-=(const Count& o) {
    n -= o.n;
    return *this;
  }
  friend bool operator==(const Count&, const Count&) = default;
};

TEST(SnapshotWindow, RejectsBadConfigAndSizesItsRingBySlots) {
  EXPECT_THROW(SnapshotWindow<Count>(WindowConfig{10s, 3s}), std::invalid_argument);
  EXPECT_THROW(SnapshotWindow<Count>(WindowConfig{1s, 2s}), std::invalid_argument);
  const SnapshotWindow<Count> w(k10s);
  EXPECT_EQ(w.memory_bytes(), 10 * sizeof(Count));
  EXPECT_EQ(w.config().window, 10s);
}

TEST(SnapshotWindow, BeforeTheFirstTickTheWindowIsAllOfTheTotals) {
  const SnapshotWindow<Count> w(k10s);
  EXPECT_EQ(w.window(Count{7}).n, 7u);
  EXPECT_EQ(w.over(Count{7}, 1s).n, 7u);
  EXPECT_EQ(w.covered(5s, 10s), 0s);
}

// tick 0.5 s with 0 counted (slot 0 starts at 0); 5 counted; tick 1.2 s
// (slot 1 starts at 5); 12 counted by now.
//   over 10 s: 12 - start(slot 0) = 12;  over 1 s: 12 - start(slot 1) = 7;
//   over 1.5 s = 2 slots: 12.
// tick 10.3 s with 20: slots 2..10 start at 20; the window is slots 1..10:
// 20 - 5 = 15; it covers 1 s .. 10.3 s = 9.3 s.
TEST(SnapshotWindow, HandWorkedSlotBoundaries) {
  SnapshotWindow<Count> w(k10s);
  w.tick(500ms, Count{0});
  w.tick(1'200ms, Count{5});
  EXPECT_EQ(w.window(Count{12}).n, 12u);
  EXPECT_EQ(w.over(Count{12}, 1s).n, 7u);
  EXPECT_EQ(w.over(Count{12}, 1'500ms).n, 12u);
  EXPECT_EQ(w.over(Count{12}, 10min).n, 12u) << "span clamped to the window";
  EXPECT_EQ(w.covered(1'200ms, 10s), 1'200ms) << "short history: from the first slot's start";
  EXPECT_EQ(w.covered(1'200ms, 1s), 200ms);
  w.tick(10'300ms, Count{20});
  EXPECT_EQ(w.window(Count{20}).n, 15u);
  EXPECT_EQ(w.over(Count{20}, 1s).n, 0u);
  EXPECT_EQ(w.covered(10'300ms, 10s), 9'300ms);
}

// A jump longer than the window restamps every slot: only what is counted
// after the jump's tick is in the window.
TEST(SnapshotWindow, JumpLongerThanTheWindowForgetsEverythingBeforeIt) {
  SnapshotWindow<Count> w(k10s);
  w.tick(0s, Count{0});
  w.tick(3s, Count{10});
  w.tick(50'500ms, Count{30});
  EXPECT_EQ(w.window(Count{30}).n, 0u);
  EXPECT_EQ(w.window(Count{33}).n, 3u);
  EXPECT_EQ(w.covered(50'500ms, 10s), 9'500ms);  // slots 41..50
}

// A tick older than the newest one changes nothing.
TEST(SnapshotWindow, StaleTickCountsAsTheNewestTime) {
  SnapshotWindow<Count> w(k10s);
  w.tick(0s, Count{0});
  w.tick(5s, Count{4});
  w.tick(3s, Count{9});
  EXPECT_EQ(w.over(Count{9}, 1s).n, 5u);  // slot 5 still starts at 4
  EXPECT_EQ(w.window(Count{9}).n, 9u);
}

// With QueryCounts: the hit rate of the last 2 s.
TEST(SnapshotWindow, WorksOverQueryCounts) {
  SnapshotWindow<QueryCounts> w(k10s);
  QueryCounts totals;
  w.tick(0s, totals);
  totals += QueryCounts{1, 100, 0, 7, 0};  // slot 0
  w.tick(1s, totals);
  totals += QueryCounts{1, 100, 50, 7, 3};  // slot 1
  w.tick(2s, totals);
  totals += QueryCounts{1, 100, 100, 7, 6};  // slot 2
  const QueryCounts last2 = w.over(totals, 2s);
  EXPECT_EQ(last2, (QueryCounts{2, 200, 150, 14, 9}));
  EXPECT_DOUBLE_EQ(last2.token_hit_rate(), 0.75);
  EXPECT_EQ(w.window(totals), totals);
}

}  // namespace
}  // namespace kvscope
