// kvscope/metrics/block_residency.hpp - sampled block residency (the seeds'
// KVCacheMetricsCollector, vLLM's kv_block_* histograms) and refault
// distances.
//
// BlockResidencyTracker is a PrefixCacheObserver installed with sampling: the
// cache watches a `residency_sample_rate` share of block allocations and
// reports only those blocks' events, stamped with one clock read per
// operation. Per watched block it keeps birth, last access, last free and a
// ring of the last 4 access times. When the pool takes the block for reuse
// (or reset drops it) it records an EvictionEvent:
//   lifetime          = eviction - birth                      (vLLM)
//   idle              = eviction - last access (birth if none) (vLLM)
//   idle_since_free   = eviction - last release to the pool    (kvscope: the
//                       time the block sat evictable; vLLM has no such figure)
//   reuse gaps        = differences of consecutive access times in the ring
// plus the block's hit count (reuse count). A block released without a hash
// ends its story there (it was never hittable) and is counted apart.
//
// Refault distance (Linux workingset): evicted sampled hashes go into a ghost
// FIFO stamped with the cache's eviction counter; a later miss on such a hash
// has refault distance = evictions since. A distance <= the pool size means
// the miss would have hit with a somewhat larger pool (thrashing).
//
// Hooks only append the event to a log of kLogCapacity entries; the log is
// applied in one batch when it fills and before any query. Applying in
// batches keeps the tracker's tables hot (interleaved with cache work, each
// event cost ~100 ns of cache misses; see docs/performance.md). Results are
// exactly those of immediate processing: events apply in order.
//
// Thread rules: the cache's thread only (hooks run inside cache operations).
// Cost: O(1) per watched-block event; nothing for other blocks.
// Memory: ~80 bytes per watched block, 32 per ghost, ~90 per kept event,
// 48 per log entry.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvscope/detail/flat_index.hpp"
#include "kvscope/metrics/cache_metrics.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/prefix_cache.hpp"

namespace kvscope {

struct EvictionEvent {
  BlockId block;
  BlockHash hash;
  EvictionReason reason = EvictionReason::capacity;
  Timestamp at{0};
  std::chrono::nanoseconds lifetime{0};
  std::chrono::nanoseconds idle{0};
  std::chrono::nanoseconds idle_since_free{0};
  std::uint32_t hits = 0;                                ///< reuse count: prefix hits while cached
  std::array<std::chrono::nanoseconds, 3> reuse_gaps{};  ///< first reuse_gap_count valid
  std::uint8_t reuse_gap_count = 0;
  friend bool operator==(const EvictionEvent&, const EvictionEvent&) = default;
};

/// Remembers the hashes of the last `capacity` recorded evictions, each with
/// the eviction count at its eviction: a FIFO of records. A hash recorded
/// again is a new record (its older one stops counting), and an erased hash's
/// record keeps its place until it ages out, so the table always covers
/// exactly the last `capacity` records. O(1) record and lookup. Hashes are
/// keyed by their 64-bit fold (a false match has odds 2^-64 a pair).
class GhostTable {
 public:
  /// Throws std::invalid_argument if capacity == 0.
  explicit GhostTable(std::uint32_t capacity);
  /// Records `hash` evicted when the eviction counter read `stamp`, pushing
  /// out the oldest record when `capacity` records are kept.
  void record(const BlockHash& hash, std::uint64_t stamp);
  /// Evictions since `hash` was evicted (`stamp_now` - its stamp), if remembered.
  std::optional<std::uint64_t> refault_distance(const BlockHash& hash,
                                                std::uint64_t stamp_now) const;
  /// Forgets `hash` (it is resident again). No-op if absent.
  /// size() counts remembered hashes: records not erased or superseded.
  void erase(const BlockHash& hash);
  std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(index_.size()); }
  std::uint32_t capacity() const noexcept { return capacity_; }
  std::size_t memory_bytes() const noexcept;

 private:
  struct Entry {
    std::uint64_t key = 0;  // fold of the hash
    std::uint64_t stamp = 0;
    bool live = false;
  };

  std::uint32_t capacity_;
  std::uint32_t next_ = 0;  // FIFO position to overwrite next
  std::vector<Entry> fifo_;
  detail::FlatIndex index_;  // key -> FIFO position
};

/// Cumulative residency figures; shards merge with +=.
struct ResidencySnapshot {
  double sample_rate = 0.0;             ///< the sampling share these figures stand for
  std::uint64_t sampled_blocks = 0;     ///< watched allocations
  std::uint64_t evicted_blocks = 0;     ///< watched blocks evicted (events recorded)
  std::uint64_t released_uncached = 0;  ///< watched blocks released without a hash
  std::uint64_t never_reused = 0;       ///< evicted with 0 hits
  std::uint64_t hot_blocks = 0;         ///< evicted with >= hot_reuse_threshold hits
  std::uint32_t hot_reuse_threshold = 0;
  std::uint64_t tracked_blocks = 0;  ///< gauge: watched blocks alive now
  Histogram lifetime;                ///< ns
  Histogram idle;                    ///< ns, since last access
  Histogram idle_since_free;         ///< ns
  Histogram reuse_gap;               ///< ns
  Histogram reuse_count;             ///< hits per evicted block
  // Refaults of misses (ghost table of sampled evictions).
  std::uint64_t misses_checked = 0;            ///< admissions that missed, looked up in the ghosts
  std::uint64_t refaults = 0;                  ///< of those, the missed hash was a remembered ghost
  std::uint64_t refaults_within_capacity = 0;  ///< refault distance <= pool size
  Histogram refault_distance{HistogramLayout{(std::uint64_t{1} << 40) - 1, 7}};  ///< evictions

  explicit ResidencySnapshot(const HistogramLayout& layout = {});

  double never_reused_share() const noexcept;  ///< never_reused / evicted_blocks
  double hot_share() const noexcept;           ///< hot_blocks / evicted_blocks
  /// Estimated share of misses that would have hit with up to twice the
  /// pool: refaults_within_capacity / (sample_rate x misses_checked), <= 1.
  double thrash_share() const noexcept;

  /// Throws std::invalid_argument on different histogram layouts.
  ResidencySnapshot& operator+=(const ResidencySnapshot& other);
};

class BlockResidencyTracker final : public PrefixCacheObserver {
 public:
  /// Reads `cache`'s eviction counter and pool size; does not install itself
  /// (ShardMetrics does: cache.set_observer(&tracker, tracker.observer_options())).
  /// Throws std::invalid_argument on a bad config.
  BlockResidencyTracker(const PrefixCache& cache, const MetricsConfig& config);

  /// The options to install this tracker with (sample rate, seed, clock).
  ObserverOptions observer_options() const noexcept;

  void on_block_allocated(BlockId block, Timestamp now) override;
  void on_block_hit(BlockId block, Timestamp now) override;
  void on_block_released(BlockId block, bool cached, Timestamp now) override;
  void on_block_uncached(BlockId block, const BlockHash& hash, UncacheCause cause, bool watched,
                         Timestamp now) override;

  /// An admission missed at `missed` (LookupResult::first_miss_hash): looks
  /// it up in the ghosts. O(1).
  void check_refault(const BlockHash& missed);

  /// Applies the logged events. Queries below call it first.
  void flush();
  const ResidencySnapshot& snapshot();
  /// The most recent eviction events, oldest first (at most eviction_event_capacity).
  std::vector<EvictionEvent> recent_events();
  std::size_t memory_bytes() const noexcept;

  static constexpr std::size_t kLogCapacity = 256;

 private:
  enum class EventKind : std::uint8_t {
    allocated,
    hit,
    released,
    released_uncached,
    evicted,
    reset,
    miss
  };
  struct LoggedEvent {
    EventKind kind;
    BlockId block;
    Timestamp now;
    BlockHash hash;       // evicted / reset / miss
    std::uint64_t stamp;  // the cache's eviction count then (evicted / miss)
  };
  void log(const LoggedEvent& event);
  void apply(const LoggedEvent& event);
  void apply_allocated(BlockId block, Timestamp now);
  void apply_miss(const BlockHash& missed, std::uint64_t stamp);

  struct BlockLife {
    Timestamp birth{0};
    Timestamp last_access{0};
    Timestamp last_free{0};
    std::array<Timestamp, 4> accesses{};  // ring of the last 4 access times
    std::uint32_t hits = 0;
  };
  BlockLife* find(BlockId block);
  void erase(BlockId block);
  void record_eviction(BlockId block, const BlockHash& hash, const BlockLife& life,
                       EvictionReason reason, Timestamp now);

  const PrefixCache* cache_;
  MetricsConfig config_;
  ResidencySnapshot stats_;
  detail::FlatIndex watched_;  // block id -> lives_ position
  std::vector<BlockLife> lives_;
  std::vector<std::uint32_t> free_lives_;
  std::optional<GhostTable> ghosts_;
  std::vector<EvictionEvent> events_;  // ring
  std::size_t next_event_ = 0;
  std::vector<LoggedEvent> log_;  // not yet applied, in order
};

}  // namespace kvscope
