// kvscope/metrics/histogram.hpp - log-linear (HDR-style) histogram.
//
// Records non-negative integer values (nanoseconds, bytes, counts) into
// buckets whose width is at most 2^-precision_bits of the value: values below
// 2^precision_bits are exact; above, each power of two is cut into
// 2^precision_bits equal sub-buckets. With the default 7 bits (128
// sub-buckets) a bucket is at most 0.78% wide and a quantile reported as its
// bucket's midpoint is within 0.39% of a true sample (no rank error). Values
// above max_value are clamped into the last bucket and counted in
// overflow_count(); exact min, max and sum are kept aside, so mean() and
// max() are exact.
//
// Memory: 8 bytes per bucket; the default range 1 ns .. 2^36 ns (68.7 s) at 7
// bits is 3,840 buckets = 30 KiB. Record is O(1) (a count-leading-zeros and an
// increment); quantile queries walk the buckets, O(buckets). merge() is exact
// for histograms of equal layout.
//
// Thread rules: single writer, no locks. Copy or merge on the owning thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvscope {

struct HistogramLayout {
  std::uint64_t max_value =
      (std::uint64_t{1} << 36) - 1;  ///< largest value kept apart from overflow
  std::uint32_t precision_bits = 7;  ///< sub-buckets per power of two = 2^precision_bits; 1 .. 12

  /// Throws std::invalid_argument (max_value 0, precision outside 1..12).
  void validate() const;
  friend bool operator==(const HistogramLayout&, const HistogramLayout&) = default;
};

class Histogram {
 public:
  /// Throws std::invalid_argument on a bad layout.
  explicit Histogram(HistogramLayout layout = {});

  /// O(1). Values above layout().max_value go to the last bucket (and overflow_count()).
  void record(std::uint64_t value) noexcept { record_n(value, 1); }
  void record_n(std::uint64_t value, std::uint64_t times) noexcept;

  /// Adds every sample of `other`. Throws std::invalid_argument on a different layout.
  void merge(const Histogram& other);
  /// Removes samples previously merged or recorded (sliding windows). Precondition:
  /// every bucket of `other` is <= this one's. min()/max() of what is left are
  /// no longer exact: they become bounds at bucket resolution (SlidingHistogram
  /// restores exact extremes over a window).
  void subtract(const Histogram& other);
  void clear() noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t overflow_count() const noexcept { return overflow_; }
  /// Exact sum of recorded values (saturates at 2^64-1).
  std::uint64_t sum() const noexcept { return sum_; }
  /// The sum as a double: sum() up to 2^53, rounded beyond, and it never
  /// saturates. Weighted records (record_n with large counts, e.g. residency
  /// samples standing for 2^14 blocks) reach 2^64 ns within hours; exports
  /// and mean() use this one.
  double sum_as_double() const noexcept { return sum_f_; }
  /// sum_as_double() / count(); 0 when empty.
  double mean() const noexcept;
  /// Exact smallest / largest recorded value; 0 when empty.
  std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  /// The q-quantile, q in [0, 1]: the midpoint of the bucket holding the
  /// sample of rank ceil(q * count), clamped to [min(), max()]; exactly min()
  /// for q == 0 and max() for q == 1; 0 when empty. O(buckets). Throws
  /// std::invalid_argument for q outside [0, 1] or NaN.
  std::uint64_t quantile(double q) const;

  /// Bucket index of a value (the last bucket for values above max_value), and
  /// the range [lower, upper] a bucket covers.
  std::uint32_t bucket_of(std::uint64_t value) const noexcept;
  std::uint64_t bucket_lower(std::uint32_t bucket) const noexcept;
  std::uint64_t bucket_upper(std::uint32_t bucket) const noexcept;
  std::uint32_t bucket_count() const noexcept { return static_cast<std::uint32_t>(counts_.size()); }
  std::uint64_t count_in_bucket(std::uint32_t bucket) const { return counts_.at(bucket); }
  /// Samples <= bound (bucket-resolution: counts whole buckets whose upper
  /// end is <= bound; overflowed samples count only once bound >= max()).
  /// For exporting cumulative buckets at fixed bounds. O(buckets).
  std::uint64_t count_at_or_below(std::uint64_t bound) const noexcept;

  const HistogramLayout& layout() const noexcept { return layout_; }
  std::size_t memory_bytes() const noexcept { return counts_.size() * sizeof(std::uint64_t); }

 private:
  std::uint32_t raw_bucket(std::uint64_t value) const noexcept;  // no clamping

  friend class SlidingHistogram;  // restores exact extremes on window snapshots

  HistogramLayout layout_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t overflow_ = 0;
  std::uint64_t sum_ = 0;
  double sum_f_ = 0;  // the same sum, unsaturated
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace kvscope
