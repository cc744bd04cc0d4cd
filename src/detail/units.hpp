// Private: unit conversions shared by the metrics and the exporters.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace kvscope::detail {

inline double seconds(std::chrono::nanoseconds d) noexcept {
  return std::chrono::duration<double>(d).count();
}

/// A duration as a histogram value: nanoseconds, negatives clamped to 0.
inline std::uint64_t nanos(std::chrono::nanoseconds d) noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0));
}

/// part / whole, 0 when whole is 0.
inline double ratio(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace kvscope::detail
