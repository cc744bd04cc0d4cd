#include "kvscope/prefix_cache_stats.hpp"

#include "detail/units.hpp"

namespace kvscope {

namespace {

// Every counter of the two structs paired, listed once so that += and -=
// (and anything added later) cannot disagree on the fields.
template <class Fn>
void each_field(QueryCounts& a, const QueryCounts& b, Fn fn) {
  fn(a.requests, b.requests);
  fn(a.query_tokens, b.query_tokens);
  fn(a.hit_tokens, b.hit_tokens);
  fn(a.query_blocks, b.query_blocks);
  fn(a.hit_blocks, b.hit_blocks);
}

template <class Fn>
void each_field(PrefixCacheStats& a, const PrefixCacheStats& b, Fn fn) {
  fn(a.fresh, b.fresh);
  fn(a.preempted, b.preempted);
  fn(a.probes, b.probes);
  fn(a.allocation_failures, b.allocation_failures);
  fn(a.evictions, b.evictions);
  fn(a.resets, b.resets);
  fn(a.reset_evictions, b.reset_evictions);
  fn(a.verification_failures, b.verification_failures);
}

constexpr auto kAdd = [](auto& to, const auto& from) { to += from; };
constexpr auto kSubtract = [](auto& to, const auto& from) { to -= from; };

}  // namespace

QueryCounts& QueryCounts::operator+=(const QueryCounts& other) noexcept {
  each_field(*this, other, kAdd);
  return *this;
}

QueryCounts& QueryCounts::operator-=(const QueryCounts& other) noexcept {
  each_field(*this, other, kSubtract);
  return *this;
}

double QueryCounts::token_hit_rate() const noexcept {
  return detail::ratio(hit_tokens, query_tokens);
}
double QueryCounts::block_hit_rate() const noexcept {
  return detail::ratio(hit_blocks, query_blocks);
}

PrefixCacheStats& PrefixCacheStats::operator+=(const PrefixCacheStats& other) noexcept {
  each_field(*this, other, kAdd);
  return *this;
}

PrefixCacheStats& PrefixCacheStats::operator-=(const PrefixCacheStats& other) noexcept {
  each_field(*this, other, kSubtract);
  return *this;
}

}  // namespace kvscope
