// Heap allocations in the steady state, counted by a replaced global
// operator new (this test is its own executable so the counting touches
// nothing else). After warm-up - pools, tables and scratch vectors grown to
// the workload's peak - a request cycle must not allocate: a malloc per
// request costs time and, under many threads, contention.
//
// Covered: the bare core (allocate + append + free, every policy, token and
// hash mode), the core with the default metrics, and a request cycle
// through the runtime (two hops).
#include <gtest/gtest.h>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <memory>
#include <new>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "kvscope/runtime/shard_hop.hpp"
#include "test_util.hpp"

namespace {

std::atomic<std::uint64_t> allocations{0};
// Set by a test: the next allocation on this thread throws std::bad_alloc.
thread_local bool fail_next_allocation = false;

void* counted_allocation(std::size_t size) {
  if (fail_next_allocation) {
    fail_next_allocation = false;
    throw std::bad_alloc();
  }
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t size) { return counted_allocation(size); }
void* operator new[](std::size_t size) { return counted_allocation(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace kvscope {
namespace {

constexpr std::uint32_t kBlockSize = 16;
constexpr std::uint32_t kPoolBlocks = 512;
constexpr std::size_t kPrompts = 32;

// 32 prompts of 512 tokens, half sharing a 256-token prefix: 784 distinct
// blocks for a pool of 512, so the cycles keep evicting.
std::vector<std::vector<TokenId>> prompts() {
  std::vector<std::vector<TokenId>> out(kPrompts);
  for (std::size_t p = 0; p < kPrompts; ++p) {
    for (TokenId t = 0; t < 512; ++t) {
      const bool shared = p % 2 == 0 && t < 256;
      out[p].push_back(shared ? t : static_cast<TokenId>(100'000 * (p + 1) + t));
    }
  }
  return out;
}

template <class Cycle>
std::uint64_t allocations_in(int warmup, int measured, Cycle cycle) {
  std::uint64_t id = 0;
  for (int i = 0; i < warmup; ++i) cycle(id++);
  const std::uint64_t before = allocations.load(std::memory_order_relaxed);
  for (int i = 0; i < measured; ++i) cycle(id++);
  return allocations.load(std::memory_order_relaxed) - before;
}

class SteadyState : public ::testing::TestWithParam<EvictionPolicyKind> {};

TEST_P(SteadyState, ACoreRequestCycleAllocatesNothing) {
  PrefixCacheConfig config{.num_blocks = kPoolBlocks, .block_size = kBlockSize};
  config.policy = GetParam();
  PrefixCache cache(config);
  const auto all = prompts();
  const std::vector<TokenId> decoded = testing_util::seq(40, 7'000'000);  // 2.5 blocks of decode
  auto cycle = [&](std::uint64_t id) {
    const RequestId rid{id};
    ASSERT_TRUE(cache.allocate(Request::with_tokens(rid, all[id % kPrompts])).ok());
    ASSERT_TRUE(cache.append(rid, decoded).ok());
    ASSERT_TRUE(cache.free(rid).ok());
  };
  EXPECT_EQ(allocations_in(2'000, 5'000, cycle), 0u);
  EXPECT_GT(cache.stats().evictions, 0u);
}

TEST_P(SteadyState, AHashModeCycleAllocatesNothing) {
  PrefixCacheConfig config{.num_blocks = kPoolBlocks, .block_size = kBlockSize};
  config.policy = GetParam();
  PrefixCache cache(config);
  BlockHasher hasher(kBlockSize);
  std::vector<std::vector<BlockHash>> hashes(kPrompts);
  const auto all = prompts();
  for (std::size_t p = 0; p < kPrompts; ++p) hasher.extend_hashes(all[p], {}, hashes[p]);
  auto cycle = [&](std::uint64_t id) {
    const RequestId rid{id};
    ASSERT_TRUE(cache.allocate(Request::with_hashes(rid, 512, hashes[id % kPrompts])).ok());
    ASSERT_TRUE(cache.free(rid).ok());
  };
  EXPECT_EQ(allocations_in(2'000, 5'000, cycle), 0u);
}

// The same cycle with the default metrics (windows, breakdowns, sampled
// residency): after warm-up the metrics allocate nothing either.
TEST_P(SteadyState, AMeteredCycleAllocatesNothing) {
  PrefixCacheConfig config{.num_blocks = kPoolBlocks, .block_size = kBlockSize};
  config.policy = GetParam();
  MeteredPrefixCache cache(config);
  const auto all = prompts();
  auto cycle = [&](std::uint64_t id) {
    const RequestId rid{id};
    ASSERT_TRUE(cache.allocate(Request::with_tokens(rid, all[id % kPrompts])).ok());
    ASSERT_TRUE(cache.free(rid).ok());
  };
  EXPECT_EQ(allocations_in(5'000, 5'000, cycle), 0u);
}

// Through the runtime: 16 request handlers on one caller thread, each
// allocating and freeing through two hops per cycle, one shard. The
// aggregator's rounds (which do allocate: snapshots) are pushed out of the
// measured window with a long snapshot interval; the stop() and final
// snapshot come after it.
TEST(SteadyState, ARuntimeRequestCycleAllocatesNothing) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "hop ops are not pooled under AddressSanitizer (shard_hop.hpp)";
#endif
  RuntimeConfig config;
  config.shards = 1;
  config.cache = {.num_blocks = kPoolBlocks, .block_size = kBlockSize};
  config.snapshot_interval = std::chrono::hours(1);
  Runtime runtime(config);
  runtime.start();
  const auto all = prompts();
  asio::io_context caller(1);
  std::uint64_t failures = 0;
  auto handler = [&](std::uint64_t first, int cycles) -> asio::awaitable<void> {
    for (int i = 0; i < cycles; ++i) {
      const std::uint64_t id = first + static_cast<std::uint64_t>(i) * 16;
      const Request request = Request::with_tokens(RequestId{id}, all[id % kPrompts]);
      const ShardId shard = runtime.route(request);
      if (!(co_await runtime.allocate(shard, request)).ok()) ++failures;
      if (!(co_await runtime.free(shard, request.id)).ok()) ++failures;
    }
  };
  auto round = [&](std::uint64_t base, int cycles) {
    for (std::uint64_t h = 0; h < 16; ++h)
      asio::co_spawn(caller, handler(base + h, cycles), asio::detached);
    caller.run();
    caller.restart();
  };
  auto allocations_of = [&](std::uint64_t base, int cycles) {
    const std::uint64_t before = allocations.load(std::memory_order_relaxed);
    round(base, cycles);
    return allocations.load(std::memory_order_relaxed) - before;
  };
  round(0, 500);  // warm-up: free lists, batches, the pool's tables
  // Spawning the 16 handlers allocates (the test's coroutines, not
  // kvscope): a round without cycles measures that, and a round of 250
  // cycles a handler may allocate exactly as much.
  const std::uint64_t spawning = allocations_of(100'000, 0);
  const std::uint64_t cycling = allocations_of(200'000, 250);
  runtime.stop();
  EXPECT_EQ(failures, 0u);
  EXPECT_EQ(cycling, spawning) << "4,000 cycles through the runtime";
}

// A drain whose completion posting runs out of memory resumes: the
// exception leaves the shard's run(), and running it again finishes the
// drain. No operation runs twice, no handler is invoked twice, every
// handler is either invoked or destroyed (those of a batch whose post
// failed: work never completed, shard_hop.hpp), and the inbox still works.
TEST(ShardHopOutOfMemory, AnInterruptedDrainResumesWithoutRunningAnythingTwice) {
  asio::io_context shard(1);
  asio::io_context caller(1);
  ShardInbox inbox(shard.get_executor());
  constexpr int kOps = 40;
  std::vector<int> runs(kOps, 0), completions(kOps, 0);
  auto alive = std::make_shared<int>(0);  // one copy per pending handler
  for (int i = 0; i < kOps; ++i) {
    auto work = [&runs, i] {
      ++runs[i];
      if (i == kOps - 1) fail_next_allocation = true;  // the posting after the last op
      return i;
    };
    auto done = [&completions, i, alive](std::exception_ptr, int) { ++completions[i]; };
    async_run_on(inbox, work, asio::bind_executor(caller, done));
  }
  EXPECT_THROW(shard.run(), std::bad_alloc);
  fail_next_allocation = false;
  shard.restart();
  shard.run();  // the drain resumes
  caller.run();
  for (int i = 0; i < kOps; ++i) {
    EXPECT_EQ(runs[i], 1) << i;
    EXPECT_LE(completions[i], 1) << i;
  }
  EXPECT_EQ(alive.use_count(), 1) << "a handler was neither invoked nor destroyed";
  std::future<int> later = async_run_on(
      inbox, [] { return 7; }, asio::use_future);
  shard.restart();
  shard.run();
  EXPECT_EQ(later.get(), 7);
}

// The counter itself counts (else the tests above could not fail).
TEST(SteadyState, TheCounterSeesAnAllocation) {
  const std::uint64_t before = allocations.load();
  auto* p = new std::vector<int>(100);
  delete p;
  EXPECT_GE(allocations.load() - before, 2u);
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, SteadyState,
                         ::testing::ValuesIn(testing_util::all_policies()),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace kvscope
