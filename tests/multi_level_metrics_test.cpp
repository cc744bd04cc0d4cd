// MultiLevelCacheMetrics: per-level CachingMetrics created on first use,
// requests counted across levels ("served by any level"), memory pressure per
// level and combined, the request window, and merging snapshots.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvscope/export/json.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const WindowConfig k10s = WindowConfig{10s, 1s};
const CacheType kCpu = CacheType::user("cpu_offload");
const CacheType kDisk = CacheType::user("disk");

std::vector<std::string> names(const MultiLevelSnapshot& s) {
  std::vector<std::string> out;
  for (const CachingSnapshot& level : s.levels) out.emplace_back(level.type.name());
  return out;
}

// ---------------------------------------------------------------- RequestServing

TEST(RequestServing, HitRateIsServedOverRequestsAndZeroWhenNone) {
  EXPECT_EQ(RequestServing{}.hit_rate(), 0.0);
  EXPECT_DOUBLE_EQ((RequestServing{4, 3}.hit_rate()), 0.75);
  RequestServing a{4, 3};
  a += RequestServing{6, 1};
  EXPECT_EQ(a, (RequestServing{10, 4}));
  a -= RequestServing{6, 1};
  EXPECT_EQ(a, (RequestServing{4, 3}));
}

// ---------------------------------------------------------------- levels

TEST(MultiLevelCacheMetrics, LevelIsGetOrCreateWithStableReferences) {
  MultiLevelCacheMetrics m(k10s);
  EXPECT_EQ(m.level_count(), 0u);
  EXPECT_EQ(m.find(CacheType::prefix()), nullptr);
  CachingMetrics& prefix = m.level(CacheType::prefix());
  EXPECT_EQ(prefix.type(), CacheType::prefix());
  prefix.observe_hit(2, 20);
  CachingMetrics& cpu = m.level(kCpu);
  for (int i = 0; i < 20; ++i) m.level(CacheType::user("tier" + std::to_string(i)));
  EXPECT_EQ(m.level_count(), 22u);
  EXPECT_EQ(&m.level(CacheType::prefix()), &prefix);
  EXPECT_EQ(&m.level(kCpu), &cpu);
  EXPECT_EQ(m.find(CacheType::prefix()), &prefix);
  EXPECT_EQ(m.find(CacheType::kv()), nullptr);
  EXPECT_EQ(m.level(CacheType::prefix()).totals().hits, 2u);
  EXPECT_EQ(m.level_count(), 22u);
}

TEST(MultiLevelCacheMetrics, ConstructorRejectsBadWindowOrLayout) {
  EXPECT_THROW(MultiLevelCacheMetrics(WindowConfig{10s, 3s}), std::invalid_argument);
  EXPECT_THROW(MultiLevelCacheMetrics(k10s, HistogramLayout{0, 7}), std::invalid_argument);
}

// ---------------------------------------------------------------- requests

// 2 requests served by prefix, 1 by cpu_offload, 1 by none: 3 of 4 served.
TEST(MultiLevelCacheMetrics, CombinedHitRateCountsRequestsServedByAnyLevel) {
  MultiLevelCacheMetrics m(k10s);
  m.tick(0s);
  m.observe_request(CacheType::prefix());
  m.observe_request(CacheType::prefix());
  m.observe_request(kCpu);
  m.observe_request(std::nullopt);
  const MultiLevelSnapshot s = m.snapshot(1s);
  EXPECT_EQ(s.total, (RequestServing{4, 3}));
  EXPECT_DOUBLE_EQ(s.combined_hit_rate(), 0.75);
  ASSERT_EQ(s.served_by.size(), 2u);
  EXPECT_EQ(s.served_by.at(CacheType::prefix()), 2u);
  EXPECT_EQ(s.served_by.at(kCpu), 1u);
  // The serving level was created on first use.
  EXPECT_EQ(m.level_count(), 2u);
  EXPECT_NE(m.find(kCpu), nullptr);
}

// Levels are listed sorted by name whatever their creation order.
TEST(MultiLevelCacheMetrics, SnapshotListsLevelsSortedByName) {
  MultiLevelCacheMetrics m(k10s);
  m.level(CacheType::prefix());
  m.level(kCpu);
  m.level(kDisk);
  const MultiLevelSnapshot s = m.snapshot(0s);
  EXPECT_EQ(names(s), (std::vector<std::string>{"cpu_offload", "disk", "prefix"}));
  ASSERT_NE(s.find(kDisk), nullptr);
  EXPECT_EQ(s.find(kDisk)->type, kDisk);
  EXPECT_EQ(s.find(CacheType::kv()), nullptr);
}

// ---------------------------------------------------------------- memory pressure

// prefix 300/1000, disk 500/1000, cpu 100/unknown: per level 0.3, 0.5, 0;
// combined over levels with a capacity: (300 + 500) / 2000 = 0.4.
TEST(MultiLevelCacheMetrics, MemoryPressurePerLevelAndCombinedOverKnownCapacities) {
  MultiLevelCacheMetrics m(k10s);
  m.level(CacheType::prefix()).set_memory(300, 1000);
  m.level(kDisk).set_memory(500, 1000);
  m.level(kCpu).set_memory(100, 0);
  const MultiLevelSnapshot s = m.snapshot(0s);
  EXPECT_DOUBLE_EQ(s.find(CacheType::prefix())->memory_pressure(), 0.3);
  EXPECT_DOUBLE_EQ(s.find(kDisk)->memory_pressure(), 0.5);
  EXPECT_EQ(s.find(kCpu)->memory_pressure(), 0.0);
  EXPECT_DOUBLE_EQ(s.memory_pressure(), 0.4);
}

TEST(MultiLevelSnapshot, MemoryPressureIsZeroWithoutAnyKnownCapacity) {
  EXPECT_EQ(MultiLevelSnapshot{}.memory_pressure(), 0.0);
  MultiLevelCacheMetrics m(k10s);
  m.level(kCpu).set_memory(100, 0);
  EXPECT_EQ(m.snapshot(0s).memory_pressure(), 0.0);
}

// ---------------------------------------------------------------- window

// tick 0 s; 1 served + 3 unserved (slot 0); tick 5 s: window 1/4.
// tick 10 s drops slot 0: the window is empty. 2 served; tick 11 s: 2/2.
// Totals: 3 of 6.
TEST(MultiLevelCacheMetrics, WindowCombinedHitRateFollowsTicks) {
  MultiLevelCacheMetrics m(k10s);
  m.tick(0s);
  m.observe_request(CacheType::prefix());
  for (int i = 0; i < 3; ++i) m.observe_request(std::nullopt);
  m.tick(5s);
  MultiLevelSnapshot s = m.snapshot(5s);
  EXPECT_EQ(s.window, (RequestServing{4, 1}));
  EXPECT_DOUBLE_EQ(s.window_combined_hit_rate(), 0.25);
  m.tick(10s);
  s = m.snapshot(10s);
  EXPECT_EQ(s.window, (RequestServing{0, 0}));
  EXPECT_EQ(s.window_combined_hit_rate(), 0.0);
  m.observe_request(kCpu);
  m.observe_request(CacheType::prefix());
  m.tick(11s);
  s = m.snapshot(11s);
  EXPECT_EQ(s.window, (RequestServing{2, 2}));
  EXPECT_DOUBLE_EQ(s.window_combined_hit_rate(), 1.0);
  EXPECT_EQ(s.total, (RequestServing{6, 3}));
  EXPECT_DOUBLE_EQ(s.combined_hit_rate(), 0.5);
}

// tick() moves every level's window: a hit on the prefix level after tick
// 0 s is gone from its window after tick 10 s.
TEST(MultiLevelCacheMetrics, TickMovesEveryLevelsWindow) {
  MultiLevelCacheMetrics m(k10s);
  m.tick(0s);
  m.level(CacheType::prefix()).observe_hit(5, 50);
  m.tick(3s);
  EXPECT_EQ(m.find(CacheType::prefix())->window_totals().hits, 5u);
  m.tick(10s);
  EXPECT_EQ(m.find(CacheType::prefix())->window_totals().hits, 0u);
  EXPECT_EQ(m.find(CacheType::prefix())->totals().hits, 5u);
}

// A level created after tick 5 s starts at that tick: its hit is in the
// window at 6 s and gone once the window passes slot 5 (tick 15 s).
TEST(MultiLevelCacheMetrics, LevelCreatedLateIsTickedToTheLastTick) {
  MultiLevelCacheMetrics m(k10s);
  m.tick(0s);
  m.tick(5s);
  m.level(CacheType::kv()).observe_hit(1, 10);
  m.tick(6s);
  EXPECT_EQ(m.snapshot(6s).find(CacheType::kv())->window.hits, 1u);
  m.tick(15s);
  EXPECT_EQ(m.snapshot(15s).find(CacheType::kv())->window.hits, 0u);
}

// ---------------------------------------------------------------- merge

// a: prefix (hits 2) and cpu_offload (hits 3); b: prefix (hits 5) and disk
// (hits 7). a += b: prefix 7, cpu_offload 3, disk 7; requests add;
// served_by adds per level.
TEST(MultiLevelSnapshot, PlusEqualsMergesLevelsAndCopiesOneSidedOnes) {
  MultiLevelCacheMetrics ma(k10s), mb(k10s);
  ma.level(CacheType::prefix()).observe_hit(2, 20);
  ma.level(kCpu).observe_hit(3, 30);
  ma.observe_request(CacheType::prefix());
  ma.observe_request(std::nullopt);
  mb.level(CacheType::prefix()).observe_hit(5, 50);
  mb.level(kDisk).observe_hit(7, 70);
  mb.observe_request(CacheType::prefix());
  mb.observe_request(kDisk);
  MultiLevelSnapshot a = ma.snapshot(1s);
  const MultiLevelSnapshot b = mb.snapshot(1s);
  a += b;
  EXPECT_EQ(names(a), (std::vector<std::string>{"cpu_offload", "disk", "prefix"}));
  EXPECT_EQ(a.find(CacheType::prefix())->total.hits, 7u);
  EXPECT_EQ(a.find(kCpu)->total.hits, 3u);
  EXPECT_EQ(a.find(kDisk)->total.hits, 7u);
  EXPECT_EQ(a.total, (RequestServing{4, 3}));
  EXPECT_EQ(a.served_by.at(CacheType::prefix()), 2u);
  EXPECT_EQ(a.served_by.at(kDisk), 1u);
  EXPECT_EQ(a.served_by.count(kCpu), 0u);
}

TEST(MultiLevelSnapshot, ToJsonParsesWithTheDocumentedKeys) {
  MultiLevelCacheMetrics m(k10s);
  m.tick(0s);
  m.level(CacheType::prefix()).set_memory(300, 1000);
  m.observe_request(CacheType::prefix());
  m.observe_request(kCpu);
  m.observe_request(std::nullopt);
  m.observe_request(std::nullopt);
  m.tick(2s);
  const json j = json::parse(to_json(m.snapshot(2s)));
  ASSERT_TRUE(j.is_object());
  for (const char* key :
       {"levels", "requests", "served", "combined_hit_rate", "window_requests", "window_served",
        "window_combined_hit_rate", "served_by", "memory_pressure"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  ASSERT_TRUE(j["levels"].is_object());
  EXPECT_TRUE(j["levels"].contains("prefix"));
  EXPECT_TRUE(j["levels"].contains("cpu_offload"));
  EXPECT_TRUE(j["levels"]["prefix"].is_object());
  EXPECT_EQ(j["requests"].get<std::uint64_t>(), 4u);
  EXPECT_EQ(j["served"].get<std::uint64_t>(), 2u);
  EXPECT_DOUBLE_EQ(j["combined_hit_rate"].get<double>(), 0.5);
  EXPECT_EQ(j["window_requests"].get<std::uint64_t>(), 4u);
  EXPECT_EQ(j["window_served"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(j["served_by"]["prefix"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(j["served_by"]["cpu_offload"].get<std::uint64_t>(), 1u);
  EXPECT_DOUBLE_EQ(j["memory_pressure"].get<double>(), 0.3);
}

}  // namespace
}  // namespace kvscope
