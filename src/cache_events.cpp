#include "kvscope/cache_events.hpp"

namespace kvscope {

// Ends the open run and opens one starting at chain position `index`.
void CacheEventLog::open_run(const BlockHash* parent, std::uint32_t index, const ExtraKeys& extras,
                             std::uint8_t group) {
  end_run();
  StoredRun run;
  run.first_hash = static_cast<std::uint32_t>(hashes_.size());
  run.first_token = static_cast<std::uint32_t>(tokens_.size());
  run.first_block = index;
  run.has_parent = parent != nullptr;
  run.group = group;
  if (parent != nullptr) run.parent = *parent;
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

void CacheEventLog::cleared() {
  end_run();
  records_.push_back({CacheEventKind::cleared, 0, 0});
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
