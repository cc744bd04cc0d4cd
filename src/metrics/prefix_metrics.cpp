#include "kvscope/metrics/prefix_metrics.hpp"

#include <algorithm>
#include <stdexcept>

#include <fmt/format.h>

#include "detail/hash_mix.hpp"
#include "detail/units.hpp"

namespace kvscope {
namespace {

bool ranks_before(const PrefixEntry& a, const PrefixEntry& b) noexcept {
  if (a.hits != b.hits) return a.hits > b.hits;
  if (a.prefix_blocks != b.prefix_blocks) return a.prefix_blocks > b.prefix_blocks;
  return a.prefix.high != b.prefix.high ? a.prefix.high < b.prefix.high
                                        : a.prefix.low < b.prefix.low;
}

void add_labelled(std::map<std::string, LabelledCounts>& into, const std::string& label,
                  const LabelledCounts& counts) {
  if (counts == LabelledCounts{}) return;
  into[label] += counts;
}

}  // namespace

// ---------------------------------------------------------------- TopPrefixes

TopPrefixes::TopPrefixes(std::uint32_t capacity) : capacity_(capacity), index_(capacity) {
  if (capacity == 0 || capacity > 4096) {
    throw std::invalid_argument("kvscope: TopPrefixes capacity must be in [1, 4096], got " +
                                std::to_string(capacity));
  }
  entries_.reserve(capacity);
  heap_.reserve(capacity);
  heap_pos_.reserve(capacity);
}

void TopPrefixes::swap_heap(std::uint32_t a, std::uint32_t b) {
  std::swap(heap_[a], heap_[b]);
  heap_pos_[heap_[a]] = a;
  heap_pos_[heap_[b]] = b;
}

void TopPrefixes::sift_up(std::uint32_t pos) {
  while (pos > 0 && entries_[heap_[(pos - 1) / 2]].hits > entries_[heap_[pos]].hits) {
    swap_heap(pos, (pos - 1) / 2);
    pos = (pos - 1) / 2;
  }
}

void TopPrefixes::sift_down(std::uint32_t pos) {
  const auto n = static_cast<std::uint32_t>(heap_.size());
  for (;;) {
    std::uint32_t smallest = pos;
    for (const std::uint32_t child : {2 * pos + 1, 2 * pos + 2}) {
      if (child < n && entries_[heap_[child]].hits < entries_[heap_[smallest]].hits) {
        smallest = child;
      }
    }
    if (smallest == pos) return;
    swap_heap(pos, smallest);
    pos = smallest;
  }
}

void TopPrefixes::record(const BlockHash& prefix, std::uint32_t prefix_blocks,
                         std::uint64_t hit_tokens) {
  ++records_;
  const std::uint64_t key = detail::fold(prefix);
  // Prefixes are keyed by their 64-bit fold: two whose folds collide (odds
  // 2^-64 a pair) would share an entry, which a heavy-hitter sketch tolerates.
  if (const auto found = index_.find(key)) {
    PrefixEntry& entry = entries_[*found];
    ++entry.hits;
    entry.hit_tokens += hit_tokens;
    sift_down(heap_pos_[*found]);
    return;
  }
  if (entries_.size() < capacity_) {
    const auto id = static_cast<std::uint32_t>(entries_.size());
    entries_.push_back(PrefixEntry{prefix, prefix_blocks, 1, 0, hit_tokens});
    heap_pos_.push_back(static_cast<std::uint32_t>(heap_.size()));
    heap_.push_back(id);
    sift_up(heap_pos_[id]);
    index_.insert_or_assign(key, id);
    return;
  }
  // Space-saving: the new prefix replaces the one with the fewest hits.
  const std::uint32_t id = heap_[0];
  const std::uint64_t inherited = entries_[id].hits;
  index_.erase(detail::fold(entries_[id].prefix));
  entries_[id] = PrefixEntry{prefix, prefix_blocks, inherited + 1, inherited, hit_tokens};
  index_.insert_or_assign(key, id);
  sift_down(0);
}

std::size_t TopPrefixes::memory_bytes() const noexcept {
  return entries_.capacity() * sizeof(PrefixEntry) +
         (heap_.capacity() + heap_pos_.capacity()) * sizeof(std::uint32_t) + index_.memory_bytes();
}

std::vector<PrefixEntry> TopPrefixes::top() const {
  std::vector<PrefixEntry> sorted = entries_;
  std::sort(sorted.begin(), sorted.end(), ranks_before);
  return sorted;
}

// ---------------------------------------------------------------- snapshot

LabelledCounts& LabelledCounts::operator+=(const LabelledCounts& other) noexcept {
  fresh += other.fresh;
  preempted += other.preempted;
  return *this;
}

double PrefixSnapshot::too_short_share() const noexcept {
  std::uint64_t all = 0;
  for (const auto n : stops) all += n;
  return detail::ratio(stop_count(LookupStop::too_short), all);
}

PrefixSnapshot& PrefixSnapshot::operator+=(const PrefixSnapshot& other) {
  hit_length_tokens.merge(other.hit_length_tokens);  // throws before any change
  std::vector<PrefixEntry> merged = top_prefixes;
  for (const PrefixEntry& theirs : other.top_prefixes) {
    const auto it = std::find_if(merged.begin(), merged.end(),
                                 [&](const PrefixEntry& e) { return e.prefix == theirs.prefix; });
    if (it == merged.end()) {
      merged.push_back(theirs);
    } else {
      it->hits += theirs.hits;
      it->error += theirs.error;
      it->hit_tokens += theirs.hit_tokens;
    }
  }
  std::sort(merged.begin(), merged.end(), ranks_before);
  top_capacity = std::max(top_capacity, other.top_capacity);
  if (merged.size() > top_capacity) merged.resize(top_capacity);
  top_prefixes = std::move(merged);
  for (std::size_t i = 0; i < stops.size(); ++i) stops[i] += other.stops[i];
  for (const auto& [label, counts] : other.tenants) tenants[label] += counts;
  for (const auto& [label, counts] : other.adapters) adapters[label] += counts;
  return *this;
}

// ---------------------------------------------------------------- PrefixMetrics

PrefixMetrics::PrefixMetrics(const MetricsConfig& config)
    : max_tenants_((config.validate(), config.max_tenants)),
      max_adapters_(config.max_adapters),
      top_(config.top_prefixes),
      hit_length_(kHitLengthLayout) {}

LabelledCounts& PrefixMetrics::tenant_counts(const ExtraKeys& extras) {
  if (!extras.salt) return no_tenant_;
  const std::uint64_t key = detail::fold(extras.salt->digest);
  if (const auto it = tenants_.find(key); it != tenants_.end()) return it->second;
  if (tenants_.size() >= max_tenants_) return other_tenants_;
  return tenants_[key];
}

LabelledCounts& PrefixMetrics::adapter_counts(const ExtraKeys& extras) {
  if (!extras.adapter_id) return no_adapter_;
  if (const auto it = adapters_.find(*extras.adapter_id); it != adapters_.end()) return it->second;
  if (adapters_.size() >= max_adapters_) return other_adapters_;
  return adapters_[*extras.adapter_id];
}

void PrefixMetrics::record_admission(const Request& request, const AllocateResult& result) {
  const LookupResult& lookup = result.lookup;
  const QueryCounts delta{1, request.token_count(), lookup.hit_tokens, lookup.total_blocks,
                          lookup.hit_blocks};
  if (!request.preempted) {
    ++stops_[static_cast<std::size_t>(lookup.stop)];
    if (lookup.hit_blocks > 0) {
      hit_length_.record(lookup.hit_tokens);
      top_.record(lookup.prefix_hash, lookup.hit_blocks, lookup.hit_tokens);
    }
  }
  if (request.extras.empty() || request.hash_mode()) {  // the common case: no labels
    (request.preempted ? no_tenant_.preempted : no_tenant_.fresh) += delta;
    (request.preempted ? no_adapter_.preempted : no_adapter_.fresh) += delta;
    return;
  }
  LabelledCounts& tenant = tenant_counts(request.extras);
  LabelledCounts& adapter = adapter_counts(request.extras);
  (request.preempted ? tenant.preempted : tenant.fresh) += delta;
  (request.preempted ? adapter.preempted : adapter.fresh) += delta;
}

void PrefixMetrics::set_tenant_name(const CacheSalt& salt, std::string name) {
  if (name.empty()) throw std::invalid_argument("kvscope: a tenant name must not be empty");
  tenant_names_[detail::fold(salt.digest)] = std::move(name);
}

PrefixSnapshot PrefixMetrics::snapshot() const {
  PrefixSnapshot s;
  s.top_prefixes = top_.top();
  s.top_capacity = top_.capacity();
  s.hit_length_tokens = hit_length_;
  s.stops = stops_;
  add_labelled(s.tenants, "none", no_tenant_);
  add_labelled(s.tenants, "other", other_tenants_);
  for (const auto& [key, counts] : tenants_) {
    const auto named = tenant_names_.find(key);
    add_labelled(s.tenants,
                 named != tenant_names_.end() ? named->second : fmt::format("salt:{:016x}", key),
                 counts);
  }
  add_labelled(s.adapters, "none", no_adapter_);
  add_labelled(s.adapters, "other", other_adapters_);
  for (const auto& [id, counts] : adapters_) add_labelled(s.adapters, std::to_string(id), counts);
  return s;
}

std::size_t PrefixMetrics::memory_bytes() const noexcept {
  // Hash-map nodes are estimated at two pointers of overhead each.
  constexpr std::size_t kNodeOverhead = 2 * sizeof(void*);
  const std::size_t per_label = sizeof(std::uint64_t) + sizeof(LabelledCounts) + kNodeOverhead;
  return sizeof(*this) + top_.memory_bytes() + hit_length_.memory_bytes() +
         (tenants_.size() + adapters_.size()) * per_label +
         tenant_names_.size() * (sizeof(std::uint64_t) + sizeof(std::string) + kNodeOverhead);
}

}  // namespace kvscope
