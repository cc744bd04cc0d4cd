#include "kvscope/metrics/merged_snapshot.hpp"

#include <algorithm>

namespace kvscope {

double MergedSnapshot::load_imbalance() const noexcept {
  double largest = 0;
  for (const ShardLoad& l : load) largest = std::max(largest, l.share);
  return largest * static_cast<double>(load.size());
}

std::uint64_t MergedSnapshot::observations_dropped() const noexcept {
  std::uint64_t dropped = 0;
  for (const ShardLoad& l : load) dropped += l.observations_dropped;
  return dropped;
}

}  // namespace kvscope
