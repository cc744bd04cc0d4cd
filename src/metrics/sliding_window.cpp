#include "kvscope/metrics/sliding_window.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace kvscope {
namespace {

constexpr std::uint32_t kMaxSlots = 100'000;

// Absolute slot index of a time: floor(t / resolution), also for t < 0.
std::int64_t slot_index(Timestamp t, std::chrono::nanoseconds resolution) {
  const std::int64_t q = t.count() / resolution.count();
  return (t.count() % resolution.count() < 0) ? q - 1 : q;
}

std::uint32_t ring_position(std::int64_t slot, std::uint32_t slots) {
  const std::int64_t r = slot % static_cast<std::int64_t>(slots);
  return static_cast<std::uint32_t>(r < 0 ? r + slots : r);
}

// Walks the slots that expire when the newest slot moves from `newest` to
// `target`: calls expire(ring position) for each, or clear_all() when the
// whole window expires. The first time seen (`started` false) only sets the
// newest slot. Returns the new newest slot.
template <class Expire, class ClearAll>
std::int64_t expire_slots(bool& started, std::int64_t newest, std::int64_t target,
                          std::uint32_t slots, Expire expire, ClearAll clear_all) {
  if (!started) {
    started = true;
    return target;
  }
  if (target <= newest) return newest;  // stale or same slot: nothing expires
  if (target - newest >= slots) {
    clear_all();
  } else {
    for (std::int64_t s = newest + 1; s <= target; ++s) expire(ring_position(s, slots));
  }
  return target;
}

}  // namespace

void WindowConfig::validate() const {
  if (resolution.count() <= 0) {
    throw std::invalid_argument("kvscope: window resolution must be positive");
  }
  if (window < resolution) {
    throw std::invalid_argument("kvscope: window (" + std::to_string(window.count()) +
                                " ns) is shorter than its resolution (" +
                                std::to_string(resolution.count()) + " ns)");
  }
  if (window % resolution != std::chrono::nanoseconds{0}) {
    throw std::invalid_argument("kvscope: window must be a whole multiple of its resolution");
  }
  if (window / resolution > kMaxSlots) {
    throw std::invalid_argument("kvscope: window / resolution must be at most " +
                                std::to_string(kMaxSlots) + " slots");
  }
}

// ---------------------------------------------------------------- SlidingCounters

SlidingCounters::SlidingCounters(WindowConfig config, std::size_t fields)
    : config_((config.validate(), config)), fields_(fields), slots_(config.slots()) {
  if (fields == 0) throw std::invalid_argument("kvscope: SlidingCounters needs at least one field");
  cells_.assign(std::size_t{slots_} * fields_, 0);
  totals_.assign(fields_, 0);
}

void SlidingCounters::advance(Timestamp now) {
  newest_slot_ = expire_slots(
      started_, newest_slot_, slot_index(now, config_.resolution), slots_,
      [&](std::uint32_t pos) {
        for (std::size_t f = 0; f < fields_; ++f) {
          totals_[f] -= cell(pos, f);
          cell(pos, f) = 0;
        }
      },
      [&] { clear(); });
}

void SlidingCounters::add(Timestamp now, std::size_t field, std::uint64_t amount) {
  advance(now);
  cell(ring_position(newest_slot_, slots_), field) += amount;
  totals_[field] += amount;
}

std::uint64_t SlidingCounters::sum(Timestamp now, std::size_t field) {
  advance(now);
  return totals_[field];
}

std::uint64_t SlidingCounters::sum_over(Timestamp now, std::chrono::nanoseconds span,
                                        std::size_t field) {
  advance(now);
  const std::int64_t wanted =
      (span.count() + config_.resolution.count() - 1) / config_.resolution.count();
  const auto n = static_cast<std::uint32_t>(std::clamp<std::int64_t>(wanted, 0, slots_));
  if (n == slots_) return totals_[field];
  std::uint64_t total = 0;
  for (std::uint32_t k = 0; k < n; ++k)
    total += cell(ring_position(newest_slot_ - k, slots_), field);
  return total;
}

double SlidingCounters::rate_per_second(Timestamp now, std::chrono::nanoseconds span,
                                        std::size_t field) {
  if (span.count() <= 0) throw std::invalid_argument("kvscope: rate span must be positive");
  const auto clamped = std::min(span, config_.window);
  const double seconds = std::chrono::duration<double>(clamped).count();
  return static_cast<double>(sum_over(now, clamped, field)) / seconds;
}

void SlidingCounters::clear() {
  std::fill(cells_.begin(), cells_.end(), 0);
  std::fill(totals_.begin(), totals_.end(), 0);
}

std::size_t SlidingCounters::memory_bytes() const noexcept {
  return (cells_.size() + totals_.size()) * sizeof(std::uint64_t);
}

// ---------------------------------------------------------------- SlidingHistogram

SlidingHistogram::SlidingHistogram(WindowConfig config, HistogramLayout layout)
    : config_((config.validate(), config)),
      slots_(config.slots()),
      ring_(config.slots(), Histogram(layout)),
      total_(layout) {}

void SlidingHistogram::advance(Timestamp now) {
  newest_slot_ = expire_slots(
      started_, newest_slot_, slot_index(now, config_.resolution), slots_,
      [&](std::uint32_t pos) {
        if (ring_[pos].count() == 0) return;
        total_.subtract(ring_[pos]);
        ring_[pos].clear();
      },
      [&] { clear(); });
}

void SlidingHistogram::record(Timestamp now, std::uint64_t value) {
  advance(now);
  ring_[ring_position(newest_slot_, slots_)].record(value);
  total_.record(value);
}

Histogram SlidingHistogram::window(Timestamp now) {
  advance(now);
  Histogram snapshot = total_;
  if (snapshot.count_ == 0) return snapshot;
  // The running sum only knows its extremes at bucket resolution; the slots
  // know them exactly.
  snapshot.min_ = UINT64_MAX;
  snapshot.max_ = 0;
  for (const Histogram& slot : ring_) {
    if (slot.count() == 0) continue;
    snapshot.min_ = std::min(snapshot.min_, slot.min());
    snapshot.max_ = std::max(snapshot.max_, slot.max());
  }
  return snapshot;
}

void SlidingHistogram::clear() {
  for (Histogram& slot : ring_) slot.clear();
  total_.clear();
}

std::size_t SlidingHistogram::memory_bytes() const noexcept {
  return (ring_.size() + 1) * total_.memory_bytes();
}

// ---------------------------------------------------------------- RequestCountWindow

RequestCountWindow::RequestCountWindow(std::uint64_t max_requests) : max_requests_(max_requests) {
  if (max_requests == 0) {
    throw std::invalid_argument("kvscope: RequestCountWindow max_requests must be >= 1");
  }
}

void RequestCountWindow::observe(const QueryCounts& update, bool reset) {
  if (reset) this->reset();
  if (update.requests == 0) return;
  push_back(update);
  totals_ += update;
  while (count_ > 1 && totals_.requests > max_requests_) {
    totals_ -= ring_[head_];
    pop_front();
  }
}

void RequestCountWindow::push_back(const QueryCounts& update) {
  if (count_ == ring_.size()) {  // full: double, oldest first again
    std::vector<QueryCounts> bigger(std::max<std::size_t>(16, 2 * ring_.size()));
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = ring_[(head_ + i) & (ring_.size() - 1)];
    ring_ = std::move(bigger);
    head_ = 0;
  }
  ring_[(head_ + count_) & (ring_.size() - 1)] = update;  // sizes are powers of two
  ++count_;
}

void RequestCountWindow::pop_front() noexcept {
  head_ = (head_ + 1) & (ring_.size() - 1);
  --count_;
}

void RequestCountWindow::reset() noexcept {
  head_ = 0;
  count_ = 0;
  totals_ = QueryCounts{};
}

}  // namespace kvscope
