#include "kvscope/metrics/merged_snapshot.hpp"

#include <algorithm>
#include <stdexcept>

namespace kvscope {

std::string_view to_string(ShardOperation kind) noexcept {
  switch (kind) {
    case ShardOperation::lookup: return "lookup";
    case ShardOperation::allocate: return "allocate";
    case ShardOperation::append: return "append";
    case ShardOperation::free: return "free";
    case ShardOperation::other: return "other";
  }
  return "other";
}

ServiceTimes::ServiceTimes(const HistogramLayout& layout, std::uint32_t sampling_interval)
    : sampling(sampling_interval) {
  for (Histogram& h : service_ns) h = Histogram(layout);
}

double ServiceTimes::mean_ns(ShardOperation kind) const noexcept {
  return service_ns[static_cast<std::size_t>(kind)].mean();
}

double ServiceTimes::total_ns() const noexcept {
  double total = 0;
  for (std::size_t k = 0; k < kShardOperationCount; ++k) {
    total += service_ns[k].mean() * static_cast<double>(operations[k]);
  }
  return total;
}

ServiceTimes& ServiceTimes::operator+=(const ServiceTimes& other) {
  std::array<Histogram, kShardOperationCount> merged = service_ns;
  for (std::size_t k = 0; k < kShardOperationCount; ++k) merged[k].merge(other.service_ns[k]);
  service_ns = std::move(merged);
  for (std::size_t k = 0; k < kShardOperationCount; ++k) operations[k] += other.operations[k];
  sampling = std::max(sampling, other.sampling);
  return *this;
}

double MergedSnapshot::load_imbalance() const noexcept {
  double largest = 0;
  for (const ShardLoad& l : load) largest = std::max(largest, l.share);
  return largest * static_cast<double>(load.size());
}

ServiceTimes MergedSnapshot::service() const {
  ServiceTimes all;
  for (std::size_t i = 0; i < load.size(); ++i) {
    if (i == 0) {
      all = load[i].service;
    } else {
      all += load[i].service;
    }
  }
  return all;
}

std::uint64_t MergedSnapshot::observations_dropped() const noexcept {
  std::uint64_t dropped = 0;
  for (const ShardLoad& l : load) dropped += l.observations_dropped;
  return dropped;
}

}  // namespace kvscope
