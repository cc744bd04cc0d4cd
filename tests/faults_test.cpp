// Faults under load: stop() with 10,000 awaits in flight, fire-and-forget
// producers against a full queue whose shard cannot drain, and allocation
// failure storms followed by recovery. (Throwing and slow subscribers:
// runtime_test.cpp, RuntimeSnapshots.ThrowingAndSlowSubscribers...)
// Leaks are the sanitizer runs' business: these tests run under ASan (leak
// checking on) and TSan in .ci/run.
// g++ 12 false positive in Asio's use_future inlined into this file under
// ASan at -O1: -Wmaybe-uninitialized on the async_completion (GCC bug 105562).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

#include "kvscope/runtime/runtime.hpp"
#include "runtime_test_util.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using testing_util::Callers;
using testing_util::ClientTally;
using testing_util::seq;

RuntimeConfig config(std::uint32_t shards, std::uint32_t blocks) {
  RuntimeConfig c;
  c.shards = shards;
  c.cache = {.num_blocks = blocks, .block_size = 4};
  c.snapshot_interval = 2ms;  // the aggregator keeps running through the faults
  return c;
}

/// Holds every shard's thread inside a task until released: operations
/// queue up behind it, as they would behind a slow shard.
class ShardGate {
 public:
  explicit ShardGate(Runtime& runtime) {
    for (ShardId s{0}; s.value < runtime.shard_count(); ++s.value) {
      // The task keeps its own handle on the future: it may still be
      // returning from wait() when the gate is gone.
      asio::post(runtime.shard_executor(s), [opened = opened_, &entered = entered_] {
        entered.fetch_add(1);
        opened.wait();
      });
    }
    while (entered_.load() < runtime.shard_count()) std::this_thread::sleep_for(1ms);
  }
  ~ShardGate() { open(); }
  void open() {
    if (!released_.exchange(true)) release_.set_value();
  }

 private:
  std::promise<void> release_;
  std::shared_future<void> opened_{release_.get_future().share()};
  std::atomic<std::uint32_t> entered_{0};
  std::atomic<bool> released_{false};
};

/// Counts live coroutine frames: a frame that never finished (leaked or
/// stuck) leaves the count above zero.
struct FrameCount {
  std::atomic<int> live{0};
  struct Guard {
    explicit Guard(FrameCount& c) : count(c) { count.live.fetch_add(1); }
    ~Guard() { count.live.fetch_sub(1); }
    FrameCount& count;
  };
};

asio::awaitable<void> admit_then_free(Runtime& runtime, std::uint64_t id, ClientTally& tally,
                                      std::atomic<int>& issued, std::atomic<int>& completed,
                                      FrameCount& frames) {
  const FrameCount::Guard guard(frames);
  const auto tokens = testing_util::cat(seq(8, static_cast<TokenId>(id % 16 * 1000)),
                                        seq(1 + id % 7, static_cast<TokenId>(id * 10)));
  const Request request = Request::with_tokens(RequestId{id}, tokens);
  issued.fetch_add(1);
  auto admitted = co_await runtime.allocate(request);
  completed.fetch_add(1);
  if (!admitted) {
    if (admitted.status() != Status::not_running) tally.refused.fetch_add(1);
    co_return;
  }
  tally.admitted.fetch_add(1);
  tally.hit_tokens.fetch_add(admitted->lookup.hit_tokens);
  auto freed = co_await runtime.free(runtime.route(request), RequestId{id});
  if (freed) tally.freed.fetch_add(1);
}

// 10,000 allocations are queued on gated shards when stop() begins: every
// await completes (with its result: they were queued before the shards
// closed), the frees that follow get not_running, no frame is left, and the
// final snapshot accounts for exactly what the clients saw.
TEST(Faults, StopWithTenThousandAwaitsInFlight) {
  Runtime runtime(config(2, 1 << 16));
  runtime.start();
  constexpr int kAwaits = 10'000;
  ClientTally tally;
  std::atomic<int> issued{0}, completed{0};
  FrameCount frames;
  Callers callers(2);
  {
    ShardGate gate(runtime);
    for (int i = 0; i < kAwaits; ++i)
      callers.spawn(admit_then_free(runtime, static_cast<std::uint64_t>(i), tally, issued,
                                    completed, frames));
    std::thread clients([&] { callers.run_all(); });
    while (issued.load() < kAwaits) std::this_thread::sleep_for(1ms);
    // `issued` counts a client just before its co_await submits the
    // allocation; give the last ones time to reach their shard's inbox (under
    // TSan a client thread was once preempted in between, and its allocation
    // met the closed shard: not_running).
    std::this_thread::sleep_for(200ms);
    EXPECT_EQ(completed.load(), 0);  // all 10,000 are in flight
    std::thread stopper([&] { runtime.stop(); });
    std::this_thread::sleep_for(20ms);  // stop() is now waiting behind the queued work
    gate.open();
    stopper.join();
    clients.join();
  }
  EXPECT_EQ(callers.finished(), kAwaits);
  EXPECT_EQ(completed.load(), kAwaits);
  EXPECT_EQ(frames.live.load(), 0);
  EXPECT_EQ(tally.admitted + tally.refused, static_cast<std::uint64_t>(kAwaits));
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last && last->final);
  EXPECT_EQ(last->global.total.fresh.requests, tally.admitted.load());
  EXPECT_EQ(last->global.total.fresh.hit_tokens, tally.hit_tokens.load());
  EXPECT_EQ(last->global.total.allocation_failures, tally.refused.load());
  EXPECT_EQ(last->global.live_requests, tally.admitted - tally.freed);
}

// Producers record while no shard can drain: the queues fill, record()
// keeps returning (false, counted) instead of waiting for room, and after
// the shards drain every accepted observation is in the snapshot.
TEST(Faults, AFullObservationQueueDropsAndCountsButNeverBlocks) {
  RuntimeConfig c = config(2, 256);
  c.collector.capacity = 64;
  Runtime runtime(c);
  runtime.start();
  constexpr int kProducers = 4;
  constexpr int kEach = 20'000;
  std::atomic<std::uint64_t> accepted{0};
  {
    ShardGate gate(runtime);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&] {
        for (int i = 0; i < kEach; ++i)
          if (runtime.record(MetricObservation::hit(CacheType::block(), 1, 64)))
            accepted.fetch_add(1);
      });
    }
    for (auto& p : producers) p.join();  // returns although no shard drained a thing
  }
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  const std::uint64_t total = std::uint64_t{kProducers} * kEach;
  EXPECT_LT(accepted.load(), total);  // the queues did fill
  EXPECT_EQ(accepted + last->observations_dropped(), total);
  const CachingSnapshot* block = last->levels.find(CacheType::block());
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->total.hits, accepted.load());
}

asio::awaitable<void> hold(Runtime& runtime, std::uint64_t id, std::uint32_t tokens,
                           ClientTally& tally) {
  const auto prompt = seq(tokens, static_cast<TokenId>(id * 1000));
  auto admitted = co_await runtime.allocate(Request::with_tokens(RequestId{id}, prompt));
  if (admitted) tally.admitted.fetch_add(1);
}

/// Admits a 3-block prompt and frees it. Refusals (not_enough_blocks only)
/// are counted; with `retry` the client tries again after a short pause, as
/// a scheduler would, until admitted.
asio::awaitable<void> admit_once(Runtime& runtime, std::uint64_t id, ClientTally& tally,
                                 bool retry) {
  const auto prompt = seq(9, static_cast<TokenId>(id * 1000));
  const Request request = Request::with_tokens(RequestId{id}, prompt);
  for (;;) {
    auto admitted = co_await runtime.allocate(request);
    if (admitted) break;
    EXPECT_EQ(admitted.status(), Status::not_enough_blocks);
    tally.refused.fetch_add(1);
    if (!retry) co_return;
    asio::steady_timer pause(co_await asio::this_coro::executor, 100us);
    co_await pause.async_wait(asio::use_awaitable);
  }
  tally.admitted.fetch_add(1);
  if (co_await runtime.free(runtime.route(request), RequestId{id})) tally.freed.fetch_add(1);
}

std::vector<std::uint64_t> live_requests(Runtime& runtime) {
  std::vector<std::uint64_t> live;
  for (ShardId s{0}; s.value < runtime.shard_count(); ++s.value)
    live.push_back(runtime.shard_stats(s, asio::use_future).get()->live_requests);
  return live;
}

// The pool is full of held requests: a storm of 5,000 admissions is refused
// (each counted, none changing anything); once the holders leave, the same
// storm, retrying like a scheduler, is admitted in full and every shard's
// invariants hold.
TEST(Faults, AllocationFailureStormThenRecovery) {
  Runtime runtime(config(2, 64));
  runtime.start();
  Callers callers(2);
  ClientTally holders;
  // 32 blocks per shard; a 128-token prompt takes all of them.
  std::vector<std::uint64_t> held;
  for (std::uint64_t id = 1; held.size() < runtime.shard_count() && id < 1000; ++id) {
    const auto prompt = seq(128, static_cast<TokenId>(id * 1000));
    const ShardId shard = runtime.route(Request::with_tokens(RequestId{id}, prompt));
    if (shard.value != held.size()) continue;  // one holder per shard, in shard order
    callers.spawn(hold(runtime, id, 128, holders));
    callers.run_all();
    held.push_back(id);
  }
  ASSERT_EQ(holders.admitted.load(), runtime.shard_count());
  const auto live_before = live_requests(runtime);

  constexpr std::uint64_t kStorm = 5'000;
  ClientTally storm;
  for (std::uint64_t i = 0; i < kStorm; ++i)
    callers.spawn(admit_once(runtime, 10'000 + i, storm, /*retry=*/false));
  callers.run_all();
  EXPECT_EQ(storm.refused.load(), kStorm);
  EXPECT_EQ(live_requests(runtime), live_before);

  for (std::size_t s = 0; s < held.size(); ++s) {
    ASSERT_TRUE(runtime
                    .free(ShardId{static_cast<std::uint32_t>(s)}, RequestId{held[s]},
                          FreeOrder::reverse, asio::use_future)
                    .get()
                    .ok());
  }
  ClientTally recovered;
  for (std::uint64_t i = 0; i < kStorm; ++i)
    callers.spawn(admit_once(runtime, 10'000 + i, recovered, /*retry=*/true));
  callers.run_all();
  EXPECT_EQ(recovered.admitted.load(), kStorm);
  EXPECT_EQ(recovered.freed.load(), kStorm);
  for (ShardId s{0}; s.value < runtime.shard_count(); ++s.value) {
    auto check = [](MeteredPrefixCache& cache, MultiLevelCacheMetrics&) -> Result<void> {
      cache.cache().check_invariants();
      return {};
    };
    EXPECT_NO_THROW(EXPECT_TRUE(runtime.with_shard(s, check, asio::use_future).get().ok()));
  }
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  EXPECT_EQ(last->global.total.allocation_failures, kStorm + recovered.refused);
  EXPECT_EQ(last->global.total.fresh.requests, runtime.shard_count() + kStorm);
  EXPECT_EQ(last->global.live_requests, 0u);
}

}  // namespace
}  // namespace kvscope
