// KV cache groups for hybrid-attention models (issue 21): the layout (which
// groups, their attention kind, block size and window) and vLLM's hybrid
// allocator rules as pure functions over "is block i of group g cached":
// per-group hit lengths, the hybrid hit as a fixed point over the groups,
// which blocks a group caches, and which blocks a sliding-window group may
// release while decoding. docs/prefix-cache.md ("Hybrid attention") states
// every rule and where it differs from vLLM.
//
// The rules are what the hybrid prefix cache runs; they are public so that
// an engine's scheduler (or a router estimating hits) can apply the same
// arithmetic without a cache.
//
// Thread rules: KvCacheLayout is immutable after construction (share it
// freely); the functions are pure. Cost: a lookup is O(blocks probed), at
// most max_tokens / block_size probes per group and round; no allocation.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kvscope {

enum class AttentionKind : std::uint8_t { full_attention, sliding_window };

/// vLLM's KV event names for the kind: "full_attention", "sliding_window".
std::string_view to_string(AttentionKind kind) noexcept;

/// One KV cache group: the layers of one attention kind that share a block
/// table.
struct KvCacheGroupConfig {
  AttentionKind kind = AttentionKind::full_attention;
  std::uint32_t block_size = 16;     ///< tokens per block of this group; >= 1
  std::uint32_t sliding_window = 0;  ///< tokens; >= 1 for sliding_window, 0 for full_attention
  std::uint32_t num_layers = 1;      ///< layers it stands for (memory accounting only); >= 1

  friend bool operator==(const KvCacheGroupConfig&, const KvCacheGroupConfig&) = default;
};

/// At most this many groups (vLLM's hybrid models use two or three).
inline constexpr std::size_t kMaxKvCacheGroups = 16;

/// A group's hit: `blocks` leading entries of its block table are served by
/// the cache, the first `placeholders` of them by no block at all (vLLM's
/// null block: tokens before a sliding window need no KV).
struct GroupHit {
  std::uint32_t blocks = 0;
  std::uint32_t placeholders = 0;
};

/// The hybrid hit: `tokens` (a multiple of the scheduler block size) and
/// each group's part of it, by group index.
struct HybridHit {
  std::uint32_t tokens = 0;
  std::array<GroupHit, kMaxKvCacheGroups> groups{};
};

/// A validated list of groups with the sizes derived from them.
///  - hash block size H: requests are hashed in chunks of H tokens; the gcd
///    of the group block sizes unless given; divides every group's size;
///  - scheduler block size L: the lcm of the group block sizes; every hybrid
///    hit and every cached prefix is a multiple of it;
///  - a group of block size b keys its block j by fine hash (j + 1) * b / H - 1
///    (the fine hash at the block's right edge, which chains over the whole
///    prefix: vLLM at the commit, not the older concatenation).
class KvCacheLayout {
 public:
  /// Throws std::invalid_argument naming the field: no group, more than
  /// kMaxKvCacheGroups, a block size of 0, a sliding window of 0 (or one set
  /// on a full-attention group), 0 layers, a hash block size that does not
  /// divide every group's block size, an lcm above 2^31, or (when
  /// `num_blocks` > 0) a scheduler block the pool cannot hold (the groups
  /// need L / b blocks each for one).
  explicit KvCacheLayout(std::vector<KvCacheGroupConfig> groups, std::uint32_t hash_block_size = 0,
                         std::uint32_t num_blocks = 0);
  /// One full-attention group of `block_size` tokens (today's default).
  static KvCacheLayout single(std::uint32_t block_size);

  std::span<const KvCacheGroupConfig> groups() const noexcept { return groups_; }
  std::uint32_t group_count() const noexcept { return static_cast<std::uint32_t>(groups_.size()); }
  std::uint32_t hash_block_size() const noexcept { return hash_block_size_; }
  std::uint32_t scheduler_block_size() const noexcept { return scheduler_block_size_; }
  /// More than one distinct group spec (vLLM's hybrid coordinator).
  bool is_hybrid() const noexcept { return spec_groups_.size() > 1; }

  /// Fine hashes per block of group g: block_size / hash_block_size.
  std::uint32_t hashes_per_block(std::uint32_t g) const noexcept {
    return groups_[g].block_size / hash_block_size_;
  }
  /// Contiguous cached blocks a sliding-window hit needs: ceil((w - 1) / b).
  /// 0 for full attention.
  std::uint32_t blocks_for_window(std::uint32_t g) const noexcept;

  /// Tokens of an n-token sequence any group may cache: floor(n / L) * L
  /// (vLLM caches a hybrid model's blocks only up to the last scheduler-
  /// block boundary, full attention included).
  std::uint32_t cacheable_tokens(std::uint32_t n) const noexcept {
    return n / scheduler_block_size_ * scheduler_block_size_;
  }
  /// Whether group g caches its block i once full: always for full
  /// attention; for a sliding window only the last blocks_for_window()
  /// blocks of each scheduler block (all of them when that covers it),
  /// since no hit could use the others (vLLM's dense retention).
  bool caches_block(std::uint32_t g, std::uint32_t i) const noexcept;
  /// Leading blocks of group g a request may release once `computed`
  /// tokens are computed: whole blocks before the next token's window,
  /// floor(max(0, computed - w + 1) / b); 0 for full attention.
  std::uint32_t skipped_blocks(std::uint32_t g, std::uint32_t computed) const noexcept;

  /// The hybrid hit for a request whose hit may cover at most `max_tokens`
  /// tokens (vLLM: num_tokens - 1). `cached(g, i)` answers whether block i
  /// (in group g's own block size) of the request is cached for group g; it
  /// is called only for i < max_tokens / b. Groups with equal configs are
  /// looked up together (a block hits only if it hits in all of them); full
  /// attention first, then the rest in order; each may only shrink the
  /// candidate, and rounds repeat until none does.
  template <class Cached>
  HybridHit longest_hit(std::uint32_t max_tokens, Cached&& cached) const;

 private:
  // Groups with equal configs, looked up together; full attention first.
  struct SpecGroup {
    std::uint32_t first = 0;  // a member, for the config
    std::array<std::uint8_t, kMaxKvCacheGroups> members{};
    std::uint32_t member_count = 0;
  };

  std::vector<KvCacheGroupConfig> groups_;
  std::vector<SpecGroup> spec_groups_;
  std::uint32_t hash_block_size_ = 0;
  std::uint32_t scheduler_block_size_ = 0;
};

/// Full attention: blocks from 0 while cached, at most max_tokens / b, then
/// shortened until the hit is a multiple of `alignment` tokens.
template <class Cached>
GroupHit full_attention_hit(std::uint32_t max_tokens, std::uint32_t block_size,
                            std::uint32_t alignment, Cached&& cached) {
  const std::uint32_t max_blocks = max_tokens / block_size;
  std::uint32_t n = 0;
  while (n < max_blocks && cached(n)) ++n;
  while (n > 0 && (std::uint64_t{n} * block_size) % alignment != 0) --n;
  return GroupHit{n, 0};
}

/// Sliding window: from the right, the first run of `need` contiguous cached
/// blocks whose right edge lies on a multiple of `alignment` (a run starts
/// only there); blocks before the run are placeholders. With no such run,
/// the cached blocks from block 0 on still count (a short prefix computed
/// from its start), shortened to the alignment.
template <class Cached>
GroupHit sliding_window_hit(std::uint32_t max_tokens, std::uint32_t block_size, std::uint32_t need,
                            std::uint32_t alignment, Cached&& cached) {
  const std::uint32_t max_blocks = max_tokens / block_size;
  std::uint32_t run = 0;
  for (std::uint32_t i = max_blocks; i-- > 0;) {
    if (!cached(i)) {
      run = 0;
      continue;
    }
    if (run == 0 && (std::uint64_t{i + 1} * block_size) % alignment != 0) continue;
    if (++run >= need) return GroupHit{i + run, i};
  }
  std::uint32_t n = run;  // the loop ended at block 0: a run from the start
  while (n > 0 && (std::uint64_t{n} * block_size) % alignment != 0) --n;
  return GroupHit{n, 0};
}

template <class Cached>
HybridHit KvCacheLayout::longest_hit(std::uint32_t max_tokens, Cached&& cached) const {
  const std::uint32_t alignment = scheduler_block_size_;
  HybridHit out;
  std::uint32_t hit = max_tokens;
  // Full attention is looked up once per spec group: its hits are a prefix,
  // so a later, smaller candidate only rounds down to its block size.
  std::array<bool, kMaxKvCacheGroups> looked_up{};
  // With exactly two specs and full attention first, one round suffices:
  // full attention is downward-closed and the other group ran last.
  const bool one_round = spec_groups_.size() == 2 &&
                         groups_[spec_groups_.front().first].kind == AttentionKind::full_attention;
  for (;;) {
    std::uint32_t candidate = hit;
    for (std::size_t s = 0; s < spec_groups_.size(); ++s) {
      const SpecGroup& spec = spec_groups_[s];
      const KvCacheGroupConfig& config = groups_[spec.first];
      const std::uint32_t b = config.block_size;
      const bool full = config.kind == AttentionKind::full_attention;
      if (full && looked_up[s]) {
        candidate = candidate / b * b;
        continue;
      }
      auto all_cached = [&](std::uint32_t i) {
        for (std::uint32_t m = 0; m < spec.member_count; ++m)
          if (!cached(std::uint32_t{spec.members[m]}, i)) return false;
        return true;
      };
      const GroupHit found = config.kind == AttentionKind::full_attention
                                 ? full_attention_hit(candidate, b, alignment, all_cached)
                                 : sliding_window_hit(candidate, b, blocks_for_window(spec.first),
                                                      alignment, all_cached);
      for (std::uint32_t m = 0; m < spec.member_count; ++m) out.groups[spec.members[m]] = found;
      looked_up[s] = true;
      candidate = found.blocks * b;
    }
    if (candidate >= hit || one_round) {
      hit = candidate;
      break;
    }
    hit = candidate;
  }
  // Full attention was looked up once, with the first candidate: trim it.
  for (std::uint32_t g = 0; g < group_count(); ++g) {
    if (groups_[g].kind != AttentionKind::full_attention) continue;
    out.groups[g].blocks = hit / groups_[g].block_size;
  }
  out.tokens = hit;
  return out;
}

}  // namespace kvscope
