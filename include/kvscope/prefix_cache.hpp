// kvscope/prefix_cache.hpp - the shard-local prefix (KV-block) cache core.
//
// A fixed pool of `num_blocks` blocks of `block_size` tokens. kvscope owns
// block ids and metadata only; the engine owns the KV memory they name.
// Semantics follow vLLM v1 prefix caching (GUIDE section 2):
//  - only full blocks are hashed (chained XXH3-128, see block_hasher.hpp);
//  - lookup scans a request's block hashes left to right and stops at the
//    first miss; hits are capped at num_tokens - 1 tokens by default, because
//    the engine always recomputes the last prompt token;
//  - allocation is all-or-nothing: touching a hit block with ref count 0
//    takes it out of the free pool, so needed = new blocks + such hits;
//  - a request's blocks are freed in reverse order; a freed block keeps its
//    hash and stays hittable until the pool reuses it (eviction); blocks
//    without a hash are reused first;
//  - reset is refused while any block is in use;
//  - usage = blocks in use / num_blocks (cached-but-free blocks count free).
// Beyond vLLM: a block whose hash is already resident is never duplicated;
// precomputed hashes can stand in for tokens; four eviction policies.
//
// Thread rules: single-threaded, no locks. One PrefixCache belongs to one
// shard; only that shard's thread/strand may call it. Moving a cache between
// threads needs external happens-before (e.g. a strand hop).
//
// Cost: allocate/free/append are O(blocks of the request) plus hashing;
// lookup is O(blocks probed). No heap allocation per block; per request only
// when a request's scratch vectors first grow. Failed operations (any Status
// but ok) change nothing except the allocation_failures counter.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/cache_events.hpp"
#include "kvscope/clock.hpp"
#include "kvscope/detail/block_slot.hpp"
#include "kvscope/detail/flat_index.hpp"
#include "kvscope/eviction_policy.hpp"
#include "kvscope/kv_cache_groups.hpp"
#include "kvscope/prefix_cache_stats.hpp"
#include "kvscope/result.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

namespace detail {
class EvictionPolicy;
class SlotTable;
class TwinSet;
}  // namespace detail

/// Construction parameters; validate() throws std::invalid_argument with a message.
struct PrefixCacheConfig {
  std::uint32_t num_blocks = 0;   ///< pool size; 1 .. 2^31
  std::uint32_t block_size = 16;  ///< tokens per block; >= 1
  EvictionPolicyKind policy = EvictionPolicyKind::lru;
  HashSeed hash_seed{};             ///< secret key of the hash chain (0 = public default)
  double s3fifo_small_ratio = 0.1;  ///< S3-FIFO small-queue share of the pool; (0, 1)
  /// Verify content on every hit (collision defence). Each cached block also
  /// keeps a 64-bit fingerprint from a second, independently keyed hash
  /// chain over the same tokens and extra keys; a resident hash whose
  /// fingerprint differs from the request's is a hash collision: it is
  /// counted in stats().verification_failures and treated as a miss (the
  /// request gets its own, private block). Costs a second hash per block and
  /// 8 bytes per block. Token mode only: blocks cached from precomputed
  /// hashes carry no fingerprint and are trusted, and hash-mode requests are
  /// not verified (the caller owns their hashes).
  bool verify_tokens = false;
  /// Tests only: keep this many low bits of each token-mode block hash
  /// (8..128), a weak hash with which collisions can be crafted. 128 in
  /// production.
  std::uint32_t hash_bits = 128;
  /// KV cache groups of a hybrid-attention model (kvscope/kv_cache_groups.hpp),
  /// sharing the one pool. Empty (the default): one full-attention group of
  /// block_size tokens, exactly as without groups. With groups, block_size is
  /// the hash block size (requests are hashed in chunks of it) and must
  /// divide every group's block size; hits and cached prefixes are then
  /// multiples of the groups' lcm. Not combinable with verify_tokens.
  std::vector<KvCacheGroupConfig> groups{};

  void validate() const;
};

/// A block-table entry for which a KV cache group needs no block.
inline constexpr BlockId kPlaceholderBlock{detail::kNil};

/// One request as handed to lookup() and allocate(). A view: the spans must
/// stay valid for the duration of the call only.
struct Request {
  RequestId id;
  /// Token mode: the prompt's tokens (block_hashes empty).
  std::span<const TokenId> tokens;
  /// Hash mode: one precomputed hash per block, for floor(num_tokens /
  /// block_size) full blocks, or ceil(...) when the caller also names the
  /// trailing partial block (then that block is cached too and the request
  /// is "sealed": append is refused).
  std::span<const BlockHash> block_hashes;
  /// Hash mode only: prompt length in tokens (token mode uses tokens.size()).
  std::uint32_t num_tokens = 0;
  ExtraKeys extras;  ///< token mode only; ignored in hash mode
  /// Most prompt tokens a hit may cover; nullopt means num_tokens - 1 (vLLM).
  std::optional<std::uint32_t> max_hit_tokens;
  /// Looked up again after preemption: counted in stats.preempted.
  bool preempted = false;
  /// Hash mode (set by with_hashes): block_hashes stand in for tokens.
  bool precomputed_hashes = false;

  static Request with_tokens(RequestId id, std::span<const TokenId> tokens, ExtraKeys extras = {});
  static Request with_hashes(RequestId id, std::uint32_t num_tokens,
                             std::span<const BlockHash> block_hashes);

  bool hash_mode() const noexcept { return precomputed_hashes; }
  std::uint32_t token_count() const noexcept {
    return hash_mode() ? num_tokens : static_cast<std::uint32_t>(tokens.size());
  }
};

/// Why a lookup's hit stopped where it did.
enum class LookupStop {
  too_short,       ///< the prompt has no full block: it can never hit
  not_resident,    ///< stopped at the first block whose hash is not cached
  hit_cap,         ///< stopped by the hit cap (max_hit_tokens)
  all_blocks_hit,  ///< every hashed block hit (the partial tail is never hashed)
};

struct LookupResult {
  std::uint32_t hit_blocks = 0;     ///< length of the cached prefix, in blocks
  std::uint32_t hit_tokens = 0;     ///< min(hit_blocks * block_size, num_tokens)
  std::uint32_t total_blocks = 0;   ///< ceil(num_tokens / block_size)
  std::uint32_t hashed_blocks = 0;  ///< blocks with a hash (full, or named in hash mode)
  LookupStop stop = LookupStop::too_short;
  /// Hash of the last hit block: names the cached prefix that served the hit
  /// (per-prefix metrics). Meaningful only when hit_blocks > 0.
  BlockHash prefix_hash;
  /// Hash of the first block that missed; meaningful only when stop is
  /// not_resident (refault checks).
  BlockHash first_miss_hash;
  /// With verify_tokens: the first miss was a resident hash whose content
  /// fingerprint differs (a collision refused), not an absent hash.
  bool verification_failed = false;
};

struct AllocateResult {
  LookupResult lookup;  ///< the prefix hit this allocation used
  /// Resident blocks past the prefix, shared rather than duplicated.
  std::uint32_t reused_blocks = 0;
  std::uint32_t new_blocks = 0;      ///< blocks taken from the free pool
  std::uint32_t evicted_blocks = 0;  ///< of those, cached blocks whose hash was dropped
  /// The block hashes this admission used, root first (hashed_blocks of
  /// them): the request's own in hash mode, the ones the cache computed in
  /// token mode. Borrowed, for metrics that replay admissions (the
  /// miss-ratio curve): valid on the cache's thread until its next mutating
  /// call, and empty in results the Runtime hands to other threads.
  std::span<const BlockHash> hashes;
};

struct AppendResult {
  std::uint32_t new_blocks = 0;      ///< blocks taken from the free pool
  std::uint32_t evicted_blocks = 0;  ///< of those, cached blocks whose hash was dropped
  std::uint32_t cached_blocks = 0;   ///< blocks completed by these tokens and now hittable
  std::uint32_t num_tokens = 0;      ///< the request's length after the append
};

struct FreeResult {
  std::uint32_t released_blocks = 0;     ///< blocks whose ref count reached 0
  std::uint32_t cached_free_blocks = 0;  ///< of those, blocks that stay hittable
};

/// One KV cache group's share of the pool and of the admissions.
struct KvCacheGroupStats {
  std::uint32_t used_blocks = 0;    ///< blocks in use in this group's block tables
  std::uint32_t cached_blocks = 0;  ///< blocks cached for this group (hittable)
  std::uint64_t query_blocks = 0;   ///< admissions' blocks of this group: ceil(tokens / b) each
  std::uint64_t hit_blocks = 0;     ///< of those, served by cached blocks
  std::uint64_t placeholder_blocks = 0;  ///< of those, needing no block (before a window)
  std::uint64_t evictions = 0;           ///< cached blocks of this group reclaimed for new blocks

  KvCacheGroupStats& operator+=(const KvCacheGroupStats& other) noexcept;
};

/// Order in which free() releases a request's blocks.
enum class FreeOrder {
  reverse,  ///< last block first (vLLM): the chain's tail is evicted before its prefix
  forward,  ///< first block first (the trace README's LRU replay touches in order)
};

/// Why a cached block lost its hash.
enum class UncacheCause { reused, reset };

/// Block lifecycle hooks; all default to no-ops. Called synchronously on the
/// cache's thread, in the middle of an operation: do not call mutating
/// members of the cache (const queries are fine), except
/// set_observer_sample_rate() and unwatch(). Keep them cheap.
///
/// Hooks report *watched* blocks only: a block becomes watched when it is
/// allocated and chosen by the sampler (ObserverOptions::sample_rate), and
/// stops being watched when it loses its hash or is released without one.
/// `now` is the operation's timestamp: the cache reads its clock at most
/// once per operation, and only when some hook fires.
class PrefixCacheObserver {
 public:
  virtual ~PrefixCacheObserver() = default;
  /// A sampled block was taken from the free pool for a request (ref 0 -> 1).
  virtual void on_block_allocated(BlockId, Timestamp /*now*/) {}
  /// A watched block got a hash and became hittable.
  virtual void on_block_cached(BlockId, const BlockHash&, Timestamp /*now*/) {}
  /// A request touched a watched cached block (prefix hit or shared reuse).
  virtual void on_block_hit(BlockId, Timestamp /*now*/) {}
  /// A watched block's ref count reached 0; `cached` tells whether it stays
  /// hittable (if not, the block stops being watched).
  virtual void on_block_released(BlockId, bool /*cached*/, Timestamp /*now*/) {}
  /// A block lost its hash (vLLM's "removed" event): a watched block, or any
  /// block when ObserverOptions::every_uncache is set. `watched` tells which.
  virtual void on_block_uncached(BlockId, const BlockHash&, UncacheCause, bool /*watched*/,
                                 Timestamp /*now*/) {}
};

/// How a PrefixCache feeds its observer; validate() throws std::invalid_argument.
struct ObserverOptions {
  /// Share of block allocations that become watched, in (0, 1]. Sampling
  /// draws geometric gaps between watched allocations (one countdown per
  /// allocation, no random number per block).
  double sample_rate = 1.0;
  std::uint64_t sample_seed = 0x6b76'7363'6f70'6531;  ///< seeds the sampler (deterministic)
  /// Also report every block that loses its hash, watched or not (ghost tables).
  bool every_uncache = false;
  /// Source of hook timestamps; must outlive the cache's use of it. The
  /// default is SteadyClock::instance(); a runtime that already knows the
  /// time of a batch of operations can hand a ManualClock it sets per batch.
  const Clock* clock = nullptr;

  void validate() const;
};

class PrefixCache {
 public:
  /// Throws std::invalid_argument on bad configuration (see PrefixCacheConfig).
  explicit PrefixCache(const PrefixCacheConfig& config);
  ~PrefixCache();
  PrefixCache(PrefixCache&&) noexcept;
  PrefixCache& operator=(PrefixCache&&) noexcept;
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  const PrefixCacheConfig& config() const noexcept { return config_; }

  /// Probe: the longest cached prefix of `request`. Changes no block; counts
  /// the probe in stats().probes (an admission is counted by allocate()).
  /// Fails with empty_request or invalid_hashes.
  Result<LookupResult> lookup(const Request& request);

  /// Admits a request: looks up its prefix, touches the hit blocks, shares
  /// any other resident block, takes new blocks for the rest, caches the new
  /// full blocks. All or nothing. Fails with empty_request, invalid_hashes,
  /// duplicate_request, request_too_large or not_enough_blocks.
  Result<AllocateResult> allocate(const Request& request);

  /// Decode growth of a token-mode request: appends tokens, takes blocks as
  /// needed and caches blocks these tokens complete. A completed block whose
  /// hash is already resident stays private (its KV was written by this
  /// request; no duplicate entry) until the resident block is reclaimed:
  /// then it takes the hash over, so the hash stays cached (of several such
  /// twins, the lowest block id). All or nothing. Appending no tokens is a
  /// no-op. Fails with unknown_request, request_sealed, invalid_hashes (a
  /// hash-mode request: use append_hashes), request_too_large, not_enough_blocks.
  Result<AppendResult> append(RequestId id, std::span<const TokenId> tokens);

  /// Decode growth of a hash-mode request: `new_hashes` names the blocks the
  /// `num_new_tokens` complete (and, optionally, the new partial tail, which
  /// seals the request). Fails as append(), with invalid_hashes on a count
  /// mismatch or for a token-mode request.
  Result<AppendResult> append_hashes(RequestId id, std::uint32_t num_new_tokens,
                                     std::span<const BlockHash> new_hashes);

  /// Releases a request's blocks and forgets the request. Fails with unknown_request.
  Result<FreeResult> free(RequestId id, FreeOrder order = FreeOrder::reverse);

  /// Drops every hash (all blocks become uncached and free, free-queue order
  /// kept). Refused with blocks_in_use while any request holds blocks.
  Result<void> reset();

  // ---- queries (O(1) unless stated) ----
  std::uint32_t num_blocks() const noexcept { return config_.num_blocks; }
  std::uint32_t block_size() const noexcept { return config_.block_size; }
  std::uint32_t num_free_blocks() const noexcept;
  std::uint32_t num_used_blocks() const noexcept { return num_blocks() - num_free_blocks(); }
  std::uint32_t num_cached_blocks() const noexcept;
  std::size_t num_requests() const noexcept { return request_slot_.size(); }
  /// Blocks in use / num_blocks, in [0, 1]. Cached-but-free blocks count as free.
  double usage() const noexcept;
  const PrefixCacheStats& stats() const noexcept { return stats_; }

  /// The request's block table (block i holds tokens [i*bs, (i+1)*bs)); with
  /// KV cache groups, group 0's. The span is valid until the next mutating
  /// call. Fails with unknown_request.
  Result<std::span<const BlockId>> block_table(RequestId id) const;
  /// Group g's block table (block i holds tokens [i*b, (i+1)*b) for the
  /// group's block size b); kPlaceholderBlock where the group needs no block
  /// (before a sliding window's run, or released once out of the window).
  /// Fails with unknown_request, or invalid_hashes for a group that does not exist.
  Result<std::span<const BlockId>> block_table(RequestId id, std::uint32_t group) const;
  /// The layout of the KV cache groups (one full-attention group of
  /// block_size without config.groups).
  const KvCacheLayout& layout() const noexcept { return *layout_; }
  /// The block cached for `hash` in KV cache group `group`, if any.
  std::optional<BlockId> find(const BlockHash& hash, std::uint32_t group) const;
  /// Group g's blocks and admission counts (g < layout().group_count(), else
  /// all zero). O(num_blocks): for reports, not for every operation.
  KvCacheGroupStats group_stats(std::uint32_t g) const;
  /// Every group's, in one pass over the blocks. O(num_blocks).
  std::vector<KvCacheGroupStats> all_group_stats() const;
  /// Whether config().groups made this a hybrid cache (not one full-attention
  /// group of block_size, which runs exactly as without groups).
  bool has_groups() const noexcept { return hybrid_; }
  /// Length of a live request in tokens; fails with unknown_request.
  Result<std::uint32_t> num_tokens(RequestId id) const;
  /// The block holding `hash`, if cached.
  std::optional<BlockId> find(const BlockHash& hash) const;
  /// Hash of a cached block; nullopt if uncached. Precondition: id < num_blocks.
  std::optional<BlockHash> block_hash(BlockId id) const;
  /// Precondition: id < num_blocks.
  std::uint32_t ref_count(BlockId id) const;

  /// The order in which free blocks would be reused if nothing else
  /// happened: uncached free blocks first, then the policy's victims. O(N);
  /// for tests and debugging.
  std::vector<BlockId> free_queue() const;

  /// How many of a request's `hashed` leading blocks a hit may cover (vLLM
  /// keeps the last prompt token uncached; max_hit_tokens overrides). O(1).
  std::uint32_t hit_cap_blocks(const Request& request, std::uint32_t hashed) const {
    return eligible_hit_blocks(request, hashed);
  }

  /// Bytes of per-block and index structures (excludes request state).
  std::size_t metadata_bytes() const noexcept;

  /// Installs lifecycle hooks (nullptr removes them) and un-watches every
  /// block: only blocks allocated from now on can become watched. The
  /// observer must outlive the cache or be removed first. O(num_blocks).
  /// Throws std::invalid_argument on bad options (nothing changes then).
  void set_observer(PrefixCacheObserver* observer, const ObserverOptions& options = {});
  /// Changes the observer's sample rate from the next allocation on and
  /// keeps every watched block watched (set_observer would un-watch them):
  /// adaptive samplers steer with it. Allowed inside an observer hook: it
  /// only redraws the sampler's countdown, which is memoryless, so each
  /// later allocation is watched with the new rate exactly. O(1). Throws
  /// std::invalid_argument unless rate is in (0, 1] (nothing changes then).
  void set_observer_sample_rate(double rate);
  /// Stops reporting `block`'s events until it is sampled again at a later
  /// allocation: an observer thinning its sample when it lowers the rate.
  /// Allowed inside an observer hook. O(1). Throws std::out_of_range if
  /// block >= num_blocks().
  void unwatch(BlockId block);
  /// Records the cache's KV events (blocks stored, removed, all cleared)
  /// into `log` from now on; nullptr stops. The log must outlive the cache
  /// or be detached first; its block size is set to the cache's. Off (the
  /// default) costs a null check per operation (kvscope/cache_events.hpp).
  void set_event_log(CacheEventLog* log) noexcept;
  /// Sum of the ref counts of all blocks: the number of block-table entries
  /// of live requests. Divided by num_used_blocks() it is the sharing factor
  /// (references per block in use). O(1).
  std::uint64_t num_block_references() const noexcept { return block_references_; }

  /// Checks every structural invariant; throws std::logic_error naming the
  /// first broken one. O(N + total request blocks); for tests and fuzzing.
  void check_invariants() const;

 private:
  struct RequestState;
  struct HybridState;

  Result<void> validate_shape(const Request& request) const;
  std::span<const BlockHash> request_hashes(const Request& request);
  std::uint32_t eligible_hit_blocks(const Request& request, std::uint32_t hashed) const;
  std::span<const BlockHash> request_fingerprints(const Request& request);
  bool content_matches(std::uint32_t block, std::span<const BlockHash> fingerprints,
                       std::uint32_t i) const noexcept;
  LookupResult probe(const Request& request, std::span<const BlockHash> hashes,
                     std::span<const BlockHash> fingerprints);
  void record_admission(const Request& request, const LookupResult& lookup);
  // KV events (events_ attached): block i of an admission, or the next block
  // a request grew, was cached (or, `cached` false, kept private).
  void record_stored(bool cached, const Request& request, std::span<const BlockHash> hashes,
                     std::uint32_t i);
  void record_grown(bool cached, const RequestState& state, const BlockHash& hash,
                    std::span<const TokenId> tokens);
  void record_removed(const detail::BlockSlot& meta);
  RequestState& open_request(const Request& request, std::span<const BlockHash> hashes,
                             std::span<const BlockHash> fingerprints);
  // The hot paths are templates over the concrete policy (see src/eviction/).
  template <class Fn>
  decltype(auto) with_policy(Fn&& fn);
  template <class Policy>
  Result<AllocateResult> allocate_with(Policy& policy, const Request& request);
  template <class Policy>
  Result<AppendResult> grow(Policy& policy, RequestState& state, std::uint32_t num_new_tokens,
                            std::span<const BlockHash> completed,
                            std::span<const BlockHash> fingerprints,
                            std::span<const TokenId> completed_tokens);
  template <class Policy>
  Result<FreeResult> free_with(Policy& policy, RequestId id, FreeOrder order);
  template <class Policy>
  BlockId take_free_block(Policy& policy, std::uint32_t& evicted_count);
  template <class Policy>
  void touch(Policy& policy, BlockId id);
  template <class Policy>
  bool cache_block(Policy& policy, BlockId id, const BlockHash& hash, bool may_be_resident,
                   std::uint64_t fingerprint);
  template <class Policy>
  void release(Policy& policy, BlockId id);
  void keep_private(BlockId id, const BlockHash& hash, std::uint64_t fingerprint);
  template <class Policy>
  bool promote_twin(Policy& policy, const BlockHash& hash);
  void begin_operation() noexcept { event_time_known_ = false; }
  Timestamp event_time() noexcept;
  std::uint64_t next_sample_gap() noexcept;
  void watch_if_sampled(BlockId id);
  // Whether the observer hears of this block losing its hash (and so
  // whether report_uncached must run: only watched blocks carry the flag).
  bool reports_uncache(const detail::BlockSlot& meta) const noexcept {
    return observer_ != nullptr && (meta.watched != 0 || observer_options_.every_uncache);
  }
  void report_uncached(BlockId id, UncacheCause cause);
  std::optional<BlockId> find_block(const BlockHash& hash) const;  // find(), inlined
  // KV cache groups (config_.groups; src/prefix_cache_hybrid.cpp). The
  // single-group operations branch here once, when hybrid_ is set.
  LookupResult probe_hybrid(const Request& request, std::span<const BlockHash> hashes,
                            HybridHit& hit) const;
  Result<AllocateResult> allocate_hybrid(const Request& request);
  Result<AppendResult> append_hybrid(RequestState& state, std::span<const TokenId> tokens);
  Result<AppendResult> append_hashes_hybrid(RequestState& state, std::uint32_t num_new_tokens,
                                            std::span<const BlockHash> new_hashes);
  template <class Policy>
  Result<AppendResult> grow_hybrid(Policy& policy, RequestState& state,
                                   std::uint32_t num_new_tokens,
                                   std::span<const TokenId> new_tokens);
  template <class Policy>
  std::uint32_t cache_decided_blocks(Policy& policy, RequestState& state);
  template <class Policy>
  BlockId take_for_group(Policy& policy, std::uint32_t g, std::uint32_t& evicted_count);
  template <class Policy>
  void free_hybrid(Policy& policy, RequestState& state, FreeOrder order, FreeResult& result);
  void check_hybrid_request(const RequestState& state, std::vector<std::uint32_t>& holders) const;
  Result<FreeResult> free_hybrid_request(RequestId id, FreeOrder order);
  // The hybrid state at `state`'s slot.
  HybridState& hybrid_of(const RequestState& state);
  const HybridState& hybrid_of(const RequestState& state) const;
  RequestState* find_request(RequestId id);
  const RequestState* find_request(RequestId id) const;

  PrefixCacheConfig config_;
  // The groups; hybrid_ unless it is one full-attention group of block_size
  // (then every operation takes the single-group path of before).
  std::unique_ptr<KvCacheLayout> layout_;
  bool hybrid_ = false;
  std::array<KvCacheGroupStats, kMaxKvCacheGroups> group_admissions_{};  // hybrid_ only
  std::vector<HybridState> hybrid_states_;  // hybrid_ only: one per request_states_ slot
  BlockHasher hasher_;
  std::vector<detail::BlockSlot> blocks_;  // fixed size: policy and links_ point into it
  detail::SlotLists links_;
  detail::IndexList uncached_;  // free blocks without a hash, in reuse order
  std::unique_ptr<detail::SlotTable> index_;
  std::unique_ptr<detail::EvictionPolicy> policy_;
  // Live private blocks whose hash another block holds (keep_private), by
  // hash: one takes the hash over when its holder is reclaimed.
  std::unique_ptr<detail::TwinSet> twins_;
  // Live request id -> its slot in request_states_ (open addressing: no
  // allocation per request once it has grown to the peak of live requests).
  detail::FlatIndex request_slot_;
  std::vector<RequestState> request_states_;
  std::vector<std::uint32_t> free_request_slots_;
  std::vector<BlockHash> scratch_hashes_;
  std::vector<std::uint32_t>
      scratch_resident_;  // per block of a request: resident block id or none
  std::vector<TokenId> scratch_tokens_;
  // Content verification (config_.verify_tokens): the second hash chain and
  // one fingerprint per block (0: none, the block was cached from a
  // precomputed hash). Empty when verification is off.
  BlockHasher fingerprinter_;
  std::vector<std::uint64_t> fingerprints_;
  std::vector<BlockHash> scratch_fingerprints_;  // the request's second chain
  PrefixCacheStats stats_;
  std::uint64_t block_references_ = 0;
  // Observer state (see ObserverOptions).
  PrefixCacheObserver* observer_ = nullptr;
  ObserverOptions observer_options_;
  CacheEventLog* events_ = nullptr;     // KV events, when attached (set_event_log)
  std::uint64_t sample_state_ = 0;      // splitmix64 state of the sampler
  std::uint64_t sample_countdown_ = 0;  // allocations until the next watched one
  Timestamp event_time_{};
  bool event_time_known_ = false;
};

}  // namespace kvscope
