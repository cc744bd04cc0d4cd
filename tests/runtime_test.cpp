// Runtime: configuration, routing, awaitable operations, lifecycle and the
// accounting invariants under load (client counts == snapshot == sum of shards).
#include "kvscope/runtime/runtime.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"

#include <gtest/gtest.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "prometheus_parser.hpp"
#include "runtime_test_util.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using testing_util::Callers;
using testing_util::ClientTally;
using testing_util::seq;

RuntimeConfig small_config(std::uint32_t shards, std::uint32_t blocks = 256) {
  RuntimeConfig config;
  config.shards = shards;
  config.cache = {.num_blocks = blocks, .block_size = 4};
  config.snapshot_interval = 1h;  // tests publish by start()/stop() unless they ask
  return config;
}

TEST(RuntimeConfig, RejectsBadValuesWithTheFieldName) {
  auto expect_rejected = [](RuntimeConfig config, const std::string& field) {
    try {
      config.validate();
      ADD_FAILURE() << "accepted a bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  auto config = small_config(2);
  config.shards = 1025;
  expect_rejected(config, "shards");
  config = small_config(4, 3);
  expect_rejected(config, "num_blocks");
  config = small_config(2);
  config.snapshot_interval = 0ms;
  expect_rejected(config, "snapshot_interval");
  config = small_config(2);
  config.detectors.push_back(nullptr);
  expect_rejected(config, "detectors");
  config = small_config(2);
  config.shard_poll = std::chrono::microseconds(-1);
  expect_rejected(config, "shard_poll");
  config.shard_poll = std::chrono::microseconds(1001);
  expect_rejected(config, "shard_poll");
  EXPECT_THROW(Runtime{small_config(1, 0)}, std::invalid_argument);
}

TEST(RuntimeConfig, SplitsThePoolAcrossShards) {
  Runtime runtime(small_config(3, 10));
  EXPECT_EQ(runtime.shard_count(), 3u);
  EXPECT_EQ(runtime.shard_blocks(ShardId{0}) + runtime.shard_blocks(ShardId{1}) +
                runtime.shard_blocks(ShardId{2}),
            10u);
  EXPECT_EQ(runtime.shard_blocks(ShardId{0}), 4u);
  EXPECT_EQ(runtime.shard_blocks(ShardId{2}), 3u);
  EXPECT_THROW((void)runtime.shard_blocks(ShardId{3}), std::out_of_range);
}

TEST(RuntimeRouting, EqualFirstBlocksMeetOnOneShard) {
  Runtime runtime(small_config(8, 64));
  const auto system_prompt = seq(4, 100);
  std::vector<ShardId> seen;
  for (std::uint64_t id = 0; id < 20; ++id) {
    auto tokens = testing_util::cat(system_prompt, seq(5, static_cast<TokenId>(1000 * id)));
    seen.push_back(runtime.route(Request::with_tokens(RequestId{id}, tokens)));
  }
  for (ShardId s : seen) EXPECT_EQ(s, seen.front());
}

TEST(RuntimeRouting, SpreadsDistinctPromptsAndShortRequests) {
  Runtime runtime(small_config(4, 64));
  std::vector<int> per_shard(4, 0);
  std::vector<int> short_per_shard(4, 0);
  for (std::uint64_t id = 0; id < 400; ++id) {
    const auto tokens = seq(8, static_cast<TokenId>(id * 8));
    ++per_shard[runtime.route(Request::with_tokens(RequestId{id}, tokens)).value];
    const auto short_tokens = seq(2, 7);  // no full block: routed by id
    ++short_per_shard[runtime.route(Request::with_tokens(RequestId{id}, short_tokens)).value];
  }
  for (int n : per_shard) EXPECT_GT(n, 50);
  for (int n : short_per_shard) EXPECT_GT(n, 50);
}

TEST(RuntimeRouting, TheSaltTakesPartInTheRoute) {
  Runtime runtime(small_config(16, 64));
  const auto tokens = seq(8, 1);
  std::set<ShardId> shards;
  for (int tenant = 0; tenant < 32; ++tenant) {
    ExtraKeys extras;
    extras.salt = CacheSalt::from_string("tenant-" + std::to_string(tenant));
    shards.insert(runtime.route(Request::with_tokens(RequestId{1}, tokens, extras)));
  }
  EXPECT_GT(shards.size(), 4u);  // same prompt, different tenants: not all on one shard
}

TEST(RuntimeRouting, HashModeRoutesByTheFirstHash) {
  Runtime runtime(small_config(4, 64));
  const std::vector<BlockHash> a{BlockHash::from_id(7), BlockHash::from_id(8)};
  const std::vector<BlockHash> b{BlockHash::from_id(7), BlockHash::from_id(9)};
  EXPECT_EQ(runtime.route(Request::with_hashes(RequestId{1}, 8, a)),
            runtime.route(Request::with_hashes(RequestId{2}, 8, b)));
}

asio::awaitable<void> admit_twice(Runtime& runtime, std::vector<std::uint32_t>& hits,
                                  bool& resumed_at_home) {
  const auto home = co_await asio::this_coro::executor;
  const auto tokens = seq(9, 1);
  for (std::uint64_t id = 1; id <= 2; ++id) {
    const Request request = Request::with_tokens(RequestId{id}, tokens);
    const ShardId shard = runtime.route(request);
    auto admitted = co_await runtime.allocate(request);
    resumed_at_home = resumed_at_home && home == co_await asio::this_coro::executor;
    EXPECT_TRUE(admitted.ok()) << to_string(admitted.status());
    hits.push_back(admitted ? admitted->lookup.hit_tokens : 999);
    auto freed = co_await runtime.free(shard, RequestId{id});
    EXPECT_TRUE(freed.ok());
  }
}

TEST(Runtime, OperationsRunOnTheShardAndResumeTheCaller) {
  Runtime runtime(small_config(2));
  runtime.start();
  Callers callers;
  std::vector<std::uint32_t> hits;
  bool resumed_at_home = true;
  callers.spawn(admit_twice(runtime, hits, resumed_at_home));
  callers.run_all();
  EXPECT_TRUE(resumed_at_home);
  EXPECT_EQ(hits, (std::vector<std::uint32_t>{0, 8}));  // 2 full blocks hit the second time
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last);
  EXPECT_TRUE(last->final);
  EXPECT_EQ(last->global.total.fresh.requests, 2u);
  EXPECT_EQ(last->global.total.fresh.hit_tokens, 8u);
}

TEST(Runtime, OperationsBeforeStartAndAfterStopChangeNothing) {
  Runtime runtime(small_config(2));
  EXPECT_EQ(runtime.snapshot(), nullptr);
  const auto tokens = seq(8, 1);
  const Request request = Request::with_tokens(RequestId{1}, tokens);
  EXPECT_EQ(runtime.allocate(request, asio::use_future).get().status(), Status::not_running);
  EXPECT_FALSE(runtime.record(MetricObservation::request(std::nullopt)));
  runtime.start();
  EXPECT_TRUE(runtime.allocate(request, asio::use_future).get().ok());
  runtime.stop();
  EXPECT_EQ(runtime.free(runtime.route(request), RequestId{1}, FreeOrder::reverse, asio::use_future)
                .get()
                .status(),
            Status::not_running);
  EXPECT_EQ(runtime.snapshot()->global.live_requests, 1u);  // the refused free changed nothing
  EXPECT_THROW(runtime.start(), std::logic_error);
  runtime.stop();  // idempotent
}

TEST(Runtime, WrongAndUnknownShardsAreReasonsNotCrashes) {
  Runtime runtime(small_config(2));
  runtime.start();
  const auto tokens = seq(8, 1);
  const Request request = Request::with_tokens(RequestId{1}, tokens);
  const ShardId home = runtime.route(request);
  ASSERT_TRUE(runtime.allocate(request, asio::use_future).get().ok());
  EXPECT_EQ(
      runtime.free(ShardId{1 - home.value}, RequestId{1}, FreeOrder::reverse, asio::use_future)
          .get()
          .status(),
      Status::unknown_request);
  EXPECT_EQ(
      runtime.free(ShardId{7}, RequestId{1}, FreeOrder::reverse, asio::use_future).get().status(),
      Status::unknown_shard);
  EXPECT_TRUE(runtime.free(home, RequestId{1}, FreeOrder::reverse, asio::use_future).get().ok());
}

TEST(Runtime, RouteOverridePlacesTheRequestWhereTheEngineSays) {
  Runtime runtime(small_config(2));
  runtime.start();
  const auto tokens = seq(8, 1);
  const Request request = Request::with_tokens(RequestId{1}, tokens);
  const ShardId other{1 - runtime.route(request).value};
  ASSERT_TRUE(runtime.allocate(other, request, asio::use_future).get().ok());
  auto stats = runtime.shard_stats(other, asio::use_future).get();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->live_requests, 1u);
  auto lookup = runtime.lookup(other, request, asio::use_future).get();
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->hit_blocks, 1u);  // capped at num_tokens - 1: one of two blocks
}

TEST(Runtime, AppendAndResetGoThroughTheShard) {
  Runtime runtime(small_config(1));
  runtime.start();
  const auto tokens = seq(6, 1);
  const Request request = Request::with_tokens(RequestId{1}, tokens);
  ASSERT_TRUE(runtime.allocate(ShardId{0}, request, asio::use_future).get().ok());
  const auto more = seq(2, 50);
  auto grown = runtime.append(ShardId{0}, RequestId{1}, more, asio::use_future).get();
  ASSERT_TRUE(grown.ok());
  EXPECT_EQ(grown->num_tokens, 8u);
  EXPECT_EQ(runtime.reset(ShardId{0}, asio::use_future).get().status(), Status::blocks_in_use);
  ASSERT_TRUE(
      runtime.free(ShardId{0}, RequestId{1}, FreeOrder::reverse, asio::use_future).get().ok());
  EXPECT_TRUE(runtime.reset(ShardId{0}, asio::use_future).get().ok());
}

// ---- accounting under load ----

/// One request handler: admit a prompt sharing a per-group prefix, free it.
asio::awaitable<void> request_handler(Runtime& runtime, std::uint64_t id, ClientTally& tally) {
  auto tokens = testing_util::cat(seq(8, static_cast<TokenId>(10'000 * (id % 7))),
                                  seq(3 + id % 5, static_cast<TokenId>(id * 100)));
  const Request request = Request::with_tokens(RequestId{id}, tokens);
  const ShardId shard = runtime.route(request);
  auto admitted = co_await runtime.allocate(request);
  if (!admitted) {
    tally.refused.fetch_add(1);
    co_return;
  }
  tally.admitted.fetch_add(1);
  tally.hit_tokens.fetch_add(admitted->lookup.hit_tokens);
  auto freed = co_await runtime.free(shard, RequestId{id});
  if (freed) tally.freed.fetch_add(1);
}

asio::awaitable<void> check_shard_invariants(Runtime& runtime, ShardId shard,
                                             std::atomic<bool>& ok) {
  auto check = [](MeteredPrefixCache& cache, MultiLevelCacheMetrics&) -> Result<void> {
    cache.cache().check_invariants();
    return {};
  };
  try {
    auto done = co_await runtime.with_shard(shard, check);
    if (!done) ok = false;
  } catch (const std::logic_error&) {
    ok = false;
  }
}

TEST(RuntimeLoad, ThousandsOfCoroutinesAccountExactly) {
  auto config = small_config(4, 512);
  config.snapshot_interval = 2ms;  // the aggregator runs throughout
  Runtime runtime(config);
  runtime.start();
  Callers callers(2);
  ClientTally tally;
  constexpr std::uint64_t kRequests = 4000;
  for (std::uint64_t id = 0; id < kRequests; ++id)
    callers.spawn(request_handler(runtime, id, tally));
  callers.run_all();
  std::atomic<bool> invariants_hold{true};  // written by coroutines on two threads
  for (std::uint32_t s = 0; s < runtime.shard_count(); ++s)
    callers.spawn(check_shard_invariants(runtime, ShardId{s}, invariants_hold));
  callers.run_all();
  EXPECT_TRUE(invariants_hold.load());
  runtime.stop();

  EXPECT_EQ(tally.admitted + tally.refused, kRequests);
  EXPECT_EQ(tally.freed, tally.admitted);
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last && last->final);
  EXPECT_EQ(last->global.total.fresh.requests, tally.admitted.load());
  EXPECT_EQ(last->global.total.fresh.hit_tokens, tally.hit_tokens.load());
  EXPECT_EQ(last->global.live_requests, 0u);
  PrefixCacheStats summed;
  std::uint64_t operations = 0;
  for (std::size_t s = 0; s < last->shards.size(); ++s) {
    summed += last->shards[s].total;
    operations += last->load[s].operations;
  }
  EXPECT_EQ(summed, last->global.total);
  // allocate + free per admitted request, allocate per refused, one invariant check per shard.
  EXPECT_EQ(operations, 2 * tally.admitted + tally.refused + runtime.shard_count());
  EXPECT_GT(last->sequence, 2u);

  // Service times: exact counts by kind; every 16th operation of a kind on
  // a shard is timed and weighs 16, so per kind the histogram's count is a
  // multiple of 16 within 16 x shards below its operations.
  const ServiceTimes service = last->service();
  auto ops = [&](ShardOperation k) { return service.operations[static_cast<std::size_t>(k)]; };
  auto timed = [&](ShardOperation k) {
    return service.service_ns[static_cast<std::size_t>(k)].count();
  };
  EXPECT_EQ(service.sampling, 16u);
  EXPECT_EQ(ops(ShardOperation::allocate), kRequests);
  EXPECT_EQ(ops(ShardOperation::free), tally.admitted.load());
  EXPECT_EQ(ops(ShardOperation::other), runtime.shard_count());
  EXPECT_EQ(ops(ShardOperation::append) + ops(ShardOperation::lookup), 0u);
  for (const ShardOperation k :
       {ShardOperation::allocate, ShardOperation::free, ShardOperation::other}) {
    EXPECT_EQ(timed(k) % 16, 0u) << to_string(k);
    EXPECT_LE(timed(k), ops(k)) << to_string(k);
    EXPECT_GT(timed(k) + 16 * runtime.shard_count(), ops(k)) << to_string(k);
  }
  EXPECT_GT(service.mean_ns(ShardOperation::allocate), 0.0);
  EXPECT_GT(service.total_ns(), 0.0);
}

/// Loops request cycles until the runtime stops taking them.
asio::awaitable<void> until_stopped(Runtime& runtime, std::uint64_t first_id, ClientTally& tally) {
  for (std::uint64_t id = first_id;; id += 1'000'000) {
    const auto tokens = seq(12, static_cast<TokenId>(id % 50));
    const Request request = Request::with_tokens(RequestId{id}, tokens);
    auto admitted = co_await runtime.allocate(request);
    if (!admitted) {
      if (admitted.status() == Status::not_running) co_return;
      tally.refused.fetch_add(1);
      continue;
    }
    tally.admitted.fetch_add(1);
    tally.hit_tokens.fetch_add(admitted->lookup.hit_tokens);
    auto freed = co_await runtime.free(runtime.route(request), RequestId{id});
    if (freed) tally.freed.fetch_add(1);
    if (!freed) co_return;  // stopped between the two: the request stays live
  }
}

class RuntimeStopUnderLoad : public ::testing::TestWithParam<int> {};

// With shards that sleep when idle (poll 0) and shards that poll their
// inboxes for 50 us first.
TEST_P(RuntimeStopUnderLoad, CompletesEveryAwaiterAndAccountsForAll) {
  auto config = small_config(2, 1024);
  config.snapshot_interval = 1ms;
  config.shard_poll = std::chrono::microseconds(GetParam());
  Runtime runtime(config);
  runtime.start();
  Callers callers(2);
  ClientTally tally;
  constexpr int kClients = 500;
  for (int c = 0; c < kClients; ++c) callers.spawn(until_stopped(runtime, c, tally));
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    runtime.stop();
  });
  callers.run_all();  // returns only when every coroutine finished: none hangs
  stopper.join();
  EXPECT_EQ(callers.finished(), kClients);
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last && last->final);
  EXPECT_GT(tally.admitted.load(), 0u);
  EXPECT_EQ(last->global.total.fresh.requests, tally.admitted.load());
  EXPECT_EQ(last->global.total.fresh.hit_tokens, tally.hit_tokens.load());
  EXPECT_EQ(last->global.live_requests, tally.admitted - tally.freed);
}
INSTANTIATE_TEST_SUITE_P(ShardPoll, RuntimeStopUnderLoad, ::testing::Values(0, 50),
                         [](const auto& info) { return "poll_us_" + std::to_string(info.param); });

// ---- observations ----

asio::awaitable<void> observe_levels(Runtime& runtime, int rounds) {
  const std::vector<MetricObservation> step{MetricObservation::hit(CacheType::kv(), 4, 4096),
                                            MetricObservation::miss(CacheType::kv(), 1, 1024),
                                            MetricObservation::request(CacheType::kv())};
  for (int i = 0; i < rounds; ++i) {
    auto done = co_await runtime.observe(
        ShardId{static_cast<std::uint32_t>(i) % runtime.shard_count()}, step);
    EXPECT_TRUE(done.ok());
  }
}

TEST(RuntimeObservations, AwaitedAndFireAndForgetObservationsAllLand) {
  auto config = small_config(2);
  config.collector.capacity = 64;  // small: the half-full drain path runs
  Runtime runtime(config);
  runtime.start();
  Callers callers;
  callers.spawn(observe_levels(runtime, 50));
  callers.run_all();
  std::atomic<std::uint64_t> accepted{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 3; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (runtime.record(MetricObservation::hit(CacheType::block(), 1, 64)))
          accepted.fetch_add(1);
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
  }
  for (auto& p : producers) p.join();
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  const CachingSnapshot* kv = last->levels.find(CacheType::kv());
  ASSERT_NE(kv, nullptr);
  EXPECT_EQ(kv->total.hits, 200u);  // 50 rounds x 4 items
  EXPECT_EQ(last->levels.total.requests, 50u);
  const CachingSnapshot* block = last->levels.find(CacheType::block());
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->total.hits, accepted.load());
  EXPECT_EQ(accepted + last->observations_dropped(), 6000u);
}

// ---- batches ----

asio::awaitable<void> batch_cycle(Runtime& runtime, std::vector<Status>& admitted,
                                  std::vector<Status>& freed) {
  std::vector<std::vector<TokenId>> prompts;
  for (TokenId i = 0; i < 40; ++i) prompts.push_back(seq(9, i * 3));
  std::vector<Request> requests;
  for (std::uint64_t i = 0; i < prompts.size(); ++i)
    requests.push_back(Request::with_tokens(RequestId{i}, prompts[i]));
  requests.push_back(Request::with_tokens(RequestId{0}, prompts[0]));  // duplicate id
  auto results = co_await runtime.allocate_batch(requests);
  std::vector<Runtime::RoutedRequest> routed;
  for (std::size_t i = 0; i < results.size(); ++i) {
    admitted.push_back(results[i].status());
    if (results[i]) routed.push_back({runtime.route(requests[i]), requests[i].id});
  }
  routed.push_back({9, RequestId{1}});  // unknown shard
  auto released = co_await runtime.free_batch(routed);
  for (const auto& r : released) freed.push_back(r.status());
}

TEST(RuntimeBatch, OneHopPerShardResultsInRequestOrder) {
  Runtime runtime(small_config(3, 600));
  runtime.start();
  Callers callers;
  std::vector<Status> admitted;
  std::vector<Status> freed;
  callers.spawn(batch_cycle(runtime, admitted, freed));
  callers.run_all();
  ASSERT_EQ(admitted.size(), 41u);
  for (std::size_t i = 0; i < 40; ++i) EXPECT_EQ(admitted[i], Status::ok) << i;
  EXPECT_EQ(admitted[40], Status::duplicate_request);
  ASSERT_EQ(freed.size(), 41u);
  for (std::size_t i = 0; i < 40; ++i) EXPECT_EQ(freed[i], Status::ok) << i;
  EXPECT_EQ(freed[40], Status::unknown_shard);
  runtime.stop();
  EXPECT_EQ(runtime.snapshot()->global.total.fresh.requests, 40u);
  EXPECT_EQ(runtime.snapshot()->global.live_requests, 0u);
}

// ---- snapshots, subscribers, cancellation ----

TEST(RuntimeSnapshots, SequencesAdvanceAndNextSnapshotWaitsForTheNextOne) {
  auto config = small_config(2);
  config.snapshot_interval = 5ms;
  Runtime runtime(config);
  runtime.start();
  const SnapshotPtr first = runtime.snapshot();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->sequence, 1u);
  const SnapshotPtr next = runtime.next_snapshot(asio::use_future).get();
  ASSERT_TRUE(next);
  EXPECT_GT(next->sequence, first->sequence);
  EXPECT_GT(next->interval.count(), 0);
  // Asking for one already published completes at once.
  EXPECT_EQ(runtime.next_snapshot(0, asio::use_future).get()->sequence >= 1, true);
}

TEST(RuntimeSnapshots, AWaitPendingAtStopGetsTheFinalSnapshotLaterOnesAbort) {
  Runtime runtime(small_config(2));  // 1 h interval: only stop() publishes
  runtime.start();
  auto pending = runtime.next_snapshot(asio::use_future);
  runtime.stop();
  const SnapshotPtr final_snapshot = pending.get();
  ASSERT_TRUE(final_snapshot);
  EXPECT_TRUE(final_snapshot->final);
  // A callback, not use_future: an exception crossing threads inside
  // libstdc++ (uninstrumented) is a ThreadSanitizer false positive.
  std::promise<std::error_code> late;
  runtime.next_snapshot([&](std::error_code error, SnapshotPtr) { late.set_value(error); });
  EXPECT_EQ(late.get_future().get(), asio::error::operation_aborted);
}

TEST(RuntimeSnapshots, CancellingAWaitAbortsItAndNothingElse) {
  Runtime runtime(small_config(2));  // 1 h interval: nothing publishes meanwhile
  runtime.start();
  asio::cancellation_signal cancel;
  std::promise<std::pair<std::error_code, bool>> outcome;
  runtime.next_snapshot(
      asio::bind_cancellation_slot(cancel.slot(), [&](std::error_code error, SnapshotPtr snapshot) {
        outcome.set_value({error, snapshot == nullptr});
      }));
  cancel.emit(asio::cancellation_type::terminal);
  const auto [error, no_snapshot] = outcome.get_future().get();  // completes on the notifier
  EXPECT_EQ(error, asio::error::operation_aborted);
  EXPECT_TRUE(no_snapshot);
  runtime.stop();
  EXPECT_EQ(runtime.snapshot()->sequence, 2u);  // the runtime went on as before
}

asio::awaitable<void> wait_with_cancel(Runtime& runtime, asio::cancellation_signal& cancel,
                                       std::error_code& outcome) {
  try {
    (void)co_await runtime.next_snapshot(
        asio::bind_cancellation_slot(cancel.slot(), asio::use_awaitable));
  } catch (const std::system_error& e) {
    outcome = e.code();
  }
}

TEST(RuntimeSnapshots, ACoroutineWaitCanBeCancelled) {
  Runtime runtime(small_config(1));
  runtime.start();
  Callers callers;
  asio::cancellation_signal cancel;
  std::error_code outcome;
  callers.spawn(wait_with_cancel(runtime, cancel, outcome));
  asio::post(callers.io(), [&] { cancel.emit(asio::cancellation_type::terminal); });
  callers.run_all();
  EXPECT_EQ(outcome, asio::error::operation_aborted);
}

/// Waits up to 20 s (sanitizers, loaded CI machines) for `done()`.
template <class Predicate>
bool eventually(Predicate done) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(RuntimeSnapshots, ThrowingAndSlowSubscribersNeitherBlockNorKillTheAggregator) {
  auto config = small_config(2);
  config.snapshot_interval = 2ms;
  Runtime runtime(config);
  std::atomic<int> thrown{0};
  runtime.subscribe([&](const SnapshotPtr&) {
    thrown.fetch_add(1);
    throw std::runtime_error("subscriber bug");
  });
  // The stuck subscriber blocks on its own executor until the test lets go.
  asio::io_context stuck_context;
  auto stuck_work = asio::make_work_guard(stuck_context);
  std::thread stuck_thread([&] { stuck_context.run(); });
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<std::uint64_t> stuck_on{0};
  runtime.subscribe(
      [&, released](const SnapshotPtr& s) {
        if (stuck_on.load() != 0) return;
        stuck_on = s->sequence;
        released.wait();
      },
      stuck_context.get_executor());
  runtime.start();
  ASSERT_TRUE(eventually([&] { return stuck_on.load() != 0; }));
  // While it is stuck, the aggregator goes on publishing.
  EXPECT_TRUE(eventually([&] { return runtime.snapshot()->sequence >= stuck_on.load() + 3; }));
  release.set_value();
  // Two calls: the first one's exception was caught before the second began.
  ASSERT_TRUE(eventually([&] { return thrown.load() > 1; }));
  runtime.stop();
  stuck_work.reset();
  stuck_thread.join();
  const SnapshotPtr last = runtime.snapshot();
  EXPECT_GT(last->counters.subscriber_failures, 0u);
  EXPECT_GT(last->counters.subscriber_skipped, 0u);  // the stuck one missed some
}

TEST(RuntimeSnapshots, UnsubscribedCallbacksStopBeingCalled) {
  auto config = small_config(1);
  config.snapshot_interval = 2ms;
  Runtime runtime(config);
  std::atomic<int> calls{0};
  const auto id = runtime.subscribe([&](const SnapshotPtr&) { calls.fetch_add(1); });
  runtime.start();
  while (calls.load() < 3) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(runtime.unsubscribe(id));
  const int at_unsubscribe = calls.load();
  EXPECT_FALSE(runtime.unsubscribe(id));
  std::this_thread::sleep_for(40ms);            // ~20 more publications
  EXPECT_LE(calls.load(), at_unsubscribe + 1);  // at most the delivery already in progress
}

TEST(RuntimeSnapshots, StopFromARuntimeThreadIsRefused) {
  auto config = small_config(1);
  config.snapshot_interval = 2ms;
  Runtime runtime(config);
  std::promise<bool> refused;
  std::atomic<bool> once{false};
  runtime.subscribe([&](const SnapshotPtr&) {
    if (once.exchange(true)) return;
    try {
      runtime.stop();
      refused.set_value(false);
    } catch (const std::logic_error&) {
      refused.set_value(true);
    }
  });
  runtime.start();
  EXPECT_TRUE(refused.get_future().get());
}

TEST(LatestSnapshot, ReadersSeeEveryPublicationInOrderWhileTheWriterFlips) {
  detail::LatestSnapshot latest;
  EXPECT_EQ(latest.load(), nullptr);
  constexpr std::uint64_t kPublications = 20'000;
  std::atomic<bool> done{false};
  std::atomic<int> out_of_order{0};
  auto reader = [&] {
    std::uint64_t last = 0;
    while (!done.load()) {
      const SnapshotPtr s = latest.load();
      if (!s) continue;
      if (s->sequence < last) out_of_order.fetch_add(1);
      last = s->sequence;
    }
  };
  std::thread first(reader);
  std::thread second(reader);
  for (std::uint64_t i = 1; i <= kPublications; ++i) {
    auto next = std::make_shared<RuntimeSnapshot>();
    next->sequence = i;
    latest.store(std::move(next));
  }
  done = true;
  first.join();
  second.join();
  EXPECT_EQ(out_of_order.load(), 0);
  EXPECT_EQ(latest.load()->sequence, kPublications);
}

// ---- detectors and exports ----

class ScriptedDetector final : public SnapshotDetector {
 public:
  ScriptedDetector(std::string metric, bool throws) : metric_(std::move(metric)), throws_(throws) {}
  std::string_view name() const noexcept override { return "scripted"; }
  void inspect(const MergedSnapshot& snapshot, const AnalyticsReport&,
               std::vector<Finding>& findings) override {
    findings.push_back(Finding{.detector = "scripted",
                               .metric = metric_,
                               .value = static_cast<double>(snapshot.sequence),
                               .message = "scripted finding"});
    if (throws_) throw std::runtime_error("detector bug");
  }

 private:
  std::string metric_;
  bool throws_;
};

TEST(RuntimeDetectors, FindingsBecomeAlertsAndFailuresAreCounted) {
  auto config = small_config(2);
  config.analytics.alerts.pending_intervals = 1;
  config.detectors = {std::make_shared<ScriptedDetector>("a", true),
                      std::make_shared<ScriptedDetector>("b", false)};
  Runtime runtime(config);
  runtime.start();
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_EQ(last->alerts.size(), 2u);  // the thrower's finding is kept
  EXPECT_EQ(last->alerts[0].metric, "a");
  EXPECT_EQ(last->alerts[0].state, AlertState::firing);
  EXPECT_EQ(last->alerts[0].value, static_cast<double>(last->sequence));
  EXPECT_EQ(last->counters.detector_failures, 2u);         // snapshot 1 and the final one
  ASSERT_EQ(last->analytics.diagnosis.issues.size(), 2u);  // firing alerts are issues too
  EXPECT_EQ(last->analytics.diagnosis.issues[0].code, "alert:scripted");
}

TEST(RuntimeDetectors, AlertSubscribersSeeEveryTransitionInOrder) {
  auto config = small_config(1);
  config.analytics.alerts = AlertPolicy{.pending_intervals = 1, .keep_firing_intervals = 1};
  config.snapshot_interval = std::chrono::milliseconds(1);
  // Finds something on odd snapshots only: fired, resolved, fired, ...
  class Alternating final : public SnapshotDetector {
   public:
    std::string_view name() const noexcept override { return "alternating"; }
    void inspect(const MergedSnapshot& s, const AnalyticsReport&,
                 std::vector<Finding>& findings) override {
      if (s.sequence % 2 == 1)
        findings.push_back(Finding{.detector = "alternating", .metric = "m"});
    }
  };
  config.detectors = {std::make_shared<Alternating>()};
  // Declared before the runtime: its notifier thread may still deliver the
  // final snapshot's events until the runtime is destroyed.
  std::mutex mutex;
  std::vector<AlertTransition::Kind> seen;
  Runtime runtime(config);
  runtime.subscribe_alerts([&](const AlertTransition& t) {
    std::lock_guard lock(mutex);
    seen.push_back(t.kind);
  });
  runtime.start();
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mutex);
    return seen.size() >= 6;
  }));
  runtime.stop();
  std::lock_guard lock(mutex);
  for (std::size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(seen[i], i % 2 == 0 ? AlertTransition::Kind::fired : AlertTransition::Kind::resolved)
        << i;
}

TEST(ThresholdDetector, FiresOnUsageAndValidatesRules) {
  using Rule = ThresholdDetector::Rule;
  EXPECT_THROW(ThresholdDetector({Rule{.threshold = std::nan("")}}), std::invalid_argument);
  EXPECT_THROW(ThresholdDetector({Rule{.metric = WatchedMetric::load_share}}),
               std::invalid_argument);
  EXPECT_THROW(
      ThresholdDetector({Rule{.metric = WatchedMetric::observations_dropped, .per_shard = true}}),
      std::invalid_argument);
  ThresholdDetector detector({Rule{.metric = WatchedMetric::usage,
                                   .direction = ThresholdDetector::Direction::above,
                                   .threshold = 0.5,
                                   .per_shard = true}});
  RuntimeSnapshot snapshot;
  snapshot.shards.resize(2);
  snapshot.shards[0].num_blocks = 10;
  snapshot.shards[0].used_blocks = 9;
  snapshot.shards[1].num_blocks = 10;
  snapshot.shards[1].used_blocks = 1;
  snapshot.global = snapshot.shards[0];
  snapshot.global += snapshot.shards[1];
  std::vector<Finding> findings;
  detector.inspect(snapshot, snapshot.analytics, findings);
  ASSERT_EQ(findings.size(), 1u);  // global 0.5 is not above 0.5; shard 0 is
  EXPECT_EQ(findings[0].shard, std::optional<std::uint32_t>(0));
  EXPECT_DOUBLE_EQ(findings[0].value, 0.9);
  EXPECT_EQ(findings[0].metric, "usage");
}

TEST(RuntimeExport, JsonAndPrometheusCarryEveryShard) {
  Runtime runtime(small_config(2));
  runtime.start();
  const auto tokens = seq(8, 1);
  ASSERT_TRUE(
      runtime.allocate(Request::with_tokens(RequestId{1}, tokens), asio::use_future).get().ok());
  runtime.stop();
  const SnapshotPtr last = runtime.snapshot();
  const auto json = nlohmann::json::parse(to_json(*last));
  EXPECT_EQ(json["sequence"], last->sequence);
  EXPECT_EQ(json["shards"].size(), 2u);
  EXPECT_EQ(json["global"]["total"]["requests"], 1);
  EXPECT_EQ(json["final"], true);
  const auto families = testing_util::PromParser::parse(to_prometheus(*last));
  bool found_operations = false;
  for (const auto& family : families)
    if (family.name == "kvscope_runtime_shard_operations_total") {
      found_operations = true;
      EXPECT_EQ(family.samples.size(), 2u);
    }
  EXPECT_TRUE(found_operations);
}

}  // namespace
}  // namespace kvscope
