// kvscope/metrics/block_residency.hpp - sampled block residency (the seeds'
// KVCacheMetricsCollector, vLLM's kv_block_* histograms) and refault
// distances.
//
// BlockResidencyTracker is a PrefixCacheObserver installed with sampling: the
// cache watches a share of block allocations and reports only those blocks'
// events, stamped with one clock read per operation.
//
// Steered sampling. The share is 2^-k. The tracker counts watched
// allocations per period and moves k so that about
// `residency_watched_per_second` blocks are watched (MetricsConfig): under
// heavy load it watches a tiny share, so the hooks cost next to nothing,
// and at a light load it watches every block. A period ends at each change
// and after a second. Each watched block carries the weight 2^k of the rate
// it was sampled at, and every histogram and count it feeds adds that
// weight, so the figures estimate all blocks (Horvitz-Thompson) however the
// rate moved; the snapshot also counts the samples behind each histogram.
// Lowering the rate by 2^j also thins the blocks already watched: each stays
// watched with probability 2^-j and its weight grows by 2^j (still its
// inverse inclusion probability). Without thinning, blocks watched while the
// rate was high would keep reporting every hit: a hot shared prefix watched
// at rate 1 costs a hook per request for as long as it stays cached. Per watched block it keeps
// birth, last access, last free and a ring of the last 4 access times. When the pool takes the
// block for reuse (or reset drops it) it records an EvictionEvent:
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
  /// out the oldest record when `capacity` records are kept. `weight`: the
  /// evictions this record stands for (1 / the sample rate).
  void record(const BlockHash& hash, std::uint64_t stamp, std::uint64_t weight = 1);
  struct Refault {
    std::uint64_t distance = 0;  ///< evictions since the hash was evicted
    std::uint64_t weight = 1;    ///< the record's weight
  };
  /// `hash`'s record, if remembered, with `stamp_now` - its stamp.
  std::optional<Refault> find(const BlockHash& hash, std::uint64_t stamp_now) const;
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
    std::uint64_t weight = 1;
    bool live = false;
  };

  std::uint32_t capacity_;
  std::uint32_t next_ = 0;  // FIFO position to overwrite next
  std::vector<Entry> fifo_;
  detail::FlatIndex index_;  // key -> FIFO position
};

/// Cumulative residency figures; shards merge with +=.
///
/// "Samples" count watched blocks (or gaps, refaults) as they were seen;
/// "estimated" figures and every histogram add each sample's weight (1 /
/// the rate it was sampled at), so they stand for all blocks. Histogram
/// count() is therefore an estimate; the *_samples fields say how many
/// observations are behind it (merge adds both).
struct ResidencySnapshot {
  double sample_rate = 0.0;          ///< gauge: the share sampled now (merged: the highest shard's)
  std::uint64_t sampled_blocks = 0;  ///< samples: watched allocations
  std::uint64_t estimated_allocations = 0;  ///< allocations they stand for (sum of weights)
  std::uint64_t evicted_blocks = 0;         ///< samples: watched blocks evicted (the samples
                                            ///< behind lifetime, idle, idle_since_free and
                                            ///< reuse_count)
  std::uint64_t estimated_evictions = 0;    ///< evictions they stand for
  std::uint64_t released_uncached = 0;      ///< samples: watched blocks released without a hash
  std::uint64_t never_reused = 0;           ///< estimated: evicted with 0 hits
  std::uint64_t hot_blocks = 0;             ///< estimated: evicted with >= hot_reuse_threshold hits
  std::uint32_t hot_reuse_threshold = 0;
  std::uint64_t tracked_blocks = 0;     ///< gauge: watched blocks alive now
  std::uint64_t reuse_gap_samples = 0;  ///< samples behind reuse_gap
  Histogram lifetime;                   ///< ns
  Histogram idle;                       ///< ns, since last access
  Histogram idle_since_free;            ///< ns
  Histogram reuse_gap;                  ///< ns
  Histogram reuse_count;                ///< hits per evicted block
  // Refaults of misses (ghost table of sampled evictions).
  std::uint64_t misses_checked = 0;   ///< admissions that missed, all looked up in the ghosts
  std::uint64_t refault_samples = 0;  ///< samples: checked misses found among the ghosts
  std::uint64_t refaults = 0;         ///< estimated: misses on a hash evicted before
  std::uint64_t refaults_within_capacity = 0;  ///< estimated: refault distance <= pool size
  Histogram refault_distance{HistogramLayout{(std::uint64_t{1} << 40) - 1, 7}};  ///< evictions

  explicit ResidencySnapshot(const HistogramLayout& layout = {});

  /// sampled_blocks / estimated_allocations: the share watched since start.
  double effective_sample_rate() const noexcept;
  double never_reused_share() const noexcept;  ///< never_reused / estimated_evictions
  double hot_share() const noexcept;           ///< hot_blocks / estimated_evictions
  /// Estimated share of misses that would have hit with up to twice the
  /// pool: refaults_within_capacity / misses_checked, <= 1.
  double thrash_share() const noexcept;

  /// Throws std::invalid_argument on different histogram layouts.
  ResidencySnapshot& operator+=(const ResidencySnapshot& other);
};

class BlockResidencyTracker final : public PrefixCacheObserver {
 public:
  /// Reads `cache`'s eviction counter and pool size and steers its sample
  /// rate (set_observer_sample_rate, unwatch); does not install itself
  /// (ShardMetrics does: cache.set_observer(&tracker,
  /// tracker.observer_options())). Precondition for steering: the tracker is
  /// the cache's installed observer (it changes the cache's sampler).
  /// Throws std::invalid_argument on a bad config.
  BlockResidencyTracker(PrefixCache& cache, const MetricsConfig& config);

  /// The options to install this tracker with (sample rate, seed, clock).
  ObserverOptions observer_options() const noexcept;
  /// The share of allocations sampled now: 2^-k.
  double sample_rate() const noexcept;

  void on_block_allocated(BlockId block, Timestamp now) override;
  void on_block_hit(BlockId block, Timestamp now) override;
  void on_block_released(BlockId block, bool cached, Timestamp now) override;
  void on_block_uncached(BlockId block, const BlockHash& hash, UncacheCause cause, bool watched,
                         Timestamp now) override;

  /// An admission missed at `missed` (LookupResult::first_miss_hash): looks
  /// it up in the ghosts. O(1).
  void check_refault(const BlockHash& missed);
  /// Periodic, about once a second (ShardMetrics::tick calls it, and the
  /// runtime ticks every snapshot): lets the sampler raise a rate that
  /// watches too few blocks, which no watched allocation may come to do.
  /// Without ticks the rate still falls but rises only at watched
  /// allocations. O(1), or O(watched blocks) when it lowers the rate.
  void tick(Timestamp now);

  /// Applies the logged events. Queries below call it first.
  void flush();
  const ResidencySnapshot& snapshot();
  /// The most recent eviction events, oldest first (at most eviction_event_capacity).
  std::vector<EvictionEvent> recent_events();
  std::size_t memory_bytes() const noexcept;

  static constexpr std::size_t kLogCapacity = 256;
  /// The lowest rate the sampler goes down to: 2^-kMaxShift.
  static constexpr unsigned kMaxShift = 40;
  /// Watched allocations a period needs before the rate may be lowered,
  /// over at least a millisecond; or kBurstEvidence in less time.
  static constexpr std::uint64_t kSteerEvidence = 32;
  static constexpr std::uint64_t kBurstEvidence = 1024;

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
    std::uint8_t shift;  // allocated: the sample rate's exponent then
    BlockId block;
    Timestamp now;
    BlockHash hash;       // evicted / reset / miss
    std::uint64_t stamp;  // the cache's eviction count then (evicted / miss)
  };
  void log(const LoggedEvent& event);
  void apply(const LoggedEvent& event);
  void apply_allocated(BlockId block, std::uint8_t shift, Timestamp now);
  void apply_miss(const BlockHash& missed, std::uint64_t stamp);
  void steer(Timestamp now);
  void set_shift(unsigned shift);
  void thin(unsigned steps);

  struct BlockLife {
    Timestamp birth{0};
    Timestamp last_access{0};
    Timestamp last_free{0};
    std::array<Timestamp, 4> accesses{};  // ring of the last 4 access times
    std::uint32_t hits = 0;
    std::uint8_t shift = 0;  // sampled at rate 2^-shift: weight 2^shift
  };
  BlockLife* find(BlockId block);
  void erase(BlockId block);
  void record_eviction(BlockId block, const BlockHash& hash, const BlockLife& life,
                       EvictionReason reason, Timestamp now);

  PrefixCache* cache_;
  MetricsConfig config_;
  ResidencySnapshot stats_;
  // Steering (see the header comment): rate 2^-shift_, never above
  // 2^-min_shift_ (residency_sample_rate); the current period's start and
  // watched allocations.
  unsigned shift_ = 0;
  unsigned min_shift_ = 0;
  Timestamp period_start_{0};
  std::uint64_t period_watched_ = 0;
  std::uint64_t logged_allocations_ = 0;  // allocations in log_, not yet in tracked_blocks
  std::uint64_t thinning_state_;          // splitmix64 state of the thinning coin
  std::vector<std::uint32_t> thinned_;    // scratch: blocks thin() drops
  detail::FlatIndex watched_;             // block id -> lives_ position
  std::vector<BlockLife> lives_;
  std::vector<std::uint32_t> free_lives_;
  std::optional<GhostTable> ghosts_;
  std::vector<EvictionEvent> events_;  // ring
  std::size_t next_event_ = 0;
  std::vector<LoggedEvent> log_;  // not yet applied, in order
};

}  // namespace kvscope
