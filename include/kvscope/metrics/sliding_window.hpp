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
// Count window: vLLM's "last N requests" hit-rate window (GUIDE section 2).
//
// Memory is fixed by configuration, never by traffic. Thread rules: single
// writer, no locks; all methods on the owning thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

#include "kvscope/metrics/clock.hpp"
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

  /// O(1) amortised. `reset` first empties the window (vLLM's stats.reset).
  void observe(const QueryCounts& update, bool reset = false);
  void reset() noexcept;

  /// Sums of the updates in the window.
  const QueryCounts& totals() const noexcept { return totals_; }
  double hit_rate() const noexcept { return totals_.token_hit_rate(); }
  std::size_t updates() const noexcept { return updates_.size(); }
  std::uint64_t max_requests() const noexcept { return max_requests_; }

 private:
  std::uint64_t max_requests_;
  std::deque<QueryCounts> updates_;
  QueryCounts totals_;
};

}  // namespace kvscope
