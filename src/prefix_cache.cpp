#include "kvscope/prefix_cache.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <stdexcept>
#include <string>

#include "prefix_cache_blocks.hpp"

namespace kvscope {

void PrefixCacheConfig::validate() const {
  if (num_blocks == 0) throw std::invalid_argument("kvscope: num_blocks must be at least 1");
  if (num_blocks > (1u << 31)) {
    throw std::invalid_argument("kvscope: num_blocks must be at most 2^31, got " +
                                std::to_string(num_blocks));
  }
  if (block_size == 0) throw std::invalid_argument("kvscope: block_size must be at least 1");
  if (hash_bits < 8 || hash_bits > 128) {
    throw std::invalid_argument("kvscope: hash_bits must be in 8..128, got " +
                                std::to_string(hash_bits));
  }
  if (!(s3fifo_small_ratio > 0.0 && s3fifo_small_ratio < 1.0)) {
    throw std::invalid_argument("kvscope: s3fifo_small_ratio must be in (0, 1), got " +
                                std::to_string(s3fifo_small_ratio));
  }
  if (groups.empty()) return;
  if (verify_tokens)
    throw std::invalid_argument("kvscope: verify_tokens cannot be combined with groups");
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].block_size != 0 && groups[i].block_size % block_size != 0) {
      throw std::invalid_argument("kvscope: block_size (" + std::to_string(block_size) +
                                  ", the hash block size with groups) must divide groups[" +
                                  std::to_string(i) + "].block_size (" +
                                  std::to_string(groups[i].block_size) + ")");
    }
  }
  KvCacheLayout(groups, block_size, num_blocks);  // throws naming the field
}

namespace {

std::unique_ptr<KvCacheLayout> make_layout(const PrefixCacheConfig& config) {
  if (config.groups.empty())
    return std::make_unique<KvCacheLayout>(KvCacheLayout::single(config.block_size));
  return std::make_unique<KvCacheLayout>(config.groups, config.block_size, config.num_blocks);
}

// One full-attention group of the hash block size is the single-group cache.
bool is_hybrid(const KvCacheLayout& layout) {
  const KvCacheGroupConfig& g = layout.groups().front();
  return layout.group_count() > 1 || g.kind != AttentionKind::full_attention ||
         g.block_size != layout.hash_block_size();
}

}  // namespace

void ObserverOptions::validate() const {
  if (!(sample_rate > 0.0 && sample_rate <= 1.0)) {
    throw std::invalid_argument("kvscope: observer sample_rate must be in (0, 1], got " +
                                std::to_string(sample_rate));
  }
}

Request Request::with_tokens(RequestId id, std::span<const TokenId> tokens, ExtraKeys extras) {
  Request r;
  r.id = id;
  r.tokens = tokens;
  r.extras = std::move(extras);
  return r;
}

Request Request::with_hashes(RequestId id, std::uint32_t num_tokens,
                             std::span<const BlockHash> block_hashes) {
  Request r;
  r.id = id;
  r.num_tokens = num_tokens;
  r.block_hashes = block_hashes;
  r.precomputed_hashes = true;
  return r;
}

PrefixCache::PrefixCache(const PrefixCacheConfig& config)
    : config_((config.validate(), config)),
      layout_(make_layout(config)),
      hybrid_(is_hybrid(*layout_)),
      hasher_(config.block_size, config.hash_seed, config.hash_bits),
      blocks_(config.num_blocks),
      links_(blocks_.data()),
      index_(std::make_unique<detail::SlotTable>(config.num_blocks)),
      policy_(detail::make_eviction_policy(config.policy, config.num_blocks,
                                           config.s3fifo_small_ratio, blocks_.data())),
      twins_(std::make_unique<detail::TwinSet>()),
      fingerprinter_(config.block_size, fingerprint_seed(config.hash_seed)) {
  if (config.verify_tokens) fingerprints_.assign(config.num_blocks, 0);
  // Initially every block is free and uncached, reused in id order (vLLM).
  for (std::uint32_t b = 0; b < config.num_blocks; ++b) links_.push_back(uncached_, b);
}

PrefixCache::~PrefixCache() = default;
PrefixCache::PrefixCache(PrefixCache&&) noexcept = default;
PrefixCache& PrefixCache::operator=(PrefixCache&&) noexcept = default;

// ---------------------------------------------------------------- queries

std::uint32_t PrefixCache::num_free_blocks() const noexcept {
  return uncached_.size + policy_->evictable_count();
}

std::uint32_t PrefixCache::num_cached_blocks() const noexcept {
  return static_cast<std::uint32_t>(index_->size());
}

double PrefixCache::usage() const noexcept {
  return static_cast<double>(num_used_blocks()) / static_cast<double>(num_blocks());
}

std::optional<BlockId> PrefixCache::find(const BlockHash& hash) const { return find_block(hash); }

std::optional<BlockHash> PrefixCache::block_hash(BlockId id) const {
  const BlockMeta& meta = blocks_.at(id.value);
  if (!meta.cached) return std::nullopt;
  return meta.hash;
}

std::uint32_t PrefixCache::ref_count(BlockId id) const { return blocks_.at(id.value).ref_count; }

Result<std::span<const BlockId>> PrefixCache::block_table(RequestId id) const {
  return block_table(id, 0);
}

Result<std::span<const BlockId>> PrefixCache::block_table(RequestId id, std::uint32_t group) const {
  const RequestState* state = find_request(id);
  if (state == nullptr) return Status::unknown_request;
  if (group >= layout_->group_count()) return Status::invalid_hashes;
  if (!hybrid_) return std::span<const BlockId>(state->blocks);
  return std::span<const BlockId>(hybrid_of(*state).group_blocks[group]);
}

std::optional<BlockId> PrefixCache::find(const BlockHash& hash, std::uint32_t group) const {
  if (group >= layout_->group_count()) return std::nullopt;
  return find_block(group_key(hash, group));
}

Result<std::uint32_t> PrefixCache::num_tokens(RequestId id) const {
  const RequestState* state = find_request(id);
  if (state == nullptr) return Status::unknown_request;
  return state->num_tokens;
}

std::vector<BlockId> PrefixCache::free_queue() const {
  std::vector<BlockId> order;
  order.reserve(num_free_blocks());
  for (std::uint32_t b = uncached_.head; b != detail::kNil; b = blocks_[b].next) {
    order.push_back(BlockId{b});
  }
  // Replay the policy on a copy of the slots so the real order is untouched.
  std::vector<detail::BlockSlot> copy = blocks_;
  const auto replay = policy_->clone_onto(copy.data());
  while (replay->evictable_count() > 0) order.push_back(replay->evict());
  return order;
}

std::size_t PrefixCache::metadata_bytes() const noexcept {
  return blocks_.size() * sizeof(BlockMeta) + index_->memory_bytes() + policy_->memory_bytes() +
         fingerprints_.size() * sizeof(std::uint64_t) + twins_->memory_bytes();
}

PrefixCache::RequestState* PrefixCache::find_request(RequestId id) {
  const auto slot = request_slot_.find(id.value);
  return slot ? &request_states_[*slot] : nullptr;
}

const PrefixCache::RequestState* PrefixCache::find_request(RequestId id) const {
  const auto slot = request_slot_.find(id.value);
  return slot ? &request_states_[*slot] : nullptr;
}

// ---------------------------------------------------------------- lookup

Result<void> PrefixCache::validate_shape(const Request& request) const {
  const std::uint32_t tokens = request.token_count();
  if (tokens == 0) return Status::empty_request;
  const std::uint32_t full = tokens / block_size();
  const std::uint32_t total = blocks_for(tokens, block_size());
  if (request.hash_mode()) {
    const std::size_t given = request.block_hashes.size();
    if (given != full && given != total) return Status::invalid_hashes;
  } else {
    validate_extra_keys(request.extras);  // malformed extras are a caller bug: throws
  }
  // With groups, allocate_hybrid counts the blocks every group needs.
  if (!hybrid_ && total > num_blocks()) return Status::request_too_large;
  return {};
}

std::span<const BlockHash> PrefixCache::request_hashes(const Request& request) {
  if (request.hash_mode()) return request.block_hashes;
  scratch_hashes_.clear();
  hasher_.extend_hashes(request.tokens, request.extras, scratch_hashes_);
  return scratch_hashes_;
}

// The request's verification chain, one entry per hashed block; empty when
// nothing is verified (verification off, or a hash-mode request). Call after
// request_hashes(), whose block count it follows.
std::span<const BlockHash> PrefixCache::request_fingerprints(const Request& request) {
  if (!config_.verify_tokens || request.hash_mode()) return {};
  scratch_fingerprints_.clear();
  fingerprinter_.extend_hashes(request.tokens, request.extras, scratch_fingerprints_);
  return scratch_fingerprints_;
}

// Whether resident `block` may serve block i of a request whose verification
// chain is `fingerprints`: yes when nothing is verified or the block has no
// fingerprint (cached from a precomputed hash), else only on equal fingerprints.
bool PrefixCache::content_matches(std::uint32_t block, std::span<const BlockHash> fingerprints,
                                  std::uint32_t i) const noexcept {
  if (fingerprints.empty()) return true;
  const std::uint64_t stored = fingerprints_[block];
  return stored == 0 || stored == stored_fingerprint(fingerprints, i);
}

std::uint32_t PrefixCache::eligible_hit_blocks(const Request& request, std::uint32_t hashed) const {
  const std::uint32_t tokens = request.token_count();
  const std::uint32_t cap = request.max_hit_tokens.value_or(tokens - 1);
  if (cap >= tokens) return hashed;
  return std::min(hashed, cap / block_size());
}

// Finds the cached prefix; leaves the hit block ids in scratch_resident_
// (one slot per block of the request, kNoBlock past the prefix).
LookupResult PrefixCache::probe(const Request& request, std::span<const BlockHash> hashes,
                                std::span<const BlockHash> fingerprints) {
  LookupResult result;
  const std::uint32_t tokens = request.token_count();
  result.total_blocks = blocks_for(tokens, block_size());
  result.hashed_blocks = static_cast<std::uint32_t>(hashes.size());
  const std::uint32_t eligible = eligible_hit_blocks(request, result.hashed_blocks);
  scratch_resident_.assign(result.total_blocks, kNoBlock);
  std::uint32_t hits = 0;
  for (; hits < eligible; ++hits) {
    const auto block = find_block(hashes[hits]);
    if (!block) break;
    if (!content_matches(block->value, fingerprints, hits)) [[unlikely]] {
      ++stats_.verification_failures;
      result.verification_failed = true;
      break;
    }
    scratch_resident_[hits] = block->value;
  }
  result.hit_blocks = hits;
  if (hits > 0) result.prefix_hash = hashes[hits - 1];
  result.hit_tokens = static_cast<std::uint32_t>(
      std::min<std::uint64_t>(std::uint64_t{hits} * block_size(), tokens));
  if (result.hashed_blocks == 0) {
    result.stop = LookupStop::too_short;
  } else if (hits < eligible) {
    result.stop = LookupStop::not_resident;
    result.first_miss_hash = hashes[hits];
  } else if (eligible < result.hashed_blocks) {
    result.stop = LookupStop::hit_cap;
  } else {
    result.stop = LookupStop::all_blocks_hit;
  }
  return result;
}

Result<LookupResult> PrefixCache::lookup(const Request& request) {
  if (const auto shape = validate_shape(request); !shape) return shape.status();
  const std::span<const BlockHash> hashes = request_hashes(request);
  HybridHit unused;
  const LookupResult result = hybrid_ ? probe_hybrid(request, hashes, unused)
                                      : probe(request, hashes, request_fingerprints(request));
  QueryCounts& probes = stats_.probes;
  ++probes.requests;
  probes.query_tokens += request.token_count();
  probes.hit_tokens += result.hit_tokens;
  probes.query_blocks += result.total_blocks;
  probes.hit_blocks += result.hit_blocks;
  return result;
}

// ---------------------------------------------------------------- block moves

// A live block whose hash another block holds stays out of the index (no
// duplicates) but is remembered with its hash and fingerprint, so that it
// can take the hash over when the holder is reclaimed: the hash stays
// cached, as in vLLM (whose map keeps both blocks), and a KV-event
// subscriber never sees a parent removed while a request still extends it.
void PrefixCache::keep_private(BlockId id, const BlockHash& hash, std::uint64_t fingerprint) {
  blocks_[id.value].hash = hash;
  blocks_[id.value].twin = 1;
  if (!fingerprints_.empty()) fingerprints_[id.value] = fingerprint;
  twins_->add(detail::fold(hash), id.value,
              [this](std::uint32_t b) { return detail::fold(blocks_[b].hash); });
}

// ---------------------------------------------------------------- observer

void PrefixCache::set_observer(PrefixCacheObserver* observer, const ObserverOptions& options) {
  options.validate();
  observer_ = observer;
  observer_options_ = options;
  if (observer_options_.clock == nullptr) observer_options_.clock = &SteadyClock::instance();
  for (BlockMeta& meta : blocks_) meta.watched = 0;
  sample_state_ = options.sample_seed;
  sample_countdown_ = 1 + next_sample_gap();
}

void PrefixCache::set_observer_sample_rate(double rate) {
  ObserverOptions changed = observer_options_;
  changed.sample_rate = rate;
  changed.validate();
  observer_options_.sample_rate = rate;
  sample_countdown_ = 1 + next_sample_gap();
}

void PrefixCache::unwatch(BlockId block) {
  if (block.value >= blocks_.size()) {
    throw std::out_of_range("kvscope: unwatch: block " + std::to_string(block.value) +
                            " is outside the pool of " + std::to_string(blocks_.size()));
  }
  blocks_[block.value].watched = 0;
}

// The operation's timestamp, read from the clock on first use.
Timestamp PrefixCache::event_time() noexcept {
  if (!event_time_known_) {
    event_time_ = observer_options_.clock->now();
    event_time_known_ = true;
  }
  return event_time_;
}

// Allocations skipped before the next watched one: geometric with success
// probability sample_rate, so every allocation is watched with that
// probability, independently, at the cost of one countdown per allocation.
std::uint64_t PrefixCache::next_sample_gap() noexcept {
  const double rate = observer_options_.sample_rate;
  if (rate >= 1.0) return 0;
  const std::uint64_t bits = detail::splitmix64(sample_state_);
  const double uniform = (static_cast<double>(bits >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double gap = std::floor(std::log(uniform) / std::log1p(-rate));
  return gap >= 1e18 ? std::uint64_t{1'000'000'000'000'000'000} : static_cast<std::uint64_t>(gap);
}

// Called when the countdown reaches 0: `id` was just allocated and is watched.
void PrefixCache::watch_if_sampled(BlockId id) {
  sample_countdown_ = 1 + next_sample_gap();
  blocks_[id.value].watched = 1;
  observer_->on_block_allocated(id, event_time());
}

// `id` just lost its hash and reports_uncache() holds: tells the observer,
// and the block stops being watched.
void PrefixCache::report_uncached(BlockId id, UncacheCause cause) {
  BlockMeta& meta = blocks_[id.value];
  const bool watched = meta.watched != 0;
  meta.watched = 0;
  observer_->on_block_uncached(id, meta.hash, cause, watched, event_time());
}

// ---------------------------------------------------------------- allocate

void PrefixCache::record_admission(const Request& request, const LookupResult& lookup) {
  QueryCounts& counts = request.preempted ? stats_.preempted : stats_.fresh;
  ++counts.requests;
  counts.query_tokens += request.token_count();
  counts.hit_tokens += lookup.hit_tokens;
  counts.query_blocks += lookup.total_blocks;
  counts.hit_blocks += lookup.hit_blocks;
}

Result<AllocateResult> PrefixCache::allocate(const Request& request) {
  begin_operation();
  if (hybrid_) [[unlikely]]
    return allocate_hybrid(request);
  return with_policy([&](auto& policy) { return allocate_with(policy, request); });
}

template <class Policy>
Result<AllocateResult> PrefixCache::allocate_with(Policy& policy, const Request& request) {
  if (const auto shape = validate_shape(request); !shape) return shape.status();
  if (request_slot_.find(request.id.value)) return Status::duplicate_request;

  const std::span<const BlockHash> hashes = request_hashes(request);
  const std::span<const BlockHash> fingerprints = request_fingerprints(request);
  AllocateResult result;
  result.hashes = hashes;
  result.lookup = probe(request, hashes, fingerprints);
  const std::uint32_t total = result.lookup.total_blocks;
  const std::uint32_t hashed = result.lookup.hashed_blocks;

  // Past the prefix, share any block whose hash is still resident (and, when
  // verifying, whose content matches; the probe already counted a mismatch
  // at the prefix's end).
  for (std::uint32_t i = result.lookup.hit_blocks; i < hashed; ++i) {
    const auto block = find_block(hashes[i]);
    if (!block) continue;
    if (content_matches(block->value, fingerprints, i)) {
      scratch_resident_[i] = block->value;
    } else if (i > result.lookup.hit_blocks || !result.lookup.verification_failed) {
      ++stats_.verification_failures;
    }
  }
  std::uint32_t needed_new = 0, needed_free_hits = 0;
  for (std::uint32_t i = 0; i < total; ++i) {
    const std::uint32_t b = scratch_resident_[i];
    if (b == kNoBlock) {
      ++needed_new;
    } else if (blocks_[b].ref_count == 0) {
      ++needed_free_hits;
    }
  }
  const std::uint32_t needed = needed_new + needed_free_hits;
  if (needed > uncached_.size + policy.evictable_count()) {
    ++stats_.allocation_failures;
    return Status::not_enough_blocks;
  }

  // Commit. Touch resident blocks first so that taking new blocks cannot
  // evict a block this request is about to share.
  RequestState& state = open_request(request, hashes, fingerprints);
  state.blocks.resize(total);
  for (std::uint32_t i = 0; i < total; ++i) {
    if (scratch_resident_[i] == kNoBlock) continue;
    state.blocks[i] = BlockId{scratch_resident_[i]};
    touch(policy, state.blocks[i]);
    if (i >= result.lookup.hit_blocks) ++result.reused_blocks;
  }
  result.new_blocks = needed_new;
  for (std::uint32_t i = 0; i < total; ++i) {
    if (scratch_resident_[i] != kNoBlock) {
      if (events_ != nullptr) [[unlikely]]
        events_->end_run();  // shared, not stored: announced already
      continue;
    }
    state.blocks[i] = take_free_block(policy, result.evicted_blocks);
    // Real token-mode chains cannot repeat a hash within a request; caller-
    // given hashes can, a refused collision leaves its hash resident, and a
    // weak test hash collides anywhere: only those need the duplicate probe.
    if (i < hashed) {
      const bool may_be_resident =
          request.hash_mode() || config_.verify_tokens || config_.hash_bits < 128;
      const bool cached = cache_block(policy, state.blocks[i], hashes[i], may_be_resident,
                                      stored_fingerprint(fingerprints, i));
      if (events_ != nullptr) [[unlikely]]
        record_stored(cached, request, hashes, i);
    }
  }
  if (events_ != nullptr) [[unlikely]]
    events_->end_run();

  block_references_ += total;
  record_admission(request, result.lookup);
  return result;
}

// Registers an admitted request in a (reused) slot; the caller fills its
// block table. Keeps what decode growth needs: the chain's last hash and, in
// token mode, the tokens after the last full block and the extra keys.
PrefixCache::RequestState& PrefixCache::open_request(const Request& request,
                                                     std::span<const BlockHash> hashes,
                                                     std::span<const BlockHash> fingerprints) {
  std::uint32_t slot;
  if (free_request_slots_.empty()) {
    slot = static_cast<std::uint32_t>(request_states_.size());
    request_states_.emplace_back();
  } else {
    slot = free_request_slots_.back();
    free_request_slots_.pop_back();
  }
  RequestState& state = request_states_[slot];
  const auto hashed = static_cast<std::uint32_t>(hashes.size());
  state.id = request.id;
  state.num_tokens = request.token_count();
  state.hashed_blocks = hashed;
  state.last_hash = hashed > 0 ? hashes.back() : hasher_.root();
  state.last_fingerprint = fingerprints.empty() ? fingerprinter_.root() : fingerprints.back();
  state.hash_mode = request.hash_mode();
  state.sealed = state.hash_mode && hashed == blocks_for(state.num_tokens, block_size()) &&
                 state.num_tokens % block_size() != 0;
  if (state.hash_mode) {
    state.partial.clear();
    state.extras = ExtraKeys{};
  } else {
    state.partial.assign(request.tokens.begin() + std::size_t{hashed} * block_size(),
                         request.tokens.end());
    state.extras = request.extras;
  }
  request_slot_.insert_or_assign(request.id.value, slot);
  return state;
}

// ---------------------------------------------------------------- append

template <class Policy>
Result<AppendResult> PrefixCache::grow(Policy& policy, RequestState& state,
                                       std::uint32_t num_new_tokens,
                                       std::span<const BlockHash> completed,
                                       std::span<const BlockHash> fingerprints,
                                       std::span<const TokenId> completed_tokens) {
  const std::uint64_t new_total_tokens = std::uint64_t{state.num_tokens} + num_new_tokens;
  const std::uint64_t new_total_blocks = (new_total_tokens + block_size() - 1) / block_size();
  if (new_total_blocks > num_blocks()) return Status::request_too_large;
  const auto extra = static_cast<std::uint32_t>(new_total_blocks - state.blocks.size());
  if (extra > uncached_.size + policy.evictable_count()) {
    ++stats_.allocation_failures;
    return Status::not_enough_blocks;
  }

  AppendResult result;
  result.new_blocks = extra;
  block_references_ += extra;
  for (std::uint32_t i = 0; i < extra; ++i) {
    state.blocks.push_back(take_free_block(policy, result.evicted_blocks));
  }
  for (std::size_t k = 0; k < completed.size(); ++k) {
    const bool cached = cache_block(policy, state.blocks[state.hashed_blocks], completed[k], true,
                                    stored_fingerprint(fingerprints, k));
    if (cached) ++result.cached_blocks;
    if (events_ != nullptr) [[unlikely]]
      record_grown(cached, state, completed[k],
                   completed_tokens.empty()
                       ? completed_tokens
                       : completed_tokens.subspan(k * block_size(), block_size()));
    ++state.hashed_blocks;
    state.last_hash = completed[k];
    if (!fingerprints.empty()) state.last_fingerprint = fingerprints[k];
  }
  if (events_ != nullptr) [[unlikely]]
    events_->end_run();  // one store per request per step, as vLLM
  state.num_tokens = static_cast<std::uint32_t>(new_total_tokens);
  result.num_tokens = state.num_tokens;
  return result;
}

Result<AppendResult> PrefixCache::append(RequestId id, std::span<const TokenId> tokens) {
  begin_operation();
  RequestState* state = find_request(id);
  if (state == nullptr) return Status::unknown_request;
  if (state->hash_mode) return Status::invalid_hashes;
  if (tokens.empty()) {
    AppendResult unchanged;
    unchanged.num_tokens = state->num_tokens;
    return unchanged;
  }
  if (std::uint64_t{state->num_tokens} + tokens.size() > UINT32_MAX) {
    return Status::request_too_large;
  }
  // Hash the blocks these tokens complete (scratch only: nothing changes yet).
  scratch_tokens_.assign(state->partial.begin(), state->partial.end());
  scratch_tokens_.insert(scratch_tokens_.end(), tokens.begin(), tokens.end());
  const std::size_t completed = scratch_tokens_.size() / block_size();
  scratch_hashes_.clear();
  scratch_fingerprints_.clear();
  BlockHash parent = state->last_hash;
  BlockHash fingerprint_parent = state->last_fingerprint;
  for (std::size_t k = 0; k < completed; ++k) {
    const auto block_tokens =
        std::span<const TokenId>(scratch_tokens_).subspan(k * block_size(), block_size());
    const auto index = state->hashed_blocks + static_cast<std::uint32_t>(k);
    parent = hasher_.hash_block(parent, block_tokens, state->extras, index);
    scratch_hashes_.push_back(parent);
    if (config_.verify_tokens) {
      fingerprint_parent =
          fingerprinter_.hash_block(fingerprint_parent, block_tokens, state->extras, index);
      scratch_fingerprints_.push_back(fingerprint_parent);
    }
  }
  const auto num_new = static_cast<std::uint32_t>(tokens.size());
  auto result = hybrid_ ? append_hybrid(*state, tokens) : with_policy([&](auto& policy) {
    return grow(policy, *state, num_new, scratch_hashes_, scratch_fingerprints_,
                std::span<const TokenId>(scratch_tokens_).first(completed * block_size()));
  });
  if (result) {
    state->partial.assign(scratch_tokens_.begin() + completed * block_size(),
                          scratch_tokens_.end());
  }
  return result;
}

Result<AppendResult> PrefixCache::append_hashes(RequestId id, std::uint32_t num_new_tokens,
                                                std::span<const BlockHash> new_hashes) {
  begin_operation();
  RequestState* state = find_request(id);
  if (state == nullptr) return Status::unknown_request;
  if (!state->hash_mode) return Status::invalid_hashes;
  if (state->sealed) return Status::request_sealed;
  const std::uint64_t new_tokens = std::uint64_t{state->num_tokens} + num_new_tokens;
  if (new_tokens > UINT32_MAX) return Status::request_too_large;
  if (hybrid_) return append_hashes_hybrid(*state, num_new_tokens, new_hashes);
  const std::uint64_t full = new_tokens / block_size();
  const std::uint64_t total = (new_tokens + block_size() - 1) / block_size();
  const std::uint64_t completing = full - state->hashed_blocks;
  const bool seals = total != full && new_hashes.size() == completing + 1;
  if (new_hashes.size() != completing && !seals) return Status::invalid_hashes;
  auto result = with_policy(
      [&](auto& policy) { return grow(policy, *state, num_new_tokens, new_hashes, {}, {}); });
  if (result && seals) state->sealed = true;
  return result;
}

// ---------------------------------------------------------------- KV events

void PrefixCache::set_event_log(CacheEventLog* log) noexcept {
  events_ = log;
  if (events_ == nullptr) return;
  events_->set_block_size(block_size());
  events_->set_groups(hybrid_ ? layout_->groups() : std::span<const KvCacheGroupConfig>());
}

// A cached block lost its key: BlockRemoved with the raw hash and its group.
// Out of line: it sits in the eviction loop every allocation runs.
[[gnu::noinline]] void PrefixCache::record_removed(const detail::BlockSlot& meta) {
  events_->removed(group_key(meta.hash, meta.group), meta.group);
}

void PrefixCache::record_stored(bool cached, const Request& request,
                                std::span<const BlockHash> hashes, std::uint32_t i) {
  if (!cached) {
    events_->end_run();  // kept private: its hash is resident in another block
    return;
  }
  const BlockHash* parent = i > 0 ? &hashes[i - 1] : nullptr;
  std::span<const TokenId> tokens;
  if (!request.hash_mode())
    tokens = request.tokens.subspan(std::size_t{i} * block_size(), block_size());
  events_->stored_block(hashes[i], parent, tokens, i, request.extras);
}

void PrefixCache::record_grown(bool cached, const RequestState& state, const BlockHash& hash,
                               std::span<const TokenId> tokens) {
  if (!cached) {
    events_->end_run();
    return;
  }
  const BlockHash* parent = state.hashed_blocks > 0 ? &state.last_hash : nullptr;
  events_->stored_block(hash, parent, tokens, state.hashed_blocks, state.extras);
}

// ---------------------------------------------------------------- free / reset

Result<FreeResult> PrefixCache::free(RequestId id, FreeOrder order) {
  begin_operation();
  if (hybrid_) [[unlikely]]
    return free_hybrid_request(id, order);
  return with_policy([&](auto& policy) { return free_with(policy, id, order); });
}

template <class Policy>
Result<FreeResult> PrefixCache::free_with(Policy& policy, RequestId id, FreeOrder order) {
  const auto slot = request_slot_.find(id.value);
  if (!slot) return Status::unknown_request;
  RequestState& state = request_states_[*slot];
  FreeResult result;
  const auto release_one = [&](BlockId block) {
    release(policy, block);
    if (blocks_[block.value].ref_count == 0) {
      ++result.released_blocks;
      result.cached_free_blocks += blocks_[block.value].cached ? 1 : 0;
    }
  };
  if (order == FreeOrder::reverse) {
    std::for_each(state.blocks.rbegin(), state.blocks.rend(), release_one);
  } else {
    std::for_each(state.blocks.begin(), state.blocks.end(), release_one);
  }
  block_references_ -= state.blocks.size();
  state.blocks.clear();  // keeps capacity for the slot's next request
  free_request_slots_.push_back(*slot);
  request_slot_.erase(id.value);
  return result;
}

Result<void> PrefixCache::reset() {
  begin_operation();
  if (num_used_blocks() > 0) return Status::blocks_in_use;
  assert(twins_->empty() && "every twin is live");
  // Uncache in eviction order, appending behind the uncached blocks, so the
  // free queue's order is kept (vLLM).
  while (policy_->evictable_count() > 0) {
    const BlockId b = policy_->evict();
    BlockMeta& meta = blocks_[b.value];
    meta.cached = false;
    ++stats_.reset_evictions;
    if (reports_uncache(meta)) report_uncached(b, UncacheCause::reset);
    links_.push_back(uncached_, b.value);
  }
  policy_->clear();
  index_->clear();
  ++stats_.resets;
  if (events_ != nullptr) events_->cleared();
  return {};
}

// ---------------------------------------------------------------- invariants

void PrefixCache::check_invariants() const {
  const auto fail = [](const std::string& what) {
    throw std::logic_error("kvscope: PrefixCache invariant broken: " + what);
  };
  std::vector<std::uint32_t> holders(num_blocks(), 0);
  std::vector<bool> free_slot(request_states_.size(), false);
  for (const std::uint32_t slot : free_request_slots_) free_slot.at(slot) = true;
  std::size_t live = 0;
  for (std::uint32_t slot = 0; slot < request_states_.size(); ++slot) {
    if (free_slot[slot]) continue;
    ++live;
    const RequestState& state = request_states_[slot];
    const RequestId id = state.id;
    if (request_slot_.find(id.value) != slot) fail("request slot holds another id");
    if (hybrid_) {
      check_hybrid_request(state, holders);
      continue;
    }
    if (state.blocks.size() != blocks_for(state.num_tokens, block_size())) {
      fail("request " + std::to_string(id.value) + " has a block table of the wrong length");
    }
    if (state.hashed_blocks > state.blocks.size()) fail("more hashed blocks than blocks");
    if (!state.hash_mode &&
        state.partial.size() !=
            state.num_tokens - std::size_t{state.hashed_blocks} * block_size()) {
      fail("request " + std::to_string(id.value) + " keeps the wrong partial tokens");
    }
    for (const BlockId b : state.blocks) ++holders.at(b.value);
  }
  if (live != request_slot_.size()) fail("live request count differs from the id index");
  std::vector<bool> in_ring(num_blocks(), false);
  std::uint32_t listed = 0;
  for (std::uint32_t b = uncached_.head; b != detail::kNil && listed <= num_blocks();
       b = blocks_[b].next, ++listed) {
    if (in_ring[b]) fail("block " + std::to_string(b) + " twice in the uncached free queue");
    in_ring[b] = true;
  }
  if (listed != uncached_.size) fail("uncached free list length differs from its size");
  std::uint32_t cached = 0, evictable = 0, used = 0;
  std::uint64_t references = 0;
  for (std::uint32_t b = 0; b < num_blocks(); ++b) {
    const BlockMeta& meta = blocks_[b];
    if (meta.ref_count != holders[b]) {
      fail("block " + std::to_string(b) + " ref count " + std::to_string(meta.ref_count) +
           " but held by " + std::to_string(holders[b]) + " request(s)");
    }
    used += meta.ref_count > 0 ? 1 : 0;
    references += meta.ref_count;
    if (meta.watched && (observer_ == nullptr || (meta.ref_count == 0 && !meta.cached))) {
      fail("block " + std::to_string(b) + " is watched but free and uncached, or unobserved");
    }
    if (meta.cached) {
      ++cached;
      evictable += meta.ref_count == 0 ? 1 : 0;
      const auto found = find(meta.hash);
      if (!found || found->value != b) fail("cached block " + std::to_string(b) + " not indexed");
    }
    const bool should_be_in_ring = meta.ref_count == 0 && !meta.cached;
    if (in_ring[b] != should_be_in_ring) {
      fail("block " + std::to_string(b) + " misplaced in the uncached free queue");
    }
  }
  if (cached != index_->size()) fail("index size differs from the cached block count");
  if (evictable != policy_->evictable_count()) fail("policy's evictable count is wrong");
  if (used + num_free_blocks() != num_blocks()) fail("free + in use != num_blocks");
  if (references != block_references_) fail("block reference count differs from the ref sum");
  std::size_t flagged_twins = 0;
  for (const BlockMeta& meta : blocks_) flagged_twins += meta.twin;
  if (flagged_twins != twins_->size()) fail("blocks flagged twin differ from the twin set");
  twins_->for_each([&](std::uint32_t b) {
    const BlockMeta& meta = blocks_[b];
    if (meta.ref_count == 0 || meta.cached || !meta.twin)
      fail("twin " + std::to_string(b) + " not live, private and flagged");
    const auto holder = find_block(meta.hash);
    if (!holder || holder->value == b) fail("twin " + std::to_string(b) + "'s hash has no holder");
    if (!blocks_[holder->value].may_have_twins)
      fail("twin " + std::to_string(b) + "'s holder does not know it may have twins");
  });
}

}  // namespace kvscope
