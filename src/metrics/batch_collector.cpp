#include "kvscope/metrics/batch_collector.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "kvscope/metrics/multi_level_metrics.hpp"

namespace kvscope {

namespace {

constexpr std::size_t kBlockItems = moodycamel::ConcurrentQueueDefaultTraits::BLOCK_SIZE;

// The blocks moodycamel preallocates so that `capacity` items fit however
// the producers share them (its ConcurrentQueue(minCapacity, ...) formula).
std::size_t preallocated_blocks(const BatchCollectorConfig& c) {
  return ((c.capacity + kBlockItems - 1) / kBlockItems - 1) * (c.max_producers + 1) +
         2 * (c.max_producers + c.max_tokenless_threads);
}

std::optional<std::chrono::nanoseconds> latency_of(const MetricObservation& o) {
  if (!o.has_latency) return std::nullopt;
  return std::chrono::nanoseconds(o.latency_ns);
}

MetricObservation make(MetricObservation::Kind kind, CacheType level, std::uint64_t items,
                       std::uint64_t bytes, std::optional<std::chrono::nanoseconds> latency) {
  MetricObservation o;
  o.kind = kind;
  o.level = level;
  o.items = items;
  o.bytes = bytes;
  o.has_latency = latency.has_value();
  o.latency_ns = latency ? latency->count() : 0;
  return o;
}

}  // namespace

// ---------------------------------------------------------------- observations

MetricObservation MetricObservation::hit(CacheType level, std::uint64_t items, std::uint64_t bytes,
                                         std::optional<std::chrono::nanoseconds> latency) {
  return make(Kind::hit, level, items, bytes, latency);
}

MetricObservation MetricObservation::miss(CacheType level, std::uint64_t items, std::uint64_t bytes,
                                          std::optional<std::chrono::nanoseconds> latency) {
  return make(Kind::miss, level, items, bytes, latency);
}

MetricObservation MetricObservation::write(CacheType level, std::uint64_t items,
                                           std::uint64_t bytes) {
  return make(Kind::write, level, items, bytes, std::nullopt);
}

MetricObservation MetricObservation::eviction(CacheType level, std::uint64_t blocks,
                                              EvictionReason reason, std::uint64_t bytes_freed,
                                              std::optional<std::chrono::nanoseconds> latency) {
  MetricObservation o = make(Kind::eviction, level, blocks, bytes_freed, latency);
  o.reason = reason;
  return o;
}

MetricObservation MetricObservation::memory(CacheType level, std::uint64_t resident_bytes,
                                            std::uint64_t capacity_bytes) {
  return make(Kind::memory, level, resident_bytes, capacity_bytes, std::nullopt);
}

MetricObservation MetricObservation::request(std::optional<CacheType> served_by) {
  MetricObservation o =
      make(Kind::request, served_by.value_or(CacheType::prefix()), 0, 0, std::nullopt);
  o.served = served_by.has_value();
  return o;
}

// ---------------------------------------------------------------- config

void BatchCollectorConfig::validate() const {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("kvscope: BatchCollectorConfig." + what);
  };
  if (capacity == 0 || capacity > kMaxCapacity) {
    fail("capacity must be in 1.." + std::to_string(kMaxCapacity) + ", got " +
         std::to_string(capacity));
  }
  if (max_producers == 0) fail("max_producers must be >= 1");
  if (max_tokenless_threads == 0) fail("max_tokenless_threads must be >= 1");
}

// ---------------------------------------------------------------- collector

BatchMetricsCollector::BatchMetricsCollector(const BatchCollectorConfig& config)
    : config_((config.validate(), config)),
      preallocated_items_(preallocated_blocks(config) * kBlockItems),
      queue_(config.capacity, config.max_producers, config.max_tokenless_threads) {}

std::size_t BatchMetricsCollector::memory_bytes() const noexcept {
  return preallocated_items_ * sizeof(MetricObservation);
}

// Claims one of the `capacity` places (or counts a drop), runs `enqueue`,
// and gives the place back if the queue refused (only past the
// preallocation's producer counts). The count is claimed before the enqueue
// and released after the dequeue, so the queue never holds more than
// `capacity` items. moodycamel's try_enqueue does not throw: allocation
// failures (the token-less path's one-time per-thread producer) return false.
template <class Enqueue>
bool BatchMetricsCollector::record_with(Enqueue&& enqueue) noexcept {
  std::size_t waiting = waiting_.load(std::memory_order_relaxed);
  do {
    if (waiting >= config_.capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!waiting_.compare_exchange_weak(waiting, waiting + 1, std::memory_order_relaxed));
  if (enqueue()) {
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  dropped_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

bool BatchMetricsCollector::Producer::record(const MetricObservation& observation) noexcept {
  return owner_->record_with([&] { return owner_->queue_.try_enqueue(token_, observation); });
}

bool BatchMetricsCollector::record(const MetricObservation& observation) noexcept {
  return record_with([&] { return queue_.try_enqueue(observation); });
}

void apply_observation(const MetricObservation& o, MultiLevelCacheMetrics& metrics) {
  using Kind = MetricObservation::Kind;
  if (o.kind == Kind::request) {
    metrics.observe_request(o.served ? std::optional<CacheType>(o.level) : std::nullopt);
    return;
  }
  CachingMetrics& level = metrics.level(o.level);
  switch (o.kind) {
    case Kind::hit: level.observe_hit(o.items, o.bytes, latency_of(o)); break;
    case Kind::miss: level.observe_miss(o.items, o.bytes, latency_of(o)); break;
    case Kind::write: level.observe_write(o.items, o.bytes); break;
    case Kind::eviction: level.observe_eviction(o.items, o.reason, o.bytes, latency_of(o)); break;
    case Kind::memory: level.set_memory(o.items, o.bytes); break;
    case Kind::request: break;  // handled above
  }
}

std::size_t BatchMetricsCollector::drain(MultiLevelCacheMetrics& metrics, std::size_t max_items) {
  std::array<MetricObservation, 256> batch;
  std::size_t applied = 0;
  while (applied < max_items) {
    const std::size_t want = std::min(batch.size(), max_items - applied);
    const std::size_t got = queue_.try_dequeue_bulk(batch.begin(), want);
    if (got == 0) break;
    waiting_.fetch_sub(got, std::memory_order_relaxed);
    std::size_t done = 0;
    try {
      for (; done < got; ++done) apply_observation(batch[done], metrics);
    } catch (...) {  // only std::bad_alloc creating a level: the rest is lost, and counted
      dropped_.fetch_add(got - done, std::memory_order_relaxed);
      throw;
    }
    applied += got;
  }
  return applied;
}

}  // namespace kvscope
