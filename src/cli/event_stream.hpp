// What `kvscope events` learns from a KV event stream: every batch in seq
// order goes through EventStreamChecker, which keeps the blocks it believes
// cached (per medium and group) and checks the stream against itself -
// a store whose parent it has not seen, a removal of a hash it does not
// hold, a gap in seq, a payload it cannot decode. The network side (ZeroMQ
// SUB and the replay DEALER) lives in events_command.cpp.
//
// Thread rules: single thread. Cost: O(events) per batch, a hash-map
// operation per block.
#pragma once

#include <cstdint>
#include <map>
#include <memory_resource>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "kvscope/events/kv_event_codec.hpp"
#include "kvscope/metrics/histogram.hpp"

namespace kvscope::cli {

struct WireHashKey {
  std::size_t operator()(const WireHash& h) const noexcept {
    return static_cast<std::size_t>(h.low ^ (h.high * 0x9E3779B97F4A7C15ULL));
  }
};

struct EventStreamStats {
  std::uint64_t batches = 0;
  std::uint64_t bytes = 0;
  KvEventCounts events;
  std::uint64_t unknown_events = 0;     ///< events of a type this tool does not know
  std::uint64_t blocks_removed = 0;     ///< hashes in BlockRemoved events
  std::uint64_t bad_messages = 0;       ///< not [topic, 8-byte seq, payload]
  std::uint64_t bad_payloads = 0;       ///< payloads that do not decode
  std::uint64_t duplicates = 0;         ///< batches with a seq already seen
  std::uint64_t gaps = 0;               ///< jumps in seq on the live stream
  std::uint64_t batches_recovered = 0;  ///< missed batches replay gave back
  std::uint64_t batches_lost = 0;       ///< missed batches nothing gave back
  std::uint64_t parent_not_seen = 0;    ///< stores whose parent was not cached
  std::uint64_t remove_unknown = 0;     ///< removals of hashes not cached
  std::uint64_t duplicate_stores = 0;   ///< stores of hashes already cached
  std::optional<std::uint64_t> first_seq;
  std::optional<std::uint64_t> last_seq;

  /// Errors that mean the stream and the cache disagree (or part of it was lost).
  std::uint64_t consistency_errors() const noexcept {
    return parent_not_seen + remove_unknown + duplicate_stores + batches_lost;
  }
};

class EventStreamChecker {
 public:
  EventStreamChecker();

  /// The seq the next batch should carry (nullopt before the first).
  std::optional<std::uint64_t> expected_seq() const noexcept;
  /// The live stream jumped past expected_seq(): the caller will replay
  /// what it can (feeding it to batch() with `replayed`) before the batch
  /// that showed the gap.
  void saw_gap() noexcept { ++stats_.gaps; }
  /// One batch. A seq below expected_seq() is a duplicate (counted,
  /// ignored); one above it leaves the batches in between lost.
  void batch(std::uint64_t seq, std::span<const std::byte> payload, bool replayed = false);
  /// A message that is not [topic, 8-byte seq, payload].
  void bad_message() noexcept { ++stats_.bad_messages; }

  const EventStreamStats& stats() const noexcept { return stats_; }
  /// Blocks cached now, by (medium, group).
  std::map<std::pair<std::string, std::int64_t>, std::uint64_t> cached_blocks() const;
  /// Seconds from BlockStored to BlockRemoved (batch timestamps), every block.
  const Histogram& lifetimes_ns() const noexcept { return lifetimes_ns_; }

  std::string report_text(double seconds) const;
  nlohmann::json report_json(double seconds) const;

 private:
  using Scope = std::pair<std::string, std::int64_t>;  // medium, group
  // hash -> stored at (s); nodes come from pool_ (a busy stream stores and
  // removes millions of blocks a second: malloc per node was a third of
  // the checker's time).
  using Blocks = std::pmr::unordered_map<WireHash, double, WireHashKey>;
  void apply(const DecodedEvent& e, double ts);
  Blocks& blocks_of(const DecodedEvent& e);

  EventStreamStats stats_;
  std::pmr::unsynchronized_pool_resource pool_;
  std::map<Scope, Blocks> cached_;  // after pool_: destroyed before it
  Scope last_scope_;                // the scope of the last event, and its blocks
  Blocks* last_blocks_ = nullptr;
  Histogram lifetimes_ns_;
};

}  // namespace kvscope::cli
