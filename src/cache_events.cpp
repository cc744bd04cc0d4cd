#include "kvscope/cache_events.hpp"

namespace kvscope {

void CacheEventLog::stored_block(const BlockHash& hash, const std::optional<BlockHash>& parent,
                                 std::span<const TokenId> tokens, std::uint32_t index,
                                 const ExtraKeys& extras) {
  if (!open_ || index != next_index_) {
    end_run();
    StoredRun run;
    run.first_hash = static_cast<std::uint32_t>(hashes_.size());
    run.first_token = static_cast<std::uint32_t>(tokens_.size());
    run.first_block = index;
    run.has_parent = parent.has_value();
    if (parent) run.parent = *parent;
    // Only keys that reach the wire: the salt is a key of block 0 alone.
    const bool keyed = extras.adapter_id || !extras.mm_items.empty() || extras.embeddings_digest ||
                       (extras.salt && index == 0);
    if (keyed) {
      run.extras = static_cast<std::uint32_t>(extras_.size());
      extras_.push_back(extras);
    }
    runs_.push_back(run);
    open_ = true;
  }
  StoredRun& run = runs_.back();
  hashes_.push_back(hash);
  ++run.block_count;
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  run.token_count += static_cast<std::uint32_t>(tokens.size());
  next_index_ = index + 1;
}

void CacheEventLog::end_run() {
  if (!open_) return;
  open_ = false;
  records_.push_back({CacheEventKind::stored, static_cast<std::uint32_t>(runs_.size() - 1)});
}

// A removal does not end the open run: allocate() may reclaim a cached block
// for each new block of a run, and vLLM announces those evictions first and
// then the request's new blocks as one store (the run's record is added
// when it ends).
void CacheEventLog::removed(const BlockHash& hash) {
  records_.push_back({CacheEventKind::removed, static_cast<std::uint32_t>(removed_.size())});
  removed_.push_back(hash);
}

void CacheEventLog::cleared() {
  end_run();
  records_.push_back({CacheEventKind::cleared, 0});
}

void CacheEventLog::clear() noexcept {
  records_.clear();
  runs_.clear();
  hashes_.clear();
  removed_.clear();
  tokens_.clear();
  extras_.clear();
  open_ = false;
  next_index_ = 0;
}

}  // namespace kvscope
