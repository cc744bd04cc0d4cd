// Micro-benchmarks of the shard hop: what one co_await onto a shard costs.
//
// Every benchmark runs 64 coroutines on a caller io_context (run by the
// benchmark thread); each awaits 64 trivial operations (a counter increment)
// on a shard executor run by other threads. items_per_second counts
// operations.
//
// BM_AwaitOnShard/shards:S: kvscope's async_run_on to S io_contexts, each
//   run by one thread (an implicit strand): the runtime's design.
// BM_CoSpawnOnStrand: the naive hop, co_await asio::co_spawn(strand, op,
//   use_awaitable), to a strand of one io_context run by one thread.
// BM_AwaitOnPoolStrands/shards:S: async_run_on to S strands over one
//   io_context run by S threads: the alternative design for shards.
// Target (issue 4): BM_AwaitOnShard/shards:1 >= 5x BM_CoSpawnOnStrand.
//
// BM_RuntimeRequestCycle/shards:S: the BM_CoreRequestCycle workload (LRU,
// allocate + free of 2,048-token prompts) through Runtime's awaitable API,
// 16 request handlers in flight, each shard owning a 4,096-block pool.
// Even prompts share a prefix, so they all route to one shard: the skew a
// hot system prompt causes shows in the shard_max_share counter.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <zmq.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "kvscope/runtime/runtime.hpp"
#include "kvscope/runtime/shard_hop.hpp"
#include "request_workload.hpp"

namespace {

constexpr int kCoroutines = 64;
constexpr int kOpsPerCoroutine = 64;

/// One io_context run by `threads` threads for the benchmark's lifetime.
class ExecutorThreads {
 public:
  explicit ExecutorThreads(int threads) : io_(threads), work_(asio::make_work_guard(io_)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~ExecutorThreads() { join(); }
  /// Lets the threads finish the queued work and exit.
  void join() {
    work_.reset();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

/// The shard-side state: touched only on its executor.
struct Counter {
  std::uint64_t value = 0;
};

void rethrow_if(std::exception_ptr failure) {
  if (failure) std::rethrow_exception(failure);
}

asio::awaitable<void> hop_client(kvscope::ShardInbox* shard, Counter* counter) {
  auto increment = [counter] { return ++counter->value; };
  for (int i = 0; i < kOpsPerCoroutine; ++i)
    benchmark::DoNotOptimize(
        co_await kvscope::async_run_on(*shard, increment, asio::use_awaitable));
}

asio::awaitable<std::uint64_t> increment_op(Counter* counter) { co_return ++counter->value; }

template <class Executor>
asio::awaitable<void> co_spawn_client(Executor strand, Counter* counter) {
  for (int i = 0; i < kOpsPerCoroutine; ++i)
    benchmark::DoNotOptimize(
        co_await asio::co_spawn(strand, increment_op(counter), asio::use_awaitable));
}

/// Runs kCoroutines clients (client i targets shard i % shards) per iteration.
template <class MakeClient>
void run_clients(benchmark::State& state, std::size_t shards, MakeClient make_client) {
  asio::io_context caller(1);
  for (auto _ : state) {
    for (int c = 0; c < kCoroutines; ++c)
      asio::co_spawn(caller, make_client(static_cast<std::size_t>(c) % shards), rethrow_if);
    caller.run();
    caller.restart();
  }
  state.SetItemsProcessed(state.iterations() * kCoroutines * kOpsPerCoroutine);
}

void BM_AwaitOnShard(benchmark::State& state) {
  const auto shards = static_cast<std::size_t>(state.range(0));
  std::vector<std::unique_ptr<ExecutorThreads>> contexts;
  std::vector<std::unique_ptr<kvscope::ShardInbox>> inboxes;
  std::vector<Counter> counters(shards);
  for (std::size_t s = 0; s < shards; ++s) {
    contexts.push_back(std::make_unique<ExecutorThreads>(1));
    inboxes.push_back(std::make_unique<kvscope::ShardInbox>(contexts[s]->io().get_executor()));
  }
  run_clients(state, shards,
              [&](std::size_t s) { return hop_client(inboxes[s].get(), &counters[s]); });
  for (auto& context : contexts) context->join();  // no drain runs after its inbox is gone
  inboxes.clear();
}
BENCHMARK(BM_AwaitOnShard)->ArgName("shards")->Arg(1)->Arg(2)->UseRealTime();

void BM_CoSpawnOnStrand(benchmark::State& state) {
  ExecutorThreads context(1);
  auto strand = asio::make_strand(context.io());
  Counter counter;
  run_clients(state, 1, [&](std::size_t) { return co_spawn_client(strand, &counter); });
}
BENCHMARK(BM_CoSpawnOnStrand)->UseRealTime();

void BM_AwaitOnPoolStrands(benchmark::State& state) {
  const auto shards = static_cast<std::size_t>(state.range(0));
  ExecutorThreads pool(static_cast<int>(shards));
  std::vector<std::unique_ptr<kvscope::ShardInbox>> inboxes;
  std::vector<Counter> counters(shards);
  for (std::size_t s = 0; s < shards; ++s)
    inboxes.push_back(std::make_unique<kvscope::ShardInbox>(asio::make_strand(pool.io())));
  run_clients(state, shards,
              [&](std::size_t s) { return hop_client(inboxes[s].get(), &counters[s]); });
  pool.join();
  inboxes.clear();
}
BENCHMARK(BM_AwaitOnPoolStrands)->ArgName("shards")->Arg(1)->Arg(2)->UseRealTime();

constexpr int kHandlers = 16;
constexpr int kCyclesPerHandler = 32;

struct CycleTally {
  std::uint64_t admitted = 0;  // caller thread only
  std::uint64_t refused = 0;
};

asio::awaitable<void> request_cycles(kvscope::Runtime* runtime,
                                     const std::vector<std::vector<kvscope::TokenId>>* prompts,
                                     std::uint64_t first_id, CycleTally* tally) {
  for (int i = 0; i < kCyclesPerHandler; ++i) {
    const std::uint64_t id = first_id + static_cast<std::uint64_t>(i) * kHandlers;
    const auto request =
        kvscope::Request::with_tokens(kvscope::RequestId{id}, (*prompts)[id % prompts->size()]);
    const kvscope::ShardId shard = runtime->route(request);
    const auto admitted = co_await runtime->allocate(shard, request);
    if (!admitted) {
      ++tally->refused;
      continue;
    }
    ++tally->admitted;
    benchmark::DoNotOptimize(co_await runtime->free(shard, request.id));
  }
}

kvscope::RuntimeConfig cycle_config(std::uint32_t shards) {
  kvscope::RuntimeConfig config;
  config.shards = shards;
  config.cache = {.num_blocks = kvscope::bench::kPoolBlocks * shards,
                  .block_size = kvscope::bench::kBlockSize};
  return config;
}

/// CPU seconds of every thread of this process (user + system).
double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// CPU seconds of this process's threads whose name starts with `prefix`
/// (the runtime names its shard threads "kvs-shard-<i>"), from the
/// scheduler's nanosecond counters in /proc/self/task/<tid>/schedstat; 0
/// where the kernel keeps none.
double threads_cpu_seconds(const std::string& prefix) {
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (!std::getline(comm, name) || !name.starts_with(prefix)) continue;
    std::ifstream schedstat(task.path() / "schedstat");
    std::uint64_t on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) total += static_cast<double>(on_cpu_ns) * 1e-9;
  }
  return total;
}

/// The request-cycle loop behind BM_RuntimeRequestCycle and its variants.
void run_request_cycles(benchmark::State& state, kvscope::Runtime& runtime) {
  const auto prompts = kvscope::bench::make_prompts();
  runtime.start();
  asio::io_context caller(1);
  CycleTally tally;
  std::uint64_t next_id = 0;
  const double cpu_before = process_cpu_seconds();
  const double shard_cpu_before = threads_cpu_seconds("kvs-shard-");
  for (auto _ : state) {
    for (int h = 0; h < kHandlers; ++h)
      asio::co_spawn(caller, request_cycles(&runtime, &prompts, next_id + h, &tally), rethrow_if);
    caller.run();
    caller.restart();
    next_id += kHandlers * kCyclesPerHandler;
  }
  const double cpu_seconds = process_cpu_seconds() - cpu_before;
  const double shard_cpu_seconds = threads_cpu_seconds("kvs-shard-") - shard_cpu_before;
  runtime.stop();
  const auto last = runtime.snapshot();
  const double requests = static_cast<double>(state.iterations() * kHandlers * kCyclesPerHandler);
  state.SetItemsProcessed(state.iterations() * kHandlers * kCyclesPerHandler);
  // CPU of every thread of the process (client, shards, and with KV events
  // the publisher, ZeroMQ's I/O threads and the in-process subscriber) per
  // request: a cost measure that idle wake-ups on a VM do not distort.
  state.counters["cpu_us_per_request"] = cpu_seconds * 1e6 / requests;
  // The shard threads' share: what the request path itself costs, apart
  // from the client and (with events) the publisher and subscriber.
  state.counters["shard_cpu_us_per_request"] = shard_cpu_seconds * 1e6 / requests;
  state.counters["hit_rate"] = last->global.total.hit_rate();
  state.counters["refused_share"] =
      static_cast<double>(tally.refused) / static_cast<double>(tally.admitted + tally.refused);
  double max_share = 0;
  std::uint64_t all = 0;
  for (const auto& load : last->load) all += load.operations;
  for (const auto& load : last->load)
    max_share =
        std::max(max_share, static_cast<double>(load.operations) / static_cast<double>(all));
  state.counters["shard_max_share"] = max_share;
}

void BM_RuntimeRequestCycle(benchmark::State& state) {
  kvscope::Runtime runtime(cycle_config(static_cast<std::uint32_t>(state.range(0))));
  run_request_cycles(state, runtime);
}
BENCHMARK(BM_RuntimeRequestCycle)
    ->ArgName("shards")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The same with RuntimeConfig::shard_poll = 20 us: each shard polls its
// inbox that long before sleeping, so the callers' next operations usually
// find it awake (the callers here run on their own thread).
void BM_RuntimeRequestCyclePolling(benchmark::State& state) {
  kvscope::RuntimeConfig config = cycle_config(static_cast<std::uint32_t>(state.range(0)));
  config.shard_poll = std::chrono::microseconds(20);
  kvscope::Runtime runtime(config);
  run_request_cycles(state, runtime);
}
BENCHMARK(BM_RuntimeRequestCyclePolling)
    ->ArgName("shards")
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

namespace {

/// A subscriber that takes every message off the wire (and decodes nothing):
/// what a router's socket does before its own work.
class DrainingSubscriber {
 public:
  explicit DrainingSubscriber(const std::string& endpoint) : sub_(context_, zmq::socket_type::sub) {
    sub_.set(zmq::sockopt::subscribe, "");
    sub_.set(zmq::sockopt::rcvtimeo, 50);
    sub_.connect(endpoint);
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        zmq::message_t frame;
        if (sub_.recv(frame)) ++frames_;
      }
    });
  }
  ~DrainingSubscriber() {
    stop_.store(true);
    thread_.join();
  }
  std::uint64_t frames() const { return frames_; }

 private:
  zmq::context_t context_{1};
  zmq::socket_t sub_;
  std::atomic<bool> stop_{false};
  std::uint64_t frames_ = 0;  // the thread's until joined
  std::thread thread_;
};

// KV events off (events:0) and on with one subscriber draining the stream
// (events:1, map format), one shard. Target (issue 19): events:1 / events:0
// <= 1.05.
void BM_RuntimeRequestCycleKvEvents(benchmark::State& state) {
  kvscope::RuntimeConfig config = cycle_config(1);
  const bool events = state.range(0) != 0;
  if (events) {
    config.kv_events.enabled = true;
    config.kv_events.endpoint = "tcp://127.0.0.1:*";
  }
  kvscope::Runtime runtime(config);
  std::optional<DrainingSubscriber> subscriber;
  if (events) {
    subscriber.emplace(runtime.kv_event_publisher()->endpoint());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it subscribe
  }
  run_request_cycles(state, runtime);
  if (events) {
    const auto stats = runtime.snapshot()->kv_events;
    state.counters["batches"] = static_cast<double>(stats->batches);
    state.counters["blocks_stored"] = static_cast<double>(stats->events.blocks_stored);
    state.counters["batches_dropped"] = static_cast<double>(stats->batches_dropped);
  }
}
BENCHMARK(BM_RuntimeRequestCycleKvEvents)
    ->ArgName("events")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
