// kvscope/events/kv_events_config.hpp - settings of the KV cache event
// publisher: where it publishes (ZeroMQ PUB, an optional ROUTER for replay),
// in which of vLLM's wire formats, and its bounds. docs/kv-events.md
// explains each field; validate() throws std::invalid_argument naming it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kvscope {

/// How events are laid out in a batch: msgpack maps with a "type" key
/// (vLLM since mid-2026, llm-d from v0.9), or positional arrays whose first
/// element is the type (older vLLM, llm-d before v0.9).
enum class KvEventFormat : std::uint8_t { map, array };
/// How replayed batches are framed: [identity, "", seq, payload] (vLLM's
/// publisher) or [identity, "", topic, seq, payload] (newer vLLM).
enum class KvReplayLayout : std::uint8_t { plain, with_topic };
/// How a block hash goes on the wire: its low 64 bits as msgpack uint64
/// (0xcf + 8 bytes, always, as llm-d requires), or all 16 bytes as msgpack
/// bin (vLLM's VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0).
enum class KvHashEncoding : std::uint8_t { uint64, bytes };

std::string_view to_string(KvEventFormat format) noexcept;
std::string_view to_string(KvReplayLayout layout) noexcept;
std::string_view to_string(KvHashEncoding encoding) noexcept;
std::optional<KvEventFormat> parse_kv_event_format(std::string_view name) noexcept;

struct KvEventsConfig {
  /// Off by default; off costs a null check per cache operation.
  bool enabled = false;
  /// The PUB socket. Bound when it contains '*' or "::" or starts with
  /// ipc:// or inproc://, connected otherwise (vLLM's rule).
  std::string endpoint = "tcp://*:5557";
  /// The ROUTER socket answering replay requests (always bound); empty: no replay.
  std::string replay_endpoint{};
  /// First frame of every message (utf-8; empty is sent too). llm-d
  /// subscribes to "kv@<pod-ip:port>@<model>".
  std::string topic{};
  KvEventFormat format = KvEventFormat::map;
  KvReplayLayout replay_layout = KvReplayLayout::plain;
  KvHashEncoding hash_encoding = KvHashEncoding::uint64;
  /// Batches kept for replay; 1 .. 1,000,000.
  std::uint32_t buffer_steps = 10'000;
  /// ... and at most this many payload bytes of them (the oldest go first;
  /// the newest batch is always kept). vLLM's steps are a few KB, but a
  /// shard under load batches megabytes per interval: without this bound
  /// 10,000 of them would hold gigabytes. 1 MiB .. 64 GiB.
  std::uint64_t buffer_bytes = std::uint64_t{256} << 20;
  /// ZeroMQ send high-water mark of the PUB socket (messages); 1 .. 10,000,000.
  int hwm = 100'000;
  /// Batches waiting between the shards and the publisher thread; a shard
  /// finding it full drops its batch (counted). 1 .. 1,000,000.
  std::uint32_t queue_batches = 4'096;
  /// A shard publishes what it recorded at most this often; 1 ms .. 10 s.
  std::chrono::milliseconds publish_interval{10};
  /// ... or as soon as its log holds this many bytes (CacheEventLog::bytes),
  /// so that a batch is still in the caches when the publisher encodes it:
  /// with 10 ms batches of a loaded shard (megabytes) both recording and
  /// encoding ran at memory speed (docs/performance.md, "KV events").
  /// 4 KiB .. 1 GiB; the maximum leaves the interval alone to decide.
  std::uint32_t batch_bytes = 256 * 1024;
  /// On shutdown, how long messages a slow subscriber has not taken yet
  /// still wait for it (ZeroMQ's linger); 0 .. 60 s. vLLM closes with 0.
  std::chrono::milliseconds linger{5'000};
  /// Data-parallel rank: sent in every batch; r > 0 offsets a tcp port by
  /// r (inproc endpoints get "_dp<r>"), as vLLM does. 0 .. 65,535.
  std::uint32_t dp_rank = 0;
  /// The served model's name, for the docs' llm-d topic; not sent.
  std::string model_name{};

  void validate() const;
  /// `endpoint` after the dp_rank offset.
  std::string pub_endpoint() const;
  /// `replay_endpoint` after the dp_rank offset (empty when none).
  std::string router_endpoint() const;
};

/// vLLM's rule: a PUB endpoint binds when it contains '*' or "::" or uses
/// ipc:// or inproc://; otherwise it connects.
bool binds(std::string_view endpoint) noexcept;
/// The endpoint for data-parallel rank `rank`: tcp ports offset by rank,
/// inproc names suffixed "_dp<rank>"; rank 0 unchanged. Throws
/// std::invalid_argument for another transport or a bad port.
std::string offset_endpoint(std::string_view endpoint, std::uint32_t rank);

}  // namespace kvscope
