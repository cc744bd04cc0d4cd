#include "kvscope/kv_cache_groups.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/core.h>

namespace kvscope {

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw std::invalid_argument("KvCacheLayout: " + what);
}

void validate_group(const KvCacheGroupConfig& g, std::size_t i) {
  if (g.block_size == 0) bad(fmt::format("groups[{}].block_size must be >= 1", i));
  if (g.num_layers == 0) bad(fmt::format("groups[{}].num_layers must be >= 1", i));
  if (g.kind == AttentionKind::sliding_window && g.sliding_window == 0)
    bad(fmt::format("groups[{}].sliding_window must be >= 1 for a sliding-window group", i));
  if (g.kind == AttentionKind::full_attention && g.sliding_window != 0)
    bad(fmt::format("groups[{}].sliding_window must be 0 for a full-attention group", i));
}

}  // namespace

std::string_view to_string(AttentionKind kind) noexcept {
  return kind == AttentionKind::full_attention ? "full_attention" : "sliding_window";
}

KvCacheLayout::KvCacheLayout(std::vector<KvCacheGroupConfig> groups, std::uint32_t hash_block_size,
                             std::uint32_t num_blocks)
    : groups_(std::move(groups)) {
  if (groups_.empty()) bad("groups must name at least one group");
  if (groups_.size() > kMaxKvCacheGroups)
    bad(fmt::format("groups has {} entries; at most {}", groups_.size(), kMaxKvCacheGroups));
  std::uint32_t gcd = 0;
  std::uint64_t lcm = 1;
  for (std::size_t i = 0; i < groups_.size(); ++i) {
    validate_group(groups_[i], i);
    const std::uint32_t b = groups_[i].block_size;
    gcd = std::gcd(gcd, b);
    lcm = std::lcm(lcm, std::uint64_t{b});  // both <= 2^31 here: no overflow in 64 bits
    if (lcm > (std::uint64_t{1} << 31))
      bad(
          fmt::format("the groups' block sizes have a least common multiple above 2^31 "
                      "(groups[{}].block_size = {})",
                      i, b));
  }
  hash_block_size_ = hash_block_size == 0 ? gcd : hash_block_size;
  for (std::size_t i = 0; i < groups_.size(); ++i) {
    if (groups_[i].block_size % hash_block_size_ != 0)
      bad(fmt::format("hash_block_size ({}) must divide groups[{}].block_size ({})",
                      hash_block_size_, i, groups_[i].block_size));
  }
  scheduler_block_size_ = static_cast<std::uint32_t>(lcm);
  if (num_blocks > 0) {
    std::uint64_t per_scheduler_block = 0;
    for (const KvCacheGroupConfig& g : groups_) per_scheduler_block += lcm / g.block_size;
    if (per_scheduler_block > num_blocks)
      bad(
          fmt::format("num_blocks ({}) cannot hold one scheduler block of {} tokens in every "
                      "group ({} blocks)",
                      num_blocks, lcm, per_scheduler_block));
  }
  // Spec groups: equal configs together, in order of first appearance, full
  // attention first (a stable partition, as vLLM sorts them).
  for (std::uint32_t g = 0; g < group_count(); ++g) {
    SpecGroup* same = nullptr;
    for (SpecGroup& s : spec_groups_)
      if (groups_[s.first].kind == groups_[g].kind &&
          groups_[s.first].block_size == groups_[g].block_size &&
          groups_[s.first].sliding_window == groups_[g].sliding_window)
        same = &s;
    if (same == nullptr) {
      spec_groups_.push_back(SpecGroup{g, {}, 0});
      same = &spec_groups_.back();
    }
    same->members[same->member_count++] = static_cast<std::uint8_t>(g);
  }
  std::stable_partition(spec_groups_.begin(), spec_groups_.end(), [&](const SpecGroup& s) {
    return groups_[s.first].kind == AttentionKind::full_attention;
  });
}

KvCacheLayout KvCacheLayout::single(std::uint32_t block_size) {
  return KvCacheLayout({KvCacheGroupConfig{AttentionKind::full_attention, block_size, 0, 1}});
}

std::uint32_t KvCacheLayout::blocks_for_window(std::uint32_t g) const noexcept {
  const KvCacheGroupConfig& c = groups_[g];
  if (c.kind != AttentionKind::sliding_window) return 0;
  return (c.sliding_window - 1 + c.block_size - 1) / c.block_size;
}

bool KvCacheLayout::caches_block(std::uint32_t g, std::uint32_t i) const noexcept {
  if (groups_[g].kind != AttentionKind::sliding_window) return true;
  const std::uint32_t per_segment = scheduler_block_size_ / groups_[g].block_size;
  const std::uint32_t need = blocks_for_window(g);
  return need >= per_segment || i % per_segment >= per_segment - need;
}

std::uint32_t KvCacheLayout::skipped_blocks(std::uint32_t g,
                                            std::uint32_t computed) const noexcept {
  const KvCacheGroupConfig& c = groups_[g];
  if (c.kind != AttentionKind::sliding_window || computed < c.sliding_window) return 0;
  return (computed - c.sliding_window + 1) / c.block_size;
}

}  // namespace kvscope
