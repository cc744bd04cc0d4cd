// BlockHasher: chained block hashes and their extra keys (GUIDE section 2).
#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::cat;
using testing_util::seq;

constexpr std::uint32_t kBs = 4;

std::vector<BlockHash> hashes_of(const std::vector<TokenId>& tokens, const ExtraKeys& extras = {},
                                 HashSeed seed = {}) {
  return testing_util::chain(kBs, tokens, extras, seed);
}

ExtraKeys with_salt(std::string_view salt) {
  ExtraKeys e;
  e.salt = CacheSalt::from_string(salt);
  return e;
}

ExtraKeys with_item(std::uint64_t content, std::uint32_t offset, std::uint32_t length) {
  ExtraKeys e;
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(content), offset, length});
  return e;
}

TEST(BlockHasher, ZeroBlockSizeThrowsInvalidArgument) {
  EXPECT_THROW(BlockHasher(0), std::invalid_argument);
  EXPECT_NO_THROW(BlockHasher(1));
}

TEST(BlockHasher, ReportsItsBlockSize) {
  EXPECT_EQ(BlockHasher(16).block_size(), 16u);
  EXPECT_EQ(BlockHasher(3, HashSeed{7}).block_size(), 3u);
}

TEST(BlockHasher, SameSeedGivesSameRootAndHashesAcrossInstances) {
  BlockHasher a(kBs);
  BlockHasher b(kBs, HashSeed{0});
  EXPECT_EQ(a.root(), b.root());
  const auto tokens = seq(12, 100);
  std::vector<BlockHash> ha;
  std::vector<BlockHash> hb;
  a.extend_hashes(tokens, {}, ha);
  b.extend_hashes(tokens, {}, hb);
  EXPECT_EQ(ha, hb);
  ASSERT_EQ(ha.size(), 3u);
  // Repeating the computation on one instance is reproducible too.
  EXPECT_EQ(a.hash_block(a.root(), std::vector<TokenId>(tokens.begin(), tokens.begin() + 4), {}, 0),
            ha[0]);
}

TEST(BlockHasher, DifferentSecretGivesDifferentRootAndHashes) {
  BlockHasher pub(kBs, HashSeed{0});
  BlockHasher keyed(kBs, HashSeed{0x5eedULL});
  BlockHasher keyed_again(kBs, HashSeed{0x5eedULL});
  EXPECT_NE(pub.root(), keyed.root());
  EXPECT_EQ(keyed.root(), keyed_again.root());
  const auto tokens = seq(8, 1);
  const auto h_pub = hashes_of(tokens, {}, HashSeed{0});
  const auto h_keyed = hashes_of(tokens, {}, HashSeed{0x5eedULL});
  ASSERT_EQ(h_pub.size(), 2u);
  ASSERT_EQ(h_keyed.size(), 2u);
  EXPECT_NE(h_pub[0], h_keyed[0]);
  EXPECT_NE(h_pub[1], h_keyed[1]);
  EXPECT_EQ(h_keyed, hashes_of(tokens, {}, HashSeed{0x5eedULL}));
}

TEST(BlockHasher, OnlyFullBlocksGetAHash) {
  EXPECT_TRUE(hashes_of(seq(0, 1)).empty());
  EXPECT_TRUE(hashes_of(seq(3, 1)).empty());
  EXPECT_EQ(hashes_of(seq(4, 1)).size(), 1u);
  EXPECT_EQ(hashes_of(seq(7, 1)).size(), 1u);
  EXPECT_EQ(hashes_of(seq(8, 1)).size(), 2u);
  EXPECT_EQ(hashes_of(seq(9, 1)).size(), 2u);
}

TEST(BlockHasher, ExtendHashesIsTheChainOfHashBlockFromTheRoot) {
  BlockHasher hasher(kBs);
  const auto tokens = seq(12, 50);
  std::vector<BlockHash> out;
  hasher.extend_hashes(tokens, {}, out);
  ASSERT_EQ(out.size(), 3u);
  BlockHash parent = hasher.root();
  for (std::uint32_t i = 0; i < 3; ++i) {
    std::vector<TokenId> block(tokens.begin() + i * kBs, tokens.begin() + (i + 1) * kBs);
    const BlockHash h = hasher.hash_block(parent, block, {}, i);
    EXPECT_EQ(out[i], h) << "block " << i;
    parent = h;
  }
}

TEST(BlockHasher, ExtendHashesIsIncrementalAndMatchesOneShot) {
  BlockHasher hasher(kBs);
  const auto tokens = seq(21, 7);
  std::vector<BlockHash> one_shot;
  hasher.extend_hashes(tokens, {}, one_shot);
  ASSERT_EQ(one_shot.size(), 5u);

  std::vector<BlockHash> grown;
  const std::span<const TokenId> all(tokens);
  hasher.extend_hashes(all.first(3), {}, grown);  // no full block yet
  EXPECT_TRUE(grown.empty());
  hasher.extend_hashes(all.first(9), {}, grown);  // blocks 0, 1
  ASSERT_EQ(grown.size(), 2u);
  const BlockHash first = grown[0];
  hasher.extend_hashes(all.first(9), {}, grown);  // nothing new: a no-op
  EXPECT_EQ(grown.size(), 2u);
  hasher.extend_hashes(all.first(16), {}, grown);  // blocks 2, 3 appended
  ASSERT_EQ(grown.size(), 4u);
  EXPECT_EQ(grown[0], first);  // earlier entries are not rewritten
  hasher.extend_hashes(all, {}, grown);
  EXPECT_EQ(grown, one_shot);
}

TEST(BlockHasher, EqualPrefixesGiveEqualHashesAndDivergenceChangesEveryLaterBlock) {
  // a and b share the first 6 tokens: block 0 (tokens 0..3) is equal, block 1
  // (tokens 4..7) differs in its last two tokens, block 2 then differs only
  // through its parent.
  const auto common = seq(6, 1000);
  const auto a = cat(common, seq(6, 2000));
  const auto b = cat(common, seq(6, 3000));
  auto b_same_tail = cat(common, seq(6, 3000));
  // b_same_tail's block 2 (tokens 8..11) equals a's block 2 tokens.
  for (int i = 8; i < 12; ++i) b_same_tail[i] = a[i];
  const auto ha = hashes_of(a);
  const auto hb = hashes_of(b);
  const auto hc = hashes_of(b_same_tail);
  ASSERT_EQ(ha.size(), 3u);
  EXPECT_EQ(ha[0], hb[0]);
  EXPECT_NE(ha[1], hb[1]);
  EXPECT_NE(ha[2], hb[2]);
  // Same tokens in block 2, different parent: still a different hash.
  EXPECT_NE(ha[2], hc[2]);
}

TEST(BlockHasher, ParentAndTokensBothEnterTheHash) {
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 9);
  const auto other = seq(4, 10);
  const BlockHash p1 = BlockHash::from_id(1);
  const BlockHash p2 = BlockHash::from_id(2);
  EXPECT_EQ(hasher.hash_block(p1, toks, {}, 3), hasher.hash_block(p1, toks, {}, 3));
  EXPECT_NE(hasher.hash_block(p1, toks, {}, 3), hasher.hash_block(p2, toks, {}, 3));
  EXPECT_NE(hasher.hash_block(p1, toks, {}, 3), hasher.hash_block(p1, other, {}, 3));
}

TEST(BlockHasher, DifferentSaltChangesBlockZeroAndThereforeTheWholeChain) {
  const auto tokens = seq(12, 1);
  const auto plain = hashes_of(tokens);
  const auto salt_a = hashes_of(tokens, with_salt("tenant-a"));
  const auto salt_a_again = hashes_of(tokens, with_salt("tenant-a"));
  const auto salt_b = hashes_of(tokens, with_salt("tenant-b"));
  EXPECT_EQ(salt_a, salt_a_again);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_NE(plain[i], salt_a[i]) << "block " << i;
    EXPECT_NE(salt_a[i], salt_b[i]) << "block " << i;
  }
}

TEST(BlockHasher, SaltEntersBlockZeroOnlyLaterBlocksDifferThroughTheParent) {
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 77);
  const BlockHash parent = BlockHash::from_id(99);
  const ExtraKeys salted = with_salt("tenant");
  // Block 0: the salt is an extra key.
  EXPECT_NE(hasher.hash_block(hasher.root(), toks, salted, 0),
            hasher.hash_block(hasher.root(), toks, {}, 0));
  // Block 1+: with the same parent, the salt makes no difference.
  EXPECT_EQ(hasher.hash_block(parent, toks, salted, 1), hasher.hash_block(parent, toks, {}, 1));
  EXPECT_EQ(hasher.hash_block(parent, toks, salted, 5), hasher.hash_block(parent, toks, {}, 5));
}

TEST(BlockHasher, CacheSaltFromStringIsADeterministicDigest) {
  EXPECT_EQ(CacheSalt::from_string("abc"), CacheSalt::from_string("abc"));
  EXPECT_NE(CacheSalt::from_string("abc"), CacheSalt::from_string("abd"));
  EXPECT_NE(CacheSalt::from_string(""), CacheSalt::from_string("a"));
}

TEST(BlockHasher, AdapterIdChangesEveryBlock) {
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  ExtraKeys lora1;
  lora1.adapter_id = 1;
  ExtraKeys lora2;
  lora2.adapter_id = 2;
  EXPECT_NE(hasher.hash_block(parent, toks, lora1, 2), hasher.hash_block(parent, toks, {}, 2));
  EXPECT_NE(hasher.hash_block(parent, toks, lora1, 2), hasher.hash_block(parent, toks, lora2, 2));
  EXPECT_NE(hasher.hash_block(hasher.root(), toks, lora1, 0),
            hasher.hash_block(hasher.root(), toks, {}, 0));
  const auto tokens = seq(8, 1);
  const auto h0 = hashes_of(tokens);
  const auto h1 = hashes_of(tokens, lora1);
  EXPECT_NE(h0[0], h1[0]);
  EXPECT_NE(h0[1], h1[1]);
}

TEST(BlockHasher, EmbeddingsDigestChangesEveryBlock) {
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  ExtraKeys e1;
  e1.embeddings_digest = BlockHash::from_id(11);
  ExtraKeys e2;
  e2.embeddings_digest = BlockHash::from_id(12);
  EXPECT_NE(hasher.hash_block(parent, toks, e1, 1), hasher.hash_block(parent, toks, {}, 1));
  EXPECT_NE(hasher.hash_block(parent, toks, e1, 1), hasher.hash_block(parent, toks, e2, 1));
  EXPECT_EQ(hasher.hash_block(parent, toks, e1, 1), hasher.hash_block(parent, toks, e1, 1));
}

TEST(BlockHasher, MultimodalItemChangesOnlyTheBlocksItOverlaps) {
  // Item at positions [20, 24) with block size 4: it overlaps block 5 only.
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  const ExtraKeys item = with_item(42, 20, 4);
  EXPECT_EQ(hasher.hash_block(parent, toks, item, 4), hasher.hash_block(parent, toks, {}, 4));
  EXPECT_NE(hasher.hash_block(parent, toks, item, 5), hasher.hash_block(parent, toks, {}, 5));
  EXPECT_EQ(hasher.hash_block(parent, toks, item, 6), hasher.hash_block(parent, toks, {}, 6));
}

TEST(BlockHasher, MultimodalItemEndingAtABlockBoundaryDoesNotTouchTheNextBlock) {
  // [2, 4) lies in block 0 (positions 0..3); block 1 starts at 4.
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  const ExtraKeys item = with_item(42, 2, 2);
  EXPECT_NE(hasher.hash_block(hasher.root(), toks, item, 0),
            hasher.hash_block(hasher.root(), toks, {}, 0));
  EXPECT_EQ(hasher.hash_block(parent, toks, item, 1), hasher.hash_block(parent, toks, {}, 1));
}

TEST(BlockHasher, MultimodalItemSpanningTwoBlocksChangesBoth) {
  // [6, 10) overlaps block 1 (4..7, relative offset 2) and block 2 (8..11,
  // relative offset -2).
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  const ExtraKeys item = with_item(42, 6, 4);
  EXPECT_EQ(hasher.hash_block(parent, toks, item, 0), hasher.hash_block(parent, toks, {}, 0));
  EXPECT_NE(hasher.hash_block(parent, toks, item, 1), hasher.hash_block(parent, toks, {}, 1));
  EXPECT_NE(hasher.hash_block(parent, toks, item, 2), hasher.hash_block(parent, toks, {}, 2));
  EXPECT_EQ(hasher.hash_block(parent, toks, item, 3), hasher.hash_block(parent, toks, {}, 3));
  // Relative offsets +2 and -2 are different keys.
  EXPECT_NE(hasher.hash_block(parent, toks, item, 1), hasher.hash_block(parent, toks, item, 2));
}

TEST(BlockHasher, MultimodalOffsetIsRelativeToTheBlockStart) {
  // Same parent and tokens; item at relative offset 1 in block 2 (position 9)
  // and in block 3 (position 13) gives the same key, so the same hash. The
  // block index itself is not hashed (only salt and overlap depend on it).
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  EXPECT_EQ(hasher.hash_block(parent, toks, with_item(42, 9, 2), 2),
            hasher.hash_block(parent, toks, with_item(42, 13, 2), 3));
  // Different relative offset, different hash.
  EXPECT_NE(hasher.hash_block(parent, toks, with_item(42, 9, 2), 2),
            hasher.hash_block(parent, toks, with_item(42, 10, 2), 2));
}

TEST(BlockHasher, MultimodalItemContentIdEntersTheHash) {
  BlockHasher hasher(kBs);
  const auto toks = seq(4, 5);
  const BlockHash parent = BlockHash::from_id(3);
  EXPECT_NE(hasher.hash_block(parent, toks, with_item(1, 5, 2), 1),
            hasher.hash_block(parent, toks, with_item(2, 5, 2), 1));
  // Through extend_hashes: the image in block 1 changes blocks 1 and 2 (chain).
  const auto tokens = seq(12, 1);
  const auto plain = hashes_of(tokens);
  const auto img = hashes_of(tokens, with_item(1, 5, 2));
  EXPECT_EQ(plain[0], img[0]);
  EXPECT_NE(plain[1], img[1]);
  EXPECT_NE(plain[2], img[2]);
}

TEST(ValidateExtraKeys, AcceptsSortedItemsAndEmptyKeys) {
  EXPECT_NO_THROW(validate_extra_keys(ExtraKeys{}));
  ExtraKeys e;
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(1), 0, 3});
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(2), 3, 1});
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(3), 9, 40});
  EXPECT_NO_THROW(validate_extra_keys(e));
}

TEST(ValidateExtraKeys, UnsortedItemsThrowInvalidArgument) {
  ExtraKeys e;
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(1), 10, 2});
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(2), 4, 2});
  EXPECT_THROW(validate_extra_keys(e), std::invalid_argument);
}

TEST(ValidateExtraKeys, ZeroLengthItemThrowsInvalidArgument) {
  ExtraKeys e;
  e.mm_items.push_back(MultimodalItem{BlockHash::from_id(1), 4, 0});
  EXPECT_THROW(validate_extra_keys(e), std::invalid_argument);
}

}  // namespace
}  // namespace kvscope
