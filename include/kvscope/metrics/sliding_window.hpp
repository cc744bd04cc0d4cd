// kvscope/metrics/sliding_window.hpp - bounded-memory sliding windows.
//
// Time windows: a ring of `window / resolution` slots, one per resolution
// interval; a slot holds what was recorded during its interval. At time t the
// window is the slot of t plus the slots of the previous intervals, up to
// window/resolution slots in all - so it spans between window - resolution
// and window of real time. Running sums over the live slots make sums O(1);
// expired slots are subtracted and cleared as time advances (advance(), also
// called by every record and query). A timestamp older than the newest one
// seen is recorded into the current slot (clocks are read once per
// operation, so slightly stale stamps are normal).
//
// SnapshotWindow: the same ring over cumulative counter structs, for
// counters that are counted anyway (PrefixCacheStats): the hot path adds
// nothing, a periodic tick() stores the running totals at each slot
// boundary, and a window is "totals now - totals at the window's start"
// (how Prometheus' rate() reads counters).
//
// Count window: vLLM's "last N requests" hit-rate window (GUIDE section 2).
//
// Memory is fixed by configuration, never by traffic. Thread rules: single
// writer, no locks; all methods on the owning thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "kvscope/clock.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/prefix_cache_stats.hpp"

namespace kvscope {

struct WindowConfig {
  std::chrono::nanoseconds window = std::chrono::seconds(60);
  std::chrono::nanoseconds resolution = std::chrono::seconds(1);

  /// Throws std::invalid_argument unless 0 < resolution <= window, window is a
  /// whole multiple of resolution, and window / resolution <= 100,000 slots.
  void validate() const;
  std::uint32_t slots() const noexcept { return static_cast<std::uint32_t>(window / resolution); }
};

/// `fields` independent counters over one time window (e.g. hits and queries,
/// so a window ratio is a ratio of window sums).
class SlidingCounters {
 public:
  /// Throws std::invalid_argument on a bad config or fields == 0.
  SlidingCounters(WindowConfig config, std::size_t fields);

  /// O(1) amortised. Precondition: field < fields().
  void add(Timestamp now, std::size_t field, std::uint64_t amount);
  /// Sum over the whole window ending at `now`. O(1) amortised.
  std::uint64_t sum(Timestamp now, std::size_t field);
  /// Sum over the newest ceil(span / resolution) slots (span clamped to the
  /// window): e.g. the eviction count of the last 10 s. O(span / resolution).
  std::uint64_t sum_over(Timestamp now, std::chrono::nanoseconds span, std::size_t field);
  /// sum_over(now, span, field) / span in seconds, span clamped to the window.
  /// Throws std::invalid_argument if span <= 0.
  double rate_per_second(Timestamp now, std::chrono::nanoseconds span, std::size_t field);
  /// Expires slots older than the window. O(expired slots), at most O(slots).
  void advance(Timestamp now);
  void clear();

  std::size_t fields() const noexcept { return fields_; }
  const WindowConfig& config() const noexcept { return config_; }
  std::size_t memory_bytes() const noexcept;

 private:
  std::uint64_t& cell(std::uint32_t slot, std::size_t field) {
    return cells_[slot * fields_ + field];
  }

  WindowConfig config_;
  std::size_t fields_;
  std::uint32_t slots_;
  std::vector<std::uint64_t> cells_;   // slots_ x fields_
  std::vector<std::uint64_t> totals_;  // running sum of the live slots, per field
  std::int64_t newest_slot_ = 0;       // absolute index (time / resolution) of the current slot
  bool started_ = false;               // newest_slot_ is meaningful once a time was seen
};

/// A histogram over one time window: a Histogram per slot plus their running
/// sum. Memory: (slots + 1) x the layout's bucket memory.
class SlidingHistogram {
 public:
  /// Throws std::invalid_argument on a bad config or layout.
  explicit SlidingHistogram(WindowConfig config, HistogramLayout layout = {});

  /// O(1) amortised.
  void record(Timestamp now, std::uint64_t value);
  /// The samples of the window ending at `now`, with exact min and max.
  /// O(buckets + slots).
  Histogram window(Timestamp now);
  void advance(Timestamp now);
  void clear();

  const WindowConfig& config() const noexcept { return config_; }
  std::size_t memory_bytes() const noexcept;

 private:
  WindowConfig config_;
  std::uint32_t slots_;
  std::vector<Histogram> ring_;
  Histogram total_;
  std::int64_t newest_slot_ = 0;
  bool started_ = false;
};

/// Windows over a cumulative stats struct `Stats` (copyable, with -= and a
/// default value of zero, e.g. PrefixCacheStats). Record nothing here:
/// call tick(now, totals) at least once per resolution interval; a slot
/// boundary crossed between ticks is stamped with the totals of the first
/// tick after it, so counts land at most one tick late. Memory: slots x
/// sizeof(Stats).
template <class Stats>
class SnapshotWindow {
 public:
  /// Throws std::invalid_argument on a bad config.
  explicit SnapshotWindow(WindowConfig config)
      : config_((config.validate(), config)), starts_(config.slots()) {}

  /// Stores `totals` as the start of every slot begun since the last tick.
  /// O(slots begun), at most O(slots). `now` never goes back (older stamps
  /// count as the newest one seen).
  void tick(Timestamp now, const Stats& totals) {
    const std::int64_t slot = now / config_.resolution;
    if (!started_) {
      started_ = true;
      first_slot_ = newest_slot_ = slot;
      starts_[index(slot)] = totals;
      return;
    }
    const auto slots = static_cast<std::int64_t>(starts_.size());
    for (std::int64_t s = std::max(newest_slot_ + 1, slot - slots + 1); s <= slot; ++s) {
      starts_[index(s)] = totals;
    }
    if (slot > newest_slot_) newest_slot_ = slot;
  }

  /// What was counted in the newest ceil(span / resolution) slots (span
  /// clamped to the window) up to the last tick, given the current totals:
  /// totals minus the totals at the start of the oldest of those slots still
  /// on record (counts from before the first tick are outside every window).
  /// Before the first tick, all of `totals`. Tick first when time has moved.
  /// O(1).
  Stats over(const Stats& totals, std::chrono::nanoseconds span) const {
    Stats result = totals;
    if (!started_) return result;
    result -= starts_[index(oldest_slot(span))];
    return result;
  }
  Stats window(const Stats& totals) const { return over(totals, config_.window); }

  /// Real time the window of `span` covers at `now`: from the start of its
  /// oldest recorded slot to now (shorter than span while history is short).
  std::chrono::nanoseconds covered(Timestamp now, std::chrono::nanoseconds span) const {
    if (!started_) return std::chrono::nanoseconds{0};
    const auto start = oldest_slot(span) * config_.resolution;
    return now > start ? now - start : std::chrono::nanoseconds{0};
  }

  const WindowConfig& config() const noexcept { return config_; }
  std::size_t memory_bytes() const noexcept { return starts_.size() * sizeof(Stats); }

 private:
  std::size_t index(std::int64_t slot) const noexcept {
    const auto n = static_cast<std::int64_t>(starts_.size());
    return static_cast<std::size_t>(((slot % n) + n) % n);
  }
  std::int64_t oldest_slot(std::chrono::nanoseconds span) const noexcept {
    const std::int64_t res = config_.resolution.count();
    const std::int64_t want =
        span.count() <= 0 ? 1 : (std::min(span, config_.window).count() + res - 1) / res;
    return std::max(first_slot_, newest_slot_ - want + 1);
  }

  WindowConfig config_;
  std::vector<Stats> starts_;  // starts_[slot % slots]: totals when that slot began
  std::int64_t first_slot_ = 0;
  std::int64_t newest_slot_ = 0;
  bool started_ = false;
};

/// vLLM's hit-rate window over the last `max_requests` requests: updates are
/// (requests, queries, hits) deltas; an update with 0 requests is ignored;
/// the oldest updates are dropped while the window holds more than
/// max_requests requests, but the newest update is always kept even if it
/// alone exceeds it; reset() (or observe with reset = true) empties it.
/// Memory: at most max_requests updates.
class RequestCountWindow {
 public:
  /// Throws std::invalid_argument if max_requests == 0.
  explicit RequestCountWindow(std::uint64_t max_requests = 1000);

  /// O(1) amortised; allocates only while the window holds more updates
  /// than ever before. `reset` first empties the window (vLLM's stats.reset).
  void observe(const QueryCounts& update, bool reset = false);
  void reset() noexcept;

  /// Sums of the updates in the window.
  const QueryCounts& totals() const noexcept { return totals_; }
  double hit_rate() const noexcept { return totals_.token_hit_rate(); }
  std::size_t updates() const noexcept { return count_; }
  std::uint64_t max_requests() const noexcept { return max_requests_; }

 private:
  void push_back(const QueryCounts& update);
  void pop_front() noexcept;

  std::uint64_t max_requests_;
  // The updates in the window, oldest first: a ring of ring_.size() slots
  // from head_; the size is 0, then 16 doubling, so always a power of two
  // (a deque allocated a chunk every few requests for good).
  std::vector<QueryCounts> ring_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  QueryCounts totals_;
};

}  // namespace kvscope
