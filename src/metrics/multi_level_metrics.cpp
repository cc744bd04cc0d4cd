#include "kvscope/metrics/multi_level_metrics.hpp"

#include <algorithm>

#include "detail/units.hpp"

namespace kvscope {

double RequestServing::hit_rate() const noexcept { return detail::ratio(served, requests); }

RequestServing& RequestServing::operator+=(const RequestServing& other) noexcept {
  requests += other.requests;
  served += other.served;
  return *this;
}

RequestServing& RequestServing::operator-=(const RequestServing& other) noexcept {
  requests -= other.requests;
  served -= other.served;
  return *this;
}

double MultiLevelSnapshot::memory_pressure() const noexcept {
  std::uint64_t resident = 0, capacity = 0;
  for (const CachingSnapshot& level : levels) {
    if (level.capacity_bytes == 0) continue;
    resident += level.resident_bytes;
    capacity += level.capacity_bytes;
  }
  return detail::ratio(resident, capacity);
}

const CachingSnapshot* MultiLevelSnapshot::find(CacheType type) const noexcept {
  const auto it = std::find_if(levels.begin(), levels.end(),
                               [&](const CachingSnapshot& s) { return s.type == type; });
  return it == levels.end() ? nullptr : &*it;
}

MultiLevelSnapshot& MultiLevelSnapshot::operator+=(const MultiLevelSnapshot& other) {
  // Merge into a copy first: a layout mismatch must leave *this unchanged.
  std::vector<CachingSnapshot> merged = levels;
  for (const CachingSnapshot& theirs : other.levels) {
    const auto it = std::find_if(merged.begin(), merged.end(),
                                 [&](const CachingSnapshot& s) { return s.type == theirs.type; });
    if (it == merged.end()) {
      merged.push_back(theirs);
    } else {
      *it += theirs;
    }
  }
  std::sort(merged.begin(), merged.end(),
            [](const CachingSnapshot& a, const CachingSnapshot& b) { return a.type < b.type; });
  levels = std::move(merged);
  total += other.total;
  window += other.window;
  for (const auto& [type, n] : other.served_by) served_by[type] += n;
  return *this;
}

MultiLevelCacheMetrics::MultiLevelCacheMetrics(WindowConfig window, HistogramLayout latency_layout)
    : window_config_((window.validate(), window)),
      latency_layout_((latency_layout.validate(), latency_layout)),
      request_window_(window) {}

CachingMetrics& MultiLevelCacheMetrics::level(CacheType type) {
  auto it = levels_.find(type);
  if (it == levels_.end()) {
    auto metrics = std::make_unique<CachingMetrics>(type, window_config_, latency_layout_);
    if (last_tick_) metrics->tick(*last_tick_);
    it = levels_.emplace(type, std::move(metrics)).first;
  }
  return *it->second;
}

const CachingMetrics* MultiLevelCacheMetrics::find(CacheType type) const noexcept {
  const auto it = levels_.find(type);
  return it == levels_.end() ? nullptr : it->second.get();
}

void MultiLevelCacheMetrics::observe_request(std::optional<CacheType> served_by) {
  ++requests_.requests;
  if (!served_by) return;
  level(*served_by);  // a serving level exists from now on
  ++requests_.served;
  ++served_by_[*served_by];
}

void MultiLevelCacheMetrics::tick(Timestamp now) {
  last_tick_ = last_tick_ ? std::max(*last_tick_, now) : now;
  for (auto& [type, metrics] : levels_) metrics->tick(*last_tick_);
  request_window_.tick(*last_tick_, requests_);
}

MultiLevelSnapshot MultiLevelCacheMetrics::snapshot(Timestamp now) {
  tick(now);
  MultiLevelSnapshot s;
  for (auto& [type, metrics] : levels_) s.levels.push_back(metrics->snapshot(*last_tick_));
  s.total = requests_;
  s.window = request_window_.window(requests_);
  s.served_by = served_by_;
  return s;
}

}  // namespace kvscope
