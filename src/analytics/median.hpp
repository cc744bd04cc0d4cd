// Private: the median the analytics share (Theil-Sen slopes, MAD scales,
// trend gates).
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

namespace kvscope::detail {

/// The median of `values` (the mean of the two middle ones for an even
/// count), reordering them. O(n). Precondition: !values.empty().
inline double median_in_place(std::vector<double>& values) {
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  if (values.size() % 2 == 1) return *mid;
  return (*std::max_element(values.begin(), mid) + *mid) / 2;
}

}  // namespace kvscope::detail
