#include "kvscope/metrics/block_residency.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

#include "detail/hash_mix.hpp"
#include "detail/units.hpp"

namespace kvscope {

// ---------------------------------------------------------------- GhostTable

GhostTable::GhostTable(std::uint32_t capacity) : capacity_(capacity), index_(capacity) {
  if (capacity == 0) throw std::invalid_argument("kvscope: GhostTable capacity must be >= 1");
  fifo_.resize(capacity);
}

void GhostTable::record(const BlockHash& hash, std::uint64_t stamp, std::uint64_t weight) {
  const std::uint64_t key = detail::fold(hash);
  erase(hash);  // restamping moves the hash to the FIFO's young end
  Entry& slot = fifo_[next_];
  if (slot.live) index_.erase(slot.key);
  slot = Entry{key, stamp, weight, true};
  index_.insert_or_assign(key, next_);
  next_ = next_ + 1 == capacity_ ? 0 : next_ + 1;
}

std::optional<GhostTable::Refault> GhostTable::find(const BlockHash& hash,
                                                    std::uint64_t stamp_now) const {
  const auto pos = index_.find(detail::fold(hash));
  if (!pos) return std::nullopt;
  const Entry& entry = fifo_[*pos];
  return Refault{stamp_now >= entry.stamp ? stamp_now - entry.stamp : 0, entry.weight};
}

std::optional<std::uint64_t> GhostTable::refault_distance(const BlockHash& hash,
                                                          std::uint64_t stamp_now) const {
  const auto found = find(hash, stamp_now);
  if (!found) return std::nullopt;
  return found->distance;
}

void GhostTable::erase(const BlockHash& hash) {
  const std::uint64_t key = detail::fold(hash);
  const auto pos = index_.find(key);
  if (!pos) return;
  fifo_[*pos].live = false;
  index_.erase(key);
}

std::size_t GhostTable::memory_bytes() const noexcept {
  return fifo_.size() * sizeof(Entry) + index_.memory_bytes();
}

// ---------------------------------------------------------------- snapshot

ResidencySnapshot::ResidencySnapshot(const HistogramLayout& layout)
    : lifetime(layout), idle(layout), idle_since_free(layout), reuse_gap(layout) {}

double ResidencySnapshot::effective_sample_rate() const noexcept {
  return detail::ratio(sampled_blocks, estimated_allocations);
}

double ResidencySnapshot::never_reused_share() const noexcept {
  return detail::ratio(never_reused, estimated_evictions);
}

double ResidencySnapshot::hot_share() const noexcept {
  return detail::ratio(hot_blocks, estimated_evictions);
}

double ResidencySnapshot::thrash_share() const noexcept {
  return std::min(1.0, detail::ratio(refaults_within_capacity, misses_checked));
}

ResidencySnapshot& ResidencySnapshot::operator+=(const ResidencySnapshot& o) {
  // Merge histograms into copies first so a layout mismatch changes nothing.
  Histogram merged[] = {lifetime, idle, idle_since_free, reuse_gap, reuse_count, refault_distance};
  const Histogram* theirs[] = {&o.lifetime,  &o.idle,        &o.idle_since_free,
                               &o.reuse_gap, &o.reuse_count, &o.refault_distance};
  for (std::size_t i = 0; i < std::size(merged); ++i) merged[i].merge(*theirs[i]);
  lifetime = std::move(merged[0]);
  idle = std::move(merged[1]);
  idle_since_free = std::move(merged[2]);
  reuse_gap = std::move(merged[3]);
  reuse_count = std::move(merged[4]);
  refault_distance = std::move(merged[5]);
  sample_rate = std::max(sample_rate, o.sample_rate);
  sampled_blocks += o.sampled_blocks;
  estimated_allocations += o.estimated_allocations;
  evicted_blocks += o.evicted_blocks;
  estimated_evictions += o.estimated_evictions;
  reuse_gap_samples += o.reuse_gap_samples;
  refault_samples += o.refault_samples;
  released_uncached += o.released_uncached;
  never_reused += o.never_reused;
  hot_blocks += o.hot_blocks;
  hot_reuse_threshold = std::max(hot_reuse_threshold, o.hot_reuse_threshold);
  tracked_blocks += o.tracked_blocks;
  misses_checked += o.misses_checked;
  refaults += o.refaults;
  refaults_within_capacity += o.refaults_within_capacity;
  return *this;
}

// ---------------------------------------------------------------- tracker

namespace {

// The exponent of the highest power of two <= rate (rate in (0, 1]).
unsigned shift_at_most(double rate) {
  unsigned shift = 0;
  while (shift < BlockResidencyTracker::kMaxShift &&
         std::ldexp(1.0, -static_cast<int>(shift)) > rate) {
    ++shift;
  }
  return shift;
}

}  // namespace

BlockResidencyTracker::BlockResidencyTracker(PrefixCache& cache, const MetricsConfig& config)
    : cache_(&cache), config_((config.validate(), config)), stats_(config.residency_layout) {
  min_shift_ = shift_at_most(config.residency_sample_rate);
  shift_ = min_shift_;
  stats_.sample_rate = sample_rate();
  period_start_ = config_.effective_clock().now();
  thinning_state_ = config.residency_seed ^ 0x7468'696e'6e69'6e67;
  stats_.hot_reuse_threshold = config.hot_reuse_threshold;
  if (config.ghost_entries > 0) ghosts_.emplace(config.ghost_entries);
  events_.reserve(config.eviction_event_capacity);
  log_.reserve(kLogCapacity);
}

ObserverOptions BlockResidencyTracker::observer_options() const noexcept {
  ObserverOptions options;
  options.sample_rate = sample_rate();
  options.sample_seed = config_.residency_seed;
  options.clock = &config_.effective_clock();
  return options;
}

BlockResidencyTracker::BlockLife* BlockResidencyTracker::find(BlockId block) {
  const auto pos = watched_.find(block.value);
  return pos ? &lives_[*pos] : nullptr;
}

void BlockResidencyTracker::erase(BlockId block) {
  const auto pos = watched_.find(block.value);
  if (!pos) return;
  watched_.erase(block.value);
  free_lives_.push_back(*pos);
  --stats_.tracked_blocks;
}

// ---- hooks: log only (see the header) ----

void BlockResidencyTracker::log(const LoggedEvent& event) {
  log_.push_back(event);
  if (log_.size() == kLogCapacity) flush();
}

void BlockResidencyTracker::on_block_allocated(BlockId block, Timestamp now) {
  log({EventKind::allocated, static_cast<std::uint8_t>(shift_), block, now, {}, 0});
  ++period_watched_;
  ++logged_allocations_;
  steer(now);
}

void BlockResidencyTracker::on_block_hit(BlockId block, Timestamp now) {
  log({EventKind::hit, 0, block, now, {}, 0});
}

void BlockResidencyTracker::on_block_released(BlockId block, bool cached, Timestamp now) {
  log({cached ? EventKind::released : EventKind::released_uncached, 0, block, now, {}, 0});
}

void BlockResidencyTracker::on_block_uncached(BlockId block, const BlockHash& hash,
                                              UncacheCause cause, bool watched, Timestamp now) {
  if (!watched) return;
  const EventKind kind = cause == UncacheCause::reset ? EventKind::reset : EventKind::evicted;
  log({kind, 0, block, now, hash, cache_->stats().evictions});
}

void BlockResidencyTracker::check_refault(const BlockHash& missed) {
  if (ghosts_) {
    log({EventKind::miss, 0, BlockId{0}, Timestamp{0}, missed, cache_->stats().evictions});
  }
}

void BlockResidencyTracker::tick(Timestamp now) { steer(now); }

// ---- steering the sample rate ----

double BlockResidencyTracker::sample_rate() const noexcept {
  return std::ldexp(1.0, -static_cast<int>(shift_));
}

// Called at each watched allocation and tick.
//  - Over twice the target, with enough evidence (kSteerEvidence samples
//    over at least a millisecond, or kBurstEvidence in less: every block of
//    one operation carries the same timestamp, so one large request at a
//    light load must not read as a flood): lower the rate by the largest
//    power of two at most the excess.
//  - Under half of it over a whole period: raise it by the smallest power
//    of two at least the shortfall (to the highest rate if nothing was
//    watched). Either way the expected rate lands in [target, 2 x target).
//  - Too many watched blocks alive: lower it one step, and do not raise it
//    above half of the limit.
// A period ends at each decision and after a second, so the figures follow
// the load.
void BlockResidencyTracker::steer(Timestamp now) {
  const double target = config_.residency_watched_per_second;
  if (target <= 0.0) return;
  const double elapsed = std::chrono::duration<double>(now - period_start_).count();
  const double seconds = std::max(elapsed, 1e-6);
  const double observed = static_cast<double>(period_watched_) / seconds;
  const bool enough =
      period_watched_ >= kSteerEvidence && (elapsed >= 1e-3 || period_watched_ >= kBurstEvidence);
  // Ratios are clamped before the logarithm: no infinity reaches the cast.
  constexpr double kWidest = 0x1p40;
  int change = 0;
  if (enough && observed > 2.0 * target) {
    change = static_cast<int>(std::floor(std::log2(std::min(observed / target, kWidest))));
  } else if (seconds >= 1.0 && observed < 0.5 * target) {
    change = period_watched_ == 0
                 ? -static_cast<int>(kMaxShift)
                 : -static_cast<int>(std::ceil(std::log2(std::min(target / observed, kWidest))));
  }
  const std::uint64_t alive = stats_.tracked_blocks + logged_allocations_;  // an upper bound
  if (alive >= config_.residency_max_watched_blocks) change = std::max(change, 1);
  if (2 * alive >= config_.residency_max_watched_blocks) change = std::max(change, 0);
  if (change == 0 && seconds < 1.0) return;
  const int wanted = static_cast<int>(shift_) + change;
  set_shift(static_cast<unsigned>(
      std::clamp(wanted, static_cast<int>(min_shift_), static_cast<int>(kMaxShift))));
  period_start_ = now;
  period_watched_ = 0;
}

void BlockResidencyTracker::set_shift(unsigned shift) {
  if (shift == shift_) return;
  if (shift > shift_) thin(shift - shift_);
  shift_ = shift;
  stats_.sample_rate = sample_rate();
  cache_->set_observer_sample_rate(stats_.sample_rate);
}

void BlockResidencyTracker::flush() {
  for (const LoggedEvent& event : log_) apply(event);
  log_.clear();
  logged_allocations_ = 0;
}

// Keeps each watched block with probability 2^-steps (a coin per block)
// and multiplies the survivors' weights by 2^steps; the others stop being
// watched, in the cache too. Applies the log first so that every watched
// block has its record. O(watched blocks); runs only when the rate drops.
void BlockResidencyTracker::thin(unsigned steps) {
  flush();
  const std::uint64_t keep_below = steps >= 64 ? 0 : (~std::uint64_t{0} >> steps);
  thinned_.clear();
  thinned_.reserve(watched_.size());  // may throw: nothing changed yet
  watched_.for_each([&](std::uint64_t block, std::uint32_t pos) {
    BlockLife& life = lives_[pos];
    const bool keep = detail::splitmix64(thinning_state_) <= keep_below && life.shift + steps <= 62;
    if (keep) {
      life.shift = static_cast<std::uint8_t>(life.shift + steps);
    } else {
      thinned_.push_back(static_cast<std::uint32_t>(block));
    }
  });
  for (const std::uint32_t block : thinned_) {
    erase(BlockId{block});
    cache_->unwatch(BlockId{block});
  }
}

// ---- applying events ----

void BlockResidencyTracker::apply(const LoggedEvent& e) {
  if (e.kind == EventKind::allocated) return apply_allocated(e.block, e.shift, e.now);
  if (e.kind == EventKind::miss) return apply_miss(e.hash, e.stamp);
  BlockLife* life = find(e.block);
  if (life == nullptr) return;
  switch (e.kind) {
    case EventKind::hit:
      life->accesses[life->hits % life->accesses.size()] = e.now;
      ++life->hits;
      life->last_access = e.now;
      return;
    case EventKind::released: life->last_free = e.now; return;
    case EventKind::released_uncached:  // never hittable: no eviction to record
      ++stats_.released_uncached;
      erase(e.block);
      return;
    case EventKind::evicted:
    case EventKind::reset: {
      const std::uint64_t weight = std::uint64_t{1} << life->shift;
      record_eviction(e.block, e.hash, *life,
                      e.kind == EventKind::reset ? EvictionReason::reset : EvictionReason::capacity,
                      e.now);
      erase(e.block);  // `life` is not to be read after this
      if (ghosts_ && e.kind == EventKind::evicted) ghosts_->record(e.hash, e.stamp, weight);
      return;
    }
    case EventKind::allocated:
    case EventKind::miss: return;  // handled above
  }
}

void BlockResidencyTracker::apply_allocated(BlockId block, std::uint8_t shift, Timestamp now) {
  erase(block);  // defensive: a block is allocated only after its last story ended
  std::uint32_t pos;
  if (free_lives_.empty()) {
    pos = static_cast<std::uint32_t>(lives_.size());
    lives_.emplace_back();
  } else {
    pos = free_lives_.back();
    free_lives_.pop_back();
  }
  lives_[pos] = BlockLife{now, now, now, {}, 0, shift};
  watched_.insert_or_assign(block.value, pos);
  ++stats_.sampled_blocks;
  stats_.estimated_allocations += std::uint64_t{1} << shift;
  ++stats_.tracked_blocks;
}

void BlockResidencyTracker::apply_miss(const BlockHash& missed, std::uint64_t stamp) {
  ++stats_.misses_checked;
  const auto refault = ghosts_->find(missed, stamp);
  if (!refault) return;
  ++stats_.refault_samples;
  stats_.refaults += refault->weight;
  stats_.refault_distance.record_n(refault->distance, refault->weight);
  if (refault->distance <= cache_->num_blocks()) {
    stats_.refaults_within_capacity += refault->weight;
  }
  ghosts_->erase(missed);  // it is being admitted again
}

const ResidencySnapshot& BlockResidencyTracker::snapshot() {
  flush();
  return stats_;
}

void BlockResidencyTracker::record_eviction(BlockId block, const BlockHash& hash,
                                            const BlockLife& life, EvictionReason reason,
                                            Timestamp now) {
  EvictionEvent event;
  event.block = block;
  event.hash = hash;
  event.reason = reason;
  event.at = now;
  event.lifetime = now - life.birth;
  event.idle = now - life.last_access;
  event.idle_since_free = now - life.last_free;
  event.hits = life.hits;
  // Gaps between consecutive accesses still in the ring, oldest first.
  const std::uint32_t ring = static_cast<std::uint32_t>(life.accesses.size());
  const std::uint32_t kept = std::min(life.hits, ring);
  for (std::uint32_t k = 1; k < kept; ++k) {
    const Timestamp earlier = life.accesses[(life.hits - kept + k - 1) % ring];
    const Timestamp later = life.accesses[(life.hits - kept + k) % ring];
    event.reuse_gaps[event.reuse_gap_count++] = later - earlier;
  }

  const std::uint64_t weight = std::uint64_t{1} << life.shift;
  ++stats_.evicted_blocks;
  stats_.estimated_evictions += weight;
  stats_.never_reused += life.hits == 0 ? weight : 0;
  stats_.hot_blocks += life.hits >= config_.hot_reuse_threshold ? weight : 0;
  stats_.lifetime.record_n(detail::nanos(event.lifetime), weight);
  stats_.idle.record_n(detail::nanos(event.idle), weight);
  stats_.idle_since_free.record_n(detail::nanos(event.idle_since_free), weight);
  stats_.reuse_count.record_n(life.hits, weight);
  stats_.reuse_gap_samples += event.reuse_gap_count;
  for (std::uint8_t g = 0; g < event.reuse_gap_count; ++g) {
    stats_.reuse_gap.record_n(detail::nanos(event.reuse_gaps[g]), weight);
  }
  if (config_.eviction_event_capacity == 0) return;
  if (events_.size() < config_.eviction_event_capacity) {
    events_.push_back(event);
  } else {
    events_[next_event_] = event;
    next_event_ = (next_event_ + 1) % events_.size();
  }
}

std::vector<EvictionEvent> BlockResidencyTracker::recent_events() {
  flush();
  std::vector<EvictionEvent> ordered(events_.begin() + static_cast<std::ptrdiff_t>(next_event_),
                                     events_.end());
  ordered.insert(ordered.end(), events_.begin(),
                 events_.begin() + static_cast<std::ptrdiff_t>(next_event_));
  return ordered;
}

std::size_t BlockResidencyTracker::memory_bytes() const noexcept {
  const auto histogram_bytes = stats_.lifetime.memory_bytes() + stats_.idle.memory_bytes() +
                               stats_.idle_since_free.memory_bytes() +
                               stats_.reuse_gap.memory_bytes() + stats_.reuse_count.memory_bytes() +
                               stats_.refault_distance.memory_bytes();
  return sizeof(*this) + histogram_bytes + lives_.capacity() * sizeof(BlockLife) +
         free_lives_.capacity() * sizeof(std::uint32_t) + watched_.memory_bytes() +
         (ghosts_ ? ghosts_->memory_bytes() : 0) + events_.capacity() * sizeof(EvictionEvent) +
         log_.capacity() * sizeof(LoggedEvent) + thinned_.capacity() * sizeof(std::uint32_t);
}

}  // namespace kvscope
