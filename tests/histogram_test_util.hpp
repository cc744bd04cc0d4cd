// Shared assertions for tests of kvscope::Histogram and the windows built on it.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include "kvscope/metrics/histogram.hpp"

namespace kvscope::testing_util {

/// Asserts two histograms hold the same samples: every bucket and every aggregate.
inline void expect_same_samples(const Histogram& actual, const Histogram& expected) {
  ASSERT_EQ(actual.layout(), expected.layout());
  ASSERT_EQ(actual.bucket_count(), expected.bucket_count());
  for (std::uint32_t b = 0; b < expected.bucket_count(); ++b) {
    ASSERT_EQ(actual.count_in_bucket(b), expected.count_in_bucket(b)) << "bucket " << b;
  }
  EXPECT_EQ(actual.count(), expected.count());
  EXPECT_EQ(actual.overflow_count(), expected.overflow_count());
  EXPECT_EQ(actual.sum(), expected.sum());
  EXPECT_EQ(actual.min(), expected.min());
  EXPECT_EQ(actual.max(), expected.max());
  EXPECT_DOUBLE_EQ(actual.mean(), expected.mean());
  for (const double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(actual.quantile(q), expected.quantile(q)) << "q=" << q;
  }
}

}  // namespace kvscope::testing_util
