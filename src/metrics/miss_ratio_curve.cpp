#include "kvscope/metrics/miss_ratio_curve.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>
#include <string>

#include "detail/hash_mix.hpp"

namespace kvscope {

std::string_view to_string(TouchOrder order) noexcept {
  switch (order) {
    case TouchOrder::leaf_to_root: return "leaf_to_root";
    case TouchOrder::root_to_leaf: return "root_to_leaf";
  }
  return "unknown";
}

std::vector<double> default_capacity_multiples() {
  std::vector<double> multiples(64);
  for (std::size_t i = 0; i < multiples.size(); ++i) multiples[i] = static_cast<double>(i + 1) / 16;
  return multiples;
}

void MissRatioConfig::validate() const {
  auto bad = [](const std::string& what) {
    throw std::invalid_argument("kvscope: MissRatioConfig." + what);
  };
  if (!(std::isfinite(bound_multiple) && bound_multiple > 0 && bound_multiple <= 64))
    bad("bound_multiple must be in (0, 64], got " + std::to_string(bound_multiple));
  if (capacity_multiples.empty() || capacity_multiples.size() > 4096)
    bad("capacity_multiples must hold 1 .. 4096 points, got " +
        std::to_string(capacity_multiples.size()));
  for (std::size_t i = 0; i < capacity_multiples.size(); ++i) {
    const double m = capacity_multiples[i];
    if (!(std::isfinite(m) && m > 0 && m <= bound_multiple))
      bad("capacity_multiples[" + std::to_string(i) + "] must be in (0, bound_multiple], got " +
          std::to_string(m));
    if (i > 0 && !(m > capacity_multiples[i - 1]))
      bad("capacity_multiples must be strictly increasing (index " + std::to_string(i) + ")");
  }
}

// ---- MissRatioCurve ----

namespace {
double share(double part, std::uint64_t whole) noexcept {
  return whole == 0 ? 0.0 : part / static_cast<double>(whole);
}
}  // namespace

double MissRatioCurve::block_hit_ratio(const MrcPoint& p) const noexcept {
  return share(static_cast<double>(p.prefix_hit_blocks), references);
}
double MissRatioCurve::token_hit_ratio(const MrcPoint& p) const noexcept {
  return share(static_cast<double>(p.prefix_hit_tokens), tokens);
}
double MissRatioCurve::any_hit_ratio(const MrcPoint& p) const noexcept {
  return share(static_cast<double>(p.any_hit_blocks), references);
}
double MissRatioCurve::aet_hit_ratio(const MrcPoint& p) const noexcept {
  return share(p.aet_hit_blocks, references);
}

MissRatioCurve& MissRatioCurve::operator+=(const MissRatioCurve& other) {
  const bool same_points =
      points.size() == other.points.size() &&
      std::equal(points.begin(), points.end(), other.points.begin(),
                 [](const MrcPoint& a, const MrcPoint& b) { return a.multiple == b.multiple; });
  if (!same_points || touch_order != other.touch_order)
    throw std::invalid_argument("kvscope: merging miss-ratio curves of different points or order");
  capacity_blocks += other.capacity_blocks;
  bound_blocks += other.bound_blocks;
  requests += other.requests;
  references += other.references;
  tokens += other.tokens;
  shards += other.shards;
  has_aet = has_aet && other.has_aet;
  for (std::size_t i = 0; i < points.size(); ++i) {
    MrcPoint& p = points[i];
    const MrcPoint& q = other.points[i];
    p.capacity_blocks += q.capacity_blocks;
    p.prefix_hit_blocks += q.prefix_hit_blocks;
    p.any_hit_blocks += q.any_hit_blocks;
    p.prefix_hit_tokens += q.prefix_hit_tokens;
    p.aet_hit_blocks += q.aet_hit_blocks;
  }
  return *this;
}

// ---- StackDistanceTracker ----

StackDistanceTracker::StackDistanceTracker(std::uint32_t capacity, const MissRatioConfig& config)
    : capacity_(capacity), config_(config) {
  if (capacity == 0)
    throw std::invalid_argument("kvscope: StackDistanceTracker capacity must be >= 1 block");
  config_.validate();
  bound_ = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(config_.bound_multiple * capacity)));
  prefix_blocks_.assign(bound_ + 1, 0);
  any_blocks_.assign(bound_ + 1, 0);
  prefix_tokens_.assign(bound_ + 1, 0);
  fenwick_.assign(1024 + 1, 0);
  slot_owner_.assign(1024, kNone);
  // Reuse times up to 2^40 references at 0.78% buckets.
  if (config_.estimate_aet) reuse_times_.emplace(HistogramLayout{(std::uint64_t{1} << 40) - 1, 7});
}

std::uint64_t StackDistanceTracker::offset_in(const Segment& s,
                                              std::uint32_t depth) const noexcept {
  return config_.touch_order == TouchOrder::leaf_to_root ? depth - s.start : s.end - 1 - depth;
}

std::uint64_t StackDistanceTracker::touch_index(std::uint32_t depth,
                                                std::uint32_t chain_len) const noexcept {
  return config_.touch_order == TouchOrder::leaf_to_root ? chain_len - 1 - depth : depth;
}

std::uint64_t StackDistanceTracker::above(const Segment& s) const noexcept {
  return live_ - fenwick_prefix(s.slot);
}

void StackDistanceTracker::fenwick_add(std::uint32_t slot, std::int64_t delta) noexcept {
  for (std::size_t i = slot + 1; i < fenwick_.size(); i += i & (~i + 1)) fenwick_[i] += delta;
}

std::uint64_t StackDistanceTracker::fenwick_prefix(std::uint32_t slot) const noexcept {
  std::int64_t sum = 0;
  for (std::size_t i = slot + 1; i > 0; i &= i - 1) sum += fenwick_[i];
  return static_cast<std::uint64_t>(sum);
}

/// The segment whose first live block is `key` at `depth`, or kNone. A chain
/// enters a segment only at the segment's first live block: everything above
/// it in that chain was touched later, by a newer request.
std::uint32_t StackDistanceTracker::find_run_start(std::uint64_t key, std::uint32_t depth) const {
  const auto id = first_key_.find(key);
  if (!id) return kNone;
  const Segment& s = segments_[*id];
  const bool starts_here = s.start == depth && s.start < s.end && s.key_at(depth) == key;
  return starts_here ? *id : kNone;
}

namespace {

// The counts by position are kept as difference arrays (count[v] is the sum
// of diff[0..v]): a run of consecutive positions is then two additions,
// whatever its length. Unsigned wrap-around makes the negative steps exact.
void add_range(std::vector<std::uint64_t>& diff, std::uint64_t from, std::uint64_t to,
               std::uint64_t amount) noexcept {
  diff[from] += amount;
  diff[to] -= amount;
}

void add_point(std::vector<std::uint64_t>& diff, std::uint64_t at, std::uint64_t amount) noexcept {
  add_range(diff, at, at + 1, amount);
}

}  // namespace

/// Counts the run [begin, end) of a request's chain found in segment `s`
/// (whose top is at position `top`). Positions along the run are
/// consecutive: rising with depth when touched leaf-to-root, falling when
/// touched root-to-leaf. A block's prefix position is the largest position
/// at or before it in the chain.
void StackDistanceTracker::count_run(const Segment& s, std::uint64_t top, std::uint32_t begin,
                                     std::uint32_t end, Walk& walk) {
  const std::uint32_t stop = std::min(end, walk.hittable);
  if (begin >= stop) return;
  const std::uint64_t len = stop - begin;
  const bool rising = config_.touch_order == TouchOrder::leaf_to_root;
  const std::uint64_t first = top + offset_in(s, begin);
  const std::uint64_t lo = rising ? first : first - (len - 1);
  const std::uint64_t hi = lo + len - 1;
  add_range(any_blocks_, lo, hi + 1, 1);
  if (reuse_times_) {
    // Both the request and the segment's request touch the chain in the
    // same order, so every block of the run has the same reuse time.
    const std::uint64_t now = clock_ + touch_index(begin, walk.chain_len);
    const std::uint64_t then = s.pushed_at + touch_index(begin, s.pushed_len);
    reuse_times_->record_n(now - then, len);
  }
  if (walk.prefix_cold) return;

  const std::uint64_t before = walk.prefix_max;
  const std::uint64_t bt = walk.block_tokens;
  // The running maximum at `depth`: falling runs peak at their first block.
  auto prefix_position = [&](std::uint32_t depth) {
    return std::max(before, rising ? lo + (depth - begin) : hi);
  };
  if (rising) {
    // Blocks at or above `before` count there; the rest at their own position.
    const std::uint64_t flat = before >= lo ? std::min(before - lo + 1, len) : 0;
    if (flat > 0) {
      add_point(prefix_blocks_, before, flat);
      add_point(prefix_tokens_, before, flat * bt);
    }
    if (flat < len) {
      add_range(prefix_blocks_, lo + flat, hi + 1, 1);
      add_range(prefix_tokens_, lo + flat, hi + 1, bt);
    }
  } else {
    add_point(prefix_blocks_, std::max(before, hi), len);
    add_point(prefix_tokens_, std::max(before, hi), len * bt);
  }
  // A trailing partial block weighs less than block_tokens.
  for (std::uint32_t depth = std::max(begin, walk.full_blocks); depth < stop; ++depth) {
    const std::uint64_t start_token = std::uint64_t{depth} * bt;
    const std::uint64_t weight =
        start_token < walk.request_tokens ? std::min(bt, walk.request_tokens - start_token) : 0;
    add_point(prefix_tokens_, prefix_position(depth), weight - bt);
  }
  walk.prefix_max = std::max(before, hi);
}

void StackDistanceTracker::record(std::span<const BlockHash> blocks, std::uint32_t request_tokens,
                                  std::uint32_t block_tokens, std::uint32_t hittable_blocks) {
  ++requests_;
  tokens_ += request_tokens;
  const auto chain_len = static_cast<std::uint32_t>(blocks.size());
  if (chain_len == 0) return;
  references_ += chain_len;
  // The request's own segment, taken first so the keys are folded straight
  // into it and no segment moves while the walk below holds a reference.
  const std::uint32_t fresh = acquire_segment();
  std::vector<std::uint64_t>& keys = segments_[fresh].keys;
  keys.resize(chain_len);
  for (std::uint32_t i = 0; i < chain_len; ++i) keys[i] = detail::fold(blocks[i]);

  // Positions before the request touches anything: the chain crosses a few
  // segments, entering each at its first live block and following it while
  // the keys agree.
  Walk walk{.chain_len = chain_len,
            .hittable = std::min(hittable_blocks, chain_len),
            .block_tokens = block_tokens,
            .request_tokens = request_tokens,
            .full_blocks = block_tokens == 0 ? chain_len : request_tokens / block_tokens};
  runs_.clear();
  for (std::uint32_t depth = 0; depth < chain_len;) {
    const std::uint32_t id = find_run_start(keys[depth], depth);
    if (id == kNone) {
      walk.prefix_cold = walk.prefix_cold || depth < walk.hittable;
      // Leaf-to-root touching keeps a chain's positions non-decreasing with
      // depth, so below a cold block every block is cold too.
      if (config_.touch_order == TouchOrder::leaf_to_root) break;
      ++depth;
      continue;
    }
    const Segment& s = segments_[id];
    const std::uint32_t limit = std::min(s.end, chain_len);
    std::uint32_t end = depth + 1;
    while (end < limit && s.key_at(end) == keys[end]) ++end;
    runs_.push_back(Run{id, depth, end});
    count_run(s, above(s), depth, end, walk);
    depth = end;
  }
  take_runs();
  push_chain(fresh, chain_len);
  trim_to_bound();
}

void StackDistanceTracker::take_runs() {
  for (const Run& run : runs_) {
    Segment& s = segments_[run.segment];
    shrink_front(s, run.segment, run.end - run.begin);
  }
}

/// Drops the index entry of the segment's first live block, if it names
/// this segment (a malformed chain may have re-pointed it elsewhere).
void StackDistanceTracker::forget_first_key(const Segment& s, std::uint32_t id) {
  const std::uint64_t key = s.key_at(s.start);
  const auto owner = first_key_.find(key);
  if (owner && *owner == id) first_key_.erase(key);
}

/// Takes `count` blocks the segment just lost out of the stack's totals.
void StackDistanceTracker::untrack(const Segment& s, std::uint32_t count) noexcept {
  fenwick_add(s.slot, -static_cast<std::int64_t>(count));
  live_ -= count;
}

/// Removes `count` blocks from the segment's start (its shallowest depths),
/// keeping the first-key index and the Fenwick tree in step.
void StackDistanceTracker::shrink_front(Segment& s, std::uint32_t id, std::uint32_t count) {
  forget_first_key(s, id);
  s.start += count;
  untrack(s, count);
  if (s.start >= s.end) {
    release(id);
    return;
  }
  first_key_.insert_or_assign(s.key_at(s.start), id);
  if (s.keys.size() > 64 && s.size() < s.keys.size() / 4) {  // give back a mostly dead chain
    s.keys.erase(s.keys.begin(), s.keys.begin() + (s.start - s.base));
    s.keys.resize(s.size());
    s.keys.shrink_to_fit();
    s.base = s.start;
  }
}

void StackDistanceTracker::release(std::uint32_t id) {
  Segment& s = segments_[id];
  slot_owner_[s.slot] = kNone;
  s.keys.clear();
  s.start = s.end = s.base = 0;
  free_segments_.push_back(id);
}

std::uint32_t StackDistanceTracker::acquire_segment() {
  if (free_segments_.empty()) {
    segments_.emplace_back();
    return static_cast<std::uint32_t>(segments_.size() - 1);
  }
  const std::uint32_t id = free_segments_.back();
  free_segments_.pop_back();
  return id;  // empty (start == end): no lookup can enter it
}

void StackDistanceTracker::push_chain(std::uint32_t id, std::uint32_t chain_len) {
  Segment& s = segments_[id];
  s.base = s.start = 0;
  s.end = s.pushed_len = chain_len;
  s.pushed_at = clock_;
  clock_ += chain_len;
  s.slot = new_slot(id);
  fenwick_add(s.slot, chain_len);
  live_ += chain_len;
  first_key_.insert_or_assign(s.keys[0], id);
}

std::uint32_t StackDistanceTracker::new_slot(std::uint32_t id) {
  if (next_slot_ == slot_owner_.size()) compact_slots();
  slot_owner_[next_slot_] = id;
  return next_slot_++;
}

/// Renumbers the live segments 0.. in push order and rebuilds the Fenwick
/// tree; doubles the slot space when more than half of it is live. O(slots),
/// once per at least slots/2 pushes.
void StackDistanceTracker::compact_slots() {
  std::vector<std::uint32_t> owners;
  for (std::uint32_t slot = oldest_slot_; slot < next_slot_; ++slot)
    if (slot_owner_[slot] != kNone) owners.push_back(slot_owner_[slot]);
  std::size_t slots = slot_owner_.size();
  if (owners.size() * 2 > slots) slots *= 2;
  slot_owner_.assign(slots, kNone);
  fenwick_.assign(slots + 1, 0);
  for (std::uint32_t slot = 0; slot < owners.size(); ++slot) {
    Segment& s = segments_[owners[slot]];
    s.slot = slot;
    slot_owner_[slot] = owners[slot];
    fenwick_[slot + 1] = s.size();
  }
  for (std::size_t i = 1; i < fenwick_.size(); ++i) {  // O(n) Fenwick build
    const std::size_t parent = i + (i & (~i + 1));
    if (parent < fenwick_.size()) fenwick_[parent] += fenwick_[i];
  }
  oldest_slot_ = 0;
  next_slot_ = static_cast<std::uint32_t>(owners.size());
}

/// Drops the deepest blocks (the oldest segments' bottoms) until at most
/// bound_ are tracked: they are at positions >= bound_, misses at every C.
void StackDistanceTracker::trim_to_bound() {
  while (live_ > bound_) {
    while (slot_owner_[oldest_slot_] == kNone) ++oldest_slot_;
    const std::uint32_t id = slot_owner_[oldest_slot_];
    Segment& s = segments_[id];
    const auto count =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(live_ - bound_, s.size()));
    if (config_.touch_order == TouchOrder::root_to_leaf) {
      shrink_front(s, id, count);  // the root end was touched first: it is the bottom
      continue;
    }
    s.end -= count;  // leaf-to-root: the deepest blocks are the chain's end
    untrack(s, count);
    if (s.start >= s.end) {
      forget_first_key(s, id);
      release(id);
    }
  }
}

void StackDistanceTracker::clear_stack() {
  segments_.clear();
  free_segments_.clear();
  first_key_ = detail::FlatIndex();
  std::fill(fenwick_.begin(), fenwick_.end(), 0);
  std::fill(slot_owner_.begin(), slot_owner_.end(), kNone);
  next_slot_ = oldest_slot_ = 0;
  live_ = 0;
}

std::vector<MrcPoint> StackDistanceTracker::points_at(
    std::span<const std::uint64_t> capacities) const {
  std::vector<MrcPoint> points;
  points.reserve(capacities.size());
  MrcPoint running;
  std::uint64_t prefix_blocks = 0, any_blocks = 0, prefix_tokens = 0;  // counts at `position`
  std::uint64_t position = 0;
  for (const std::uint64_t c : capacities) {
    const std::uint64_t until = std::min(c, bound_);
    for (; position < until; ++position) {
      prefix_blocks += prefix_blocks_[position];
      any_blocks += any_blocks_[position];
      prefix_tokens += prefix_tokens_[position];
      running.prefix_hit_blocks += prefix_blocks;
      running.any_hit_blocks += any_blocks;
      running.prefix_hit_tokens += prefix_tokens;
    }
    running.capacity_blocks = c;
    points.push_back(running);
  }
  if (reuse_times_) {
    const auto ratios = aet_hit_ratios(*reuse_times_, references_, capacities);
    for (std::size_t i = 0; i < points.size(); ++i)
      points[i].aet_hit_blocks = ratios[i] * static_cast<double>(references_);
  }
  return points;
}

MissRatioCurve StackDistanceTracker::curve() const {
  std::vector<std::uint64_t> capacities;
  for (const double m : config_.capacity_multiples)
    capacities.push_back(static_cast<std::uint64_t>(m * capacity_));
  MissRatioCurve curve;
  curve.capacity_blocks = capacity_;
  curve.bound_blocks = bound_;
  curve.requests = requests_;
  curve.references = references_;
  curve.tokens = tokens_;
  curve.has_aet = reuse_times_.has_value();
  curve.touch_order = config_.touch_order;
  curve.points = points_at(capacities);
  for (std::size_t i = 0; i < curve.points.size(); ++i)
    curve.points[i].multiple = config_.capacity_multiples[i];
  return curve;
}

std::size_t StackDistanceTracker::memory_bytes() const noexcept {
  std::size_t bytes = (prefix_blocks_.size() + any_blocks_.size() + prefix_tokens_.size()) * 8 +
                      fenwick_.size() * 8 + slot_owner_.size() * 4 + first_key_.memory_bytes() +
                      segments_.capacity() * sizeof(Segment);
  for (const Segment& s : segments_) bytes += s.keys.capacity() * 8;
  if (reuse_times_) bytes += reuse_times_->memory_bytes();
  return bytes;
}

// ---- AET ----

std::vector<double> aet_hit_ratios(const Histogram& reuse_times, std::uint64_t references,
                                   std::span<const std::uint64_t> capacities) {
  // P(t) = share of references whose reuse time exceeds t (cold ones never
  // reuse). The cache of size c evicts after T references, where the area
  // under P from 0 to T is c; a reference hits iff its reuse time is <= T.
  // Within a bucket the reuse times are taken as evenly spread, so P falls
  // linearly across it and the area is solved in closed form.
  std::vector<double> out(capacities.size(), 0.0);
  if (references == 0) return out;
  const double n = static_cast<double>(references);
  std::size_t next = 0;
  double area = 0, reused = 0, t = 0;  // reused: references with reuse time <= t
  for (std::uint32_t b = 0; b < reuse_times.bucket_count() && next < capacities.size(); ++b) {
    const std::uint64_t count = reuse_times.count_in_bucket(b);
    if (count == 0) continue;
    const double lo = static_cast<double>(reuse_times.bucket_lower(b)) - 1;  // P falls after lo
    const double hi = static_cast<double>(reuse_times.bucket_upper(b));
    // Flat stretch (t, lo]: P constant.
    const double p0 = 1 - reused / n;
    while (next < capacities.size() &&
           area + (lo - t) * p0 >= static_cast<double>(capacities[next]))
      out[next++] = reused / n;
    area += (lo - t) * p0;
    // Sloped stretch (lo, hi]: P from p0 down to p1.
    const double width = hi - lo, slope = static_cast<double>(count) / n / width;
    for (; next < capacities.size(); ++next) {
      const double need = static_cast<double>(capacities[next]) - area;
      if (need > width * (p0 + p0 - slope * width) / 2) break;
      // Solve p0 x - slope x^2 / 2 = need for x in [0, width].
      const double x = slope > 0
                           ? (p0 - std::sqrt(std::max(0.0, p0 * p0 - 2 * slope * need))) / slope
                           : need / p0;
      out[next] = (reused + slope * n * x) / n;
    }
    area += width * (p0 + p0 - slope * width) / 2;
    reused += static_cast<double>(count);
    t = hi;
  }
  // Past the last reuse time P is the cold share: larger caches gain nothing.
  for (; next < capacities.size(); ++next) out[next] = reused / n;
  return out;
}

}  // namespace kvscope
