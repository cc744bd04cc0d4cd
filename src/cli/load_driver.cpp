#include "load_driver.hpp"

#include <asio/co_spawn.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_future.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "kvscope/trace/trace_replay.hpp"

#include <fmt/core.h>

namespace kvscope::cli {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::uint64_t nanoseconds_since(SteadyClock::time_point start) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - start).count());
}

/// One client thread's state. Only that thread's coroutines touch it, so
/// nothing is locked; `done` is also read by the progress loop.
struct alignas(64) ClientThread {
  ClientTotals totals;
  std::atomic<std::uint64_t> done{0};
  std::vector<ChatPrompt> feed;  // prompts taken from the shared workload, in order
  std::size_t feed_next = 0;
};

/// What every client shares: the runtime, the request source, the stop flag.
class Shared {
 public:
  Shared(const LoadConfig& config, Runtime& runtime) : config(config), runtime(runtime) {
    if (config.trace == nullptr) workload_.emplace(config.workload);
  }

  /// The next chat prompt for a client on `thread`, or nullopt when the run
  /// is over. Takes prompts from the shared generator in batches, so the
  /// lock is taken once per kFeedBatch requests.
  std::optional<ChatPrompt> next_prompt(ClientThread& thread) {
    if (stop_issuing.load(std::memory_order_relaxed)) return std::nullopt;
    if (thread.feed_next == thread.feed.size()) refill(thread);
    if (thread.feed_next == thread.feed.size()) return std::nullopt;
    return thread.feed[thread.feed_next++];
  }

  /// The next trace request's index, or nullopt when the run is over.
  std::optional<std::size_t> next_trace_request() {
    if (stop_issuing.load(std::memory_order_relaxed)) return std::nullopt;
    const std::uint64_t i = trace_next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= target()) return std::nullopt;
    return static_cast<std::size_t>(i);
  }

  std::uint64_t target() const noexcept {
    return config.trace == nullptr
               ? config.requests
               : std::min<std::uint64_t>(config.requests, config.trace->requests.size());
  }
  /// Precondition: no trace (the chat workload is built only without one).
  const ChatWorkload& workload() const noexcept { return *workload_; }
  /// When a trace request arriving at `arrival` would come after the deadline.
  bool past_deadline(SteadyClock::time_point arrival) const noexcept {
    return config.duration.count() > 0 && arrival >= start + config.duration;
  }

  const LoadConfig& config;
  Runtime& runtime;
  std::atomic<bool> stop_issuing{false};
  SteadyClock::time_point start{};

 private:
  static constexpr std::size_t kFeedBatch = 32;

  void refill(ClientThread& thread) {
    thread.feed.clear();
    thread.feed_next = 0;
    std::lock_guard lock(mutex_);
    while (thread.feed.size() < kFeedBatch && issued_ < config.requests) {
      thread.feed.push_back(workload_->next());
      ++issued_;
    }
  }

  std::mutex mutex_;
  std::optional<ChatWorkload> workload_;  // next() guarded by mutex_; tokens() is const
  std::uint64_t issued_ = 0;              // guarded by mutex_
  std::atomic<std::uint64_t> trace_next_{0};
};

/// How a request decodes: its answer tokens (token mode), or a count of
/// tokens whose completed blocks get request-private hashes (hash mode).
struct DecodePlan {
  std::span<const TokenId> answer;  // token mode
  std::uint32_t answer_tokens = 0;
  bool hash_mode = false;
  std::uint32_t prompt_tokens = 0;  // hash mode: where the answer starts
  std::uint32_t block_size = 0;
};

asio::awaitable<void> wait_for(asio::steady_timer& timer, std::chrono::nanoseconds how_long) {
  if (how_long < std::chrono::microseconds(1)) co_return;  // below timer resolution
  timer.expires_after(how_long);
  co_await timer.async_wait(asio::use_awaitable);
}

/// Allocates, retrying while the pool is full (other requests will free).
asio::awaitable<Result<AllocateResult>> admit(Shared& shared, ClientThread& thread,
                                              asio::steady_timer& timer, ShardId shard,
                                              const Request& request) {
  for (std::uint32_t attempt = 0;; ++attempt) {
    const auto start = SteadyClock::now();
    Result<AllocateResult> admitted = co_await shared.runtime.allocate(shard, request);
    thread.totals.allocate_ns.record(nanoseconds_since(start));
    if (admitted || admitted.status() != Status::not_enough_blocks ||
        attempt == shared.config.max_retries)
      co_return admitted;
    ++thread.totals.retries;
    co_await wait_for(timer, shared.config.retry_backoff);
  }
}

/// Hashes for the blocks that tokens [from, to) of a hash-mode request
/// complete: private to the request (high word = request id + 1, never a
/// trace id).
std::vector<BlockHash> completed_block_hashes(RequestId id, std::uint32_t from, std::uint32_t to,
                                              std::uint32_t block_size) {
  std::vector<BlockHash> hashes;
  for (std::uint32_t block = from / block_size; block < to / block_size; ++block)
    hashes.push_back(BlockHash{id.value + 1, block});
  return hashes;
}

/// Decode growth: the answer in decode_steps appends (none for 0). Returns
/// ok, or the status of the append that failed; not_enough_blocks stops
/// decoding early (the request keeps what it has, like a preempted decode).
asio::awaitable<Status> decode(Shared& shared, ClientThread& thread, ShardId shard, RequestId id,
                               DecodePlan plan) {
  const std::uint32_t steps = shared.config.decode_steps;
  std::uint32_t done = 0;
  for (std::uint32_t step = 0; step < steps && done < plan.answer_tokens; ++step) {
    const std::uint32_t n = (plan.answer_tokens - done + (steps - step) - 1) / (steps - step);
    const auto start = SteadyClock::now();
    Status status = Status::ok;
    if (plan.hash_mode) {
      const std::uint32_t from = plan.prompt_tokens + done;
      const std::vector<BlockHash> hashes =
          completed_block_hashes(id, from, from + n, plan.block_size);
      status = (co_await shared.runtime.append_hashes(shard, id, n, hashes)).status();
    } else {
      status = (co_await shared.runtime.append(shard, id, plan.answer.subspan(done, n))).status();
    }
    thread.totals.append_ns.record(nanoseconds_since(start));
    if (status != Status::ok) co_return status;
    done += n;
  }
  co_return Status::ok;
}

void count_error(ClientThread& thread, Status status) {
  ++thread.totals.errors;
  ++thread.totals.errors_by_status[std::string(to_string(status))];
}

/// One request cycle: allocate, prefill, decode, free.
asio::awaitable<void> run_cycle(Shared& shared, ClientThread& thread, asio::steady_timer& timer,
                                ShardId shard, const Request& request, DecodePlan plan) {
  const Result<AllocateResult> admitted = co_await admit(shared, thread, timer, shard, request);
  if (!admitted) {
    count_error(thread, admitted.status());
    co_return;
  }
  const std::uint32_t uncached = request.token_count() - admitted->lookup.hit_tokens;
  ++thread.totals.admitted;
  thread.totals.prompt_tokens += request.token_count();
  thread.totals.hit_tokens += admitted->lookup.hit_tokens;
  const double prefill_ns = shared.config.prefill_ns_per_token * uncached;
  co_await wait_for(timer, std::chrono::nanoseconds(static_cast<std::int64_t>(prefill_ns)));
  const Status decoded = co_await decode(shared, thread, shard, request.id, plan);
  if (decoded == Status::not_enough_blocks) ++thread.totals.decode_cut_short;
  const auto start = SteadyClock::now();
  const Result<FreeResult> freed = co_await shared.runtime.free(shard, request.id);
  thread.totals.free_ns.record(nanoseconds_since(start));
  if (decoded != Status::ok && decoded != Status::not_enough_blocks) {
    count_error(thread, decoded);  // a bug, not pool pressure: the request is freed anyway
  } else if (!freed) {
    count_error(thread, freed.status());
  } else {
    ++thread.totals.requests;
  }
}

asio::awaitable<void> chat_client(Shared& shared, ClientThread& thread) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::vector<TokenId> tokens;
  ExtraKeys extras;
  while (const auto prompt = shared.next_prompt(thread)) {
    shared.workload().tokens(*prompt, tokens);
    extras.salt = shared.workload().salt(prompt->tenant);
    const std::span<const TokenId> all(tokens);
    const Request request =
        Request::with_tokens(RequestId{prompt->index}, all.first(prompt->prompt_tokens), extras);
    DecodePlan plan;
    plan.answer = all.subspan(prompt->prompt_tokens);
    plan.answer_tokens = prompt->answer_tokens;
    co_await run_cycle(shared, thread, timer, shared.runtime.route(request), request, plan);
    thread.done.fetch_add(1, std::memory_order_relaxed);
  }
}

asio::awaitable<void> trace_client(Shared& shared, ClientThread& thread) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const MooncakeTrace& trace = *shared.config.trace;
  const std::uint32_t block_size = shared.config.runtime.cache.block_size;
  while (const auto index = shared.next_trace_request()) {
    const TraceRequest& r = trace.requests[*index];
    if (shared.config.speedup > 0) {
      const auto offset = std::chrono::duration<double, std::milli>(
          static_cast<double>(r.timestamp_ms) / shared.config.speedup);
      const auto arrival = shared.start + std::chrono::duration_cast<SteadyClock::duration>(offset);
      if (shared.past_deadline(arrival)) break;  // would arrive after --duration
      timer.expires_at(arrival);
      co_await timer.async_wait(asio::use_awaitable);
      if (shared.stop_issuing.load(std::memory_order_relaxed)) break;
    }
    // vLLM's rule: only blocks fully covered by the prompt carry a hash.
    const auto ids = trace.full_blocks_of(r, block_size);
    const Request request = Request::with_hashes(RequestId{*index}, r.input_length, ids);
    DecodePlan plan;
    plan.answer_tokens = r.output_length;
    plan.hash_mode = true;
    plan.prompt_tokens = r.input_length;
    plan.block_size = block_size;
    const ShardId shard =
        shared.config.trace_route_depth <= 1
            ? shared.runtime.route(request)
            : ShardId{trace_shard(trace.blocks_of(r), shared.runtime.shard_count(),
                                  shared.config.trace_route_depth)};
    co_await run_cycle(shared, thread, timer, shard, request, plan);
    thread.done.fetch_add(1, std::memory_order_relaxed);
  }
}

/// Client threads beyond the shard count: an io_context and a thread each.
class ExtraThreads {
 public:
  explicit ExtraThreads(std::uint32_t count) {
    for (std::uint32_t i = 0; i < count; ++i) {
      contexts_.push_back(std::make_unique<asio::io_context>(1));
      guards_.emplace_back(contexts_.back()->get_executor());
    }
    for (auto& io : contexts_) threads_.emplace_back([&io] { io->run(); });
  }
  ~ExtraThreads() {
    guards_.clear();  // run() returns once the clients are gone
    for (auto& t : threads_) t.join();
  }
  ExtraThreads(const ExtraThreads&) = delete;
  ExtraThreads& operator=(const ExtraThreads&) = delete;

  asio::any_io_executor executor(std::size_t i) const { return contexts_[i]->get_executor(); }

 private:
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

/// Counts finished clients; keeps the first exception one died of.
class ClientLatch {
 public:
  explicit ClientLatch(std::uint32_t clients) : remaining_(clients) {}
  void finished(std::exception_ptr error) {
    if (error) {
      std::lock_guard lock(mutex_);
      if (!first_error_) first_error_ = error;
    }
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) all_done_.set_value();
  }
  bool wait_for(std::chrono::milliseconds timeout) {
    return future_.wait_for(timeout) == std::future_status::ready;
  }
  std::exception_ptr first_error() {
    std::lock_guard lock(mutex_);
    return first_error_;
  }

 private:
  std::atomic<std::uint32_t> remaining_;
  std::promise<void> all_done_;
  std::future<void> future_ = all_done_.get_future();
  std::mutex mutex_;
  std::exception_ptr first_error_;
};

/// Names the chat workload's tenants in every shard's exports ("tenant-3"
/// rather than the salt's digest). Blocks until each shard has run it.
void name_tenants(Runtime& runtime, const ChatWorkload& workload) {
  auto name_all = [&workload](MeteredPrefixCache& cache, MultiLevelCacheMetrics&) {
    for (std::uint32_t t = 0; t < workload.config().tenants; ++t)
      cache.metrics().set_tenant_name(workload.salt(t), ChatWorkload::tenant_name(t));
    return Result<void>{};
  };
  const Result<void> named =
      asio::co_spawn(runtime.shard_executor(ShardId{0}),
                     runtime.for_each_shard(std::move(name_all)), asio::use_future)
          .get();
  if (!named)
    throw std::runtime_error(fmt::format("naming tenants: {}", to_string(named.status())));
}

/// Each KV cache group's blocks and admissions, summed over the shards.
/// Blocks until every shard has answered (one after another).
std::vector<KvCacheGroupStats> group_stats(Runtime& runtime, std::uint32_t groups) {
  std::vector<KvCacheGroupStats> sums(groups);
  auto add = [&sums](MeteredPrefixCache& cache, MultiLevelCacheMetrics&) {
    const std::vector<KvCacheGroupStats> shard = cache.cache().all_group_stats();
    for (std::size_t g = 0; g < sums.size() && g < shard.size(); ++g) sums[g] += shard[g];
    return Result<void>{};
  };
  const Result<void> done = asio::co_spawn(runtime.shard_executor(ShardId{0}),
                                           runtime.for_each_shard(std::move(add)), asio::use_future)
                                .get();
  if (!done) throw std::runtime_error(fmt::format("group stats: {}", to_string(done.status())));
  return sums;
}

/// Collects alert transitions from the runtime's notifier thread.
struct AlertLog {
  std::mutex mutex;
  std::vector<AlertTransition> events;
};

}  // namespace

void LoadConfig::validate() const {
  runtime.validate();
  auto fail = [](std::string_view what) {
    throw std::invalid_argument(fmt::format("bench: {}", what));
  };
  if (threads > 1024) fail("threads must be 0 .. 1024");
  if (concurrency < 1 || concurrency > 100'000) fail("concurrency must be 1 .. 100,000");
  if (trace_route_depth < 1) fail("trace_route_depth must be >= 1");
  if (requests < 1) fail("requests must be >= 1");
  if (duration.count() < 0) fail("duration must be >= 0");
  if (!(speedup >= 0)) fail("speedup must be >= 0");
  if (!(prefill_ns_per_token >= 0) || prefill_ns_per_token > 1e9)
    fail("prefill_ns_per_token must be in [0, 1e9]");
  if (decode_steps > 1024) fail("decode_steps must be 0 .. 1024");
  if (retry_backoff.count() < 0) fail("retry_backoff must be >= 0");
  if (memory_warmup.count() < 0) fail("memory_warmup must be >= 0");
  if (trace == nullptr) workload.validate();
}

std::uint32_t LoadConfig::client_threads() const noexcept {
  return threads == 0 ? runtime.shard_count() : threads;
}

Histogram ClientTotals::all_ops_ns() const {
  Histogram all = allocate_ns;
  all.merge(append_ns);
  all.merge(free_ns);
  return all;
}

void ClientTotals::merge(const ClientTotals& other) {
  requests += other.requests;
  admitted += other.admitted;
  errors += other.errors;
  for (const auto& [status, n] : other.errors_by_status) errors_by_status[status] += n;
  retries += other.retries;
  decode_cut_short += other.decode_cut_short;
  prompt_tokens += other.prompt_tokens;
  hit_tokens += other.hit_tokens;
  allocate_ns.merge(other.allocate_ns);
  append_ns.merge(other.append_ns);
  free_ns.merge(other.free_ns);
}

double LoadResult::requests_per_second() const noexcept {
  return seconds > 0 ? static_cast<double>(clients.requests) / seconds : 0.0;
}

double MemoryGrowth::growth() const noexcept {
  if (!measured || baseline_bytes == 0) return 0.0;
  return (static_cast<double>(peak_bytes) - static_cast<double>(baseline_bytes)) /
         static_cast<double>(baseline_bytes);
}

MemoryGrowth LoadResult::memory_growth() const {
  MemoryGrowth g;
  for (const MemorySample& m : memory) {
    if (m.seconds < memory_warmup_seconds) continue;
    if (!g.measured) {
      g.measured = true;
      g.baseline_seconds = m.seconds;
      g.baseline_bytes = m.rss_bytes;
    }
    g.peak_bytes = std::max(g.peak_bytes, m.rss_bytes);
    ++g.samples;
  }
  return g;
}

std::uint64_t resident_bytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

namespace {

/// Reports progress until every client finished; enforces the deadline.
/// Samples resident memory every period (soak checks read the series).
void watch(const LoadConfig& config, Shared& shared, ClientLatch& latch,
           const std::vector<std::unique_ptr<ClientThread>>& threads,
           const ProgressCallback& progress, std::chrono::milliseconds progress_every,
           std::vector<MemorySample>& memory, std::vector<std::uint64_t>& group_peak_used) {
  const auto deadline = shared.start + config.duration;
  const auto seconds_so_far = [&] {
    return std::chrono::duration<double>(SteadyClock::now() - shared.start).count();
  };
  memory.push_back({seconds_so_far(), resident_bytes()});
  for (;;) {
    auto wait = progress_every;
    if (config.duration.count() > 0 && !shared.stop_issuing.load(std::memory_order_relaxed))
      wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now()),
                        std::chrono::milliseconds(1), progress_every);
    const bool finished = latch.wait_for(wait);
    if (config.duration.count() > 0 && SteadyClock::now() >= deadline)
      shared.stop_issuing.store(true, std::memory_order_relaxed);
    if (finished) return;
    memory.push_back({seconds_so_far(), resident_bytes()});
    // KV cache groups: the most blocks each held in the snapshots seen.
    if (const SnapshotPtr now = shared.runtime.snapshot()) {
      const auto& groups = now->global.groups;
      group_peak_used.resize(std::max(group_peak_used.size(), groups.size()));
      for (std::size_t g = 0; g < groups.size(); ++g)
        group_peak_used[g] =
            std::max<std::uint64_t>(group_peak_used[g], groups[g].stats.used_blocks);
    }
    if (progress) {
      LoadProgress p;
      p.seconds = seconds_so_far();
      for (const auto& t : threads) p.done += t->done.load(std::memory_order_relaxed);
      p.target = shared.target();
      p.snapshot = shared.runtime.snapshot();
      progress(p);
    }
  }
}

/// Spawns the clients and watches them; returns the seconds they ran. The
/// clients reference `latch`, `shared` and `threads`: whatever happens, this
/// returns or throws only after every client has finished.
double drive(const LoadConfig& config, Shared& shared,
             std::vector<std::unique_ptr<ClientThread>>& threads,
             const std::vector<asio::any_io_executor>& executors, const ProgressCallback& progress,
             std::chrono::milliseconds progress_every, std::vector<MemorySample>& memory,
             std::vector<std::uint64_t>& group_peak_used) {
  ClientLatch latch(config.concurrency);
  shared.start = SteadyClock::now();
  std::uint32_t spawned = 0;
  try {
    for (; spawned < config.concurrency; ++spawned) {
      const std::size_t t = spawned % executors.size();
      auto client = config.trace != nullptr ? trace_client(shared, *threads[t])
                                            : chat_client(shared, *threads[t]);
      auto on_exit = [&latch, &shared](std::exception_ptr error) {
        if (error) shared.stop_issuing.store(true, std::memory_order_relaxed);
        latch.finished(error);
      };
      asio::co_spawn(executors[t], std::move(client), std::move(on_exit));
    }
    watch(config, shared, latch, threads, progress, progress_every, memory, group_peak_used);
  } catch (...) {
    shared.stop_issuing.store(true, std::memory_order_relaxed);
    for (; spawned < config.concurrency; ++spawned) latch.finished(nullptr);  // never started
    while (!latch.wait_for(std::chrono::milliseconds(100))) {
    }
    throw;
  }
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - shared.start).count();
  if (auto error = latch.first_error()) std::rethrow_exception(error);
  return seconds;
}

}  // namespace

LoadResult run_load(const LoadConfig& config, const ProgressCallback& progress,
                    std::chrono::milliseconds progress_every) {
  config.validate();
  if (progress_every < std::chrono::milliseconds(1))
    throw std::invalid_argument("bench: progress_every must be >= 1 ms");
  LoadResult result;
  result.metrics = config.runtime.metrics;
  result.concurrency = config.concurrency;
  result.memory_warmup_seconds = std::chrono::duration<double>(config.memory_warmup).count();
  AlertLog alerts;  // outlives the runtime: deliveries may come until it is destroyed
  {
    Runtime runtime(config.runtime);
    runtime.subscribe_alerts([&alerts](const AlertTransition& t) {
      std::lock_guard lock(alerts.mutex);
      alerts.events.push_back(t);
    });
    result.shards = runtime.shard_count();
    result.threads = config.client_threads();
    const std::uint32_t colocated = std::min(result.threads, result.shards);
    ExtraThreads extra(result.threads - colocated);  // outlives the executors naming it
    std::vector<std::unique_ptr<ClientThread>> threads;
    std::vector<asio::any_io_executor> executors;
    for (std::uint32_t t = 0; t < result.threads; ++t) {
      threads.push_back(std::make_unique<ClientThread>());
      executors.push_back(t < colocated ? asio::any_io_executor(runtime.shard_executor(ShardId{t}))
                                        : extra.executor(t - colocated));
    }
    Shared shared(config, runtime);
    runtime.start();
    if (config.trace == nullptr) name_tenants(runtime, shared.workload());
    result.seconds = drive(config, shared, threads, executors, progress, progress_every,
                           result.memory, result.group_peak_used);
    result.group_configs = config.runtime.cache.groups;
    if (result.group_configs.empty())
      result.group_configs = {
          KvCacheGroupConfig{AttentionKind::full_attention, config.runtime.cache.block_size, 0, 1}};
    result.group_stats =
        group_stats(runtime, static_cast<std::uint32_t>(result.group_configs.size()));
    runtime.stop();
    result.final_snapshot = runtime.snapshot();
    for (const auto& t : threads) result.clients.merge(t->totals);
  }
  result.alert_events = std::move(alerts.events);
  return result;
}

}  // namespace kvscope::cli
