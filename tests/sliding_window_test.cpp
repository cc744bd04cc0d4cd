// WindowConfig / SlidingCounters / SlidingHistogram / RequestCountWindow:
// slot-boundary expiry on hand-worked timelines, and vLLM's request-count
// hit-rate window.
//
// Slot arithmetic used throughout: slot(t) = floor(t / resolution); the window
// at time t holds slots slot(t) - slots + 1 .. slot(t). With 10 s / 1 s, a
// value added at 0.5 s (slot 0) is live until 9.999999999 s and gone at 10 s.
#include <gtest/gtest.h>

#include <deque>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "histogram_test_util.hpp"
#include "kvscope/clock.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/sliding_window.hpp"
#include "kvscope/prefix_cache_stats.hpp"

namespace kvscope {
namespace {

using testing_util::expect_same_samples;

using namespace std::chrono_literals;

WindowConfig config(std::chrono::nanoseconds window, std::chrono::nanoseconds resolution) {
  WindowConfig c;
  c.window = window;
  c.resolution = resolution;
  return c;
}

const WindowConfig k10s = config(10s, 1s);

// ---------------------------------------------------------------- WindowConfig

TEST(WindowConfig, DefaultIsSixtySecondsInOneSecondSlots) {
  const WindowConfig c;
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.window, 60s);
  EXPECT_EQ(c.resolution, 1s);
  EXPECT_EQ(c.slots(), 60u);
}

TEST(WindowConfig, ValidateAcceptsOneSlotAndExactly100000Slots) {
  EXPECT_NO_THROW(config(1s, 1s).validate());
  EXPECT_EQ(config(1s, 1s).slots(), 1u);
  EXPECT_NO_THROW(config(100'000ms, 1ms).validate());
  EXPECT_EQ(config(100'000ms, 1ms).slots(), 100'000u);
}

TEST(WindowConfig, ValidateRejectsZeroOrNegativeResolution) {
  EXPECT_THROW(config(10s, 0s).validate(), std::invalid_argument);
  EXPECT_THROW(config(10s, -1s).validate(), std::invalid_argument);
}

TEST(WindowConfig, ValidateRejectsResolutionLongerThanWindow) {
  EXPECT_THROW(config(1s, 2s).validate(), std::invalid_argument);
}

TEST(WindowConfig, ValidateRejectsWindowNotAMultipleOfResolution) {
  EXPECT_THROW(config(10s, 3s).validate(), std::invalid_argument);
  EXPECT_THROW(config(1001ms, 10ms).validate(), std::invalid_argument);
}

TEST(WindowConfig, ValidateRejectsMoreThan100000Slots) {
  EXPECT_THROW(config(100'001ms, 1ms).validate(), std::invalid_argument);
  EXPECT_THROW(config(1h, 1ms).validate(), std::invalid_argument);
}

// ---------------------------------------------------------------- SlidingCounters

TEST(SlidingCounters, ConstructorRejectsBadConfigAndZeroFields) {
  EXPECT_THROW(SlidingCounters(config(10s, 0s), 1), std::invalid_argument);
  EXPECT_THROW(SlidingCounters(config(10s, 3s), 1), std::invalid_argument);
  EXPECT_THROW(SlidingCounters(config(100'001ms, 1ms), 1), std::invalid_argument);
  EXPECT_THROW(SlidingCounters(k10s, 0), std::invalid_argument);
}

TEST(SlidingCounters, ReportsItsConfigAndFields) {
  const SlidingCounters c(k10s, 3);
  EXPECT_EQ(c.fields(), 3u);
  EXPECT_EQ(c.config().window, 10s);
  EXPECT_EQ(c.config().resolution, 1s);
  EXPECT_GE(c.memory_bytes(), 10u * 3u * sizeof(std::uint64_t));
}

TEST(SlidingCounters, EmptyWindowSumsToZero) {
  SlidingCounters c(k10s, 2);
  EXPECT_EQ(c.sum(0s, 0), 0u);
  EXPECT_EQ(c.sum(5s, 1), 0u);
  EXPECT_EQ(c.sum_over(5s, 3s, 1), 0u);
  EXPECT_EQ(c.rate_per_second(5s, 2s, 0), 0.0);
}

TEST(SlidingCounters, ValueExpiresExactlyAtTheSlotBoundary) {
  SlidingCounters c(k10s, 1);
  c.add(500ms, 0, 7);
  EXPECT_EQ(c.sum(500ms, 0), 7u);
  EXPECT_EQ(c.sum(5s, 0), 7u);
  EXPECT_EQ(c.sum(9'999'999'999ns, 0), 7u);
  EXPECT_EQ(c.sum(10s, 0), 0u);
}

TEST(SlidingCounters, EachValueLivesForExactlyTheSlotsOfItsInterval) {
  SlidingCounters c(k10s, 1);
  c.add(500ms, 0, 1);              // slot 0
  c.add(1s, 0, 10);                // slot 1 (a boundary belongs to the new slot)
  c.add(1'999'999'999ns, 0, 100);  // slot 1
  c.add(2s, 0, 1'000);             // slot 2
  EXPECT_EQ(c.sum(9'999'999'999ns, 0), 1'111u);
  EXPECT_EQ(c.sum(10s, 0), 1'110u);
  EXPECT_EQ(c.sum(10'999'999'999ns, 0), 1'110u);
  EXPECT_EQ(c.sum(11s, 0), 1'000u);
  EXPECT_EQ(c.sum(11'999'999'999ns, 0), 1'000u);
  EXPECT_EQ(c.sum(12s, 0), 0u);
}

TEST(SlidingCounters, PartialAdvanceExpiresOnlyTheOldestSlots) {
  SlidingCounters c(k10s, 1);
  for (int k = 0; k < 10; ++k) c.add(std::chrono::milliseconds(1000 * k + 500), 0, 1u << k);
  EXPECT_EQ(c.sum(9'500ms, 0), 1'023u);
  EXPECT_EQ(c.sum(12'500ms, 0), 1'016u);  // slots 3..12: 2^3 + ... + 2^9
  EXPECT_EQ(c.sum(15s, 0), 960u);         // slots 6..15: 2^6 + ... + 2^9
  EXPECT_EQ(c.sum(19s, 0), 0u);
}

TEST(SlidingCounters, OneSlotWindowHoldsOnlyTheCurrentInterval) {
  SlidingCounters c(config(1s, 1s), 1);
  c.add(500ms, 0, 4);
  EXPECT_EQ(c.sum(999ms, 0), 4u);
  EXPECT_EQ(c.sum(1s, 0), 0u);
}

TEST(SlidingCounters, SubSecondResolutionExpiresAtItsSlotBoundary) {
  SlidingCounters c(config(1s, 100ms), 1);  // 10 slots of 100 ms
  c.add(250ms, 0, 9);                       // slot 2: live through slot 11
  EXPECT_EQ(c.sum(1'199'999'999ns, 0), 9u);
  EXPECT_EQ(c.sum(1'200ms, 0), 0u);
}

TEST(SlidingCounters, FieldsAreIndependent) {
  SlidingCounters c(k10s, 3);
  c.add(1s, 0, 5);
  c.add(2s, 1, 7);
  c.add(5s, 2, 11);
  c.add(5s, 0, 1);
  EXPECT_EQ(c.sum(5s, 0), 6u);
  EXPECT_EQ(c.sum(5s, 1), 7u);
  EXPECT_EQ(c.sum(5s, 2), 11u);
  EXPECT_EQ(c.sum(11s, 0), 1u);  // the 1 s value expired, the 5 s one did not
  EXPECT_EQ(c.sum(11s, 1), 7u);
  EXPECT_EQ(c.sum(12s, 1), 0u);
  EXPECT_EQ(c.sum(12s, 2), 11u);
}

TEST(SlidingCounters, SumOverCoversTheNewestCeilSpanOverResolutionSlots) {
  SlidingCounters c(k10s, 1);
  c.add(500ms, 0, 1);         // slot 0
  c.add(2'500ms, 0, 10);      // slot 2
  c.add(3'200ms, 0, 100);     // slot 3
  c.add(4'900ms, 0, 1'000);   // slot 4
  c.add(5'200ms, 0, 10'000);  // slot 5
  const Timestamp now = 5'500ms;
  EXPECT_EQ(c.sum_over(now, 500ms, 0), 10'000u);    // 1 slot
  EXPECT_EQ(c.sum_over(now, 1s, 0), 10'000u);       // 1 slot
  EXPECT_EQ(c.sum_over(now, 1'500ms, 0), 11'000u);  // slots 4..5
  EXPECT_EQ(c.sum_over(now, 2s, 0), 11'000u);
  EXPECT_EQ(c.sum_over(now, 3s, 0), 11'100u);   // slots 3..5
  EXPECT_EQ(c.sum_over(now, 4s, 0), 11'110u);   // slots 2..5
  EXPECT_EQ(c.sum_over(now, 6s, 0), 11'111u);   // slots 0..5
  EXPECT_EQ(c.sum_over(now, 10s, 0), 11'111u);  // the whole window
  EXPECT_EQ(c.sum_over(now, 60s, 0), 11'111u);  // clamped to the window
  EXPECT_EQ(c.sum(now, 0), 11'111u);
}

TEST(SlidingCounters, SumOverCountsSlotsNotRecordsAfterIdleTime) {
  SlidingCounters c(k10s, 1);
  c.add(1'500ms, 0, 5);                       // slot 1
  EXPECT_EQ(c.sum_over(4'500ms, 2s, 0), 0u);  // slots 3..4
  EXPECT_EQ(c.sum_over(4'500ms, 3s, 0), 0u);  // slots 2..4
  EXPECT_EQ(c.sum_over(4'500ms, 4s, 0), 5u);  // slots 1..4
}

TEST(SlidingCounters, SumOverNeverReachesExpiredSlots) {
  SlidingCounters c(k10s, 1);
  c.add(500ms, 0, 3);    // slot 0
  c.add(9'500ms, 0, 4);  // slot 9
  EXPECT_EQ(c.sum_over(10s, 10s, 0), 4u);
  EXPECT_EQ(c.sum_over(10s, 60s, 0), 4u);
}

TEST(SlidingCounters, RatePerSecondDividesSumOverBySpanSeconds) {
  SlidingCounters c(k10s, 1);
  c.add(2'500ms, 0, 10);
  c.add(3'200ms, 0, 100);
  c.add(4'900ms, 0, 1'000);
  c.add(5'200ms, 0, 10'000);
  EXPECT_DOUBLE_EQ(c.rate_per_second(5'500ms, 1s, 0), 10'000.0);
  EXPECT_DOUBLE_EQ(c.rate_per_second(5'500ms, 2s, 0), 5'500.0);
  EXPECT_DOUBLE_EQ(c.rate_per_second(5'500ms, 4s, 0), 11'110.0 / 4.0);
  EXPECT_DOUBLE_EQ(c.rate_per_second(5'500ms, 10s, 0), 1'111.0);
  EXPECT_DOUBLE_EQ(c.rate_per_second(5'500ms, 500ms, 0), 20'000.0);  // 1 slot / 0.5 s
}

TEST(SlidingCounters, GapLongerThanTheWindowClearsEverything) {
  SlidingCounters c(k10s, 2);
  for (int k = 0; k < 10; ++k) {
    c.add(std::chrono::milliseconds(1000 * k + 500), 0, 1);
    c.add(std::chrono::milliseconds(1000 * k + 500), 1, 2);
  }
  EXPECT_EQ(c.sum(9'500ms, 0), 10u);
  EXPECT_EQ(c.sum(9'500ms, 1), 20u);
  EXPECT_EQ(c.sum(125s, 0), 0u);
  EXPECT_EQ(c.sum(125s, 1), 0u);
  EXPECT_EQ(c.sum_over(125s, 10s, 1), 0u);
  c.add(125s, 0, 3);
  EXPECT_EQ(c.sum(125s, 0), 3u);
  EXPECT_EQ(c.sum(125s, 1), 0u);
  EXPECT_EQ(c.sum_over(125s, 10s, 0), 3u);
}

TEST(SlidingCounters, RingSlotReusedAfterAGapHoldsOnlyTheNewValue) {
  SlidingCounters c(k10s, 1);
  c.add(5'500ms, 0, 4);   // slot 5
  c.add(15'500ms, 0, 2);  // slot 15: same ring position, slot 5 expired
  EXPECT_EQ(c.sum(15'500ms, 0), 2u);
  EXPECT_EQ(c.sum_over(15'500ms, 1s, 0), 2u);
  EXPECT_EQ(c.sum(24'999ms, 0), 2u);
  EXPECT_EQ(c.sum(25s, 0), 0u);
}

TEST(SlidingCounters, AdvanceExpiresWithoutARecord) {
  SlidingCounters c(k10s, 1);
  c.add(500ms, 0, 7);
  c.advance(9s);
  EXPECT_EQ(c.sum(9s, 0), 7u);
  c.advance(10s);
  EXPECT_EQ(c.sum(10s, 0), 0u);
}

TEST(SlidingCounters, StaleTimestampIsRecordedIntoTheCurrentSlot) {
  SlidingCounters c(k10s, 1);
  c.add(5'500ms, 0, 1);  // slot 5 is current
  c.add(2s, 0, 3);       // stale: goes to slot 5, not slot 2
  EXPECT_EQ(c.sum(5'500ms, 0), 4u);
  EXPECT_EQ(c.sum_over(5'500ms, 1s, 0), 4u);
  EXPECT_EQ(c.sum(12'500ms, 0), 4u);  // slot 2 would have expired at 12 s
  EXPECT_EQ(c.sum(14'999ms, 0), 4u);
  EXPECT_EQ(c.sum(15s, 0), 0u);
}

// Timestamps are signed (a ManualClock may start below zero): slot(-5.5 s) = -6,
// live through slot 3, gone at 4 s. Nothing was seen before, so it is not stale.
TEST(SlidingCounters, NegativeFirstTimestampUsesItsOwnSlot) {
  SlidingCounters c(k10s, 1);
  c.add(-5'500ms, 0, 1);
  EXPECT_EQ(c.sum(-5s, 0), 1u);
  EXPECT_EQ(c.sum(3'999ms, 0), 1u);
  EXPECT_EQ(c.sum(4s, 0), 0u);
}

TEST(SlidingCounters, ClearEmptiesEveryField) {
  SlidingCounters c(k10s, 2);
  c.add(1s, 0, 5);
  c.add(2s, 1, 6);
  c.clear();
  EXPECT_EQ(c.sum(2s, 0), 0u);
  EXPECT_EQ(c.sum(2s, 1), 0u);
  EXPECT_EQ(c.sum_over(2s, 10s, 1), 0u);
  c.add(3s, 1, 8);
  EXPECT_EQ(c.sum(3s, 0), 0u);
  EXPECT_EQ(c.sum(3s, 1), 8u);
}

// ---------------------------------------------------------------- SlidingHistogram

HistogramLayout layout(std::uint64_t max_value, std::uint32_t precision_bits) {
  HistogramLayout l;
  l.max_value = max_value;
  l.precision_bits = precision_bits;
  return l;
}

TEST(SlidingHistogram, ConstructorRejectsBadConfigOrLayout) {
  EXPECT_THROW(SlidingHistogram(config(10s, 0s)), std::invalid_argument);
  EXPECT_THROW(SlidingHistogram(config(10s, 3s)), std::invalid_argument);
  EXPECT_THROW(SlidingHistogram(k10s, layout(0, 7)), std::invalid_argument);
  EXPECT_THROW(SlidingHistogram(k10s, layout(1'000, 13)), std::invalid_argument);
}

TEST(SlidingHistogram, WindowUsesTheGivenLayoutAndMemoryIsSlotsPlusOneHistograms) {
  SlidingHistogram h(k10s, layout(1'000'000, 4));
  EXPECT_EQ(h.config().window, 10s);
  EXPECT_EQ(h.window(0s).layout(), layout(1'000'000, 4));
  SlidingHistogram d(k10s);
  EXPECT_GE(d.memory_bytes(), 11u * Histogram{}.memory_bytes());
}

TEST(SlidingHistogram, EmptyWindowIsEmpty) {
  SlidingHistogram h(k10s);
  const Histogram w = h.window(3s);
  EXPECT_EQ(w.count(), 0u);
  EXPECT_EQ(w.min(), 0u);
  EXPECT_EQ(w.max(), 0u);
  EXPECT_EQ(w.quantile(0.99), 0u);
}

TEST(SlidingHistogram, SampleExpiresExactlyAtTheSlotBoundary) {
  SlidingHistogram h(k10s);
  h.record(500ms, 1'000);
  EXPECT_EQ(h.window(500ms).count(), 1u);
  EXPECT_EQ(h.window(9'999'999'999ns).count(), 1u);
  EXPECT_EQ(h.window(9'999'999'999ns).max(), 1'000u);
  const Histogram gone = h.window(10s);
  EXPECT_EQ(gone.count(), 0u);
  EXPECT_EQ(gone.sum(), 0u);
  EXPECT_EQ(gone.min(), 0u);
  EXPECT_EQ(gone.max(), 0u);
  EXPECT_EQ(gone.quantile(0.5), 0u);
}

TEST(SlidingHistogram, WindowHasExactCountMinMaxOfLiveSamplesOnly) {
  SlidingHistogram h(k10s);
  h.record(500ms, 5);            // slot 0: the minimum
  h.record(1'500ms, 1'000'003);  // slot 1: the maximum
  h.record(2'500ms, 301);        // slot 2
  h.record(3'500ms, 40'001);     // slot 3

  Histogram w = h.window(9'900ms);
  EXPECT_EQ(w.count(), 4u);
  EXPECT_EQ(w.sum(), 5u + 1'000'003u + 301u + 40'001u);
  EXPECT_EQ(w.min(), 5u);
  EXPECT_EQ(w.max(), 1'000'003u);

  w = h.window(10s);
  EXPECT_EQ(w.count(), 3u);
  EXPECT_EQ(w.min(), 301u);
  EXPECT_EQ(w.max(), 1'000'003u);

  w = h.window(11s);
  EXPECT_EQ(w.count(), 2u);
  EXPECT_EQ(w.min(), 301u);
  EXPECT_EQ(w.max(), 40'001u);
  EXPECT_EQ(w.quantile(1.0), 40'001u);

  w = h.window(12s);
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.min(), 40'001u);
  EXPECT_EQ(w.max(), 40'001u);
  EXPECT_EQ(w.sum(), 40'001u);
  EXPECT_EQ(w.quantile(0.5), 40'001u);

  w = h.window(13s);
  EXPECT_EQ(w.count(), 0u);
  EXPECT_EQ(w.max(), 0u);
}

TEST(SlidingHistogram, StaleTimestampIsRecordedIntoTheCurrentSlot) {
  SlidingHistogram h(k10s);
  h.record(5'500ms, 10);
  h.record(2s, 20);  // stale: slot 5, not slot 2
  EXPECT_EQ(h.window(12'500ms).count(), 2u);
  EXPECT_EQ(h.window(12'500ms).min(), 10u);
  EXPECT_EQ(h.window(15s).count(), 0u);
}

TEST(SlidingHistogram, GapLongerThanTheWindowClearsEverything) {
  SlidingHistogram h(k10s);
  for (int k = 0; k < 10; ++k) h.record(std::chrono::milliseconds(1000 * k + 500), 100 + k);
  EXPECT_EQ(h.window(9'500ms).count(), 10u);
  EXPECT_EQ(h.window(100s).count(), 0u);
  h.record(100s, 7);
  const Histogram w = h.window(100s);
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.min(), 7u);
  EXPECT_EQ(w.max(), 7u);
}

TEST(SlidingHistogram, OverflowSamplesExpireLikeOthers) {
  SlidingHistogram h(k10s, layout(1'000, 7));
  h.record(500ms, 5'000);
  h.record(1'500ms, 10);
  EXPECT_EQ(h.window(2s).overflow_count(), 1u);
  EXPECT_EQ(h.window(2s).max(), 5'000u);
  const Histogram w = h.window(10s);
  EXPECT_EQ(w.overflow_count(), 0u);
  EXPECT_EQ(w.count(), 1u);
  EXPECT_EQ(w.max(), 10u);
}

TEST(SlidingHistogram, AdvanceAndClear) {
  SlidingHistogram h(k10s);
  h.record(500ms, 3);
  h.advance(10s);
  EXPECT_EQ(h.window(10s).count(), 0u);
  h.record(11s, 4);
  h.record(12s, 5);
  h.clear();
  const Histogram w = h.window(12s);
  EXPECT_EQ(w.count(), 0u);
  EXPECT_EQ(w.max(), 0u);
  h.record(13s, 6);
  EXPECT_EQ(h.window(13s).count(), 1u);
  EXPECT_EQ(h.window(13s).min(), 6u);
}

// A random timeline with queries interleaved: each window equals a Histogram
// built from exactly the samples whose slot is among the live ones.
TEST(SlidingHistogram, WindowEqualsAHistogramOfExactlyTheLiveSamples) {
  struct Sample {
    Timestamp t;
    std::uint64_t value;
  };
  std::mt19937_64 rng(77);
  std::lognormal_distribution<double> value_dist(std::log(200'000.0), 1.2);
  std::uniform_int_distribution<std::int64_t> step_ns(0, 40'000'000);  // mean 20 ms
  std::vector<Sample> samples;
  Timestamp t{0};
  SlidingHistogram h(k10s);
  int queries = 0;
  Timestamp next_query = 1'234ms;
  while (t < 45s) {
    t += Timestamp{step_ns(rng)};
    while (next_query <= t) {
      const std::int64_t now_slot = next_query / 1s;
      Histogram expected;
      for (const Sample& s : samples) {
        const std::int64_t slot = s.t / 1s;
        if (slot > now_slot - 10) expected.record(s.value);
      }
      SCOPED_TRACE(testing::Message() << "query at " << next_query.count() << " ns");
      expect_same_samples(h.window(next_query), expected);
      if (HasFatalFailure()) return;
      ++queries;
      next_query += 737ms;  // drifts across slot positions
    }
    const auto value = static_cast<std::uint64_t>(value_dist(rng));
    h.record(t, value);
    samples.push_back({t, value});
  }
  EXPECT_GE(queries, 55);
  EXPECT_GT(samples.size(), 2'000u);
}

// ---------------------------------------------------------------- RequestCountWindow

QueryCounts qc(std::uint64_t requests, std::uint64_t queries, std::uint64_t hits,
               std::uint64_t query_blocks = 0, std::uint64_t hit_blocks = 0) {
  QueryCounts c;
  c.requests = requests;
  c.query_tokens = queries;
  c.hit_tokens = hits;
  c.query_blocks = query_blocks;
  c.hit_blocks = hit_blocks;
  return c;
}

// The window keeps its updates in a ring that grows and wraps: over many
// updates of 1-3 requests it must agree with a plain FIFO at every step.
TEST(RequestCountWindow, AgreesWithAFifoWhileItsRingGrowsAndWraps) {
  RequestCountWindow window(50);
  std::deque<QueryCounts> fifo;
  QueryCounts sums;
  std::uint64_t seed = 7;
  for (int step = 0; step < 2'000; ++step) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    QueryCounts u;
    u.requests = 1 + (seed >> 40) % 3;
    u.query_tokens = 100 * u.requests;
    u.hit_tokens = (seed >> 20) % (u.query_tokens + 1);
    const bool reset = step % 701 == 700;
    if (reset) {
      fifo.clear();
      sums = QueryCounts{};
    }
    window.observe(u, reset);
    fifo.push_back(u);
    sums += u;
    while (fifo.size() > 1 && sums.requests > 50) {
      sums -= fifo.front();
      fifo.pop_front();
    }
    ASSERT_EQ(window.updates(), fifo.size()) << "step " << step;
    ASSERT_EQ(window.totals(), sums) << "step " << step;
  }
}

TEST(RequestCountWindow, RejectsZeroMaxRequests) {
  EXPECT_THROW(RequestCountWindow(0), std::invalid_argument);
}

TEST(RequestCountWindow, DefaultsToVllmsThousandRequestsAndStartsEmpty) {
  const RequestCountWindow w;
  EXPECT_EQ(w.max_requests(), 1'000u);
  EXPECT_EQ(w.updates(), 0u);
  EXPECT_EQ(w.totals(), QueryCounts{});
  EXPECT_EQ(w.hit_rate(), 0.0);
}

TEST(RequestCountWindow, UpdateWithZeroRequestsIsIgnored) {
  RequestCountWindow w(10);
  w.observe(qc(0, 100, 100, 5, 5));
  EXPECT_EQ(w.updates(), 0u);
  EXPECT_EQ(w.totals(), QueryCounts{});
  EXPECT_EQ(w.hit_rate(), 0.0);
  w.observe(qc(2, 100, 25));
  w.observe(qc(0, 50, 50));
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_EQ(w.totals(), qc(2, 100, 25));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.25);
}

// max 10: 4 + 4 = 8 requests fit; a third update of 3 makes 11 > 10, so the
// oldest update (4 requests) is dropped, leaving 7.
TEST(RequestCountWindow, DropsOldestUpdatesWhileOverMaxRequests) {
  RequestCountWindow w(10);
  w.observe(qc(4, 100, 50, 10, 5));
  w.observe(qc(4, 200, 20, 20, 2));
  EXPECT_EQ(w.updates(), 2u);
  EXPECT_EQ(w.totals(), qc(8, 300, 70, 30, 7));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 70.0 / 300.0);
  w.observe(qc(3, 30, 30, 3, 3));
  EXPECT_EQ(w.updates(), 2u);
  EXPECT_EQ(w.totals(), qc(7, 230, 50, 23, 5));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 50.0 / 230.0);
}

// Exactly max_requests is not "more than": nothing is dropped.
TEST(RequestCountWindow, KeepsUpdatesThatExactlyFillTheWindow) {
  RequestCountWindow w(10);
  w.observe(qc(5, 100, 10));
  w.observe(qc(5, 100, 30));
  EXPECT_EQ(w.updates(), 2u);
  EXPECT_EQ(w.totals(), qc(10, 200, 40));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.2);
}

// 3 + 3 + 3 + 9 = 18: drop 3 (15), drop 3 (12), drop 3 (9 <= 10).
TEST(RequestCountWindow, DropsAsManyOldUpdatesAsNeeded) {
  RequestCountWindow w(10);
  w.observe(qc(3, 30, 3));
  w.observe(qc(3, 30, 6));
  w.observe(qc(3, 30, 9));
  EXPECT_EQ(w.updates(), 3u);
  w.observe(qc(9, 90, 45));
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_EQ(w.totals(), qc(9, 90, 45));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.5);
}

// The newest update is kept even if it alone exceeds max_requests; the next
// update then pushes it out.
TEST(RequestCountWindow, NewestUpdateIsKeptEvenIfItAloneExceedsMax) {
  RequestCountWindow w(10);
  w.observe(qc(2, 20, 0));
  w.observe(qc(25, 1'000, 900));
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_EQ(w.totals(), qc(25, 1'000, 900));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.9);
  w.observe(qc(1, 10, 0));  // 26 > 10: the big update goes, 1 request remains
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_EQ(w.totals(), qc(1, 10, 0));
  EXPECT_EQ(w.hit_rate(), 0.0);
  w.observe(qc(4, 10, 5));
  EXPECT_EQ(w.updates(), 2u);
  EXPECT_EQ(w.totals(), qc(5, 20, 5));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.25);
}

TEST(RequestCountWindow, FirstUpdateLargerThanMaxIsKept) {
  RequestCountWindow w(1);
  w.observe(qc(3, 64, 48));
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.75);
}

TEST(RequestCountWindow, ObserveWithResetClearsBeforeAdding) {
  RequestCountWindow w(10);
  w.observe(qc(2, 100, 100));
  w.observe(qc(3, 100, 0), /*reset=*/true);
  EXPECT_EQ(w.updates(), 1u);
  EXPECT_EQ(w.totals(), qc(3, 100, 0));
  EXPECT_EQ(w.hit_rate(), 0.0);
}

// vLLM resets before it checks for an empty update.
TEST(RequestCountWindow, ResetWithAnEmptyUpdateStillClears) {
  RequestCountWindow w(10);
  w.observe(qc(2, 100, 100));
  w.observe(qc(0, 0, 0), /*reset=*/true);
  EXPECT_EQ(w.updates(), 0u);
  EXPECT_EQ(w.totals(), QueryCounts{});
}

TEST(RequestCountWindow, ResetEmptiesTheWindow) {
  RequestCountWindow w(10);
  w.observe(qc(2, 100, 40));
  w.observe(qc(3, 100, 60));
  w.reset();
  EXPECT_EQ(w.updates(), 0u);
  EXPECT_EQ(w.totals(), QueryCounts{});
  EXPECT_EQ(w.hit_rate(), 0.0);
  EXPECT_EQ(w.max_requests(), 10u);
  w.observe(qc(1, 10, 1));
  EXPECT_EQ(w.totals(), qc(1, 10, 1));
  EXPECT_DOUBLE_EQ(w.hit_rate(), 0.1);
}

// A long stream of 7-request updates into a 1000-request window: the window
// settles at 142 updates (994 requests) and its totals are exact sums.
TEST(RequestCountWindow, LongStreamKeepsTheLastUpdatesUpToMaxRequests) {
  RequestCountWindow w(1'000);
  for (std::uint64_t i = 0; i < 5'000; ++i) w.observe(qc(7, 100, i % 101));
  EXPECT_EQ(w.updates(), 142u);
  EXPECT_EQ(w.totals().requests, 994u);
  EXPECT_EQ(w.totals().query_tokens, 14'200u);
  std::uint64_t hits = 0;
  for (std::uint64_t i = 5'000 - 142; i < 5'000; ++i) hits += i % 101;
  EXPECT_EQ(w.totals().hit_tokens, hits);
  EXPECT_DOUBLE_EQ(w.hit_rate(), static_cast<double>(hits) / 14'200.0);
}

}  // namespace
}  // namespace kvscope
