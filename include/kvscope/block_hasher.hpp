// kvscope/block_hasher.hpp - chained 128-bit block hashes (XXH3-128).
//
// A prompt is cut into blocks of `block_size` tokens. Only full blocks get a
// hash: XXH3-128 over (parent hash, the block's token ids, its extra keys),
// keyed with the configured secret. Block 0's parent is the chain root, which
// is derived from the secret alone, so with the default secret (0) hashes are
// reproducible across processes and machines (tokens are hashed as
// little-endian uint32; kvscope targets little-endian hosts).
//
// Extra keys, in this order, each only when present (GUIDE section 2):
//   1. adapter (LoRA) id - every block;
//   2. multimodal items overlapping the block, as (item id, item offset minus
//      block start; may be negative) - every overlapping block;
//   3. tenant cache salt - block 0 only; it isolates the chain via the parents;
//   4. prompt-embeddings digest - every block.
//
// Thread rules: a BlockHasher is immutable after construction except for its
// scratch buffer, so one instance must not be shared by concurrent callers;
// copy it per thread/shard (copies are cheap).
// Cost: one XXH3-128 over 16 + 4*block_size bytes (+ extras) per block, about
// 8 ns for block_size 16 on the reference machine (docs/performance.md).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kvscope/types.hpp"

namespace kvscope {

/// A multimodal input occupying prompt positions [offset, offset + length).
struct MultimodalItem {
  BlockHash content_id;      ///< digest of the item's content, computed by the caller
  std::uint32_t offset = 0;  ///< first prompt position of the item
  std::uint32_t length = 0;  ///< number of placeholder tokens; 0 is invalid
};

/// A tenant's cache salt, reduced to a 128-bit digest.
struct CacheSalt {
  BlockHash digest;
  /// Digest of an arbitrary salt string (XXH3-128, seed 0).
  static CacheSalt from_string(std::string_view salt) noexcept;
  friend bool operator==(const CacheSalt&, const CacheSalt&) = default;
};

/// Everything besides tokens that makes a block's content distinct.
struct ExtraKeys {
  std::optional<std::uint64_t> adapter_id;
  std::vector<MultimodalItem> mm_items;  ///< sorted by offset (checked)
  std::optional<CacheSalt> salt;
  std::optional<BlockHash> embeddings_digest;

  bool empty() const noexcept {
    return !adapter_id && mm_items.empty() && !salt && !embeddings_digest;
  }
};

/// The key the chain is built with. 0 (the default) is the documented public
/// key; a random secret makes hashes unpredictable to tenants that cannot read
/// it, which defends against crafted collisions (XXH3 is not a cryptographic
/// MAC: treat this as a mitigation, and see token verification in docs).
struct HashSeed {
  std::uint64_t secret = 0;
};

/// Computes chained block hashes for one block size and seed.
class BlockHasher {
 public:
  /// `hash_bits` < 128 keeps only the low `hash_bits` bits of every block
  /// hash (the chain continues from the truncated value): a deliberately weak
  /// hash, so tests can craft collisions. 128 (the default) is the real hash.
  /// Throws std::invalid_argument if block_size is 0 or hash_bits is not in 8..128.
  explicit BlockHasher(std::uint32_t block_size, HashSeed seed = {}, std::uint32_t hash_bits = 128);

  std::uint32_t block_size() const noexcept { return block_size_; }
  /// Parent hash of block 0: XXH3-128 of "kvscope/chain-root/v1" keyed by the secret.
  BlockHash root() const noexcept { return root_; }

  /// Hash of block `block_index` of a sequence.
  /// Preconditions: block_tokens.size() == block_size(); extras.mm_items sorted
  /// by offset. Cost: O(block_size + overlapping mm items).
  BlockHash hash_block(BlockHash parent, std::span<const TokenId> block_tokens,
                       const ExtraKeys& extras, std::uint32_t block_index);

  /// Appends to `out` the hashes of the full blocks of `tokens` that `out`
  /// does not hold yet: blocks out.size() .. tokens.size()/block_size - 1.
  /// This is the incremental form: as a sequence grows, call it again with
  /// the longer token list and the same `out`; only new full blocks are hashed.
  void extend_hashes(std::span<const TokenId> tokens, const ExtraKeys& extras,
                     std::vector<BlockHash>& out);

 private:
  std::uint32_t block_size_;
  std::uint64_t secret_;
  BlockHash keep_bits_;  // mask applied to every block hash (all ones at 128 bits)
  BlockHash root_;
  std::vector<unsigned char> scratch_;
};

/// Throws std::invalid_argument if items are unsorted or have length 0.
void validate_extra_keys(const ExtraKeys& extras);

}  // namespace kvscope
