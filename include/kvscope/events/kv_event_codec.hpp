// kvscope/events/kv_event_codec.hpp - vLLM's KV cache event batches in
// msgpack: the encoder the publisher uses and a tolerant decoder for
// subscribers (`kvscope events`, tests). docs/kv-events.md has the format.
//
// A batch is the msgpack array [ts (float64 wall-clock seconds), [events],
// dp_rank (int)]. Events, in the map format, are maps whose first key is
// "type" ("BlockStored", "BlockRemoved", "AllBlocksCleared") followed by the
// fields in vLLM's order, optional fields left out when nil; in the array
// format, ["BlockStored", field, ...] positionally with trailing nil
// optionals left out. Engine hashes are the low 64 bits of kvscope's block
// hash as msgpack uint64 (0xcf + 8 bytes, always), or all 16 bytes as bin.
//
// Thread rules: pure functions; any thread. Cost: linear in the batch.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_events_config.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

/// Events in a batch, by type.
struct KvEventCounts {
  std::uint64_t stored = 0;   ///< BlockStored events
  std::uint64_t removed = 0;  ///< BlockRemoved events (one hash each)
  std::uint64_t cleared = 0;  ///< AllBlocksCleared events
  std::uint64_t blocks_stored = 0;
  std::uint64_t total() const noexcept { return stored + removed + cleared; }
  KvEventCounts& operator+=(const KvEventCounts& other) noexcept;
};

/// The msgpack payload of one batch holding every event of `log`, in order.
/// `counts`, when given, receives the events written by type.
std::string encode_kv_event_batch(const CacheEventLog& log, double ts, std::uint32_t dp_rank,
                                  KvEventFormat format, KvHashEncoding hashes,
                                  KvEventCounts* counts = nullptr);

/// The engine hash kvscope publishes for a block: its low 64 bits.
constexpr std::uint64_t engine_hash(const BlockHash& hash) noexcept { return hash.low; }

/// A seq frame (and a replay request's start): 8 bytes, big-endian unsigned.
/// The end marker of a replay is seq ~0 (0xFF x 8).
inline constexpr std::uint64_t kReplayEndSeq = ~std::uint64_t{0};
constexpr std::array<char, 8> seq_frame(std::uint64_t seq) noexcept {
  std::array<char, 8> out{};
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(seq >> (56 - 8 * i));
  return out;
}
/// Precondition: `frame` points at 8 bytes.
inline std::uint64_t seq_of_frame(const void* frame) noexcept {
  const auto* bytes = static_cast<const unsigned char*>(frame);
  std::uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq = (seq << 8) | bytes[i];
  return seq;
}

// ---- decoding (subscribers) ----

/// A hash as it came off the wire: an integer (uint64, or a signed one
/// reinterpreted) in `low`, or up to 16 bytes big-endian in {high, low}.
struct WireHash {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  bool bytes = false;  ///< sent as bin, not as an integer
  friend bool operator==(const WireHash&, const WireHash&) = default;
  friend auto operator<=>(const WireHash&, const WireHash&) = default;
};

struct DecodedEvent {
  enum class Kind : std::uint8_t { stored, removed, cleared, unknown };
  Kind kind = Kind::unknown;
  std::string type;  ///< the type name as sent
  std::vector<WireHash> block_hashes;
  std::optional<WireHash> parent_block_hash;
  std::vector<std::uint32_t> token_ids;  ///< empty unless KvDecodeOptions::token_ids
  std::size_t token_count = 0;           ///< entries in token_ids as sent
  std::uint32_t block_size = 0;
  std::optional<std::int64_t> lora_id;
  std::optional<std::string> medium;
  std::optional<std::string> lora_name;
  bool has_extra_keys = false;      ///< the field was present (map) or not nil (array)
  std::size_t extra_key_count = 0;  ///< entries in extra_keys
  std::optional<std::int64_t> group_idx;
  std::optional<std::string> kv_cache_spec_kind;
  std::optional<std::int64_t> kv_cache_spec_sliding_window;
};

struct DecodedBatch {
  double ts = 0;
  std::vector<DecodedEvent> events;
  std::optional<std::int64_t> dp_rank;
  bool map_events = false;  ///< the events were maps (else arrays)
};

/// A payload that is not a batch: names what is wrong.
class KvDecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KvDecodeOptions {
  /// Convert every token id (false: token_ids stays empty and its entries
  /// go unchecked; token_count is still set - a stream checker's choice).
  bool token_ids = true;
};

/// Decodes a batch in either event format, with integer or bin hashes; also
/// accepts a batch sent as a map {"ts", "events", "data_parallel_rank"}.
/// Events of an unknown type come back with Kind::unknown. Throws
/// KvDecodeError on anything else malformed.
DecodedBatch decode_kv_event_batch(std::span<const std::byte> payload,
                                   const KvDecodeOptions& options = {});

}  // namespace kvscope
