#include "kvscope/metrics/cache_metrics.hpp"

#include <stdexcept>
#include <string>

#include "detail/units.hpp"

namespace kvscope {
namespace {

template <class Array>
void add_each(Array& into, const Array& from) noexcept {
  for (std::size_t i = 0; i < into.size(); ++i) into[i] += from[i];
}

template <class Array>
void subtract_each(Array& into, const Array& from) noexcept {
  for (std::size_t i = 0; i < into.size(); ++i) into[i] -= from[i];
}

// Every counter paired, listed once so that += and -= cannot disagree.
template <class Fn>
void each_field(CachingTotals& a, const CachingTotals& b, Fn fn) {
  fn(a.hit_ops, b.hit_ops);
  fn(a.miss_ops, b.miss_ops);
  fn(a.hits, b.hits);
  fn(a.misses, b.misses);
  fn(a.hit_bytes, b.hit_bytes);
  fn(a.miss_bytes, b.miss_bytes);
  fn(a.writes, b.writes);
  fn(a.write_bytes, b.write_bytes);
  fn(a.evictions, b.evictions);
}

}  // namespace

std::string_view to_string(EvictionReason reason) noexcept {
  switch (reason) {
    case EvictionReason::capacity: return "capacity";
    case EvictionReason::explicit_: return "explicit";
    case EvictionReason::reset: return "reset";
    case EvictionReason::preemption: return "preemption";
    case EvictionReason::ttl: return "ttl";
    case EvictionReason::other: return "other";
  }
  return "other";
}

CacheType CacheType::user(std::string_view name) {
  if (name.empty() || name.size() > kMaxName) {
    throw std::invalid_argument("kvscope: cache level name must be 1.." + std::to_string(kMaxName) +
                                " characters, got \"" + std::string(name) + "\"");
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      throw std::invalid_argument("kvscope: cache level name may use only [a-z0-9_], got \"" +
                                  std::string(name) + "\"");
    }
  }
  return CacheType(name);
}

// ---------------------------------------------------------------- counters

std::uint64_t EvictionCounts::total_blocks() const noexcept {
  std::uint64_t sum = 0;
  for (const auto b : blocks) sum += b;
  return sum;
}

std::uint64_t EvictionCounts::total_bytes() const noexcept {
  std::uint64_t sum = 0;
  for (const auto b : bytes) sum += b;
  return sum;
}

EvictionCounts& EvictionCounts::operator+=(const EvictionCounts& other) noexcept {
  add_each(blocks, other.blocks);
  add_each(bytes, other.bytes);
  return *this;
}

EvictionCounts& EvictionCounts::operator-=(const EvictionCounts& other) noexcept {
  subtract_each(blocks, other.blocks);
  subtract_each(bytes, other.bytes);
  return *this;
}

double CachingTotals::hit_rate() const noexcept { return detail::ratio(hits, hits + misses); }
double CachingTotals::byte_hit_rate() const noexcept {
  return detail::ratio(hit_bytes, hit_bytes + miss_bytes);
}

CachingTotals& CachingTotals::operator+=(const CachingTotals& o) noexcept {
  each_field(*this, o, [](auto& to, const auto& from) { to += from; });
  return *this;
}

CachingTotals& CachingTotals::operator-=(const CachingTotals& o) noexcept {
  each_field(*this, o, [](auto& to, const auto& from) { to -= from; });
  return *this;
}

// ---------------------------------------------------------------- snapshot

double CachingSnapshot::window_eviction_rate() const noexcept {
  const double span = detail::seconds(window_span);
  return span > 0.0 ? static_cast<double>(window.evictions.total_blocks()) / span : 0.0;
}

double CachingSnapshot::memory_efficiency() const noexcept {
  return resident_bytes == 0
             ? 0.0
             : static_cast<double>(window.hit_bytes) / static_cast<double>(resident_bytes);
}

double CachingSnapshot::memory_pressure() const noexcept {
  return detail::ratio(resident_bytes, capacity_bytes);
}

CachingSnapshot& CachingSnapshot::operator+=(const CachingSnapshot& other) {
  if (type != other.type) {
    throw std::invalid_argument("kvscope: cannot merge snapshots of cache levels \"" +
                                std::string(type.name()) + "\" and \"" +
                                std::string(other.type.name()) + "\"");
  }
  latency.merge(other.latency);  // throws on a layout mismatch before anything changed
  window_latency.merge(other.window_latency);
  total += other.total;
  window += other.window;
  window_span = std::max(window_span, other.window_span);
  resident_bytes += other.resident_bytes;
  capacity_bytes += other.capacity_bytes;
  return *this;
}

// ---------------------------------------------------------------- metrics

CachingMetrics::CachingMetrics(CacheType type, WindowConfig window, HistogramLayout latency_layout)
    : type_(type),
      window_(window),
      latency_(latency_layout),
      eviction_latency_(latency_layout),
      window_latency_(window, latency_layout) {}

void CachingMetrics::record_latency(std::optional<std::chrono::nanoseconds> latency) {
  if (!latency) return;
  const std::uint64_t ns = detail::nanos(*latency);
  latency_.record(ns);
  window_latency_.record(last_tick_, ns);
}

void CachingMetrics::observe_hit(std::uint64_t items, std::uint64_t bytes,
                                 std::optional<std::chrono::nanoseconds> latency) {
  ++totals_.hit_ops;
  totals_.hits += items;
  totals_.hit_bytes += bytes;
  record_latency(latency);
}

void CachingMetrics::observe_miss(std::uint64_t items, std::uint64_t bytes,
                                  std::optional<std::chrono::nanoseconds> latency) {
  ++totals_.miss_ops;
  totals_.misses += items;
  totals_.miss_bytes += bytes;
  record_latency(latency);
}

void CachingMetrics::observe_write(std::uint64_t items, std::uint64_t bytes) {
  totals_.writes += items;
  totals_.write_bytes += bytes;
}

void CachingMetrics::observe_eviction(std::uint64_t blocks, EvictionReason reason,
                                      std::uint64_t bytes_freed,
                                      std::optional<std::chrono::nanoseconds> latency) {
  totals_.evictions.blocks_of(reason) += blocks;
  totals_.evictions.bytes_of(reason) += bytes_freed;
  if (latency) eviction_latency_.record(detail::nanos(*latency));
}

void CachingMetrics::set_memory(std::uint64_t resident_bytes,
                                std::uint64_t capacity_bytes) noexcept {
  resident_bytes_ = resident_bytes;
  capacity_bytes_ = capacity_bytes;
}

void CachingMetrics::tick(Timestamp now) {
  last_tick_ = std::max(last_tick_, now);
  window_.tick(last_tick_, totals_);
  window_latency_.advance(last_tick_);
}

double CachingMetrics::eviction_rate(Timestamp now, std::chrono::nanoseconds span) const {
  if (span.count() <= 0) {
    throw std::invalid_argument("kvscope: eviction_rate span must be positive");
  }
  const CachingTotals in_span = window_.over(totals_, span);
  const double covered = detail::seconds(window_.covered(now, span));
  return covered > 0.0 ? static_cast<double>(in_span.evictions.total_blocks()) / covered : 0.0;
}

CachingSnapshot CachingMetrics::snapshot(Timestamp now) {
  tick(now);
  CachingSnapshot s;
  s.type = type_;
  s.total = totals_;
  s.window = window_.window(totals_);
  s.window_span = window_.covered(last_tick_, window_.config().window);
  s.latency = latency_;
  s.window_latency = window_latency_.window(last_tick_);
  s.resident_bytes = resident_bytes_;
  s.capacity_bytes = capacity_bytes_;
  return s;
}

std::size_t CachingMetrics::memory_bytes() const noexcept {
  return sizeof(*this) + window_.memory_bytes() + latency_.memory_bytes() +
         eviction_latency_.memory_bytes() + window_latency_.memory_bytes();
}

}  // namespace kvscope
