// `kvscope events`: the stream checker on scripted batches, and the command
// itself against a live publisher.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "event_stream.hpp"
#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/events/kv_event_publisher.hpp"
#include "test_util.hpp"

namespace kvscope::cli {
namespace {

using namespace std::chrono_literals;
using testing_util::seq;

BlockHash h(std::uint64_t i) { return BlockHash{0, 1000 + i}; }

/// Batch i of a consistent stream: stores block i (its parent i - 1, cached),
/// and from i = 2 on removes block i - 2 (cached).
CacheEventLog chain_batch(std::uint64_t i) {
  CacheEventLog log(4);
  if (i >= 2) log.removed(h(i - 2));
  std::optional<BlockHash> parent;
  if (i > 0) parent = h(i - 1);
  log.stored_block(h(i), parent, seq(4, static_cast<TokenId>(4 * i)), static_cast<std::uint32_t>(i),
                   ExtraKeys{});
  log.end_run();
  return log;
}

std::string payload(const CacheEventLog& log, double ts,
                    KvEventFormat format = KvEventFormat::map) {
  return encode_kv_event_batch(log, ts, 0, format, KvHashEncoding::uint64);
}

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s)); }

TEST(EventStreamChecker, AConsistentStreamHasNoErrorsAndEveryLifetime) {
  EventStreamChecker checker;
  for (std::uint64_t i = 0; i < 10; ++i)
    checker.batch(i, bytes(payload(chain_batch(i), static_cast<double>(i),
                                   i % 2 ? KvEventFormat::array : KvEventFormat::map)));
  const EventStreamStats& s = checker.stats();
  EXPECT_EQ(s.batches, 10u);
  EXPECT_EQ(s.events.stored, 10u);
  EXPECT_EQ(s.events.removed, 8u);
  EXPECT_EQ(s.consistency_errors(), 0u);
  EXPECT_EQ(s.first_seq, std::optional<std::uint64_t>(0));
  EXPECT_EQ(s.last_seq, std::optional<std::uint64_t>(9));
  ASSERT_EQ(checker.cached_blocks().size(), 1u);
  EXPECT_EQ(checker.cached_blocks().begin()->second, 2u);  // blocks 8 and 9
  // Every removed block lived exactly 2 s (stored in batch i, removed in i + 2).
  EXPECT_EQ(checker.lifetimes_ns().count(), 8u);
  EXPECT_NEAR(static_cast<double>(checker.lifetimes_ns().quantile(0.5)), 2e9, 2e9 * 0.01);
  const nlohmann::json j = checker.report_json(10);
  EXPECT_EQ(j["consistency_errors"], 0);
  EXPECT_EQ(j["blocks_removed"], 8);
  EXPECT_NE(checker.report_text(10).find("consistency: 0 parents not seen"), std::string::npos);
}

TEST(EventStreamChecker, CountsEveryKindOfTrouble) {
  EventStreamChecker checker;
  checker.batch(0, bytes(payload(chain_batch(0), 0)));
  checker.batch(0, bytes(payload(chain_batch(0), 0)));  // a duplicate seq: ignored
  checker.batch(3, bytes(payload(chain_batch(3), 3)));  // 1 and 2 lost; parent 2 unseen, 1 unknown
  checker.bad_message();
  const std::string garbage = "\xc1\x01";
  checker.batch(4, bytes(garbage));
  CacheEventLog again(4);
  again.stored_block(h(3), h(2), seq(4, 1), 3, ExtraKeys{});  // h(3) is cached already
  again.end_run();
  checker.batch(5, bytes(payload(again, 5)));
  const EventStreamStats& s = checker.stats();
  EXPECT_EQ(s.duplicates, 1u);
  EXPECT_EQ(s.batches_lost, 2u);
  EXPECT_EQ(s.parent_not_seen, 2u);  // batch 3's and batch 5's parent h(2)
  EXPECT_EQ(s.remove_unknown, 1u);   // batch 3 removes h(1)
  EXPECT_EQ(s.duplicate_stores, 1u);
  EXPECT_EQ(s.bad_messages, 1u);
  EXPECT_EQ(s.bad_payloads, 1u);
  EXPECT_EQ(s.consistency_errors(), 2u + 1u + 1u + 2u);
}

TEST(EventsCommand, WatchesALivePublisherAndCatchesUpThroughReplay) {
  KvEventsConfig config;
  config.enabled = true;
  config.endpoint = "tcp://127.0.0.1:*";
  config.replay_endpoint = "tcp://127.0.0.1:*";
  KvEventPublisher publisher(config);
  // Published before anyone listens: only replay can bring these back.
  std::uint64_t next = 0;
  for (; next < 20; ++next) {
    CacheEventLog log = chain_batch(next);
    publisher.submit(log, static_cast<double>(next));
  }
  publisher.flush();
  const auto json_path = std::filesystem::temp_directory_path() /
                         ("kvscope-events-" + std::to_string(::getpid()) + ".json");
  std::ostringstream out, err;
  int code = -1;
  std::thread watcher([&] {
    const std::string connect = publisher.endpoint(), replay = publisher.replay_endpoint(),
                      json = json_path.string();
    const char* argv[] = {"kvscope",      "events", "--connect", connect.c_str(), "--replay",
                          replay.c_str(), "--idle", "1",         "--duration",    "30",
                          "--quiet",      "--json", json.c_str()};
    code = run_cli(static_cast<int>(std::size(argv)), argv, CliStreams{out, err});
  });
  // Live batches until the watcher has had time to subscribe and catch up.
  for (int i = 0; i < 15; ++i, ++next) {
    std::this_thread::sleep_for(100ms);
    CacheEventLog log = chain_batch(next);
    publisher.submit(log, static_cast<double>(next));
  }
  watcher.join();
  ASSERT_EQ(code, 0) << err.str();
  std::ifstream file(json_path);
  const nlohmann::json j = nlohmann::json::parse(file);
  std::filesystem::remove(json_path);
  EXPECT_EQ(j["first_seq"], 0);
  EXPECT_EQ(j["last_seq"], next - 1);
  EXPECT_EQ(j["batches"], next);
  EXPECT_EQ(j["consistency_errors"], 0) << out.str();
  EXPECT_EQ(j["events"]["BlockStored"], next);
  EXPECT_NE(out.str().find("consistency: 0 parents not seen, 0 removals of unknown hashes"),
            std::string::npos)
      << out.str();
}

TEST(EventsCommand, NeedsAnEndpoint) {
  std::ostringstream out, err;
  const char* argv[] = {"kvscope", "events"};
  EXPECT_EQ(run_cli(2, argv, CliStreams{out, err}), kExitUsage);
  EXPECT_NE(err.str().find("--connect is required"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace kvscope::cli
