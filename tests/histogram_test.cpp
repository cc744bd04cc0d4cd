// HistogramLayout / Histogram: bucket geometry, exact aggregates, overflow,
// quantile accuracy against an exact sort, merge/subtract and the JSON form.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "histogram_test_util.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/metrics/histogram.hpp"

namespace kvscope {
namespace {

using testing_util::expect_same_samples;

constexpr std::uint64_t kDefaultMax = (std::uint64_t{1} << 36) - 1;

HistogramLayout layout(std::uint64_t max_value, std::uint32_t precision_bits) {
  HistogramLayout l;
  l.max_value = max_value;
  l.precision_bits = precision_bits;
  return l;
}

Histogram histogram_of(const std::vector<std::uint64_t>& samples, HistogramLayout l = {}) {
  Histogram h(l);
  for (const std::uint64_t v : samples) h.record(v);
  return h;
}

std::vector<std::uint64_t> random_samples(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::lognormal_distribution<double> dist(std::log(500'000.0), 1.5);
  std::vector<std::uint64_t> out(n);
  for (auto& v : out) v = static_cast<std::uint64_t>(dist(rng));
  return out;
}

// ---------------------------------------------------------------- layout

TEST(HistogramLayout, DefaultIsValidAndCovers68SecondsAt7Bits) {
  const HistogramLayout l;
  EXPECT_NO_THROW(l.validate());
  EXPECT_EQ(l.max_value, kDefaultMax);
  EXPECT_EQ(l.precision_bits, 7u);
}

TEST(HistogramLayout, ValidateAcceptsPrecisionOneThroughTwelve) {
  for (std::uint32_t bits = 1; bits <= 12; ++bits) {
    EXPECT_NO_THROW(layout(kDefaultMax, bits).validate()) << bits;
  }
}

TEST(HistogramLayout, ValidateRejectsMaxValueZero) {
  EXPECT_THROW(layout(0, 7).validate(), std::invalid_argument);
}

TEST(HistogramLayout, ValidateRejectsPrecisionZeroAndThirteen) {
  EXPECT_THROW(layout(kDefaultMax, 0).validate(), std::invalid_argument);
  EXPECT_THROW(layout(kDefaultMax, 13).validate(), std::invalid_argument);
}

TEST(Histogram, ConstructorRejectsBadLayout) {
  EXPECT_THROW(Histogram(layout(0, 7)), std::invalid_argument);
  EXPECT_THROW(Histogram(layout(kDefaultMax, 0)), std::invalid_argument);
  EXPECT_THROW(Histogram(layout(kDefaultMax, 13)), std::invalid_argument);
}

// ---------------------------------------------------------------- bucket geometry

TEST(Histogram, DefaultLayoutHas3840BucketsIn30KiB) {
  const Histogram h;
  EXPECT_EQ(h.bucket_count(), 3840u);
  EXPECT_EQ(h.memory_bytes(), 30u * 1024u);
}

TEST(Histogram, ValuesBelowTwoToThePrecisionAreExact) {
  for (const std::uint32_t bits : {1u, 3u, 7u, 12u}) {
    const Histogram h(layout(kDefaultMax, bits));
    for (std::uint64_t v = 0; v < (std::uint64_t{1} << bits); ++v) {
      const std::uint32_t b = h.bucket_of(v);
      ASSERT_EQ(h.bucket_lower(b), v) << "bits " << bits;
      ASSERT_EQ(h.bucket_upper(b), v) << "bits " << bits;
    }
  }
}

TEST(Histogram, EachPowerOfTwoIsCutIntoEqualSubBuckets) {
  const Histogram h;  // 7 bits: [2^k, 2^(k+1)) in 128 buckets of width 2^(k-7)
  const std::uint32_t b1000 = h.bucket_of(1000);  // [512, 1024): width 4
  EXPECT_EQ(h.bucket_lower(b1000), 1000u);
  EXPECT_EQ(h.bucket_upper(b1000), 1003u);
  const std::uint32_t b257 = h.bucket_of(257);  // [256, 512): width 2
  EXPECT_EQ(h.bucket_lower(b257), 256u);
  EXPECT_EQ(h.bucket_upper(b257), 257u);
  const std::uint64_t big = (std::uint64_t{1} << 20) + 5;  // [2^20, 2^21): width 2^13
  const std::uint32_t bbig = h.bucket_of(big);
  EXPECT_EQ(h.bucket_lower(bbig), std::uint64_t{1} << 20);
  EXPECT_EQ(h.bucket_upper(bbig), (std::uint64_t{1} << 20) + 8191);
}

// Every bucket: contiguous with its neighbours, holds its own bounds, and is at
// most 2^-precision_bits of its smallest value wide.
TEST(Histogram, BucketsTileTheRangeWithWidthAtMostTwoToMinusPrecision) {
  for (const std::uint32_t bits : {1u, 4u, 7u, 12u}) {
    const Histogram h(layout(kDefaultMax, bits));
    const double max_ratio = std::ldexp(1.0, -static_cast<int>(bits));
    ASSERT_EQ(h.bucket_lower(0), 0u);
    for (std::uint32_t b = 0; b < h.bucket_count(); ++b) {
      const std::uint64_t lo = h.bucket_lower(b);
      const std::uint64_t hi = h.bucket_upper(b);
      ASSERT_LE(lo, hi) << "bits " << bits << " bucket " << b;
      if (b > 0) {
        ASSERT_EQ(lo, h.bucket_upper(b - 1) + 1) << "bits " << bits << " bucket " << b;
      }
      ASSERT_EQ(h.bucket_of(lo), b) << "bits " << bits;
      ASSERT_EQ(h.bucket_of(hi), b) << "bits " << bits;
      if (lo >= (std::uint64_t{1} << bits)) {
        ASSERT_LE(static_cast<double>(hi - lo + 1), static_cast<double>(lo) * max_ratio)
            << "bits " << bits << " bucket " << b << " [" << lo << ", " << hi << "]";
      } else {
        ASSERT_EQ(lo, hi) << "bits " << bits << " bucket " << b;
      }
    }
    EXPECT_GE(h.bucket_upper(h.bucket_count() - 1), kDefaultMax) << "bits " << bits;
  }
}

TEST(Histogram, BucketOfRandomValueLiesWithinItsBucketBounds) {
  const Histogram h;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100'000; ++i) {
    const std::uint64_t v = rng() >> (28 + i % 36);  // spread over every power of two
    const std::uint32_t b = h.bucket_of(v);
    ASSERT_LT(b, h.bucket_count());
    ASSERT_LE(h.bucket_lower(b), v);
    ASSERT_GE(h.bucket_upper(b), v);
  }
}

// ---------------------------------------------------------------- aggregates

TEST(Histogram, EmptyReportsZeros) {
  const Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.overflow_count(), 0u);
  EXPECT_EQ(h.quantile(0.0), 0u);
  EXPECT_EQ(h.quantile(0.5), 0u);
  EXPECT_EQ(h.quantile(1.0), 0u);
}

TEST(Histogram, CountSumMeanMinMaxAreExact) {
  Histogram h;
  for (const std::uint64_t v : {1'000u, 3u, 123'456'789u, 77u, 1'001u}) h.record(v);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(h.sum(), 123'458'870u);
  EXPECT_DOUBLE_EQ(h.mean(), 123'458'870.0 / 5.0);
  EXPECT_EQ(h.min(), 3u);
  EXPECT_EQ(h.max(), 123'456'789u);
  EXPECT_EQ(h.overflow_count(), 0u);
  // 1000 and 1001 share the bucket [1000, 1003].
  EXPECT_EQ(h.count_in_bucket(h.bucket_of(1'000)), 2u);
  EXPECT_EQ(h.count_in_bucket(h.bucket_of(3)), 1u);
}

TEST(Histogram, RecordNEqualsRepeatedRecord) {
  Histogram once;
  once.record_n(1'000, 5);
  once.record_n(7, 2);
  Histogram repeated;
  for (int i = 0; i < 5; ++i) repeated.record(1'000);
  for (int i = 0; i < 2; ++i) repeated.record(7);
  expect_same_samples(once, repeated);
  EXPECT_EQ(once.count(), 7u);
  EXPECT_EQ(once.sum(), 5'014u);
}

TEST(Histogram, SumSaturatesAtMaxUint64) {
  Histogram h;
  h.record_n(kDefaultMax, std::uint64_t{1} << 30);  // 2^66 - 2^30 > 2^64
  EXPECT_EQ(h.count(), std::uint64_t{1} << 30);
  EXPECT_EQ(h.sum(), std::numeric_limits<std::uint64_t>::max());
}

TEST(Histogram, ValuesAboveMaxValueAreOverflowInTheLastBucketWithExactMaxAndSum) {
  Histogram h;
  const std::uint64_t last = h.bucket_count() - 1;
  h.record(5);
  h.record(kDefaultMax);  // the largest value that is not overflow
  EXPECT_EQ(h.overflow_count(), 0u);
  h.record(kDefaultMax + 1);
  h.record(std::uint64_t{1} << 40);
  EXPECT_EQ(h.count(), 4u);
  EXPECT_EQ(h.overflow_count(), 2u);
  EXPECT_EQ(h.bucket_of(std::uint64_t{1} << 40), last);
  EXPECT_EQ(h.count_in_bucket(static_cast<std::uint32_t>(last)), 3u);
  EXPECT_EQ(h.max(), std::uint64_t{1} << 40);
  EXPECT_EQ(h.sum(), 5 + kDefaultMax + (kDefaultMax + 1) + (std::uint64_t{1} << 40));
  // The top quantile is clamped to the exact max.
  EXPECT_EQ(h.quantile(1.0), std::uint64_t{1} << 40);
}

TEST(Histogram, OverflowWithNonPowerOfTwoMaxValue) {
  Histogram h(layout(1'000, 7));
  h.record(1'000);
  EXPECT_EQ(h.overflow_count(), 0u);
  h.record(1'001);
  h.record(50'000);
  EXPECT_EQ(h.overflow_count(), 2u);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.max(), 50'000u);
  const std::uint32_t last = h.bucket_count() - 1;
  EXPECT_EQ(h.bucket_of(50'000), last);
  EXPECT_EQ(h.count_in_bucket(last), 2u + (h.bucket_of(1'000) == last ? 1u : 0u));
  EXPECT_EQ(h.quantile(1.0), 50'000u);
}

TEST(Histogram, ClearEmptiesEverythingAndKeepsTheLayout) {
  Histogram h(layout(1'000'000, 5));
  h.record(10);
  h.record(2'000'000);
  h.clear();
  EXPECT_EQ(h.layout(), layout(1'000'000, 5));
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.sum(), 0u);
  EXPECT_EQ(h.overflow_count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.quantile(0.5), 0u);
  for (std::uint32_t b = 0; b < h.bucket_count(); ++b) ASSERT_EQ(h.count_in_bucket(b), 0u);
  h.record(300);  // usable after clear, extremes restart
  EXPECT_EQ(h.min(), 300u);
  EXPECT_EQ(h.max(), 300u);
}

// ---------------------------------------------------------------- quantiles

TEST(Histogram, QuantileRejectsQOutsideZeroOneAndNaN) {
  Histogram h;
  h.record(10);
  EXPECT_THROW((void)h.quantile(-0.01), std::invalid_argument);
  EXPECT_THROW((void)h.quantile(1.01), std::invalid_argument);
  EXPECT_THROW((void)h.quantile(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  EXPECT_THROW((void)h.quantile(std::numeric_limits<double>::infinity()), std::invalid_argument);
  EXPECT_THROW((void)h.quantile(-std::numeric_limits<double>::infinity()), std::invalid_argument);
  EXPECT_NO_THROW((void)h.quantile(0.0));
  EXPECT_NO_THROW((void)h.quantile(1.0));
}

// Exact buckets: the quantile is the sample of rank ceil(q * count).
TEST(Histogram, QuantileOfExactValuesIsTheSampleOfRankCeilQTimesCount) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.quantile(0.0), 1u);
  EXPECT_EQ(h.quantile(0.001), 1u);  // rank ceil(0.1) = 1
  EXPECT_EQ(h.quantile(0.25), 25u);
  EXPECT_EQ(h.quantile(0.5), 50u);
  EXPECT_EQ(h.quantile(0.755), 76u);  // rank ceil(75.5) = 76
  EXPECT_EQ(h.quantile(0.9), 90u);
  EXPECT_EQ(h.quantile(0.99), 99u);
  EXPECT_EQ(h.quantile(1.0), 100u);
}

TEST(Histogram, QuantileIsTheMidpointOfTheRankBucket) {
  Histogram h;
  h.record(10);
  h.record(100'000);  // bucket [99840, 100351]
  h.record(5'000'000);
  const std::uint32_t b = h.bucket_of(100'000);
  ASSERT_EQ(h.bucket_lower(b), 99'840u);
  ASSERT_EQ(h.bucket_upper(b), 100'351u);
  const std::uint64_t q = h.quantile(0.5);  // rank ceil(1.5) = 2
  EXPECT_GE(q, 100'095u);                   // (99840 + 100351) / 2 = 100095.5
  EXPECT_LE(q, 100'096u);
}

// The midpoint of the extreme buckets is clamped to the exact min and max.
TEST(Histogram, QuantileZeroIsMinAndOneIsMax) {
  Histogram h;
  const std::uint64_t low = h.bucket_upper(h.bucket_of(1'000));     // 1003: midpoint below it
  const std::uint64_t high = h.bucket_lower(h.bucket_of(100'000));  // 99840: midpoint above it
  h.record(low);
  h.record(50'000);
  h.record(high);
  EXPECT_EQ(h.quantile(0.0), low);
  EXPECT_EQ(h.quantile(1.0), high);
  EXPECT_EQ(h.min(), low);
  EXPECT_EQ(h.max(), high);
}

TEST(Histogram, QuantileOfOneSampleIsThatSample) {
  for (const std::uint64_t v : {0ull, 1ull, 1'001ull, 123'456'789ull}) {
    Histogram h;
    h.record(v);
    for (const double q : {0.0, 0.3, 0.5, 0.99, 1.0}) EXPECT_EQ(h.quantile(q), v) << v << " " << q;
  }
}

// Percentile accuracy against an exact sort of 1,000,000 samples per distribution.
struct Distribution {
  const char* name;
  std::function<std::uint64_t(std::mt19937_64&)> draw;
};

std::vector<Distribution> distributions() {
  return {
      {"uniform_1us_1s",
       [](std::mt19937_64& rng) {
         return std::uniform_int_distribution<std::uint64_t>(1'000, 1'000'000'000)(rng);
       }},
      {"exponential_mean_2ms",
       [](std::mt19937_64& rng) {
         return static_cast<std::uint64_t>(std::exponential_distribution<double>(1.0 / 2e6)(rng));
       }},
      {"lognormal_500us_sigma_1.5",
       [](std::mt19937_64& rng) {
         return static_cast<std::uint64_t>(
             std::lognormal_distribution<double>(std::log(500e3), 1.5)(rng));
       }},
      {"bimodal_200us_50ms",
       [](std::mt19937_64& rng) {
         const bool slow = std::bernoulli_distribution(0.2)(rng);
         const double x = slow ? std::normal_distribution<double>(50e6, 5e6)(rng)
                               : std::normal_distribution<double>(200e3, 20e3)(rng);
         return static_cast<std::uint64_t>(std::max(0.0, x));
       }},
  };
}

TEST(Histogram, PercentilesWithinOnePercentOfExactSortFor1MSamples) {
  constexpr std::size_t kSamples = 1'000'000;
  std::uint64_t seed = 20240601;
  for (const Distribution& dist : distributions()) {
    SCOPED_TRACE(dist.name);
    std::mt19937_64 rng(seed++);
    std::vector<std::uint64_t> samples(kSamples);
    Histogram h;
    for (auto& v : samples) {
      v = dist.draw(rng);
      h.record(v);
    }
    std::sort(samples.begin(), samples.end());
    ASSERT_EQ(h.count(), kSamples);
    EXPECT_EQ(h.overflow_count(), 0u);
    EXPECT_EQ(h.min(), samples.front());
    EXPECT_EQ(h.max(), samples.back());
    for (const double q : {0.5, 0.9, 0.99, 0.999}) {
      const auto rank = static_cast<std::size_t>(std::ceil(q * kSamples));  // 1-based
      const std::uint64_t exact = samples[rank - 1];
      const std::uint64_t estimate = h.quantile(q);
      const double rel =
          std::abs(static_cast<double>(estimate) - static_cast<double>(exact)) / exact;
      EXPECT_LE(rel, 0.01) << "q=" << q << " exact=" << exact << " estimate=" << estimate;
      // No rank error: the estimate lies in the bucket of the exact sample
      // (one rank of slack for rounding q * count differently).
      const std::uint64_t lo = h.bucket_lower(h.bucket_of(samples[rank - 2]));
      const std::uint64_t hi = h.bucket_upper(h.bucket_of(samples[rank]));
      EXPECT_GE(estimate, lo) << "q=" << q;
      EXPECT_LE(estimate, hi) << "q=" << q;
    }
  }
}

// ---------------------------------------------------------------- merge / subtract

TEST(Histogram, MergeEqualsOneHistogramOfAllSamples) {
  std::vector<std::uint64_t> a = random_samples(60'000, 1);
  std::vector<std::uint64_t> b = random_samples(40'000, 2);
  for (auto& v : b) v = v / 7 + 3;    // a different shape
  a.push_back(kDefaultMax + 12'345);  // overflow on both sides
  b.push_back(std::uint64_t{1} << 38);
  b.push_back(0);

  Histogram merged = histogram_of(a);
  merged.merge(histogram_of(b));
  std::vector<std::uint64_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  expect_same_samples(merged, histogram_of(all));
  EXPECT_EQ(merged.overflow_count(), 2u);
  EXPECT_EQ(merged.min(), 0u);
  EXPECT_EQ(merged.max(), std::uint64_t{1} << 38);
}

TEST(Histogram, MergeIntoEmptyCopiesExtremes) {
  const std::vector<std::uint64_t> samples = {500, 70, 9'000};
  Histogram empty;
  empty.merge(histogram_of(samples));
  expect_same_samples(empty, histogram_of(samples));
  EXPECT_EQ(empty.min(), 70u);
  EXPECT_EQ(empty.max(), 9'000u);
}

TEST(Histogram, MergeOfEmptyChangesNothing) {
  const std::vector<std::uint64_t> samples = {500, 70, 9'000};
  Histogram h = histogram_of(samples);
  h.merge(Histogram{});
  expect_same_samples(h, histogram_of(samples));
}

TEST(Histogram, MergeWithDifferentLayoutThrows) {
  Histogram h;
  EXPECT_THROW(h.merge(Histogram(layout(kDefaultMax, 6))), std::invalid_argument);
  EXPECT_THROW(h.merge(Histogram(layout(1'000'000, 7))), std::invalid_argument);
}

TEST(Histogram, SubtractReversesMerge) {
  const std::vector<std::uint64_t> a = random_samples(30'000, 3);
  const std::vector<std::uint64_t> b = random_samples(20'000, 4);
  const Histogram ha = histogram_of(a);
  Histogram h = ha;
  h.merge(histogram_of(b));
  h.subtract(histogram_of(b));
  for (std::uint32_t i = 0; i < ha.bucket_count(); ++i) {
    ASSERT_EQ(h.count_in_bucket(i), ha.count_in_bucket(i)) << "bucket " << i;
  }
  EXPECT_EQ(h.count(), ha.count());
  EXPECT_EQ(h.sum(), ha.sum()) << "subtract removes the samples' values from the exact sum";
  EXPECT_EQ(h.overflow_count(), ha.overflow_count());
}

TEST(Histogram, SubtractRemovesOverflowSamples) {
  Histogram h;
  h.record(10);
  h.record(kDefaultMax + 1);
  Histogram overflow;
  overflow.record(kDefaultMax + 1);
  h.subtract(overflow);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.overflow_count(), 0u);
  EXPECT_EQ(h.count_in_bucket(h.bucket_count() - 1), 0u);
}

// ---------------------------------------------------------------- cumulative counts

TEST(Histogram, CountAtOrBelowCountsWholeBuckets) {
  Histogram h;
  h.record_n(5, 2);
  h.record_n(1'000, 3);  // bucket [1000, 1003]
  h.record(100'000);     // bucket [99840, 100351]
  EXPECT_EQ(h.count_at_or_below(0), 0u);
  EXPECT_EQ(h.count_at_or_below(4), 0u);
  EXPECT_EQ(h.count_at_or_below(5), 2u);
  EXPECT_EQ(h.count_at_or_below(1'000), 2u);  // bucket upper 1003 > 1000
  EXPECT_EQ(h.count_at_or_below(1'002), 2u);
  EXPECT_EQ(h.count_at_or_below(1'003), 5u);
  EXPECT_EQ(h.count_at_or_below(100'350), 5u);
  EXPECT_EQ(h.count_at_or_below(100'351), 6u);
  EXPECT_EQ(h.count_at_or_below(std::numeric_limits<std::uint64_t>::max()), 6u);
}

TEST(Histogram, CountAtOrBelowBucketUpperBoundIsExact) {
  std::vector<std::uint64_t> samples = random_samples(20'000, 5);
  const Histogram h = histogram_of(samples);
  std::sort(samples.begin(), samples.end());
  for (std::uint32_t b = 0; b < h.bucket_count(); b += 7) {
    const std::uint64_t bound = h.bucket_upper(b);
    const auto exact = static_cast<std::uint64_t>(
        std::upper_bound(samples.begin(), samples.end(), bound) - samples.begin());
    ASSERT_EQ(h.count_at_or_below(bound), exact) << "bucket " << b << " upper " << bound;
  }
}

// ---------------------------------------------------------------- JSON

TEST(Histogram, ToJsonHasTheDocumentedKeysAndValues) {
  Histogram h;
  for (std::uint64_t v = 1; v <= 1'000; ++v) h.record(v * 1'000);
  h.record(kDefaultMax + 1);
  const auto j = nlohmann::json::parse(to_json(h));
  ASSERT_TRUE(j.is_object());
  for (const char* key :
       {"count", "sum", "mean", "min", "max", "p50", "p90", "p99", "p999", "overflow"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j.at("count").get<std::uint64_t>(), h.count());
  EXPECT_EQ(j.at("sum").get<std::uint64_t>(), h.sum());
  EXPECT_DOUBLE_EQ(j.at("mean").get<double>(), h.mean());
  EXPECT_EQ(j.at("min").get<std::uint64_t>(), 1'000u);
  EXPECT_EQ(j.at("max").get<std::uint64_t>(), kDefaultMax + 1);
  EXPECT_EQ(j.at("p50").get<std::uint64_t>(), h.quantile(0.5));
  EXPECT_EQ(j.at("p90").get<std::uint64_t>(), h.quantile(0.9));
  EXPECT_EQ(j.at("p99").get<std::uint64_t>(), h.quantile(0.99));
  EXPECT_EQ(j.at("p999").get<std::uint64_t>(), h.quantile(0.999));
  EXPECT_EQ(j.at("overflow").get<std::uint64_t>(), 1u);
}

TEST(Histogram, ToJsonOfEmptyParsesWithZeros) {
  const auto j = nlohmann::json::parse(to_json(Histogram{}));
  EXPECT_EQ(j.at("count").get<std::uint64_t>(), 0u);
  EXPECT_EQ(j.at("min").get<std::uint64_t>(), 0u);
  EXPECT_EQ(j.at("p99").get<std::uint64_t>(), 0u);
  EXPECT_EQ(j.at("mean").get<double>(), 0.0);
}

}  // namespace
}  // namespace kvscope

namespace kvscope {
namespace {

// Weighted records (residency samples standing for 2^30 blocks each) pass
// 2^64 quickly: sum() saturates, sum_as_double() and mean() go on.
TEST(HistogramWeightedSum, SumAsDoubleKeepsGoingPastTwoToTheSixtyFour) {
  Histogram h(HistogramLayout{(std::uint64_t{1} << 42) - 1, 7});
  h.record_n(std::uint64_t{1} << 40, std::uint64_t{1} << 30);
  h.record_n(std::uint64_t{1} << 40, std::uint64_t{1} << 30);
  EXPECT_EQ(h.sum(), UINT64_MAX);
  EXPECT_DOUBLE_EQ(h.sum_as_double(), 0x1p71);
  EXPECT_DOUBLE_EQ(h.mean(), 0x1p40);
  Histogram one(h.layout());
  one.record_n(std::uint64_t{1} << 40, std::uint64_t{1} << 30);
  h.subtract(one);
  EXPECT_DOUBLE_EQ(h.sum_as_double(), 0x1p70);
  h.clear();
  EXPECT_EQ(h.sum_as_double(), 0.0);
}

}  // namespace
}  // namespace kvscope
