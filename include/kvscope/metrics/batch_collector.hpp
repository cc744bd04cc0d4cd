// BatchMetricsCollector: metric observations from any thread, applied by the
// metrics' owner in batches.
//
// Producers (request handlers on other threads, engine callbacks) record
// MetricObservations into a lock-free moodycamel::ConcurrentQueue; the
// owner (the shard's strand) drains them into its MultiLevelCacheMetrics,
// which stays single-writer. The queue is bounded: recording never blocks
// and never allocates; when `capacity` observations are waiting, the new one
// is dropped and counted.
//
// Thread safety: record(), producer(), Producer::record(), dropped(),
// accepted() and waiting() from any thread; drain() from one thread at a
// time (the owner). Memory: fixed at construction (memory_bytes()).
#pragma once

#include <concurrentqueue/concurrentqueue.h>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "kvscope/metrics/cache_metrics.hpp"

namespace kvscope {

class MultiLevelCacheMetrics;

/// One observation for one cache level, as CachingMetrics /
/// MultiLevelCacheMetrics take them. Trivially copyable; build it with the
/// named constructors.
struct MetricObservation {
  enum class Kind : std::uint8_t { hit, miss, write, eviction, memory, request };

  Kind kind = Kind::hit;
  EvictionReason reason = EvictionReason::capacity;  ///< eviction only
  bool has_latency = false;
  bool served = false;  ///< request only: served by `level` (false: by no level)
  CacheType level = CacheType::prefix();
  std::uint64_t items = 0;  ///< hit/miss/write items; eviction blocks; memory: resident bytes
  std::uint64_t bytes = 0;  ///< hit/miss/write bytes; eviction bytes freed; memory: capacity
  std::int64_t latency_ns = 0;

  static MetricObservation hit(CacheType level, std::uint64_t items, std::uint64_t bytes,
                               std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  static MetricObservation miss(CacheType level, std::uint64_t items, std::uint64_t bytes,
                                std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  static MetricObservation write(CacheType level, std::uint64_t items, std::uint64_t bytes);
  static MetricObservation eviction(CacheType level, std::uint64_t blocks, EvictionReason reason,
                                    std::uint64_t bytes_freed,
                                    std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  static MetricObservation memory(CacheType level, std::uint64_t resident_bytes,
                                  std::uint64_t capacity_bytes);
  /// A request served by `served_by`, or by no level.
  static MetricObservation request(std::optional<CacheType> served_by);
};

/// Applies one observation to `metrics` (the owner's thread). Throws only
/// std::bad_alloc, when the observation names a level seen for the first time.
void apply_observation(const MetricObservation& observation, MultiLevelCacheMetrics& metrics);

struct BatchCollectorConfig {
  /// Observations that may wait at once, 1 .. kMaxCapacity; more are dropped.
  std::size_t capacity = 2048;
  /// Producers (tokens from producer()) that may exist at once, >= 1.
  std::size_t max_producers = 4;
  /// Threads that may use the token-less record() over the collector's life, >= 1.
  std::size_t max_tokenless_threads = 4;

  static constexpr std::size_t kMaxCapacity = 16384;

  /// Throws std::invalid_argument naming the bad field.
  void validate() const;
};

class BatchMetricsCollector {
  struct QueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
    // Per-producer block index: enough blocks for kMaxCapacity items, so
    // the bound below is the only reason an enqueue can fail.
    static const std::size_t EXPLICIT_INITIAL_INDEX_SIZE = 512;
    static const std::size_t IMPLICIT_INITIAL_INDEX_SIZE = 512;
  };
  using Queue = moodycamel::ConcurrentQueue<MetricObservation, QueueTraits>;

 public:
  /// Throws std::invalid_argument on a bad config. Preallocates the queue so
  /// that `capacity` observations fit whichever producers record them.
  explicit BatchMetricsCollector(const BatchCollectorConfig& config = {});
  BatchMetricsCollector(const BatchMetricsCollector&) = delete;
  BatchMetricsCollector& operator=(const BatchMetricsCollector&) = delete;

  /// A producing thread's handle: faster than the token-less record() and
  /// FIFO per producer. Use it from one thread at a time; it must not
  /// outlive the collector. At most config.max_producers at once (more are
  /// allowed but not covered by the preallocation: their records may drop).
  class Producer {
   public:
    /// Never blocks, never allocates. False (and counted in dropped()) when
    /// `capacity` observations are waiting.
    bool record(const MetricObservation& observation) noexcept;

   private:
    friend class BatchMetricsCollector;
    explicit Producer(BatchMetricsCollector& owner) : owner_(&owner), token_(owner.queue_) {}
    BatchMetricsCollector* owner_;
    moodycamel::ProducerToken token_;
  };

  /// Any thread.
  Producer producer() { return Producer(*this); }

  /// Any thread, without a token. Never blocks; allocates once per thread
  /// (the queue's per-thread producer). False (and counted) when full.
  bool record(const MetricObservation& observation) noexcept;

  /// Owner only: applies up to `max_items` waiting observations to
  /// `metrics`, in batches; returns how many. Observations recorded while it
  /// runs may or may not be included.
  std::size_t drain(MultiLevelCacheMetrics& metrics, std::size_t max_items = SIZE_MAX);

  std::uint64_t accepted() const noexcept { return accepted_.load(std::memory_order_relaxed); }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /// Observations recorded and not yet drained (exact when no record or
  /// drain is in progress).
  std::size_t waiting() const noexcept { return waiting_.load(std::memory_order_relaxed); }
  std::size_t capacity() const noexcept { return config_.capacity; }
  /// The queue's preallocated blocks (excluding per-producer indexes).
  std::size_t memory_bytes() const noexcept;

 private:
  template <class Enqueue>
  bool record_with(Enqueue&& enqueue) noexcept;

  BatchCollectorConfig config_;
  std::size_t preallocated_items_;
  Queue queue_;
  std::atomic<std::size_t> waiting_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace kvscope
