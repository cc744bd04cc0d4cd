// kvscope/runtime/runtime.hpp - the sharded async runtime: awaitable cache
// operations on per-core shards, an aggregator coroutine, snapshots.
//
// A Runtime owns S shards. Each shard is an io_context run by one thread (an
// implicit strand, see docs/runtime.md for the benchmark behind the choice)
// and owns a MeteredPrefixCache over N/S of the pool's blocks, the
// MultiLevelCacheMetrics of observed cache levels and a fire-and-forget
// observation queue. Only the shard's thread touches its state.
//
// Operations are Asio asynchronous operations: the default token is
// asio::use_awaitable, so from a coroutine on any executor
//     auto admitted = co_await runtime.allocate(request);
// runs the allocation on the request's shard and resumes the coroutine on
// its own executor. Results are values with reasons (Result<T>); besides the
// core's statuses an operation can yield not_running (the runtime was not
// started, or stop() closed the shard before the operation reached it:
// nothing changed) and unknown_shard. Other tokens work too (callbacks,
// use_future); the completion signature is void(std::exception_ptr,
// Result<T>), the exception_ptr set only if the shard threw (bad_alloc).
//
// Request views (token spans, hashes) must stay valid until the operation
// completes; a coroutine awaiting it keeps them alive in its frame.
//
// Routing: route(request) picks the shard from the request's first block
// hash (salted by its extra keys, so a tenant's chains stay together and
// isolated), or from its id when it has no full block. Every operation on a
// live request takes the shard explicitly: use the one route() gave (or
// your own, to override placement). A wrong shard yields unknown_request.
//
// Aggregation: a coroutine on the runtime's control thread wakes every
// snapshot_interval, visits each shard on its own thread (drains queued
// observations, ticks windows, snapshots) and hands the reports to its
// Aggregator (kvscope/runtime/aggregator.hpp), which merges them, runs the
// analytics (interval figures, trends, capacity advice), the detectors, the
// alert hysteresis and the diagnosis; the runtime publishes the immutable
// RuntimeSnapshot. The Runtime itself keeps threads, routing and hops.
//
// Lifecycle: construct (threads start, shards closed) -> start() -> stop()
// -> destroy. stop() closes every shard behind the operations already queued
// (they complete with their results), publishes a final snapshot that
// accounts for all of them, and fails pending next_snapshot() waits. Calls
// made after stop() complete with not_running.
//
// Thread safety: every member may be called from any thread except that
// start(), stop() and the destructor must not run on a runtime thread
// (they wait for those threads; calling them there throws logic_error).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "kvscope/analytics/analytics_config.hpp"
#include "kvscope/analytics/cache_analytics.hpp"
#include "kvscope/analytics/detector.hpp"
#include "kvscope/events/kv_event_publisher.hpp"
#include "kvscope/events/kv_events_config.hpp"
#include "kvscope/metrics/batch_collector.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/runtime/aggregator.hpp"
#include "kvscope/runtime/detail/runtime_shard.hpp"
#include "kvscope/runtime/detail/snapshot_board.hpp"
#include "kvscope/runtime/shard_hop.hpp"
#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

/// Construction parameters; validate() throws std::invalid_argument naming the field.
struct RuntimeConfig {
  /// Shards (= shard threads); 0 means one per hardware thread. 1 .. 1024.
  std::uint32_t shards = 0;
  /// The whole pool: cache.num_blocks is split across shards (the first
  /// num_blocks % S shards get one block more); each shard needs >= 1 block.
  PrefixCacheConfig cache{.num_blocks = 16384, .block_size = 16};
  MetricsConfig metrics{};           ///< each shard's metrics
  BatchCollectorConfig collector{};  ///< each shard's fire-and-forget queue
  /// Aggregator period; 1 ms .. 1 h.
  std::chrono::milliseconds snapshot_interval{1000};
  /// Pin shard i's thread to CPU i mod (hardware threads).
  bool pin_threads = false;
  /// How long a shard's thread keeps polling its inbox after running out of
  /// operations before it may sleep (ShardInbox): operations arriving in the
  /// window skip a wake-up (~2-10 us on a VM). Costs up to this much CPU per
  /// idle moment; pays where shards have cores to themselves (pin_threads),
  /// hurts where they share them with the callers. 0 .. 1 ms; 0 never polls.
  std::chrono::microseconds shard_poll{0};
  /// Keys the routing hash, so placement is not predictable from outside.
  std::uint64_t route_seed = 0x6b76'7363'6f70'6533;
  /// Trends, shift detection, alert hysteresis, detector bounds, capacity
  /// advice (docs/analytics.md).
  AnalyticsConfig analytics{};
  /// Run by the aggregator on every snapshot, in order. Empty means
  /// default_detectors() (kvscope/analytics/detectors.hpp); pass your own
  /// list to replace them.
  std::vector<std::shared_ptr<SnapshotDetector>> detectors{};
  /// KV cache events for cluster routers (docs/kv-events.md): off by
  /// default. On, every shard publishes what its cache stores and removes
  /// through one ZeroMQ publisher, in vLLM's wire format.
  KvEventsConfig kv_events{};

  void validate() const;
  /// `shards`, with 0 resolved to the hardware thread count.
  std::uint32_t shard_count() const noexcept;
};

class Runtime {
 public:
  /// Validates `config` (std::invalid_argument), builds the shards and
  /// starts their threads. Operations yield not_running until start().
  explicit Runtime(RuntimeConfig config);
  /// stop()s if needed, then joins every thread.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Opens the shards, publishes snapshot 1 and starts the aggregator.
  /// Throws std::logic_error when called twice or after stop().
  void start();
  /// Closes the shards, lets queued operations finish, publishes the final
  /// snapshot and fails waiting next_snapshot() calls. Idempotent.
  void stop();
  bool running() const noexcept { return running_.load(std::memory_order_acquire); }
  /// The KV event publisher (its endpoints, stats), or nullptr when
  /// RuntimeConfig::kv_events is off. Any thread.
  const KvEventPublisher* kv_event_publisher() const noexcept { return kv_events_.get(); }

  const RuntimeConfig& config() const noexcept { return config_; }
  std::uint32_t shard_count() const noexcept { return static_cast<std::uint32_t>(shards_.size()); }
  /// Blocks owned by `shard` (its slice of the pool). Precondition: shard < shard_count().
  std::uint32_t shard_blocks(ShardId shard) const;
  /// The executor of `shard`'s thread, for work that should share its core
  /// (thread-per-core serving: a request handler runs beside the shard it
  /// uses most, as `kvscope bench`'s clients do). Work running there delays
  /// the shard's operations: keep it short and never block. Everything you
  /// put there must finish before the Runtime is destroyed (the destructor
  /// joins the thread after its queue runs dry). Throws std::out_of_range
  /// for an unknown shard.
  asio::io_context::executor_type shard_executor(ShardId shard) const;

  /// The shard for `request`: from its first block hash, or its id when it
  /// has no full block. Pure and cheap (hashes one block); any thread.
  ShardId route(const Request& request) const noexcept;

  // ---- awaitable cache operations (see PrefixCache for each one's semantics) ----

  template <class Token = asio::use_awaitable_t<>>
  auto lookup(const Request& request, Token&& token = Token()) {
    return lookup(route(request), request, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto lookup(ShardId shard, const Request& request, Token&& token = Token()) {
    auto op = [request](detail::RuntimeShard& s) { return s.cache().lookup(request); };
    return run_on(shard, ShardOperation::lookup, std::move(op), std::forward<Token>(token));
  }

  template <class Token = asio::use_awaitable_t<>>
  auto allocate(const Request& request, Token&& token = Token()) {
    return allocate(route(request), request, std::forward<Token>(token));
  }
  template <class Token = asio::use_awaitable_t<>>
  auto allocate(ShardId shard, const Request& request, Token&& token = Token()) {
    auto op = [request](detail::RuntimeShard& s) {
      return detail::leaving_shard(s.cache().allocate(request));
    };
    return run_on(shard, ShardOperation::allocate, std::move(op), std::forward<Token>(token));
  }

  template <class Token = asio::use_awaitable_t<>>
  auto append(ShardId shard, RequestId id, std::span<const TokenId> tokens,
              Token&& token = Token()) {
    auto op = [id, tokens](detail::RuntimeShard& s) { return s.cache().append(id, tokens); };
    return run_on(shard, ShardOperation::append, std::move(op), std::forward<Token>(token));
  }

  template <class Token = asio::use_awaitable_t<>>
  auto append_hashes(ShardId shard, RequestId id, std::uint32_t num_new_tokens,
                     std::span<const BlockHash> new_hashes, Token&& token = Token()) {
    auto op = [id, num_new_tokens, new_hashes](detail::RuntimeShard& s) {
      return s.cache().append_hashes(id, num_new_tokens, new_hashes);
    };
    return run_on(shard, ShardOperation::append, std::move(op), std::forward<Token>(token));
  }

  template <class Token = asio::use_awaitable_t<>>
  auto free(ShardId shard, RequestId id, FreeOrder order = FreeOrder::reverse,
            Token&& token = Token()) {
    auto op = [id, order](detail::RuntimeShard& s) { return s.cache().free(id, order); };
    return run_on(shard, ShardOperation::free, std::move(op), std::forward<Token>(token));
  }

  /// Resets one shard's cache (refused with blocks_in_use while it has live requests).
  template <class Token = asio::use_awaitable_t<>>
  auto reset(ShardId shard, Token&& token = Token()) {
    auto op = [](detail::RuntimeShard& s) { return s.cache().reset(); };
    return run_on(shard, ShardOperation::other, std::move(op), std::forward<Token>(token));
  }

  /// A fresh snapshot of one shard, taken on its thread now (ticks its windows).
  template <class Token = asio::use_awaitable_t<>>
  auto shard_stats(ShardId shard, Token&& token = Token()) {
    auto op = [](detail::RuntimeShard& s) -> Result<ShardSnapshot> {
      return s.cache().metrics().snapshot(s.cache().metrics().config().effective_clock().now());
    };
    return run_on(shard, ShardOperation::other, std::move(op), std::forward<Token>(token));
  }

  /// Metric observations of other cache levels, applied on `shard` in one
  /// hop (the span must stay valid until completion).
  template <class Token = asio::use_awaitable_t<>>
  auto observe(ShardId shard, std::span<const MetricObservation> observations,
               Token&& token = Token()) {
    auto op = [observations](detail::RuntimeShard& s) -> Result<void> {
      for (const auto& o : observations) apply_observation(o, s.levels());
      return {};
    };
    return run_on(shard, ShardOperation::other, std::move(op), std::forward<Token>(token));
  }

  /// The batch form: runs fn(MeteredPrefixCache&, MultiLevelCacheMetrics&)
  /// on `shard` in one hop, for engines that schedule in steps (admit, grow
  /// and free a whole step's requests at once). fn must return a Result<T>;
  /// it runs on the shard's thread with exclusive access, must not block and
  /// must not keep the references.
  template <class Fn, class Token = asio::use_awaitable_t<>>
  auto with_shard(ShardId shard, Fn fn, Token&& token = Token());

  /// Runs fn(MeteredPrefixCache&, MultiLevelCacheMetrics&) on every shard,
  /// one with_shard hop after another in shard order (Seastar's
  /// invoke_on_all): to configure all shards alike (tenant names) or visit
  /// each. fn returns Result<void>; the first failure (fn's, or the hop's:
  /// not_running) stops the walk and is returned - shards before it have
  /// run fn. fn runs on one shard thread at a time and must outlive the
  /// await (the coroutine frame keeps it).
  template <class Fn>
  asio::awaitable<Result<void>> for_each_shard(Fn fn);

  /// Fire-and-forget from any thread (Asio or not): queues the observation
  /// on a shard picked by the calling thread. Never blocks. False when the
  /// queue was full (counted) or the runtime is not running. Observations
  /// whose record() returned true before stop() are in the final snapshot.
  bool record(const MetricObservation& observation) noexcept;

  // ---- batches across shards ----

  /// Allocates every request on its routed shard: one hop per shard
  /// involved, results in request order.
  asio::awaitable<std::vector<Result<AllocateResult>>> allocate_batch(
      std::span<const Request> requests);
  struct RoutedRequest {
    ShardId shard;
    RequestId id;
  };
  /// Frees every request (reverse order): one hop per shard involved.
  asio::awaitable<std::vector<Result<FreeResult>>> free_batch(
      std::span<const RoutedRequest> requests);

  // ---- snapshots ----

  /// The latest published snapshot; nullptr before start(). Any thread;
  /// lock-free: never blocks, never waits for the aggregator (see
  /// detail::LatestSnapshot). Cost: a few atomic operations and a shared_ptr copy.
  SnapshotPtr snapshot() const { return board_->latest(); }

  /// Completes with the first snapshot whose sequence is > after_sequence
  /// (at once if one exists). Signature void(std::error_code, SnapshotPtr);
  /// with use_awaitable an error is thrown as asio::system_error.
  /// operation_aborted when cancelled through the token's cancellation slot
  /// (e.g. asio::experimental::awaitable_operators, a timeout) or after the
  /// final snapshot; a cancelled wait changes nothing else.
  template <class Token = asio::use_awaitable_t<>>
  auto next_snapshot(std::uint64_t after_sequence, Token&& token = Token());
  /// The snapshot after the latest one now published.
  template <class Token = asio::use_awaitable_t<>>
  auto next_snapshot(Token&& token = Token()) {
    const SnapshotPtr now = snapshot();
    return next_snapshot(now ? now->sequence : 0, std::forward<Token>(token));
  }

  /// Calls `callback` with every snapshot published from now on, on the
  /// runtime's notifier thread (or on `executor`). A subscriber still busy
  /// with one snapshot gets only the newest when it is done (the rest are
  /// counted as skipped); exceptions are caught and counted. Neither slows
  /// the aggregator. Returns an id for unsubscribe(). Deliveries are
  /// asynchronous: the final snapshot can reach a callback after stop()
  /// returns, until the Runtime is destroyed, so keep whatever a callback
  /// touches alive at least as long as the Runtime (or unsubscribe first).
  std::uint64_t subscribe(SnapshotCallback callback);
  std::uint64_t subscribe(SnapshotCallback callback, asio::any_io_executor executor);
  /// After it returns no new delivery starts (one in progress may finish).
  bool unsubscribe(std::uint64_t id);

  /// Calls `callback` with every alert transition (fired, level changed,
  /// resolved), in order, on the notifier thread (or on `executor`). Unlike
  /// snapshot subscribers these are not coalesced: a subscriber that falls
  /// more than 1,024 snapshots behind loses the oldest (counted as skipped).
  /// Exceptions are caught and counted. unsubscribe() takes the returned id.
  std::uint64_t subscribe_alerts(AlertCallback callback);
  std::uint64_t subscribe_alerts(AlertCallback callback, asio::any_io_executor executor);

  /// The performance diagnosis of the latest snapshot (overall vs recent hit
  /// rate, breakdowns, recommended capacity, issues in plain language). Any
  /// thread; lock-free (reads snapshot()).
  PerformanceDiagnosis analyze_performance() const;

 private:
  enum class State { created, running, stopped };

  /// Runs op(shard) on `shard`'s thread: the single path of every operation.
  template <class Op, class Token>
  auto run_on(ShardId shard, ShardOperation kind, Op op, Token&& token);

  bool on_runtime_thread() const noexcept;
  void set_shards_accepting(bool accepting);
  void publish_shard_events();
  asio::awaitable<void> aggregate_loop();
  asio::awaitable<void> aggregate_once(bool final);
  template <class T>
  T wait_on_control(asio::awaitable<T> work);

  RuntimeConfig config_;
  /// The runtime's own threads: control runs the aggregator, notifier the subscribers.
  asio::io_context control_;
  asio::io_context notifier_;
  asio::executor_work_guard<asio::io_context::executor_type> control_work_;
  asio::executor_work_guard<asio::io_context::executor_type> notifier_work_;
  std::shared_ptr<detail::SnapshotBoard> board_;
  std::unique_ptr<KvEventPublisher> kv_events_;  // null when off; outlives the shards
  asio::steady_timer timer_;                     // control thread only
  std::vector<std::unique_ptr<detail::RuntimeShard>> shards_;

  Aggregator aggregator_;  // control thread only

  std::mutex lifecycle_mutex_;
  State state_ = State::created;  // guarded by lifecycle_mutex_
  std::atomic<bool> running_{false};
  std::optional<std::future<void>> aggregator_done_;
  std::thread control_thread_;
  std::thread notifier_thread_;
};

// ---- template definitions ----

template <class Op, class Token>
auto Runtime::run_on(ShardId shard, ShardOperation kind, Op op, Token&& token) {
  using R = std::invoke_result_t<Op&, detail::RuntimeShard&>;
  static_assert(detail::IsResult<R>::value, "runtime operations return Result<T>");
  detail::RuntimeShard* target =
      shard.value < shards_.size() ? shards_[shard.value].get() : nullptr;
  // An unknown shard still completes through a hop (to shard 0), so every
  // operation completes the same way: on the caller's executor, never inline.
  ShardInbox& inbox = target != nullptr ? target->inbox() : shards_.front()->inbox();
  auto gated = [target, kind, op = std::move(op)]() mutable -> R {
    if (target == nullptr) return R(Status::unknown_shard);
    if (!target->accepting()) return R(Status::not_running);
    const bool timed = target->count_operation(kind);
    const std::int64_t started = timed ? detail::service_clock() : 0;
    R result = op(*target);
    if (timed) [[unlikely]]
      target->record_service(kind, started);
    target->after_operation();
    return result;
  };
  return async_run_on(inbox, std::move(gated), std::forward<Token>(token));
}

template <class Fn, class Token>
auto Runtime::with_shard(ShardId shard, Fn fn, Token&& token) {
  auto op = [fn = std::move(fn)](detail::RuntimeShard& s) mutable {
    return fn(s.cache(), s.levels());
  };
  return run_on(shard, ShardOperation::other, std::move(op), std::forward<Token>(token));
}

template <class Fn>
asio::awaitable<Result<void>> Runtime::for_each_shard(Fn fn) {
  Fn* shared_fn = &fn;  // lives in this frame until the last hop completes
  for (std::uint32_t i = 0; i < shard_count(); ++i) {
    auto on_shard = [shared_fn](MeteredPrefixCache& cache, MultiLevelCacheMetrics& levels) {
      return (*shared_fn)(cache, levels);
    };
    const Result<void> done = co_await with_shard(ShardId{i}, std::move(on_shard));
    if (!done) co_return done;
  }
  co_return Result<void>{};
}

template <class Token>
auto Runtime::next_snapshot(std::uint64_t after_sequence, Token&& token) {
  auto initiate = [](auto handler, std::shared_ptr<detail::SnapshotBoard> board,
                     asio::any_io_executor fallback, std::uint64_t after) {
    using Handler = decltype(handler);
    asio::any_io_executor home = detail::tracked_home(handler, fallback);
    // The cancellation handler goes in before the wait is registered, so a
    // completion (which clears the slot) can never precede it.
    const std::uint64_t id = board->new_waiter_id();
    auto slot = asio::get_associated_cancellation_slot(handler);
    if (slot.is_connected()) slot.template emplace<detail::CancelSnapshotWait>(board, id);
    board->wait(id, after,
                std::make_unique<detail::SnapshotWaiterFor<Handler>>(std::move(handler), home));
  };
  return asio::async_initiate<Token, void(std::error_code, SnapshotPtr)>(
      std::move(initiate), token, board_, asio::any_io_executor(notifier_.get_executor()),
      after_sequence);
}

}  // namespace kvscope
