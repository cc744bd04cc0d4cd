// PrefixCache with KV cache groups (hybrid attention, issue 21): vLLM's
// hybrid allocator over kvscope's one pool. The rules themselves
// (which blocks hit, which are cached, which a window releases) live in
// kvscope/kv_cache_groups.hpp; this file applies them to block tables, with
// the same block moves as one group (prefix_cache_blocks.hpp).
//
// Per request and group g (block size b, m = b / H fine hashes per block):
//  - group_blocks[g] has ceil(num_tokens / b) entries; its block i is keyed
//    group_key(chain[(i + 1) * m - 1], g);
//  - entries [0, released[g]) are kPlaceholderBlock; the others hold a block
//    (a hit, or one taken from the pool);
//  - blocks [0, decided[g]) were hits or were considered for caching once
//    (cached, kept private as a twin, or skipped by the retention mask).

#include <algorithm>

#include "prefix_cache_blocks.hpp"

namespace kvscope {

namespace {

std::uint32_t blocks_of(std::uint64_t tokens, std::uint32_t block_size) {
  return static_cast<std::uint32_t>((tokens + block_size - 1) / block_size);
}

}  // namespace

// ---------------------------------------------------------------- lookup

LookupResult PrefixCache::probe_hybrid(const Request& request, std::span<const BlockHash> hashes,
                                       HybridHit& hit) const {
  const KvCacheLayout& layout = *layout_;
  const std::uint32_t tokens = request.token_count();
  const std::uint32_t h = block_size();
  const auto hashed = static_cast<std::uint32_t>(hashes.size());
  const std::uint32_t cap = request.max_hit_tokens.value_or(tokens - 1);
  const std::uint32_t max_tokens = std::min<std::uint64_t>(cap, std::uint64_t{hashed} * h);
  hit = layout.longest_hit(max_tokens, [&](std::uint32_t g, std::uint32_t i) {
    const std::uint32_t fine = (i + 1) * layout.hashes_per_block(g) - 1;
    return find_block(group_key(hashes[fine], g)).has_value();
  });
  LookupResult result;
  result.total_blocks = blocks_of(tokens, h);
  result.hashed_blocks = hashed;
  result.hit_tokens = hit.tokens;
  result.hit_blocks = hit.tokens / h;
  if (result.hit_blocks > 0) result.prefix_hash = hashes[result.hit_blocks - 1];
  if (hashed == 0) {
    result.stop = LookupStop::too_short;
  } else if (hit.tokens + layout.scheduler_block_size() <= max_tokens) {
    result.stop = LookupStop::not_resident;  // a whole scheduler block more would have fit
    result.first_miss_hash = hashes[result.hit_blocks];
  } else if (max_tokens < std::uint64_t{hashed} * h) {
    result.stop = LookupStop::hit_cap;
  } else {
    result.stop = LookupStop::all_blocks_hit;
  }
  return result;
}

// ---------------------------------------------------------------- allocate

// Takes a free block for group g's table; a reclaimed cached block counts as
// an eviction of the group it was cached for (its group byte, until now).
template <class Policy>
BlockId PrefixCache::take_for_group(Policy& policy, std::uint32_t g, std::uint32_t& evicted_count) {
  const std::uint32_t before = evicted_count;
  const BlockId b = take_free_block(policy, evicted_count);
  detail::BlockSlot& meta = blocks_[b.value];
  if (evicted_count != before) ++group_admissions_[meta.group].evictions;
  meta.group = static_cast<std::uint8_t>(g);
  return b;
}

// Caches, group by group, the blocks that became full and cacheable since
// they were last decided (up to the last scheduler-block boundary of the
// hashed tokens); a sliding-window group skips the blocks its retention
// mask leaves out and the entries it already released. Returns how many
// blocks got a hash. One stored run per group and step in the event log.
template <class Policy>
std::uint32_t PrefixCache::cache_decided_blocks(Policy& policy, RequestState& state) {
  HybridState& h = hybrid_of(state);
  const KvCacheLayout& layout = *layout_;
  const std::uint64_t hashed_tokens = std::uint64_t{h.chain.size()} * block_size();
  const std::uint32_t cacheable = layout.cacheable_tokens(
      static_cast<std::uint32_t>(std::min<std::uint64_t>(state.num_tokens, hashed_tokens)));
  std::uint32_t cached_count = 0;
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    const std::uint32_t b = layout.groups()[g].block_size;
    const std::uint32_t m = layout.hashes_per_block(g);
    const std::uint32_t upto = cacheable / b;
    std::vector<BlockId>& table = h.group_blocks[g];
    for (std::uint32_t i = h.decided[g]; i < upto; ++i) {
      const bool eligible = table[i] != kPlaceholderBlock && layout.caches_block(g, i);
      bool cached = false;
      if (eligible) {
        blocks_[table[i].value].group = static_cast<std::uint8_t>(g);
        cached = cache_block(policy, table[i], group_key(h.chain[(i + 1) * m - 1], g),
                             /*may_be_resident=*/true, 0);
      }
      cached_count += cached ? 1 : 0;
      if (events_ == nullptr) continue;
      if (!cached) {
        events_->end_run();  // masked, released, or kept private
        continue;
      }
      const BlockHash* parent = i > 0 ? &h.chain[i * m - 1] : nullptr;
      std::span<const TokenId> block_tokens;  // none in hash mode, or if the log came later
      if (h.tokens.size() >= std::size_t{i + 1} * b)
        block_tokens = std::span<const TokenId>(h.tokens).subspan(i * b, b);
      events_->stored_block(h.chain[(i + 1) * m - 1], parent, block_tokens, i, state.extras,
                            static_cast<std::uint8_t>(g));
    }
    h.decided[g] = std::max(h.decided[g], upto);
    if (events_ != nullptr) events_->end_run();  // one store per group and step, as vLLM
  }
  return cached_count;
}

Result<AllocateResult> PrefixCache::allocate_hybrid(const Request& request) {
  if (const auto shape = validate_shape(request); !shape) return shape.status();
  const KvCacheLayout& layout = *layout_;
  const std::uint32_t tokens = request.token_count();
  // A hash-mode request naming its partial tail (sealed) has no meaning
  // for a group whose blocks are larger than a hash block.
  if (request.hash_mode() && request.block_hashes.size() != tokens / block_size())
    return Status::invalid_hashes;
  std::uint64_t blocks_needed = 0;
  for (const KvCacheGroupConfig& g : layout.groups())
    blocks_needed += blocks_of(tokens, g.block_size);
  if (blocks_needed > num_blocks()) return Status::request_too_large;
  if (request_slot_.find(request.id.value)) return Status::duplicate_request;

  const std::span<const BlockHash> hashes = request_hashes(request);
  AllocateResult result;
  result.hashes = hashes;
  HybridHit hit;
  result.lookup = probe_hybrid(request, hashes, hit);

  // Hit blocks are cached (probed just now): find them once, group after
  // group, into scratch_resident_, and count what admission takes.
  std::uint32_t needed_new = 0, needed_free_hits = 0;
  scratch_resident_.clear();
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    needed_new += blocks_of(tokens, layout.groups()[g].block_size) - hit.groups[g].blocks;
    for (std::uint32_t i = hit.groups[g].placeholders; i < hit.groups[g].blocks; ++i) {
      const std::uint32_t fine = (i + 1) * layout.hashes_per_block(g) - 1;
      const std::uint32_t b = find_block(group_key(hashes[fine], g))->value;
      scratch_resident_.push_back(b);
      if (blocks_[b].ref_count == 0) ++needed_free_hits;
    }
  }
  const std::uint32_t available = uncached_.size + policy_->evictable_count();
  if (needed_new + needed_free_hits > available) {
    ++stats_.allocation_failures;
    return Status::not_enough_blocks;
  }

  return with_policy([&](auto& policy) -> Result<AllocateResult> {
    RequestState& state = open_request(request, hashes, {});
    state.blocks.clear();
    if (hybrid_states_.size() < request_states_.size())
      hybrid_states_.resize(request_states_.size());
    HybridState& h = hybrid_of(state);
    h.chain.assign(hashes.begin(), hashes.end());
    // Tokens only serve the KV events' token ids (a larger group's block
    // completes across appends): kept while a log is attached.
    h.tokens.clear();
    if (events_ != nullptr) h.tokens.assign(request.tokens.begin(), request.tokens.end());
    h.group_blocks.resize(layout.group_count());
    std::size_t next_hit = 0;  // into scratch_resident_
    // Touch every group's hits before any group takes a block, so that one
    // group's new blocks cannot evict another's hits (vLLM #33775).
    for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
      std::vector<BlockId>& table = h.group_blocks[g];
      table.assign(blocks_of(tokens, layout.groups()[g].block_size), kPlaceholderBlock);
      for (std::uint32_t i = hit.groups[g].placeholders; i < hit.groups[g].blocks; ++i) {
        table[i] = BlockId{scratch_resident_[next_hit++]};
        touch(policy, table[i]);
        ++block_references_;
      }
      h.released[g] = hit.groups[g].placeholders;
      h.decided[g] = hit.groups[g].blocks;
    }
    for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
      std::vector<BlockId>& table = h.group_blocks[g];
      for (std::uint32_t i = hit.groups[g].blocks; i < table.size(); ++i) {
        table[i] = take_for_group(policy, g, result.evicted_blocks);
        ++block_references_;
      }
      KvCacheGroupStats& admitted = group_admissions_[g];
      admitted.query_blocks += table.size();
      admitted.hit_blocks += hit.groups[g].blocks - hit.groups[g].placeholders;
      admitted.placeholder_blocks += hit.groups[g].placeholders;
    }
    result.new_blocks = needed_new;
    cache_decided_blocks(policy, state);
    record_admission(request, result.lookup);
    return result;
  });
}

// ---------------------------------------------------------------- append

// Decode growth with groups: releases the blocks that fell out of each
// sliding window before this step (vLLM's remove_skipped_blocks: whole
// blocks before the next token's window, highest first; they keep their
// hash), takes the blocks the new tokens need, and caches what became
// cacheable. Completed hashes are in scratch_hashes_. All or nothing: the
// capacity check counts the blocks the release would free, and nothing is
// released when the step fails (vLLM releases first, whatever follows).
template <class Policy>
Result<AppendResult> PrefixCache::grow_hybrid(Policy& policy, RequestState& state,
                                              std::uint32_t num_new_tokens,
                                              std::span<const TokenId> new_tokens) {
  HybridState& h = hybrid_of(state);
  const KvCacheLayout& layout = *layout_;
  const std::uint64_t new_total = std::uint64_t{state.num_tokens} + num_new_tokens;
  std::uint64_t live_after = 0;
  std::uint32_t extra = 0, freed_by_release = 0;
  std::array<std::uint32_t, kMaxKvCacheGroups> release_to{};
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    const std::vector<BlockId>& table = h.group_blocks[g];
    const auto size = static_cast<std::uint32_t>(table.size());
    release_to[g] =
        std::max(h.released[g], std::min(layout.skipped_blocks(g, state.num_tokens), size));
    for (std::uint32_t i = h.released[g]; i < release_to[g]; ++i)
      if (table[i] != kPlaceholderBlock && blocks_[table[i].value].ref_count == 1)
        ++freed_by_release;
    const std::uint32_t total = blocks_of(new_total, layout.groups()[g].block_size);
    extra += total - size;
    live_after += total - release_to[g];
  }
  if (live_after > num_blocks()) return Status::request_too_large;
  if (extra > uncached_.size + policy.evictable_count() + freed_by_release) {
    ++stats_.allocation_failures;
    return Status::not_enough_blocks;
  }

  AppendResult result;
  result.new_blocks = extra;
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    std::vector<BlockId>& table = h.group_blocks[g];
    for (std::uint32_t i = release_to[g]; i-- > h.released[g];) {
      if (table[i] == kPlaceholderBlock) break;  // released before: so is everything below
      release(policy, table[i]);
      --block_references_;
      table[i] = kPlaceholderBlock;
    }
    h.released[g] = release_to[g];
  }
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    std::vector<BlockId>& table = h.group_blocks[g];
    const std::uint32_t total = blocks_of(new_total, layout.groups()[g].block_size);
    while (table.size() < total) {
      table.push_back(take_for_group(policy, g, result.evicted_blocks));
      ++block_references_;
    }
  }
  // Tokens kept from admission on (a log was attached then) stay complete.
  if (events_ != nullptr && h.tokens.size() == state.num_tokens)
    h.tokens.insert(h.tokens.end(), new_tokens.begin(), new_tokens.end());
  h.chain.insert(h.chain.end(), scratch_hashes_.begin(), scratch_hashes_.end());
  state.hashed_blocks = static_cast<std::uint32_t>(h.chain.size());
  if (!h.chain.empty()) state.last_hash = h.chain.back();
  state.num_tokens = static_cast<std::uint32_t>(new_total);
  result.cached_blocks = cache_decided_blocks(policy, state);
  result.num_tokens = state.num_tokens;
  return result;
}

Result<AppendResult> PrefixCache::append_hybrid(RequestState& state,
                                                std::span<const TokenId> tokens) {
  // append() hashed the blocks these tokens complete into scratch_hashes_.
  return with_policy([&](auto& policy) {
    return grow_hybrid(policy, state, static_cast<std::uint32_t>(tokens.size()), tokens);
  });
}

Result<AppendResult> PrefixCache::append_hashes_hybrid(RequestState& state,
                                                       std::uint32_t num_new_tokens,
                                                       std::span<const BlockHash> new_hashes) {
  const std::uint64_t full = (std::uint64_t{state.num_tokens} + num_new_tokens) / block_size();
  if (new_hashes.size() != full - state.hashed_blocks) return Status::invalid_hashes;
  scratch_hashes_.assign(new_hashes.begin(), new_hashes.end());
  return with_policy([&](auto& policy) { return grow_hybrid(policy, state, num_new_tokens, {}); });
}

// ---------------------------------------------------------------- free

// Each group's table in group order, each reversed (or forward), as vLLM's
// coordinator frees; placeholders hold no block.
template <class Policy>
void PrefixCache::free_hybrid(Policy& policy, RequestState& state, FreeOrder order,
                              FreeResult& result) {
  HybridState& h = hybrid_of(state);
  const auto release_one = [&](BlockId block) {
    if (block == kPlaceholderBlock) return;
    release(policy, block);
    --block_references_;
    if (blocks_[block.value].ref_count == 0) {
      ++result.released_blocks;
      result.cached_free_blocks += blocks_[block.value].cached ? 1 : 0;
    }
  };
  for (std::vector<BlockId>& table : h.group_blocks) {
    if (order == FreeOrder::reverse) {
      std::for_each(table.rbegin(), table.rend(), release_one);
    } else {
      std::for_each(table.begin(), table.end(), release_one);
    }
    table.clear();  // keeps capacity for the slot's next request
  }
}

template void PrefixCache::free_hybrid(detail::LruPolicy&, RequestState&, FreeOrder, FreeResult&);
template void PrefixCache::free_hybrid(detail::LfuPolicy&, RequestState&, FreeOrder, FreeResult&);
template void PrefixCache::free_hybrid(detail::ArcPolicy&, RequestState&, FreeOrder, FreeResult&);
template void PrefixCache::free_hybrid(detail::S3FifoPolicy&, RequestState&, FreeOrder,
                                       FreeResult&);

// Frees a request of a hybrid cache: free_with()'s bookkeeping around
// free_hybrid (kept apart so the single-group free stays as it was).
Result<FreeResult> PrefixCache::free_hybrid_request(RequestId id, FreeOrder order) {
  const auto slot = request_slot_.find(id.value);
  if (!slot) return Status::unknown_request;
  FreeResult result;
  with_policy([&](auto& policy) { free_hybrid(policy, request_states_[*slot], order, result); });
  free_request_slots_.push_back(*slot);
  request_slot_.erase(id.value);
  return result;
}

PrefixCache::HybridState& PrefixCache::hybrid_of(const RequestState& state) {
  return hybrid_states_[static_cast<std::size_t>(&state - request_states_.data())];
}

const PrefixCache::HybridState& PrefixCache::hybrid_of(const RequestState& state) const {
  return hybrid_states_[static_cast<std::size_t>(&state - request_states_.data())];
}

// ---------------------------------------------------------------- reports

KvCacheGroupStats& KvCacheGroupStats::operator+=(const KvCacheGroupStats& other) noexcept {
  used_blocks += other.used_blocks;
  cached_blocks += other.cached_blocks;
  query_blocks += other.query_blocks;
  hit_blocks += other.hit_blocks;
  placeholder_blocks += other.placeholder_blocks;
  evictions += other.evictions;
  return *this;
}

std::vector<KvCacheGroupStats> PrefixCache::all_group_stats() const {
  std::vector<KvCacheGroupStats> out(layout_->group_count());
  if (hybrid_) {
    std::copy_n(group_admissions_.begin(), out.size(), out.begin());
  } else {  // one group: the cache's own counters
    out[0].query_blocks = stats_.fresh.query_blocks + stats_.preempted.query_blocks;
    out[0].hit_blocks = stats_.fresh.hit_blocks + stats_.preempted.hit_blocks;
    out[0].evictions = stats_.evictions;
  }
  for (const detail::BlockSlot& meta : blocks_) {
    if (meta.group >= out.size()) continue;
    out[meta.group].used_blocks += meta.ref_count > 0 ? 1 : 0;
    out[meta.group].cached_blocks += meta.cached;
  }
  return out;
}

KvCacheGroupStats PrefixCache::group_stats(std::uint32_t g) const {
  if (g >= layout_->group_count()) return {};
  return all_group_stats()[g];
}

// ---------------------------------------------------------------- invariants

void PrefixCache::check_hybrid_request(const RequestState& state,
                                       std::vector<std::uint32_t>& holders) const {
  const HybridState& h = hybrid_of(state);
  const auto fail = [&](const std::string& what) {
    throw std::logic_error("kvscope: PrefixCache invariant broken: request " +
                           std::to_string(state.id.value) + " " + what);
  };
  const KvCacheLayout& layout = *layout_;
  if (!state.blocks.empty()) fail("has a single-group table beside its group tables");
  if (h.group_blocks.size() != layout.group_count()) fail("has the wrong number of tables");
  if (h.chain.size() != state.hashed_blocks) fail("keeps a chain of the wrong length");
  if (std::uint64_t{state.hashed_blocks} * block_size() > state.num_tokens)
    fail("has more hashed tokens than tokens");
  if (h.tokens.size() > state.num_tokens) fail("keeps more tokens than it has");
  for (std::uint32_t g = 0; g < layout.group_count(); ++g) {
    const std::vector<BlockId>& table = h.group_blocks[g];
    if (table.size() != blocks_of(state.num_tokens, layout.groups()[g].block_size))
      fail("has a table of the wrong length in group " + std::to_string(g));
    for (std::uint32_t i = 0; i < table.size(); ++i) {
      const bool placeholder = table[i] == kPlaceholderBlock;
      if (placeholder != (i < h.released[g]))
        fail("has placeholders outside its released prefix in group " + std::to_string(g));
      if (!placeholder) ++holders.at(table[i].value);
    }
  }
}

}  // namespace kvscope
