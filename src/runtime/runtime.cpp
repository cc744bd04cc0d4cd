#include "kvscope/runtime/runtime.hpp"

#include "kvscope/analytics/detectors.hpp"

// g++ 12 at -O2 with sanitizers reports Asio's awaitable frame operator
// delete as mismatched with the frame allocation of the coroutines below (a
// known false positive for coroutine frames with class-specific operator
// new/delete); the pair is Asio's own and matches.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <xxhash.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "detail/hash_mix.hpp"
#include "detail/thread_name.hpp"

namespace kvscope {

namespace {

[[noreturn]] void bad_config(const std::string& what) {
  throw std::invalid_argument("kvscope: RuntimeConfig." + what);
}

std::uint32_t hardware_threads() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

/// Every shard's cache config: the pool split as evenly as it goes.
PrefixCacheConfig shard_cache_config(const RuntimeConfig& config, std::uint32_t shard) {
  PrefixCacheConfig out = config.cache;
  const std::uint32_t shards = config.shard_count();
  out.num_blocks = config.cache.num_blocks / shards + (shard < config.cache.num_blocks % shards);
  return out;
}

/// The batch forms: item i goes to shard shard_of(i) (out of range:
/// unknown_shard); one with_shard hop per shard involved runs apply(cache,
/// i) for its items in order. Results in item order; a hop that did not
/// run (not_running) gives its items that status.
template <class R, class ShardOf, class Apply>
asio::awaitable<std::vector<Result<R>>> run_grouped_by_shard(Runtime& runtime, std::size_t count,
                                                             ShardOf shard_of, Apply apply) {
  std::vector<std::vector<std::size_t>> by_shard(runtime.shard_count());
  std::vector<Result<R>> results(count, Result<R>(Status::unknown_shard));
  for (std::size_t i = 0; i < count; ++i) {
    const ShardId shard = shard_of(i);
    if (shard.value < by_shard.size()) by_shard[shard.value].push_back(i);
  }
  for (std::uint32_t shard = 0; shard < by_shard.size(); ++shard) {
    if (by_shard[shard].empty()) continue;
    const std::vector<std::size_t>* items = &by_shard[shard];
    auto run_items = [&apply, items, &results](MeteredPrefixCache& cache,
                                               MultiLevelCacheMetrics&) -> Result<void> {
      for (std::size_t i : *items) results[i] = apply(cache, i);
      return {};
    };
    const Result<void> hop = co_await runtime.with_shard(ShardId{shard}, std::move(run_items));
    if (!hop)
      for (std::size_t i : *items) results[i] = hop.status();
  }
  co_return results;
}

}  // namespace

// ---- configuration ----

std::uint32_t RuntimeConfig::shard_count() const noexcept {
  return shards == 0 ? hardware_threads() : shards;
}

void RuntimeConfig::validate() const {
  if (shards > 1024) bad_config("shards must be 0 (one per hardware thread) .. 1024");
  cache.validate();
  if (cache.num_blocks < shard_count())
    bad_config("cache.num_blocks (" + std::to_string(cache.num_blocks) +
               ") must give every shard a block (shards: " + std::to_string(shard_count()) + ")");
  metrics.validate();
  collector.validate();
  if (snapshot_interval < std::chrono::milliseconds(1) || snapshot_interval > std::chrono::hours(1))
    bad_config("snapshot_interval must be 1 ms .. 1 h");
  if (kv_events.enabled) kv_events.validate();
  if (shard_poll < std::chrono::microseconds(0) || shard_poll > std::chrono::milliseconds(1))
    bad_config("shard_poll must be 0 .. 1 ms, got " + std::to_string(shard_poll.count()) + " us");
  for (const auto& detector : detectors)
    if (!detector) bad_config("detectors must not hold a null detector");
  analytics.validate();
}

// ---- lifecycle ----

Runtime::Runtime(RuntimeConfig config)
    : config_((config.validate(), std::move(config))),
      control_(1),
      notifier_(1),
      control_work_(asio::make_work_guard(control_)),
      notifier_work_(asio::make_work_guard(notifier_)),
      board_(std::make_shared<detail::SnapshotBoard>(notifier_.get_executor())),
      timer_(control_),
      aggregator_(
          config_.analytics,
          config_.detectors.empty()
              ? default_detectors(config_.analytics, config_.metrics.memory_pressure_threshold,
                                  config_.shard_count())
              : config_.detectors) {
  if (config_.kv_events.enabled) kv_events_ = std::make_unique<KvEventPublisher>(config_.kv_events);
  const std::uint32_t shards = config_.shard_count();
  shards_.reserve(shards);
  for (std::uint32_t i = 0; i < shards; ++i) {
    std::optional<unsigned> cpu;
    if (config_.pin_threads) cpu = i % hardware_threads();
    shards_.push_back(std::make_unique<detail::RuntimeShard>(
        i, shard_cache_config(config_, i), config_.metrics, config_.collector, cpu,
        config_.shard_poll, kv_events_.get()));
  }
  control_thread_ = std::thread([this] { control_.run(); });
  notifier_thread_ = std::thread([this] { notifier_.run(); });
  detail::name_thread(control_thread_, "kvs-control");
  detail::name_thread(notifier_thread_, "kvs-notify");
}

Runtime::~Runtime() {
  stop();
  shards_.clear();  // joins the shard threads (their queues are empty or rejected)
  control_work_.reset();
  notifier_work_.reset();
  control_thread_.join();
  notifier_thread_.join();
}

bool Runtime::on_runtime_thread() const noexcept {
  const auto self = std::this_thread::get_id();
  if (self == control_thread_.get_id() || self == notifier_thread_.get_id()) return true;
  return std::any_of(shards_.begin(), shards_.end(),
                     [](const auto& shard) { return shard->runs_in_this_thread(); });
}

template <class T>
T Runtime::wait_on_control(asio::awaitable<T> work) {
  return asio::co_spawn(control_, std::move(work), asio::use_future).get();
}

void Runtime::set_shards_accepting(bool accepting) {
  for (auto& shard : shards_) {
    detail::RuntimeShard* target = shard.get();
    auto flip = [target, accepting] { target->set_accepting(accepting); };
    // Queued behind every operation submitted before this call.
    async_run_on(shard->inbox(), std::move(flip), asio::use_future).get();
  }
}

void Runtime::publish_shard_events() {
  if (!kv_events_) return;
  for (auto& shard : shards_) {
    detail::RuntimeShard* target = shard.get();
    auto publish = [target] { target->publish_events_now(); };
    async_run_on(shard->inbox(), std::move(publish), asio::use_future).get();
  }
  kv_events_->flush();
}

void Runtime::start() {
  if (on_runtime_thread()) throw std::logic_error("kvscope: Runtime::start() on a runtime thread");
  std::lock_guard lock(lifecycle_mutex_);
  if (state_ != State::created)
    throw std::logic_error("kvscope: Runtime::start() called twice or after stop()");
  set_shards_accepting(true);
  state_ = State::running;
  running_.store(true, std::memory_order_release);
  wait_on_control(aggregate_once(false));  // snapshot 1: snapshot() is never null from now on
  std::promise<void> done;
  aggregator_done_ = done.get_future();
  auto finished = [done = std::move(done)](std::exception_ptr failure) mutable {
    if (failure) {
      done.set_exception(failure);
    } else {
      done.set_value();
    }
  };
  asio::co_spawn(control_, aggregate_loop(), std::move(finished));
}

void Runtime::stop() {
  if (on_runtime_thread()) throw std::logic_error("kvscope: Runtime::stop() on a runtime thread");
  std::lock_guard lock(lifecycle_mutex_);
  if (state_ == State::stopped) return;
  if (state_ == State::created) {
    state_ = State::stopped;
    board_->close();
    return;
  }
  running_.store(false, std::memory_order_release);
  // 1. Close the shards: what was queued before runs, later calls get not_running.
  set_shards_accepting(false);
  publish_shard_events();  // every KV event recorded is sent before the final snapshot
  // 2. End the periodic loop (it stops once running() is false; its timer
  //    lives on the control thread).
  asio::post(control_, [this] { timer_.cancel(); });
  aggregator_done_->get();
  // 3. The final snapshot accounts for every operation that ran.
  wait_on_control(aggregate_once(true));
  board_->close();
  state_ = State::stopped;
}

std::uint32_t Runtime::shard_blocks(ShardId shard) const {
  if (shard.value >= shards_.size())
    throw std::out_of_range("kvscope: Runtime::shard_blocks: no such shard");
  return shard_cache_config(config_, shard.value).num_blocks;
}

asio::io_context::executor_type Runtime::shard_executor(ShardId shard) const {
  if (shard.value >= shards_.size())
    throw std::out_of_range("kvscope: Runtime::shard_executor: no such shard");
  return shards_[shard.value]->executor();
}

// ---- routing ----

ShardId Runtime::route(const Request& request) const noexcept {
  const auto shards = static_cast<std::uint64_t>(shards_.size());
  std::uint64_t key = config_.route_seed;
  const std::uint32_t block_size = config_.cache.block_size;
  if (request.hash_mode() && !request.block_hashes.empty()) {
    key ^= detail::fold(request.block_hashes.front());
  } else if (!request.hash_mode() && request.tokens.size() >= block_size) {
    // The first block's content and the keys that isolate chains (salt,
    // adapter): equal first blocks of one tenant always meet on one shard.
    std::uint64_t tenant = 0;
    if (request.extras.salt) tenant ^= detail::fold(request.extras.salt->digest);
    if (request.extras.adapter_id) tenant ^= *request.extras.adapter_id * 0x9E3779B97F4A7C15ULL;
    key ^= XXH3_64bits_withSeed(request.tokens.data(), block_size * sizeof(TokenId), tenant);
  } else {
    key ^= request.id.value;  // no full block: nothing to share, spread by id
  }
  return ShardId{static_cast<std::uint32_t>(detail::splitmix64(key) % shards)};
}

// ---- fire-and-forget and batches ----

bool Runtime::record(const MetricObservation& observation) noexcept {
  if (!running_.load(std::memory_order_acquire)) return false;
  thread_local const std::size_t thread_key =
      std::hash<std::thread::id>{}(std::this_thread::get_id());
  return shards_[thread_key % shards_.size()]->record(observation);
}

asio::awaitable<std::vector<Result<AllocateResult>>> Runtime::allocate_batch(
    std::span<const Request> requests) {
  auto shard_of = [this, requests](std::size_t i) { return route(requests[i]); };
  auto admit = [requests](MeteredPrefixCache& cache, std::size_t i) {
    return detail::leaving_shard(cache.allocate(requests[i]));
  };
  return run_grouped_by_shard<AllocateResult>(*this, requests.size(), shard_of, admit);
}

asio::awaitable<std::vector<Result<FreeResult>>> Runtime::free_batch(
    std::span<const RoutedRequest> requests) {
  auto shard_of = [requests](std::size_t i) { return requests[i].shard; };
  auto release = [requests](MeteredPrefixCache& cache, std::size_t i) {
    return cache.free(requests[i].id);
  };
  return run_grouped_by_shard<FreeResult>(*this, requests.size(), shard_of, release);
}

// ---- subscribers ----

std::uint64_t Runtime::subscribe(SnapshotCallback callback) {
  return board_->subscribe(std::move(callback));
}

std::uint64_t Runtime::subscribe(SnapshotCallback callback, asio::any_io_executor executor) {
  return board_->subscribe(std::move(callback), std::move(executor));
}

bool Runtime::unsubscribe(std::uint64_t id) { return board_->unsubscribe(id); }

std::uint64_t Runtime::subscribe_alerts(AlertCallback callback) {
  return subscribe_alerts(std::move(callback), board_->notifier());
}

std::uint64_t Runtime::subscribe_alerts(AlertCallback callback, asio::any_io_executor executor) {
  auto each_event = [callback = std::move(callback)](const SnapshotPtr& snapshot) {
    for (const AlertTransition& event : snapshot->alert_events) callback(event);
  };
  return board_->subscribe(std::move(each_event), std::move(executor), /*every_snapshot=*/true);
}

PerformanceDiagnosis Runtime::analyze_performance() const {
  const SnapshotPtr latest = snapshot();
  return latest ? latest->analytics.diagnosis : PerformanceDiagnosis{};
}

// ---- the aggregator ----

asio::awaitable<void> Runtime::aggregate_loop() {
  using asio::experimental::as_tuple;
  while (running()) {
    timer_.expires_after(config_.snapshot_interval);
    auto [error] = co_await timer_.async_wait(as_tuple(asio::use_awaitable));
    if (error || !running()) break;
    try {
      co_await aggregate_once(false);
    } catch (...) {
      aggregator_.count_failed_round();  // e.g. bad_alloc: skip this round, try the next
    }
  }
}

asio::awaitable<void> Runtime::aggregate_once(bool final) {
  const Timestamp now = config_.metrics.effective_clock().now();
  std::vector<ShardReport> reports;
  reports.reserve(shards_.size());
  for (auto& shard : shards_) {
    detail::RuntimeShard* target = shard.get();
    auto visit = [target, now] { return target->report(now); };
    reports.push_back(co_await async_run_on(shard->inbox(), std::move(visit), asio::use_awaitable));
  }
  auto snapshot = std::make_shared<RuntimeSnapshot>(
      aggregator_.merge(std::move(reports), now, std::chrono::system_clock::now(), final));
  snapshot->counters.subscriber_failures = board_->subscriber_failures();
  snapshot->counters.subscriber_skipped = board_->subscriber_skipped();
  if (kv_events_) snapshot->kv_events = kv_events_->stats();
  board_->publish(std::move(snapshot));
}

}  // namespace kvscope
