// kvscope/metrics/cache_metrics.hpp - hit/miss/write/eviction metrics of one
// cache level (the seeds' CachingMetrics), generic over what the cache holds.
//
// A "cache level" is anything that serves lookups from resident memory: the
// prefix cache itself, a CPU offload tier, a disk tier. Callers observe
// outcomes in their own item unit (blocks, entries) plus bytes; CachingMetrics
// keeps cumulative totals, a latency histogram, and time windows over both.
//
// Windows are tick-driven (GUIDE section 5): observations go into the
// current slot without reading a clock; tick(now) - called at least once per
// window resolution, by the runtime's aggregator or by the owner - moves the
// window. Window figures are therefore exact to one tick.
//
// Thread rules: single writer, no locks; every member on the owning thread.
// Other threads hand observations over through BatchMetricsCollector.
// Cost: observe_* are O(1) (a few adds, one histogram record when a latency
// is given); tick is O(slots begun); snapshot is O(histogram buckets).
#pragma once

#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/sliding_window.hpp"

namespace kvscope {

/// Why blocks left a cache.
enum class EvictionReason : std::uint8_t {
  capacity,    ///< taken for reuse because the pool was full (the prefix cache's evictions)
  explicit_,   ///< the caller dropped them on purpose ("explicit")
  reset,       ///< the whole cache was reset
  preemption,  ///< dropped because their request was preempted
  ttl,         ///< expired
  other,       ///< anything else
};
inline constexpr std::size_t kEvictionReasonCount = 6;
/// "capacity", "explicit", "reset", "preemption", "ttl", "other".
std::string_view to_string(EvictionReason reason) noexcept;

/// Names a cache level: one of the built-in kinds or a user-defined level.
/// Trivially copyable (the name lives inline), so it travels through queues.
class CacheType {
 public:
  static constexpr std::size_t kMaxName = 23;

  static constexpr CacheType prefix() noexcept { return CacheType("prefix"); }
  static constexpr CacheType block() noexcept { return CacheType("block"); }
  static constexpr CacheType kv() noexcept { return CacheType("kv"); }
  /// A user-defined level, e.g. "cpu_offload". Throws std::invalid_argument
  /// unless the name is 1..23 characters of [a-z0-9_] (it becomes a
  /// Prometheus label value and a JSON key).
  static CacheType user(std::string_view name);

  std::string_view name() const noexcept { return std::string_view(name_.data(), size_); }
  friend bool operator==(const CacheType& a, const CacheType& b) noexcept {
    return a.name() == b.name();
  }
  friend std::strong_ordering operator<=>(const CacheType& a, const CacheType& b) noexcept {
    return a.name() <=> b.name();
  }

 private:
  constexpr explicit CacheType(std::string_view name) noexcept : size_(name.size()) {
    for (std::size_t i = 0; i < size_; ++i) name_[i] = name[i];
  }
  std::array<char, kMaxName> name_{};
  std::size_t size_ = 0;
};

/// Evicted blocks and bytes, per reason.
struct EvictionCounts {
  std::array<std::uint64_t, kEvictionReasonCount> blocks{};
  std::array<std::uint64_t, kEvictionReasonCount> bytes{};

  std::uint64_t& blocks_of(EvictionReason r) noexcept { return blocks[static_cast<int>(r)]; }
  std::uint64_t blocks_of(EvictionReason r) const noexcept { return blocks[static_cast<int>(r)]; }
  std::uint64_t& bytes_of(EvictionReason r) noexcept { return bytes[static_cast<int>(r)]; }
  std::uint64_t bytes_of(EvictionReason r) const noexcept { return bytes[static_cast<int>(r)]; }
  std::uint64_t total_blocks() const noexcept;
  std::uint64_t total_bytes() const noexcept;

  EvictionCounts& operator+=(const EvictionCounts& other) noexcept;
  /// Precondition: every count of other <= this one's.
  EvictionCounts& operator-=(const EvictionCounts& other) noexcept;
  friend bool operator==(const EvictionCounts&, const EvictionCounts&) = default;
};

/// Cumulative counters of one cache level (all monotonically increasing).
struct CachingTotals {
  std::uint64_t hit_ops = 0;     ///< observe_hit calls
  std::uint64_t miss_ops = 0;    ///< observe_miss calls
  std::uint64_t hits = 0;        ///< items served from the cache (caller's unit)
  std::uint64_t misses = 0;      ///< items looked up and not found
  std::uint64_t hit_bytes = 0;   ///< bytes served from the cache
  std::uint64_t miss_bytes = 0;  ///< bytes looked up and not found
  std::uint64_t writes = 0;      ///< items written (inserted) into the cache
  std::uint64_t write_bytes = 0;
  EvictionCounts evictions;

  /// hits / (hits + misses); 0 when nothing was looked up.
  double hit_rate() const noexcept;
  /// hit_bytes / (hit_bytes + miss_bytes); 0 when no bytes were looked up.
  double byte_hit_rate() const noexcept;

  CachingTotals& operator+=(const CachingTotals& other) noexcept;
  /// Precondition: every counter of other <= this one's (window bookkeeping).
  CachingTotals& operator-=(const CachingTotals& other) noexcept;
  friend bool operator==(const CachingTotals&, const CachingTotals&) = default;
};

/// One cache level's state at one instant. Shards' snapshots of the same
/// level merge with += (counts add, histograms merge, memory adds).
struct CachingSnapshot {
  CacheType type = CacheType::prefix();
  CachingTotals total;                      ///< since construction
  CachingTotals window;                     ///< within the time window (see window_span)
  std::chrono::nanoseconds window_span{0};  ///< time the window covers (<= W)
  Histogram latency;                        ///< lookup latencies since construction, nanoseconds
  Histogram window_latency;                 ///< lookup latencies within the window
  std::uint64_t resident_bytes = 0;         ///< gauge: bytes held now
  std::uint64_t capacity_bytes = 0;         ///< gauge: bytes the level may hold (0: unknown)

  /// window eviction blocks per second of window_span; 0 for an empty span.
  double window_eviction_rate() const noexcept;
  /// Bytes served from cache in the window per byte resident now (how hard
  /// the resident memory works); 0 when nothing is resident.
  double memory_efficiency() const noexcept;
  /// resident / capacity, in [0, 1] normally; 0 when the capacity is unknown.
  double memory_pressure() const noexcept;

  /// Throws std::invalid_argument when the types or histogram layouts differ.
  CachingSnapshot& operator+=(const CachingSnapshot& other);
};

class CachingMetrics {
 public:
  /// Throws std::invalid_argument on a bad window or layout.
  explicit CachingMetrics(CacheType type, WindowConfig window = {},
                          HistogramLayout latency_layout = {});

  /// A lookup that found `items` items (`bytes` bytes); `latency` when measured.
  void observe_hit(std::uint64_t items, std::uint64_t bytes,
                   std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  /// A lookup that did not find `items` items.
  void observe_miss(std::uint64_t items, std::uint64_t bytes,
                    std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  void observe_write(std::uint64_t items, std::uint64_t bytes);
  /// `blocks` evicted for `reason`, freeing `bytes_freed`. The eviction's own
  /// latency, when measured, goes to eviction_latency().
  void observe_eviction(std::uint64_t blocks, EvictionReason reason, std::uint64_t bytes_freed,
                        std::optional<std::chrono::nanoseconds> latency = std::nullopt);
  /// Memory gauges (replace the previous values).
  void set_memory(std::uint64_t resident_bytes, std::uint64_t capacity_bytes) noexcept;

  /// Moves the windows to `now`. Call at least once per window resolution.
  void tick(Timestamp now);

  // ---- queries (as of the last tick for window figures) ----
  CacheType type() const noexcept { return type_; }
  const CachingTotals& totals() const noexcept { return totals_; }
  double hit_rate() const noexcept { return totals_.hit_rate(); }
  double window_hit_rate() const { return window_totals().hit_rate(); }
  CachingTotals window_totals() const { return window_.window(totals_); }
  /// Eviction blocks counted in the newest ceil(span / resolution) slots
  /// (span clamped to the window), divided by the real time those slots
  /// cover up to `now` (shorter while history is short). Throws
  /// std::invalid_argument if span <= 0.
  double eviction_rate(Timestamp now, std::chrono::nanoseconds span) const;
  const Histogram& latency() const noexcept { return latency_; }
  const Histogram& eviction_latency() const noexcept { return eviction_latency_; }
  /// Everything above plus the window's latency histogram. O(buckets + slots).
  CachingSnapshot snapshot(Timestamp now);

  std::size_t memory_bytes() const noexcept;

 private:
  void record_latency(std::optional<std::chrono::nanoseconds> latency);

  CacheType type_;
  CachingTotals totals_;
  SnapshotWindow<CachingTotals> window_;
  Histogram latency_;
  Histogram eviction_latency_;
  SlidingHistogram window_latency_;
  Timestamp last_tick_{0};
  std::uint64_t resident_bytes_ = 0;
  std::uint64_t capacity_bytes_ = 0;
};

}  // namespace kvscope
