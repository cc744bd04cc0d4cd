// ManualClock / SteadyClock: the injectable time sources of the metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "kvscope/clock.hpp"

namespace kvscope {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ManualClock, StartsAtZeroByDefault) {
  const ManualClock clock;
  EXPECT_EQ(clock.now(), Timestamp{0});
}

TEST(ManualClock, StartsWhereTold) {
  const ManualClock clock(seconds(5));
  EXPECT_EQ(clock.now(), seconds(5));
}

TEST(ManualClock, AdvanceMovesForwardByDelta) {
  ManualClock clock(seconds(5));
  clock.advance(milliseconds(3));
  EXPECT_EQ(clock.now(), milliseconds(5003));
  clock.advance(Timestamp{7});
  EXPECT_EQ(clock.now(), Timestamp{5'003'000'007});
  clock.advance(Timestamp{0});
  EXPECT_EQ(clock.now(), Timestamp{5'003'000'007});
}

TEST(ManualClock, SetJumpsToTheGivenTime) {
  ManualClock clock(seconds(1));
  clock.set(seconds(10));
  EXPECT_EQ(clock.now(), seconds(10));
  clock.advance(seconds(1));
  EXPECT_EQ(clock.now(), seconds(11));
}

TEST(ManualClock, IsUsableThroughTheClockInterface) {
  ManualClock manual(seconds(2));
  const Clock& clock = manual;
  EXPECT_EQ(clock.now(), seconds(2));
  manual.advance(seconds(1));
  EXPECT_EQ(clock.now(), seconds(3));
}

TEST(SteadyClock, NeverDecreases) {
  const Clock& clock = SteadyClock::instance();
  Timestamp previous = clock.now();
  for (int i = 0; i < 10'000; ++i) {
    const Timestamp t = clock.now();
    ASSERT_GE(t, previous) << "read " << i;
    previous = t;
  }
}

TEST(SteadyClock, AdvancesWithRealTime) {
  const SteadyClock clock;
  const Timestamp before = clock.now();
  std::this_thread::sleep_for(milliseconds(2));
  EXPECT_GE(clock.now() - before, milliseconds(2));
}

TEST(SteadyClock, InstanceIsOneProcessWideObject) {
  EXPECT_EQ(&SteadyClock::instance(), &SteadyClock::instance());
}

TEST(SteadyClock, ReadsTheSameTimelineAsStdSteadyClock) {
  const auto before = std::chrono::steady_clock::now().time_since_epoch();
  const Timestamp t = SteadyClock::instance().now();
  const auto after = std::chrono::steady_clock::now().time_since_epoch();
  EXPECT_GE(t, before);
  EXPECT_LE(t, after);
}

}  // namespace
}  // namespace kvscope
