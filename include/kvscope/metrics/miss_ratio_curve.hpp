// kvscope/metrics/miss_ratio_curve.hpp - what the hit ratio would be at
// other cache sizes: exact LRU stack distances (Mattson et al. 1970) over a
// prefix cache's admissions, an optional AET estimate, and the curve.
//
// Model. The cache is an LRU stack of block hashes. Each admitted request
// first asks which of its blocks are resident (positions before the request
// touches anything), then touches all its blocks: leaf-to-root by default
// (the root ends most recent, as vLLM's reverse-order free leaves it), or
// root-to-leaf (the trace README's reference replay). A cache of C blocks
// holds exactly the C most recently touched hashes, so a block hits at C
// iff its stack position is < C, and a request's prefix hit at C is its
// longest run of leading blocks all at positions < C. Hence one pass yields
// the hits at every C: prefix hits count each block at the running maximum
// of the positions before it. The real cache differs from the model where
// vLLM's rules differ from pure LRU (blocks in use cannot be evicted); the
// snapshot shows both so the gap is visible.
//
// Exact and cheap: requests share prefixes, so the stack is kept as
// segments - the still-resident tail of some request's block chain, in the
// order it was touched. A later request can only take a segment's prefix
// (hashes are chained: equal hashes mean equal prefixes), so a request's
// blocks lie in a few runs of consecutive positions: one hash-index probe
// and one Fenwick-tree query per run, one key comparison per block, and the
// counts by position are difference arrays, so a run costs O(1) there. Tracked
// positions stop at `bound` (bound_multiple x capacity): deeper blocks are
// dropped and count as misses at every C <= bound, which is exact there.
//
// AET (Hu et al., USENIX ATC'16): with estimate_aet on, the tracker also
// records each block's reuse time (block references since its last touch)
// and estimates the any-block hit ratio at each C from that histogram alone.
//
// Thread rules: single thread (the shard's). Cost per admission: O(blocks)
// key folds and compares + O(runs x log segments); ~6% of a 128-block
// request cycle (docs/performance.md). Memory ~8 bytes per tracked block
// plus 24 bytes per position below the bound.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvscope/detail/flat_index.hpp"
#include "kvscope/metrics/histogram.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

/// The order in which a request's blocks are touched after its lookup.
enum class TouchOrder : std::uint8_t { leaf_to_root, root_to_leaf };
std::string_view to_string(TouchOrder order) noexcept;

/// 1/16, 2/16, ... 4: 64 evenly spaced points up to 4x the capacity.
std::vector<double> default_capacity_multiples();

struct MissRatioConfig {
  /// Off by default: it costs a few percent of a request cycle (see
  /// docs/performance.md), over the default metrics' 1% budget.
  bool enabled = false;
  /// Track positions below bound_multiple x capacity; (0, 64].
  double bound_multiple = 4;
  /// Curve points as multiples of the capacity: strictly increasing, each in
  /// (0, bound_multiple], 1 .. 4096 of them.
  std::vector<double> capacity_multiples = default_capacity_multiples();
  TouchOrder touch_order = TouchOrder::leaf_to_root;
  /// Also estimate the curve by AET from reuse times.
  bool estimate_aet = false;

  /// Throws std::invalid_argument naming the bad field.
  void validate() const;
};

/// Hits the model predicts at one cache size, counted since the start.
struct MrcPoint {
  double multiple = 0;                  ///< capacity_blocks / the cache's capacity
  std::uint64_t capacity_blocks = 0;    ///< the cache size C
  std::uint64_t prefix_hit_blocks = 0;  ///< blocks in leading runs at positions < C
  std::uint64_t any_hit_blocks = 0;     ///< blocks at positions < C, wherever they are
  std::uint64_t prefix_hit_tokens = 0;  ///< tokens of the prefix-hit blocks
  double aet_hit_blocks = 0;            ///< AET's estimate of any_hit_blocks (0 without AET)
  friend bool operator==(const MrcPoint&, const MrcPoint&) = default;
};

struct MissRatioCurve {
  std::uint64_t capacity_blocks = 0;  ///< the cache's blocks (summed over merged shards)
  std::uint64_t bound_blocks = 0;     ///< positions tracked below this
  std::uint64_t requests = 0;         ///< admissions recorded
  std::uint64_t references = 0;       ///< blocks of those admissions
  std::uint64_t tokens = 0;           ///< tokens of those admissions
  std::uint32_t shards = 1;           ///< curves merged into this one
  bool has_aet = false;
  TouchOrder touch_order = TouchOrder::leaf_to_root;
  std::vector<MrcPoint> points;  ///< by increasing capacity

  double block_hit_ratio(const MrcPoint& p) const noexcept;  ///< prefix_hit_blocks / references
  double token_hit_ratio(const MrcPoint& p) const noexcept;  ///< prefix_hit_tokens / tokens
  double any_hit_ratio(const MrcPoint& p) const noexcept;    ///< any_hit_blocks / references
  double aet_hit_ratio(const MrcPoint& p) const noexcept;    ///< aet_hit_blocks / references

  /// Merges another shard's curve point by point (each shard evaluated at the
  /// same multiples of its own capacity, so the sum is the curve of the
  /// sharded cache). Throws std::invalid_argument if the multiples differ.
  MissRatioCurve& operator+=(const MissRatioCurve& other);
};

class StackDistanceTracker {
 public:
  /// `capacity`: the cache's blocks (>= 1). Throws std::invalid_argument on
  /// a bad config (enabled is not looked at).
  StackDistanceTracker(std::uint32_t capacity, const MissRatioConfig& config);

  /// One admission: `blocks` root first; `request_tokens` the prompt length
  /// (block i weighs min(block_tokens, request_tokens - i x block_tokens)
  /// tokens, so a trailing partial block weighs its remainder); only the
  /// first `hittable_blocks` may count as hits (vLLM caps a hit below the
  /// prompt's length); all are touched. O(blocks + runs x log).
  void record(std::span<const BlockHash> blocks, std::uint32_t request_tokens,
              std::uint32_t block_tokens, std::uint32_t hittable_blocks);
  /// Empties the stack (the cache dropped every hash); counts stay.
  void clear_stack();

  /// Hits at each capacity in `capacities` (ascending, each <= bound()).
  /// Exact; O(bound). multiple is left 0.
  std::vector<MrcPoint> points_at(std::span<const std::uint64_t> capacities) const;
  /// The curve at the configured multiples of capacity(). O(bound).
  MissRatioCurve curve() const;

  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint64_t bound() const noexcept { return bound_; }
  std::uint64_t tracked_blocks() const noexcept { return live_; }
  std::size_t memory_bytes() const noexcept;

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;
  static constexpr std::uint64_t kCold = UINT64_MAX;

  /// A still-tracked run of some request's chain: depths [start, end) of
  /// its keys, top of the stack first in touch order.
  struct Segment {
    std::uint32_t start = 0;
    std::uint32_t end = 0;
    std::uint32_t base = 0;        // depth of keys[0]
    std::uint32_t pushed_len = 0;  // chain length when pushed (touch times)
    std::uint32_t slot = 0;        // Fenwick slot: push order
    std::uint64_t pushed_at = 0;   // reference clock when pushed
    std::vector<std::uint64_t> keys;
    std::uint64_t key_at(std::uint32_t depth) const { return keys[depth - base]; }
    std::uint32_t size() const noexcept { return end - start; }
  };
  struct Run {
    std::uint32_t segment;
    std::uint32_t begin;
    std::uint32_t end;
  };
  /// One record()'s walk down its chain.
  struct Walk {
    std::uint32_t chain_len = 0;
    std::uint32_t hittable = 0;
    std::uint32_t block_tokens = 0;
    std::uint32_t request_tokens = 0;
    std::uint32_t full_blocks = 0;  // blocks weighing block_tokens
    std::uint64_t prefix_max = 0;   // largest position so far
    bool prefix_cold = false;       // a block before this one missed at every C
  };

  std::uint64_t offset_in(const Segment& s, std::uint32_t depth) const noexcept;
  std::uint64_t touch_index(std::uint32_t depth, std::uint32_t chain_len) const noexcept;
  std::uint64_t above(const Segment& s) const noexcept;
  std::uint32_t find_run_start(std::uint64_t key, std::uint32_t depth) const;
  void count_run(const Segment& s, std::uint64_t top, std::uint32_t begin, std::uint32_t end,
                 Walk& walk);
  void take_runs();
  std::uint32_t acquire_segment();
  void push_chain(std::uint32_t id, std::uint32_t chain_len);
  void trim_to_bound();
  void shrink_front(Segment& s, std::uint32_t id, std::uint32_t count);
  void forget_first_key(const Segment& s, std::uint32_t id);
  void untrack(const Segment& s, std::uint32_t count) noexcept;
  void release(std::uint32_t id);
  std::uint32_t new_slot(std::uint32_t id);
  void compact_slots();
  void fenwick_add(std::uint32_t slot, std::int64_t delta) noexcept;
  std::uint64_t fenwick_prefix(std::uint32_t slot) const noexcept;  // sum of slots <= slot

  std::uint32_t capacity_;
  MissRatioConfig config_;
  std::uint64_t bound_;
  // Stack.
  std::vector<Segment> segments_;
  std::vector<std::uint32_t> free_segments_;
  detail::FlatIndex first_key_;            // first live key of a segment -> segment
  std::vector<std::int64_t> fenwick_;      // 1-based over slots
  std::vector<std::uint32_t> slot_owner_;  // slot -> segment (kNone when empty)
  std::uint32_t next_slot_ = 0;
  std::uint32_t oldest_slot_ = 0;
  std::uint64_t live_ = 0;   // tracked blocks = sum of segment sizes
  std::uint64_t clock_ = 0;  // block references touched so far
  // Counts by position < bound_, as difference arrays (bound_ + 1 long).
  std::vector<std::uint64_t> prefix_blocks_;
  std::vector<std::uint64_t> any_blocks_;
  std::vector<std::uint64_t> prefix_tokens_;
  std::uint64_t requests_ = 0, references_ = 0, tokens_ = 0;
  std::optional<Histogram> reuse_times_;  // AET: references between touches
  std::vector<Run> runs_;                 // per-record scratch
};

/// The AET miss-ratio estimate: given reuse times (and `cold` references
/// with none) for `references` references, the expected share of references
/// that hit in an LRU cache of each size in `capacities` (ascending).
std::vector<double> aet_hit_ratios(const Histogram& reuse_times, std::uint64_t references,
                                   std::span<const std::uint64_t> capacities);

}  // namespace kvscope
