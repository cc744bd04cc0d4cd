#include "kvscope/eviction_policy.hpp"

#include <stdexcept>

#include "eviction/arc_policy.hpp"
#include "eviction/lfu_policy.hpp"
#include "eviction/lru_policy.hpp"
#include "eviction/s3fifo_policy.hpp"

namespace kvscope {

std::string_view to_string(EvictionPolicyKind kind) noexcept {
  switch (kind) {
    case EvictionPolicyKind::lru: return "lru";
    case EvictionPolicyKind::lfu: return "lfu";
    case EvictionPolicyKind::arc: return "arc";
    case EvictionPolicyKind::s3fifo: return "s3fifo";
  }
  return "unknown";
}

std::optional<EvictionPolicyKind> parse_eviction_policy(std::string_view name) noexcept {
  for (const EvictionPolicyKind kind : kEvictionPolicies) {
    if (name == to_string(kind)) return kind;
  }
  return std::nullopt;
}

namespace detail {

std::unique_ptr<EvictionPolicy> make_eviction_policy(EvictionPolicyKind kind,
                                                     std::uint32_t num_blocks,
                                                     double s3fifo_small_ratio, BlockSlot* slots) {
  switch (kind) {
    case EvictionPolicyKind::lru: return std::make_unique<LruPolicy>(slots);
    case EvictionPolicyKind::lfu: return std::make_unique<LfuPolicy>(slots);
    case EvictionPolicyKind::arc: return std::make_unique<ArcPolicy>(slots, num_blocks);
    case EvictionPolicyKind::s3fifo:
      return std::make_unique<S3FifoPolicy>(slots, num_blocks, s3fifo_small_ratio);
  }
  throw std::invalid_argument("kvscope: unknown eviction policy");
}

}  // namespace detail
}  // namespace kvscope
