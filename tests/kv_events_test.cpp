// KV cache events: what the core records, the msgpack bytes, the ZeroMQ
// publisher with replay, and the runtime's stream under load.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <asio/awaitable.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "kv_event_subscriber.hpp"
#include "kvscope/block_hasher.hpp"
#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/events/kv_event_publisher.hpp"
#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "runtime_test_util.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;
using testing_util::cat;
using testing_util::seq;

constexpr std::uint32_t kBlock = 4;

PrefixCache cache_of(std::uint32_t blocks) {
  return PrefixCache(PrefixCacheConfig{.num_blocks = blocks, .block_size = kBlock});
}

std::vector<BlockHash> hashes_of(const std::vector<TokenId>& tokens, const ExtraKeys& extras = {}) {
  BlockHasher hasher(kBlock);
  std::vector<BlockHash> out;
  hasher.extend_hashes(tokens, extras, out);
  return out;
}

std::vector<BlockHash> run_hashes(const CacheEventLog& log, std::uint32_t record) {
  const auto span = log.hashes(log.run(log.records()[record].index));
  return {span.begin(), span.end()};
}

std::vector<TokenId> run_tokens(const CacheEventLog& log, std::uint32_t record) {
  const auto span = log.tokens(log.run(log.records()[record].index));
  return {span.begin(), span.end()};
}

// ---- what the core records ----

TEST(CacheEvents, AnAdmissionStoresItsNewFullBlocksAsOneRun) {
  PrefixCache cache = cache_of(16);
  CacheEventLog log;
  cache.set_event_log(&log);
  const auto first = seq(10, 1);  // two full blocks and a partial one
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, first)).ok());
  ASSERT_EQ(log.size(), 1u);
  ASSERT_EQ(log.records()[0].kind, CacheEventKind::stored);
  const StoredRun& run = log.run(log.records()[0].index);
  const auto expected = hashes_of(first);
  EXPECT_EQ(run_hashes(log, 0), expected);
  EXPECT_FALSE(run.has_parent);
  EXPECT_EQ(run.first_block, 0u);
  EXPECT_EQ(run_tokens(log, 0), seq(8, 1));
  EXPECT_EQ(log.extras(run), nullptr);
  EXPECT_EQ(log.block_size(), kBlock);

  // Shares the two blocks and adds one: one store of one block, parent the second.
  const auto second = cat(seq(8, 1), seq(4, 100));
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{2}, second)).ok());
  ASSERT_EQ(log.size(), 2u);
  const StoredRun& next = log.run(log.records()[1].index);
  EXPECT_EQ(run_hashes(log, 1), std::vector<BlockHash>{hashes_of(second)[2]});
  ASSERT_TRUE(next.has_parent);
  EXPECT_EQ(next.parent, expected[1]);
  EXPECT_EQ(next.first_block, 2u);
  EXPECT_EQ(run_tokens(log, 1), seq(4, 100));
}

TEST(CacheEvents, SharedBlocksEndARunAndHashModeSendsNoTokens) {
  PrefixCache cache = cache_of(16);
  CacheEventLog log;
  cache.set_event_log(&log);
  const BlockHash a = BlockHash::from_id(1), b = BlockHash::from_id(2), c = BlockHash::from_id(3),
                  d = BlockHash::from_id(4);
  const std::vector<BlockHash> first{a, b};
  ASSERT_TRUE(cache.allocate(Request::with_hashes(RequestId{1}, 8, first)).ok());
  // c is new, b is resident past the prefix (shared, not stored), d is new.
  const std::vector<BlockHash> second{c, b, d};
  ASSERT_TRUE(cache.allocate(Request::with_hashes(RequestId{2}, 12, second)).ok());
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(run_hashes(log, 0), (std::vector<BlockHash>{a, b}));
  EXPECT_EQ(run_hashes(log, 1), std::vector<BlockHash>{c});
  EXPECT_EQ(run_hashes(log, 2), std::vector<BlockHash>{d});
  const StoredRun& after_shared = log.run(log.records()[2].index);
  EXPECT_EQ(after_shared.parent, b);
  EXPECT_EQ(after_shared.first_block, 2u);
  EXPECT_TRUE(run_tokens(log, 2).empty());
}

TEST(CacheEvents, ReuseRemovesTheOldHashAndResetClears) {
  PrefixCache cache = cache_of(4);
  CacheEventLog log;
  cache.set_event_log(&log);
  const auto first = seq(16, 1);
  const auto first_hashes = hashes_of(first);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, first)).ok());
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  log.clear();
  const auto second = seq(8, 500);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{2}, second)).ok());
  // Two cached blocks reclaimed (the chain's tail first: reverse free), then
  // one store of the new blocks, as vLLM orders them.
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log.records()[0].kind, CacheEventKind::removed);
  EXPECT_EQ(log.records()[1].kind, CacheEventKind::removed);
  EXPECT_EQ(log.records()[2].kind, CacheEventKind::stored);
  EXPECT_EQ(log.removed_hash(log.records()[0].index), first_hashes[3]);
  EXPECT_EQ(log.removed_hash(log.records()[1].index), first_hashes[2]);
  EXPECT_EQ(run_hashes(log, 2), hashes_of(second));
  ASSERT_TRUE(cache.free(RequestId{2}).ok());
  log.clear();
  ASSERT_TRUE(cache.reset().ok());
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log.records()[0].kind, CacheEventKind::cleared);
}

TEST(CacheEvents, AppendStoresTheBlocksItCompletes) {
  PrefixCache cache = cache_of(16);
  CacheEventLog log;
  cache.set_event_log(&log);
  const auto prompt = seq(6, 1);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, prompt)).ok());
  log.clear();
  const auto more = seq(6, 50);
  ASSERT_TRUE(cache.append(RequestId{1}, more).ok());
  const auto all = cat(prompt, more);
  ASSERT_EQ(log.size(), 1u);
  const StoredRun& run = log.run(log.records()[0].index);
  const auto expected = hashes_of(all);
  EXPECT_EQ(run_hashes(log, 0), (std::vector<BlockHash>{expected[1], expected[2]}));
  EXPECT_EQ(run.parent, expected[0]);
  EXPECT_EQ(run.first_block, 1u);
  EXPECT_EQ(run_tokens(log, 0), std::vector<TokenId>(all.begin() + 4, all.begin() + 12));
}

// A block decode completes while its hash is resident stays private and is
// not announced; when the holder is reclaimed the private twin takes the hash
// over, so no BlockRemoved is sent and the twin's later runs name a parent
// the subscriber still knows.
TEST(CacheEvents, ReclaimingAHashWithALivePrivateTwinRemovesNothing) {
  PrefixCache cache = cache_of(5);
  CacheEventLog log;
  cache.set_event_log(&log);
  const auto a = seq(8, 1);  // A = blocks 0, 1; B = 0 and its twin of block 1
  const auto h = hashes_of(a);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, a)).ok());
  ASSERT_TRUE(cache
                  .allocate(Request::with_tokens(RequestId{2},
                                                 std::vector<TokenId>(a.begin(), a.begin() + 6)))
                  .ok());
  log.clear();
  ASSERT_TRUE(cache.append(RequestId{2}, std::vector<TokenId>(a.begin() + 6, a.end())).ok());
  EXPECT_TRUE(log.empty()) << "the twin of h[1] is kept private: nothing stored";
  ASSERT_TRUE(cache.free(RequestId{1}).ok());
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{3}, seq(12, 900))).ok());
  ASSERT_EQ(log.size(), 1u) << "h[1]'s holder was reclaimed, but the hash lives on";
  EXPECT_EQ(log.records()[0].kind, CacheEventKind::stored);
  ASSERT_TRUE(cache.free(RequestId{3}).ok());  // room for B's next block
  log.clear();
  const auto more = seq(4, 300);
  ASSERT_TRUE(cache.append(RequestId{2}, more).ok());
  ASSERT_EQ(log.size(), 2u);  // one of C's blocks reclaimed, then B's store
  EXPECT_EQ(log.records()[0].kind, CacheEventKind::removed);
  ASSERT_EQ(log.records()[1].kind, CacheEventKind::stored);
  const StoredRun& run = log.run(log.records()[1].index);
  ASSERT_TRUE(run.has_parent);
  EXPECT_EQ(run.parent, h[1]);
  EXPECT_EQ(run_hashes(log, 1), std::vector<BlockHash>{hashes_of(cat(a, more))[2]});
}

TEST(CacheEvents, ARequestsExtraKeysTravelWithItsRuns) {
  PrefixCache cache = cache_of(16);
  CacheEventLog log;
  cache.set_event_log(&log);
  ExtraKeys extras;
  extras.adapter_id = 7;
  extras.salt = CacheSalt::from_string("tenant-a");
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, seq(8, 1), extras)).ok());
  const ExtraKeys* kept = log.extras(log.run(0));
  ASSERT_NE(kept, nullptr);
  EXPECT_EQ(kept->adapter_id, std::optional<std::uint64_t>(7));
  EXPECT_EQ(kept->salt, extras.salt);
}

TEST(CacheEvents, ASaltIsAKeyOfBlockZeroOnly) {
  PrefixCache cache = cache_of(16);
  CacheEventLog log;
  cache.set_event_log(&log);
  ExtraKeys extras;
  extras.salt = CacheSalt::from_string("tenant-b");
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, seq(8, 1), extras)).ok());
  EXPECT_NE(log.extras(log.run(0)), nullptr);  // the run starts at block 0
  const auto more = seq(4, 70);
  ASSERT_TRUE(cache.append(RequestId{1}, more).ok());
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log.run(1).first_block, 2u);
  EXPECT_EQ(log.extras(log.run(1)), nullptr);  // no key reaches blocks past 0
}

TEST(CacheEvents, NoLogNoEvents) {
  PrefixCache cache = cache_of(4);
  CacheEventLog log;
  cache.set_event_log(&log);
  cache.set_event_log(nullptr);
  ASSERT_TRUE(cache.allocate(Request::with_tokens(RequestId{1}, seq(8, 1))).ok());
  EXPECT_TRUE(log.empty());
}

// ---- the bytes ----

CacheEventLog scripted_log() {
  CacheEventLog log(kBlock);
  ExtraKeys none;
  log.stored_block(BlockHash{0, 5}, std::nullopt, seq(4, 1), 0, none);
  log.stored_block(BlockHash{0x1122334455667788, 0x99aabbccddeeff00}, BlockHash{0, 5}, seq(4, 5), 1,
                   none);
  log.end_run();
  log.removed(BlockHash{0, 5});
  log.cleared();
  return log;
}

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

TEST(KvEventCodec, MapFormatHasTypeFirstAndEveryHashAsUint64) {
  const CacheEventLog log = scripted_log();
  KvEventCounts counts;
  const std::string payload =
      encode_kv_event_batch(log, 12.5, 3, KvEventFormat::map, KvHashEncoding::uint64, &counts);
  EXPECT_EQ(counts.stored, 1u);
  EXPECT_EQ(counts.blocks_stored, 2u);
  EXPECT_EQ(counts.removed, 1u);
  EXPECT_EQ(counts.cleared, 1u);
  // [ts, [3 events], dp_rank]: fixarray 3, float64 12.5, fixarray 3, ...
  EXPECT_EQ(payload.substr(0, 11), bytes({0x93, 0xcb, 0x40, 0x29, 0, 0, 0, 0, 0, 0, 0x93}));
  // The store: fixmap of 10 (no extra keys), "type" first, then block_hashes
  // whose first hash, 5, takes the full uint64 form.
  EXPECT_EQ(payload.substr(11, 1), bytes({0x8a}));
  EXPECT_NE(payload.find("\xa4type\xab"
                         "BlockStored\xac"
                         "block_hashes\x92\xcf\x00\x00\x00\x00\x00\x00\x00\x05"s +
                         std::string("\xcf\x99\xaa\xbb\xcc\xdd\xee\xff\x00", 9)),
            std::string::npos);
  EXPECT_NE(payload.find("\x84\xa4type\xac"
                         "BlockRemoved\xac"
                         "block_hashes\x91\xcf" +
                         std::string(7, '\0') + "\x05\xa6medium\xa3GPU\xa9group_idx\x00"s),
            std::string::npos);
  EXPECT_NE(payload.find("\x81\xa4type\xb0"
                         "AllBlocksCleared"),
            std::string::npos);
  EXPECT_EQ(payload.back(), '\x03');  // dp_rank

  const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
  EXPECT_TRUE(batch.map_events);
  EXPECT_DOUBLE_EQ(batch.ts, 12.5);
  EXPECT_EQ(batch.dp_rank, std::optional<std::int64_t>(3));
  ASSERT_EQ(batch.events.size(), 3u);
  const DecodedEvent& stored = batch.events[0];
  EXPECT_EQ(stored.kind, DecodedEvent::Kind::stored);
  ASSERT_EQ(stored.block_hashes.size(), 2u);
  EXPECT_EQ(stored.block_hashes[0], (WireHash{0, 5, false}));
  EXPECT_EQ(stored.block_hashes[1].low, 0x99aabbccddeeff00u);
  EXPECT_FALSE(stored.parent_block_hash.has_value());
  EXPECT_EQ(stored.token_ids, cat(seq(4, 1), seq(4, 5)));
  EXPECT_EQ(stored.block_size, kBlock);
  EXPECT_FALSE(stored.lora_id.has_value());
  EXPECT_EQ(stored.medium, std::optional<std::string>("GPU"));
  EXPECT_FALSE(stored.lora_name.has_value());
  EXPECT_FALSE(stored.has_extra_keys);
  EXPECT_EQ(stored.group_idx, std::optional<std::int64_t>(0));
  EXPECT_EQ(stored.kv_cache_spec_kind, std::optional<std::string>("full_attention"));
  EXPECT_FALSE(stored.kv_cache_spec_sliding_window.has_value());
  EXPECT_EQ(batch.events[1].kind, DecodedEvent::Kind::removed);
  EXPECT_EQ(batch.events[1].block_hashes, (std::vector<WireHash>{{0, 5, false}}));
  EXPECT_EQ(batch.events[2].kind, DecodedEvent::Kind::cleared);
}

TEST(KvEventCodec, ArrayFormatIsPositionalWithNilExtraKeys) {
  const std::string payload =
      encode_kv_event_batch(scripted_log(), 1.0, 0, KvEventFormat::array, KvHashEncoding::uint64);
  // The store: fixarray of 11 ("BlockStored" + 10 fields, extra_keys nil).
  EXPECT_NE(payload.find("\x9b\xab"
                         "BlockStored\x92\xcf"),
            std::string::npos);
  EXPECT_NE(payload.find("\xa3GPU\xc0\xc0\x00\xae"
                         "full_attention"s),
            std::string::npos);  // medium, lora_name nil, extra_keys nil, group_idx 0, kind
  EXPECT_NE(payload.find("\x94\xac"
                         "BlockRemoved\x91\xcf"),
            std::string::npos);
  EXPECT_NE(payload.find("\x91\xb0"
                         "AllBlocksCleared"),
            std::string::npos);
  const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
  EXPECT_FALSE(batch.map_events);
  ASSERT_EQ(batch.events.size(), 3u);
  EXPECT_EQ(batch.events[0].token_ids.size(), 8u);
  EXPECT_EQ(batch.events[0].kv_cache_spec_kind, std::optional<std::string>("full_attention"));
  EXPECT_EQ(batch.events[1].medium, std::optional<std::string>("GPU"));
}

TEST(KvEventCodec, BytesEncodingSendsAll16Bytes) {
  const std::string payload =
      encode_kv_event_batch(scripted_log(), 1.0, 0, KvEventFormat::map, KvHashEncoding::bytes);
  EXPECT_NE(payload.find(std::string("\xc4\x10\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc"
                                     "\xdd\xee\xff\x00",
                                     18)),
            std::string::npos);
  const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
  EXPECT_EQ(batch.events[0].block_hashes[1],
            (WireHash{0x1122334455667788, 0x99aabbccddeeff00, true}));
  EXPECT_EQ(batch.events[0].block_hashes[0], (WireHash{0, 5, true}));
}

TEST(KvEventCodec, ExtraKeysOnePerBlockWithTheSaltOnBlockZero) {
  CacheEventLog log(kBlock);
  ExtraKeys extras;
  extras.adapter_id = 9;
  extras.salt = CacheSalt::from_string("tenant");
  extras.mm_items.push_back(MultimodalItem{BlockHash{0, 0xab}, 2, 3});  // positions 2..4
  log.stored_block(BlockHash{0, 1}, std::nullopt, seq(4, 1), 0, extras);
  log.stored_block(BlockHash{0, 2}, BlockHash{0, 1}, seq(4, 5), 1, extras);
  log.stored_block(BlockHash{0, 3}, BlockHash{0, 2}, seq(4, 9), 2, extras);
  log.end_run();
  const std::string payload =
      encode_kv_event_batch(log, 1.0, 0, KvEventFormat::map, KvHashEncoding::uint64);
  const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(payload)));
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_TRUE(batch.events[0].has_extra_keys);
  EXPECT_EQ(batch.events[0].extra_key_count, 3u);
  EXPECT_EQ(batch.events[0].lora_id, std::optional<std::int64_t>(9));
  // Block 0: [9, [mm, 2], salt]; block 1: [9, [mm, -2]]; block 2: [9].
  const std::string salt =
      fmt::format("{:016x}{:016x}", extras.salt->digest.high, extras.salt->digest.low);
  EXPECT_NE(payload.find("\xaa"
                         "extra_keys\x93\x93\x09\x92\xd9\x20" +
                         std::string(30, '0') + "ab\x02\xd9\x20" + salt + "\x92\x09\x92\xd9\x20" +
                         std::string(30, '0') + "ab\xfe\x91\x09"),
            std::string::npos);
}

TEST(KvEventCodec, MalformedPayloadsAreErrorsAndUnknownTypesAreKept) {
  const std::string garbage = "\xc1\xff\x00";
  EXPECT_THROW(decode_kv_event_batch(std::as_bytes(std::span(garbage))), KvDecodeError);
  const std::string truncated =
      encode_kv_event_batch(scripted_log(), 1.0, 0, KvEventFormat::map, KvHashEncoding::uint64)
          .substr(0, 30);
  EXPECT_THROW(decode_kv_event_batch(std::as_bytes(std::span(truncated))), KvDecodeError);
  const std::string not_a_batch = "\x91\x01";  // [1]
  EXPECT_THROW(decode_kv_event_batch(std::as_bytes(std::span(not_a_batch))), KvDecodeError);
  // [1.0, [{"type": "Mystery"}], 0]
  const std::string unknown = bytes({0x93, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x91, 0x81, 0xa4}) +
                              "type" + "\xa7Mystery" + bytes({0x00});
  const DecodedBatch batch = decode_kv_event_batch(std::as_bytes(std::span(unknown)));
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].kind, DecodedEvent::Kind::unknown);
  EXPECT_EQ(batch.events[0].type, "Mystery");
}

// ---- the publisher ----

KvEventsConfig local_config(bool replay) {
  KvEventsConfig config;
  config.enabled = true;
  config.endpoint = "tcp://127.0.0.1:*";
  if (replay) config.replay_endpoint = "tcp://127.0.0.1:*";
  config.topic = "kv@test@model";
  return config;
}

/// Waits until a subscription is in place: a PUB socket drops messages
/// sent before. Publishes probe batches until one arrives; returns how many
/// were published.
std::uint64_t connect(KvEventPublisher& publisher, testing_util::KvEventSubscriber& subscriber) {
  for (std::uint64_t sent = 1; sent <= 400; ++sent) {
    CacheEventLog probe;
    probe.cleared();
    publisher.submit(probe, 0.0);
    auto got = subscriber.receive_until([](const auto& b) { return !b.empty(); }, 25ms);
    if (!got.empty()) return sent;
  }
  throw std::runtime_error("the subscriber never connected");
}

TEST(KvEventPublisher, NumbersBatchesAndReplaysThemInBothLayouts) {
  for (KvReplayLayout layout : {KvReplayLayout::plain, KvReplayLayout::with_topic}) {
    KvEventsConfig config = local_config(true);
    config.replay_layout = layout;
    KvEventPublisher publisher(config);
    testing_util::KvEventSubscriber subscriber(publisher.endpoint(), publisher.replay_endpoint(),
                                               config.topic, layout == KvReplayLayout::with_topic);
    const std::uint64_t probes = connect(publisher, subscriber);
    for (int i = 0; i < 5; ++i) {
      CacheEventLog log = scripted_log();
      ASSERT_TRUE(publisher.submit(log, 100.0 + i));
      EXPECT_TRUE(log.empty());
    }
    const auto live =
        subscriber.receive_until([](const auto& b) { return b.size() == 5; }, 5s, probes);
    ASSERT_EQ(live.size(), 5u);
    for (std::size_t i = 0; i < live.size(); ++i) {
      EXPECT_EQ(live[i].seq, probes + i);
      EXPECT_EQ(live[i].topic, config.topic);
      EXPECT_DOUBLE_EQ(live[i].batch.ts, 100.0 + static_cast<double>(i));
      EXPECT_EQ(live[i].batch.events.size(), 3u);
    }
    // A subscriber that lost everything asks from seq 0: every batch, then the end marker.
    const auto replayed = subscriber.replay(0);
    ASSERT_EQ(replayed.size(), probes + 5);
    for (std::size_t i = 0; i < replayed.size(); ++i) EXPECT_EQ(replayed[i].seq, i);
    EXPECT_EQ(replayed.back().payload, live.back().payload);
    if (layout == KvReplayLayout::with_topic) {
      EXPECT_EQ(replayed.back().topic, config.topic);
    }
    EXPECT_EQ(subscriber.end_markers, 1 + subscriber.gaps);
    EXPECT_EQ(subscriber.malformed_replies, 0);
    publisher.flush();
    const KvEventStats stats = publisher.stats();
    EXPECT_EQ(stats.batches, probes + 5);
    EXPECT_EQ(stats.events.stored, 5u);
    EXPECT_EQ(stats.events.cleared, probes + 5);
    EXPECT_EQ(stats.replay_served, 1u + static_cast<std::uint64_t>(subscriber.gaps));
  }
}

// The replay ring keeps at most buffer_steps batches and buffer_bytes of
// payload, dropping the oldest (always keeping the newest).
TEST(KvEventPublisher, TheReplayRingIsBoundedByStepsAndBytes) {
  // A batch of one store of 16,384 blocks: ~210 KB of payload.
  CacheEventLog big;
  std::vector<TokenId> tokens(kBlock, 7);
  for (std::uint32_t i = 0; i < 16'384; ++i) {
    big.stored_block(BlockHash::from_id(i + 1),
                     i == 0 ? std::nullopt : std::optional(BlockHash::from_id(i)), tokens, i, {});
  }
  big.end_run();
  const std::size_t batch_bytes =
      encode_kv_event_batch(big, 1.0, 0, KvEventFormat::map, KvHashEncoding::uint64, nullptr)
          .size();
  ASSERT_GT(batch_bytes, 200'000u);  // so 1 MiB holds at most 5 of them
  for (bool by_bytes : {false, true}) {
    KvEventsConfig config = local_config(true);
    config.buffer_steps = by_bytes ? 1'000 : 3;
    config.buffer_bytes = std::uint64_t{1} << 20;
    KvEventPublisher publisher(config);
    testing_util::KvEventSubscriber subscriber(publisher.endpoint(), publisher.replay_endpoint());
    std::vector<CacheEventLog> logs(by_bytes ? 6 : 5, big);
    for (CacheEventLog& log : logs) ASSERT_TRUE(publisher.submit(log, 1.0));
    publisher.flush();
    const auto replayed = subscriber.replay(0);
    const std::size_t expected = by_bytes ? (std::size_t{1} << 20) / batch_bytes : 3;
    ASSERT_EQ(replayed.size(), expected) << "by bytes: " << by_bytes;
    EXPECT_EQ(replayed.back().seq, logs.size() - 1) << "the newest batch is kept";
    EXPECT_EQ(replayed.front().seq, logs.size() - expected);
  }
}

TEST(KvEventPublisher, MalformedReplayRequestsAreCountedAndIgnored) {
  KvEventPublisher publisher(local_config(true));
  testing_util::KvEventSubscriber subscriber(publisher.endpoint(), publisher.replay_endpoint());
  // Two frames where one 8-byte seq belongs, then a 3-byte seq.
  subscriber.dealer().send(zmq::const_buffer(), zmq::send_flags::sndmore);
  subscriber.dealer().send(zmq::str_buffer("abc"), zmq::send_flags::sndmore);
  subscriber.dealer().send(zmq::str_buffer("def"), zmq::send_flags::none);
  subscriber.dealer().send(zmq::const_buffer(), zmq::send_flags::sndmore);
  subscriber.dealer().send(zmq::str_buffer("abc"), zmq::send_flags::none);
  // The publisher keeps serving: a good request is answered (end marker only).
  EXPECT_TRUE(subscriber.replay(0).empty());
  EXPECT_EQ(subscriber.end_markers, 1);
  const KvEventStats stats = publisher.stats();
  EXPECT_EQ(stats.replay_refused, 2u);
  EXPECT_EQ(stats.replay_served, 1u);
}

TEST(KvEventPublisher, AFullQueueDropsWholeBatchesAndSeqHasNoGaps) {
  KvEventsConfig config = local_config(false);
  config.queue_batches = 1;
  KvEventPublisher publisher(config);
  std::uint64_t accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    CacheEventLog log = scripted_log();
    if (publisher.submit(log, 1.0)) ++accepted;
  }
  publisher.flush();
  const KvEventStats stats = publisher.stats();
  EXPECT_EQ(stats.batches, accepted);
  EXPECT_EQ(stats.batches + stats.batches_dropped, 2000u);
  EXPECT_GT(stats.batches_dropped, 0u);
}

TEST(KvEventPublisher, BadConfigurationNamesTheOption) {
  auto message_of = [](const KvEventsConfig& config) {
    try {
      KvEventPublisher publisher(config);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  KvEventsConfig config = local_config(false);
  config.endpoint = "bogus";
  EXPECT_NE(message_of(config).find("KvEventsConfig.endpoint"), std::string::npos);
  config.endpoint = "tcp://127.0.0.1:notaport";
  EXPECT_NE(message_of(config).find("KvEventsConfig.endpoint: cannot connect"), std::string::npos)
      << message_of(config);
  KvEventsConfig first = local_config(false);
  first.endpoint = "tcp://*:*";
  KvEventPublisher taken(first);
  const std::string port = taken.endpoint().substr(taken.endpoint().rfind(':') + 1);
  config.endpoint = "tcp://*:" + port;  // the same port, bound again
  EXPECT_NE(message_of(config).find("KvEventsConfig.endpoint: cannot bind"), std::string::npos)
      << message_of(config);
  config = local_config(false);
  config.endpoint = "tcp://127.0.0.1:5999";
  config.replay_endpoint = config.endpoint;
  EXPECT_NE(message_of(config).find("KvEventsConfig.replay_endpoint must differ"),
            std::string::npos);
  config.replay_endpoint = "udp://x";
  EXPECT_NE(message_of(config).find("KvEventsConfig.replay_endpoint"), std::string::npos);
  config = local_config(false);
  config.hwm = 0;
  EXPECT_NE(message_of(config).find("KvEventsConfig.hwm"), std::string::npos);
  config = local_config(false);
  config.batch_bytes = 100;
  EXPECT_NE(message_of(config).find("KvEventsConfig.batch_bytes"), std::string::npos);
  config = local_config(false);
  config.buffer_bytes = 0;
  EXPECT_NE(message_of(config).find("KvEventsConfig.buffer_bytes"), std::string::npos);
}

TEST(KvEventsConfig, BindsLikeVllmAndOffsetsPortsByRank) {
  EXPECT_TRUE(binds("tcp://*:5557"));
  EXPECT_TRUE(binds("tcp://[::]:5557"));
  EXPECT_TRUE(binds("ipc:///tmp/kv"));
  EXPECT_TRUE(binds("inproc://kv"));
  EXPECT_FALSE(binds("tcp://10.0.0.1:5557"));
  EXPECT_EQ(offset_endpoint("tcp://*:5557", 0), "tcp://*:5557");
  EXPECT_EQ(offset_endpoint("tcp://*:5557", 3), "tcp://*:5560");
  EXPECT_EQ(offset_endpoint("inproc://kv", 2), "inproc://kv_dp2");
  EXPECT_THROW(offset_endpoint("ipc:///tmp/kv", 1), std::invalid_argument);
  EXPECT_THROW(offset_endpoint("tcp://*:65535", 1), std::invalid_argument);
}

// ---- the runtime's stream ----

asio::awaitable<void> cycle(Runtime& runtime, std::uint64_t id, std::vector<TokenId> prompt,
                            testing_util::ClientTally& tally) {
  const auto request = Request::with_tokens(RequestId{id}, prompt);
  const ShardId shard = runtime.route(request);
  auto admitted = co_await runtime.allocate(shard, request);
  if (!admitted) {
    ++tally.refused;
    co_return;
  }
  ++tally.admitted;
  const auto answer = seq(5, static_cast<TokenId>(900'000 + id));
  (void)co_await runtime.append(shard, request.id, answer);
  if ((co_await runtime.free(shard, request.id)).ok()) ++tally.freed;
}

TEST(RuntimeKvEvents, EveryStoreComesBeforeTheEventsNamingItUnderLoad) {
  RuntimeConfig config;
  config.shards = 4;
  config.cache = PrefixCacheConfig{.num_blocks = 256, .block_size = kBlock};  // evicts a lot
  config.kv_events = local_config(true);
  config.kv_events.publish_interval = 2ms;
  Runtime runtime(config);
  const KvEventPublisher* publisher = runtime.kv_event_publisher();
  ASSERT_NE(publisher, nullptr);
  testing_util::KvEventSubscriber subscriber(publisher->endpoint(), publisher->replay_endpoint(),
                                             config.kv_events.topic);
  std::this_thread::sleep_for(100ms);  // a late join is recovered through replay anyway
  runtime.start();
  testing_util::Callers callers(2);
  testing_util::ClientTally tally;
  for (std::uint64_t id = 0; id < 3000; ++id) {
    // 12 system prompts, each followed by a user turn: shared prefixes on every shard.
    auto prompt = cat(seq(12, static_cast<TokenId>(1000 * (id % 12))),
                      seq(6 + id % 7, static_cast<TokenId>(50'000 + 10 * id)));
    callers.spawn(cycle(runtime, id, std::move(prompt), tally));
    if (id % 16 == 15) callers.run_all();  // 16 in flight: most are admitted
  }
  callers.run_all();
  runtime.stop();
  EXPECT_GT(tally.admitted.load(), 2000u);
  const SnapshotPtr last = runtime.snapshot();
  ASSERT_TRUE(last->kv_events.has_value());
  const KvEventStats stats = *last->kv_events;
  EXPECT_EQ(stats.batches_dropped, 0u);
  ASSERT_GT(stats.batches, 0u);
  const auto batches =
      subscriber.receive_until([&](const auto& b) { return b.size() == stats.batches; }, 20s);
  ASSERT_EQ(batches.size(), stats.batches);

  // Per shard the stream is a story: a store's parent is cached, a removal
  // names a cached hash. Shards are told apart by their chains (a chain
  // lives on one shard), so one set of live hashes serves all of them.
  std::set<WireHash> live;
  KvEventCounts seen;
  for (std::size_t i = 0; i < batches.size(); ++i) {
    ASSERT_EQ(batches[i].seq, i);
    for (const DecodedEvent& e : batches[i].batch.events) {
      if (e.kind == DecodedEvent::Kind::stored) {
        ++seen.stored;
        seen.blocks_stored += e.block_hashes.size();
        if (e.parent_block_hash) {
          EXPECT_TRUE(live.contains(*e.parent_block_hash)) << "batch " << i;
        }
        EXPECT_EQ(e.token_ids.size(), e.block_hashes.size() * kBlock);
        for (const WireHash& h : e.block_hashes) EXPECT_TRUE(live.insert(h).second);
      } else if (e.kind == DecodedEvent::Kind::removed) {
        ++seen.removed;
        ASSERT_EQ(e.block_hashes.size(), 1u);
        EXPECT_EQ(live.erase(e.block_hashes[0]), 1u) << "batch " << i;
      } else {
        ADD_FAILURE() << "unexpected event " << e.type;
      }
    }
  }
  EXPECT_EQ(seen.stored, stats.events.stored);
  EXPECT_EQ(seen.removed, stats.events.removed);
  EXPECT_EQ(seen.blocks_stored, stats.events.blocks_stored);
  EXPECT_GT(seen.removed, 0u);  // the pool was small enough to evict
  // What the subscriber believes is cached is what the shards hold.
  EXPECT_EQ(live.size(), last->global.cached_blocks);

  // The exports carry the publisher's figures.
  EXPECT_NE(to_json(*last).find("\"kv_events\":{\"batches\":" + std::to_string(stats.batches)),
            std::string::npos);
  EXPECT_NE(
      to_prometheus(*last).find("kvscope_kv_events_batches_total " + std::to_string(stats.batches)),
      std::string::npos);
}

TEST(RuntimeKvEvents, OffMeansNoPublisherAndNoSection) {
  RuntimeConfig config;
  config.shards = 1;
  Runtime runtime(config);
  EXPECT_EQ(runtime.kv_event_publisher(), nullptr);
  runtime.start();
  runtime.stop();
  EXPECT_FALSE(runtime.snapshot()->kv_events.has_value());
  EXPECT_EQ(to_prometheus(*runtime.snapshot()).find("kvscope_kv_events"), std::string::npos);
}

TEST(RuntimeKvEvents, ABadEndpointFailsAtConstruction) {
  RuntimeConfig config;
  config.shards = 1;
  config.kv_events = local_config(false);
  config.kv_events.endpoint = "tcp://nonsense";
  EXPECT_THROW(Runtime{config}, std::invalid_argument);
}

}  // namespace
}  // namespace kvscope
