#include "kvscope/metrics/histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <stdexcept>

namespace kvscope {
namespace {

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t out;
  return __builtin_add_overflow(a, b, &out) ? UINT64_MAX : out;
}

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) noexcept {
  std::uint64_t out;
  return __builtin_mul_overflow(a, b, &out) ? UINT64_MAX : out;
}

}  // namespace

void HistogramLayout::validate() const {
  if (max_value == 0) throw std::invalid_argument("kvscope: histogram max_value must be >= 1");
  if (precision_bits < 1 || precision_bits > 12) {
    throw std::invalid_argument("kvscope: histogram precision_bits must be in 1..12, got " +
                                std::to_string(precision_bits));
  }
}

Histogram::Histogram(HistogramLayout layout) : layout_((layout.validate(), layout)) {
  counts_.assign(std::size_t{raw_bucket(layout_.max_value)} + 1, 0);
}

std::uint32_t Histogram::bucket_of(std::uint64_t value) const noexcept {
  return value > layout_.max_value ? bucket_count() - 1 : raw_bucket(value);
}

// Values below 2^P are their own bucket. Above, a value with highest set bit
// e falls in octave (e - P + 1) and sub-bucket (v >> (e - P)) - 2^P of it.
std::uint32_t Histogram::raw_bucket(std::uint64_t value) const noexcept {
  const std::uint32_t p = layout_.precision_bits;
  const std::uint64_t sub = std::uint64_t{1} << p;
  if (value < sub) return static_cast<std::uint32_t>(value);
  const auto shift = static_cast<std::uint32_t>(63 - std::countl_zero(value)) - p;
  return static_cast<std::uint32_t>((std::uint64_t{shift} + 1) * sub + ((value >> shift) - sub));
}

std::uint64_t Histogram::bucket_lower(std::uint32_t bucket) const noexcept {
  const std::uint32_t p = layout_.precision_bits;
  const std::uint64_t sub = std::uint64_t{1} << p;
  if (bucket < sub) return bucket;
  const std::uint64_t shift = bucket / sub - 1;
  return (bucket % sub + sub) << shift;
}

std::uint64_t Histogram::bucket_upper(std::uint32_t bucket) const noexcept {
  const std::uint64_t sub = std::uint64_t{1} << layout_.precision_bits;
  if (bucket < sub) return bucket;
  const std::uint64_t shift = bucket / sub - 1;
  return bucket_lower(bucket) + ((std::uint64_t{1} << shift) - 1);
}

void Histogram::record_n(std::uint64_t value, std::uint64_t times) noexcept {
  if (times == 0) return;
  if (value > layout_.max_value) {
    overflow_ += times;
    counts_.back() += times;
  } else {
    counts_[raw_bucket(value)] += times;
  }
  count_ += times;
  sum_ = saturating_add(sum_, saturating_mul(value, times));
  sum_f_ += static_cast<double>(value) * static_cast<double>(times);
  if (value < min_) min_ = value;
  if (value > max_) max_ = value;
}

void Histogram::merge(const Histogram& other) {
  if (!(other.layout_ == layout_)) {
    throw std::invalid_argument("kvscope: cannot merge histograms of different layouts");
  }
  for (std::size_t b = 0; b < counts_.size(); ++b) counts_[b] += other.counts_[b];
  count_ += other.count_;
  overflow_ += other.overflow_;
  sum_ = saturating_add(sum_, other.sum_);
  sum_f_ += other.sum_f_;
  if (other.count_ > 0) {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
}

void Histogram::subtract(const Histogram& other) {
  if (!(other.layout_ == layout_)) {
    throw std::invalid_argument("kvscope: cannot subtract histograms of different layouts");
  }
  for (std::size_t b = 0; b < counts_.size(); ++b) counts_[b] -= other.counts_[b];
  count_ -= other.count_;
  overflow_ -= other.overflow_;
  sum_ -= std::min(sum_, other.sum_);
  sum_f_ = std::max(0.0, sum_f_ - other.sum_f_);
  if (count_ == 0) {
    clear();
    return;
  }
  // The exact extremes of what is left are unknown; keep bounds that stay
  // true at bucket resolution.
  std::uint32_t first = 0;
  while (counts_[first] == 0) ++first;
  std::uint32_t last = bucket_count() - 1;
  while (counts_[last] == 0) --last;
  min_ = std::max(min_, bucket_lower(first));
  if (overflow_ == 0) max_ = std::min(max_, bucket_upper(last));
}

void Histogram::clear() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = overflow_ = sum_ = max_ = 0;
  sum_f_ = 0;
  min_ = UINT64_MAX;
}

double Histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : sum_f_ / static_cast<double>(count_);
}

std::uint64_t Histogram::quantile(double q) const {
  if (!(q >= 0.0 && q <= 1.0)) {
    throw std::invalid_argument("kvscope: quantile must be in [0, 1], got " + std::to_string(q));
  }
  if (count_ == 0) return 0;
  if (q == 0.0) return min();
  if (q == 1.0) return max();
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::uint32_t b = 0; b < bucket_count(); ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      const std::uint64_t lower = bucket_lower(b);
      const std::uint64_t mid = lower + (bucket_upper(b) - lower) / 2;
      return std::clamp(mid, min(), max());
    }
  }
  return max();
}

// Whole buckets whose upper end is <= bound. The last bucket also holds the
// overflow (values above max_value): those count only once bound >= max().
std::uint64_t Histogram::count_at_or_below(std::uint64_t bound) const noexcept {
  std::uint64_t total = 0;
  const std::uint32_t last = bucket_count() - 1;
  for (std::uint32_t b = 0; b <= last && bucket_upper(b) <= bound; ++b) total += counts_[b];
  if (bucket_upper(last) <= bound && overflow_ > 0 && bound < max_) total -= overflow_;
  return total;
}

}  // namespace kvscope
