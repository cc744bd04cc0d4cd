#include "kvscope/block_hasher.hpp"

// Inline XXH3 (header implementation): lets the compiler specialise the
// 17-128 byte path that a 16-token block takes.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kvscope {

static_assert(std::endian::native == std::endian::little,
              "kvscope hashes tokens as little-endian bytes; big-endian hosts are unsupported");

namespace {

constexpr std::string_view kRootLabel = "kvscope/chain-root/v1";

// Field tags keep the extra keys unambiguous (no two layouts share bytes).
constexpr unsigned char kTagAdapter = 'A';
constexpr unsigned char kTagMultimodal = 'M';
constexpr unsigned char kTagSalt = 'S';
constexpr unsigned char kTagEmbeddings = 'E';

BlockHash to_block_hash(XXH128_hash_t h) { return BlockHash{h.high64, h.low64}; }

// Appends raw bytes of trivially copyable values to the scratch buffer. The
// buffer only grows (never shrinks), so the common case writes in place.
class ByteWriter {
 public:
  explicit ByteWriter(std::vector<unsigned char>& buffer) : buffer_(buffer) {}
  void bytes(const void* data, std::size_t size) {
    if (used_ + size > buffer_.size()) buffer_.resize(std::max(2 * buffer_.size(), used_ + size));
    std::memcpy(buffer_.data() + used_, data, size);
    used_ += size;
  }
  const unsigned char* data() const { return buffer_.data(); }
  std::size_t size() const { return used_; }
  template <class T>
  void value(const T& v) {
    bytes(&v, sizeof v);
  }
  void hash(const BlockHash& h) {
    value(h.high);
    value(h.low);
  }

 private:
  std::vector<unsigned char>& buffer_;
  std::size_t used_ = 0;
};

}  // namespace

CacheSalt CacheSalt::from_string(std::string_view salt) noexcept {
  return CacheSalt{to_block_hash(XXH3_128bits(salt.data(), salt.size()))};
}

void validate_extra_keys(const ExtraKeys& extras) {
  for (std::size_t i = 0; i < extras.mm_items.size(); ++i) {
    if (extras.mm_items[i].length == 0) {
      throw std::invalid_argument("kvscope: multimodal item " + std::to_string(i) +
                                  " has length 0");
    }
    if (i > 0 && extras.mm_items[i].offset < extras.mm_items[i - 1].offset) {
      throw std::invalid_argument("kvscope: multimodal items must be sorted by offset (item " +
                                  std::to_string(i) + ")");
    }
  }
}

BlockHasher::BlockHasher(std::uint32_t block_size, HashSeed seed, std::uint32_t hash_bits)
    : block_size_(block_size), secret_(seed.secret) {
  if (block_size == 0) throw std::invalid_argument("kvscope: block_size must be at least 1");
  if (hash_bits < 8 || hash_bits > 128) {
    throw std::invalid_argument("kvscope: hash_bits must be in 8..128, got " +
                                std::to_string(hash_bits));
  }
  const auto low_ones = [](std::uint32_t bits) {
    return bits >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
  };
  keep_bits_ = BlockHash{hash_bits > 64 ? low_ones(hash_bits - 64) : 0, low_ones(hash_bits)};
  root_ = to_block_hash(XXH3_128bits_withSeed(kRootLabel.data(), kRootLabel.size(), secret_));
  scratch_.resize(sizeof(BlockHash) + block_size * sizeof(TokenId) + 64);
}

BlockHash BlockHasher::hash_block(BlockHash parent, std::span<const TokenId> block_tokens,
                                  const ExtraKeys& extras, std::uint32_t block_index) {
  ByteWriter out(scratch_);
  out.hash(parent);
  out.bytes(block_tokens.data(), block_tokens.size_bytes());
  if (extras.adapter_id) {
    out.value(kTagAdapter);
    out.value(*extras.adapter_id);
  }
  const std::uint64_t start = std::uint64_t{block_index} * block_size_;
  const std::uint64_t end = start + block_size_;
  for (const MultimodalItem& item : extras.mm_items) {
    if (item.offset >= end) break;  // sorted by offset: no later item overlaps
    if (item.offset + std::uint64_t{item.length} <= start) continue;
    out.value(kTagMultimodal);
    out.hash(item.content_id);
    out.value(static_cast<std::int64_t>(item.offset) - static_cast<std::int64_t>(start));
  }
  if (block_index == 0 && extras.salt) {
    out.value(kTagSalt);
    out.hash(extras.salt->digest);
  }
  if (extras.embeddings_digest) {
    out.value(kTagEmbeddings);
    out.hash(*extras.embeddings_digest);
  }
  const BlockHash full = to_block_hash(XXH3_128bits_withSeed(out.data(), out.size(), secret_));
  return BlockHash{full.high & keep_bits_.high, full.low & keep_bits_.low};
}

void BlockHasher::extend_hashes(std::span<const TokenId> tokens, const ExtraKeys& extras,
                                std::vector<BlockHash>& out) {
  const std::size_t full_blocks = tokens.size() / block_size_;
  BlockHash parent = out.empty() ? root_ : out.back();
  for (std::size_t k = out.size(); k < full_blocks; ++k) {
    parent = hash_block(parent, tokens.subspan(k * block_size_, block_size_), extras,
                        static_cast<std::uint32_t>(k));
    out.push_back(parent);
  }
}

}  // namespace kvscope
