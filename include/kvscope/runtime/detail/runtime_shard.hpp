// kvscope/runtime/detail/runtime_shard.hpp - one shard of a Runtime: an
// io_context run by one thread (an implicit strand), the inbox in front of
// it, and the state only that thread touches. Internal to Runtime (complete
// here because Runtime's operations are templates).
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <thread>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_publisher.hpp"

#include "kvscope/metrics/batch_collector.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/runtime/aggregator.hpp"
#include "kvscope/runtime/shard_hop.hpp"

namespace kvscope::detail {

/// An allocation's result as it may leave the shard's thread: without the
/// hashes it borrows from the shard's cache (AllocateResult::hashes).
inline Result<AllocateResult> leaving_shard(Result<AllocateResult> result) noexcept {
  if (result) result.value().hashes = {};
  return result;
}

/// The clock service times are read from: steady, in nanoseconds.
inline std::int64_t service_clock() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class RuntimeShard {
 public:
  /// Builds the shard's state and starts its thread (pinned to `cpu` when
  /// given; throws std::system_error if pinning fails); its inbox polls
  /// for `poll` before sleeping (ShardInbox). With `events` the
  /// cache's KV events are recorded and handed to it as its config says
  /// (publish_interval, batch_bytes); the publisher must outlive the shard.
  RuntimeShard(std::uint32_t index, const PrefixCacheConfig& cache, const MetricsConfig& metrics,
               const BatchCollectorConfig& collector, std::optional<unsigned> cpu,
               std::chrono::nanoseconds poll, KvEventPublisher* events = nullptr);
  /// Lets the thread finish what is queued, joins it, then destroys the state.
  ~RuntimeShard();
  RuntimeShard(const RuntimeShard&) = delete;
  RuntimeShard& operator=(const RuntimeShard&) = delete;

  std::uint32_t index() const noexcept { return index_; }
  ShardInbox& inbox() noexcept { return inbox_; }
  asio::io_context::executor_type executor() noexcept { return io_.get_executor(); }
  bool runs_in_this_thread() const noexcept {
    return thread_.get_id() == std::this_thread::get_id();
  }

  // ---- any thread ----
  /// Fire-and-forget: queues the observation; asks the shard to drain its
  /// queue once it is half full. False when dropped.
  bool record(const MetricObservation& observation) noexcept;

  // ---- the shard's thread only ----
  bool accepting() const noexcept { return accepting_; }
  void set_accepting(bool accepting) noexcept { accepting_ = accepting; }
  /// Every kServiceSampling-th operation of each kind is timed
  /// (ServiceTimes); counting per kind keeps a client whose cycle of
  /// operations divides 16 from always timing the same kind.
  static constexpr std::uint32_t kServiceSampling = 16;
  /// Counts an operation of `kind`; true when this one is to be timed.
  bool count_operation(ShardOperation kind) noexcept {
    ++operations_;
    return (++service_.operations[static_cast<std::size_t>(kind)] & (kServiceSampling - 1)) == 0;
  }
  /// A timed operation of `kind` that began at `started` (service_clock()) ended now.
  void record_service(ShardOperation kind, std::int64_t started) noexcept;
  /// After every operation: with KV events on and some recorded, hands the
  /// log over once it holds batch_bytes, else makes sure a publication is
  /// scheduled (one timer per publish interval). Off: a null check.
  void after_operation() noexcept {
    if (event_log_ != nullptr) [[unlikely]]
      schedule_publication();
  }
  /// Hands the recorded KV events to the publisher now (stop(): nothing
  /// stays behind).
  void publish_events_now();
  MeteredPrefixCache& cache() noexcept { return cache_; }
  MultiLevelCacheMetrics& levels() noexcept { return levels_; }
  /// Applies the queued fire-and-forget observations.
  void drain_observations();
  /// Drains, ticks the windows to `now` and collects everything.
  ShardReport report(Timestamp now);

 private:
  std::uint32_t index_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  ShardInbox inbox_;
  MeteredPrefixCache cache_;
  MultiLevelCacheMetrics levels_;
  BatchMetricsCollector collector_;
  std::atomic<bool> drain_requested_{false};
  bool accepting_ = false;
  std::uint64_t operations_ = 0;
  ServiceTimes service_;
  // KV events (null when off): the cache records into event_log_; a timer
  // hands the log to the publisher at most every publish_interval_, or an
  // operation does once the log holds batch_bytes_.
  void schedule_publication() noexcept;
  void arm_publication() noexcept;
  void publish_events();
  KvEventPublisher* publisher_;
  std::unique_ptr<CacheEventLog> event_log_;
  std::chrono::milliseconds publish_interval_;
  std::size_t batch_bytes_;
  asio::steady_timer publish_timer_{io_};
  bool publish_armed_ = false;
  std::thread thread_;  // last: starts once everything else exists
};

}  // namespace kvscope::detail
