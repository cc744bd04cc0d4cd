// kvscope/cache_events.hpp - what a PrefixCache tells the world about its
// contents: vLLM's KV cache events, recorded by the core, published by the
// runtime (kvscope/events/kv_event_publisher.hpp, docs/kv-events.md).
//
// A CacheEventLog is attached to one PrefixCache (set_event_log) and filled
// by it in the order things happen:
//   stored   one per run of consecutive blocks that one allocate() or
//            append() gave a hash (vLLM's BlockStored: one per request per
//            step). A block shared with another request, or kept private
//            (its hash was already resident: kvscope stores no duplicates),
//            ends the run and is not announced.
//   removed  one per hash, when a cached block loses it (reused for another
//            request). Never for blocks that were not announced.
//   cleared  when reset() succeeds (vLLM's AllBlocksCleared); the blocks it
//            un-caches get no removal of their own.
// A run carries its blocks' hashes, the hash of the block before it (the
// parent, absent when the run starts the chain), the run's tokens (token
// mode; none in hash mode, where the cache never sees tokens), the index of
// its first block in the chain and, when the request has any, a copy of its
// extra keys (for the per-block extra keys on the wire). With KV cache
// groups (hybrid attention) every run and removal also names its group, and
// the log keeps the groups' specs (kind, block size, window) for the wire.
//
// Thread rules: the cache's thread fills it; hand it to another thread
// whole (move it), never share it. Cost: with no log attached, nothing but
// a null check per operation; attached, an append per cached or removed
// block (amortised, no allocation once the vectors have grown).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/kv_cache_groups.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

enum class CacheEventKind : std::uint8_t { stored, removed, cleared };

/// One BlockStored: `block_count` blocks whose hashes are
/// CacheEventLog::hashes[first_hash ...] and tokens tokens[first_token ...].
struct StoredRun {
  std::uint32_t first_hash = 0;
  std::uint32_t block_count = 0;
  std::uint32_t first_token = 0;
  std::uint32_t token_count = 0;  ///< block_count x block_size, or 0 in hash mode
  std::uint32_t first_block = 0;  ///< chain position of the run's first block
  bool has_parent = false;        ///< false: the run starts the chain
  BlockHash parent{};
  /// Index into CacheEventLog::extras, or kNoExtras when the request has none.
  std::uint32_t extras = kNoExtras;
  std::uint8_t group = 0;  ///< KV cache group of the run's blocks
  static constexpr std::uint32_t kNoExtras = UINT32_MAX;
};

/// One event in the order it happened: `index` is a run (stored) or a
/// removed hash (removed); unused for cleared.
struct CacheEventRecord {
  CacheEventKind kind = CacheEventKind::cleared;
  std::uint8_t group = 0;  ///< removed: the group the hash was cached for
  std::uint32_t index = 0;
};

/// Invariants: every record's index is in range; runs' hash and token ranges
/// lie inside `hashes` and `tokens`; `open_` is true only between a
/// stored_block() and the next end_run() (a run being built, whose record
/// is not in `records_` yet: the cache ends every run before its operation
/// returns, so readers never see an open one).
class CacheEventLog {
 public:
  explicit CacheEventLog(std::uint32_t block_size = 16) : block_size_(block_size) {}

  std::uint32_t block_size() const noexcept { return block_size_; }
  void set_block_size(std::uint32_t block_size) noexcept { block_size_ = block_size; }
  /// The KV cache groups runs and removals name (at most kMaxKvCacheGroups;
  /// extra ones are ignored). Empty (the default): one full-attention group
  /// of block_size() tokens.
  void set_groups(std::span<const KvCacheGroupConfig> groups) noexcept {
    group_count_ = static_cast<std::uint32_t>(std::min(groups.size(), groups_.size()));
    std::copy_n(groups.begin(), group_count_, groups_.begin());
  }
  std::span<const KvCacheGroupConfig> groups() const noexcept {
    return std::span<const KvCacheGroupConfig>(groups_).first(group_count_);
  }
  /// Group g's spec; one full-attention group of block_size() without groups.
  KvCacheGroupConfig group(std::uint32_t g) const noexcept {
    if (g < group_count_) return groups_[g];
    return KvCacheGroupConfig{AttentionKind::full_attention, block_size_, 0, 1};
  }

  // ---- the cache's side ----
  /// Block `index` of a chain was just cached with `hash`. Extends the open
  /// run when it is the run's next block, else ends it and opens a new one
  /// (with `parent`, and a copy of `extras` when any of them is a key of
  /// the run's blocks: the salt counts on block 0 only). `tokens` are the
  /// block's tokens (empty in hash mode).
  /// `parent` null: the block starts the chain. Inline: the cache calls it
  /// for every block it caches.
  void stored_block(const BlockHash& hash, const BlockHash* parent, std::span<const TokenId> tokens,
                    std::uint32_t index, const ExtraKeys& extras, std::uint8_t group = 0) {
    if (!open_ || index != next_index_ || group != runs_.back().group) [[unlikely]]
      open_run(parent, index, extras, group);
    StoredRun& run = runs_.back();
    hashes_.push_back(hash);
    ++run.block_count;
    tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
    run.token_count += static_cast<std::uint32_t>(tokens.size());
    next_index_ = index + 1;
  }
  void stored_block(const BlockHash& hash, const std::optional<BlockHash>& parent,
                    std::span<const TokenId> tokens, std::uint32_t index, const ExtraKeys& extras,
                    std::uint8_t group = 0) {
    stored_block(hash, parent ? &*parent : nullptr, tokens, index, extras, group);
  }
  /// The next block of the chain was not cached here (or the operation is
  /// over): the open run, if any, ends and its record is added - after any
  /// removal the same operation made, as vLLM orders them.
  void end_run() {
    if (!open_) return;
    open_ = false;
    records_.push_back({CacheEventKind::stored, 0, static_cast<std::uint32_t>(runs_.size() - 1)});
  }
  /// A removal does not end the open run: allocate() may reclaim a cached
  /// block for each new block of a run, and vLLM announces those evictions
  /// first and then the request's new blocks as one store (the run's record
  /// is added when it ends).
  void removed(const BlockHash& hash, std::uint8_t group = 0) {
    records_.push_back(
        {CacheEventKind::removed, group, static_cast<std::uint32_t>(removed_.size())});
    removed_.push_back(hash);
  }
  void cleared();

  // ---- the reader's side ----
  bool empty() const noexcept { return records_.empty(); }
  /// Events recorded, stored runs counted once.
  std::size_t size() const noexcept { return records_.size(); }
  /// Blocks in all stored runs, and their tokens.
  std::size_t stored_blocks() const noexcept { return hashes_.size(); }
  std::size_t stored_tokens() const noexcept { return tokens_.size(); }
  /// Bytes the recorded events take in the log's arrays (not capacity).
  std::size_t bytes() const noexcept {
    return records_.size() * sizeof(CacheEventRecord) + runs_.size() * sizeof(StoredRun) +
           (hashes_.size() + removed_.size()) * sizeof(BlockHash) +
           tokens_.size() * sizeof(TokenId);
  }
  std::span<const CacheEventRecord> records() const noexcept { return records_; }
  const StoredRun& run(std::uint32_t i) const { return runs_[i]; }
  std::span<const BlockHash> hashes(const StoredRun& run) const noexcept {
    return std::span<const BlockHash>(hashes_).subspan(run.first_hash, run.block_count);
  }
  std::span<const TokenId> tokens(const StoredRun& run) const noexcept {
    return std::span<const TokenId>(tokens_).subspan(run.first_token, run.token_count);
  }
  const BlockHash& removed_hash(std::uint32_t i) const { return removed_[i]; }
  const ExtraKeys* extras(const StoredRun& run) const noexcept {
    return run.extras == StoredRun::kNoExtras ? nullptr : &extras_[run.extras];
  }
  /// Empties the log, keeping its capacity.
  void clear() noexcept;

 private:
  void open_run(const BlockHash* parent, std::uint32_t index, const ExtraKeys& extras,
                std::uint8_t group);

  std::uint32_t block_size_;
  std::vector<CacheEventRecord> records_;
  std::vector<StoredRun> runs_;
  std::vector<BlockHash> hashes_;   // stored runs' hashes, run after run
  std::vector<BlockHash> removed_;  // removed hashes, in order
  std::vector<TokenId> tokens_;
  std::vector<ExtraKeys> extras_;
  std::array<KvCacheGroupConfig, kMaxKvCacheGroups> groups_{};
  std::uint32_t group_count_ = 0;
  bool open_ = false;
  std::uint32_t next_index_ = 0;  // chain index the open run continues with
};

}  // namespace kvscope
