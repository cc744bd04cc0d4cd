// msgpack-c (libmsgpack-cxx-dev) writes and reads the bytes: its packer has
// the fixed-width uint64 form llm-d needs (pack_fix_uint64) and the shortest
// forms msgspec writes everywhere else, and its unpacker validates lengths.
#include "kvscope/events/kv_event_codec.hpp"

#include <fmt/format.h>

#include <msgpack.hpp>

#include "events/kv_event_encoder.hpp"

#include <array>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace kvscope {

KvEventCounts& KvEventCounts::operator+=(const KvEventCounts& other) noexcept {
  stored += other.stored;
  removed += other.removed;
  cleared += other.cleared;
  blocks_stored += other.blocks_stored;
  return *this;
}

namespace {

constexpr std::string_view kMedium = "GPU";

std::string hex(const BlockHash& h) { return fmt::format("{:016x}{:016x}", h.high, h.low); }

class Encoder {
 public:
  Encoder(msgpack::sbuffer& buffer, KvEventFormat format, KvHashEncoding hashes)
      : format_(format), hashes_(hashes), buffer_(buffer), out_(buffer) {}

  void batch(const CacheEventLog& log, double ts, std::uint32_t dp_rank, KvEventCounts& counts) {
    out_.pack_array(3);
    out_.pack_double(ts);
    out_.pack_array(static_cast<std::uint32_t>(log.size()));
    const RemovedTemplate removed_template = removed_event_template();
    for (const CacheEventRecord& record : log.records()) {
      switch (record.kind) {
        case CacheEventKind::stored: {
          const StoredRun& run = log.run(record.index);
          stored(log, run);
          ++counts.stored;
          counts.blocks_stored += run.block_count;
          break;
        }
        case CacheEventKind::removed:
          removed_template.write(buffer_, log.removed_hash(record.index), record.group, hashes_);
          ++counts.removed;
          break;
        case CacheEventKind::cleared:
          cleared();
          ++counts.cleared;
          break;
      }
    }
    out_.pack_uint32(dp_rank);
  }

 private:
  void str(std::string_view s) {
    out_.pack_str(static_cast<std::uint32_t>(s.size()));
    out_.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  }
  void hash(const BlockHash& h) {
    if (hashes_ == KvHashEncoding::uint64) {
      out_.pack_fix_uint64(engine_hash(h));  // always 0xcf + 8 bytes
      return;
    }
    char bytes[16];
    for (int i = 0; i < 8; ++i) {
      bytes[i] = static_cast<char>(h.high >> (56 - 8 * i));
      bytes[8 + i] = static_cast<char>(h.low >> (56 - 8 * i));
    }
    out_.pack_bin(16);
    out_.pack_bin_body(bytes, 16);
  }
  /// Opens an event: a map of `fields` + 1 entries with "type" first, or an
  /// array of `fields` + 1 elements with the type first.
  void open(std::string_view type, std::uint32_t fields) {
    if (format_ == KvEventFormat::map) {
      out_.pack_map(fields + 1);
      str("type");
    } else {
      out_.pack_array(fields + 1);
    }
    str(type);
  }
  void key(std::string_view name) {
    if (format_ == KvEventFormat::map) str(name);
  }

  /// The extra keys of block `index` (chain position): adapter, multimodal
  /// (content id, offset from the block's start) pairs, the salt on block 0,
  /// the embeddings digest; nil when there are none.
  void block_extra_keys(const ExtraKeys& extras, std::uint32_t index, std::uint32_t block_size) {
    const std::uint64_t start = std::uint64_t{index} * block_size;
    const std::uint64_t end = start + block_size;
    std::uint32_t n = extras.adapter_id ? 1 : 0;
    for (const MultimodalItem& item : extras.mm_items)
      if (item.offset < end && item.offset + std::uint64_t{item.length} > start) ++n;
    if (index == 0 && extras.salt) ++n;
    if (extras.embeddings_digest) ++n;
    if (n == 0) {
      out_.pack_nil();
      return;
    }
    out_.pack_array(n);
    if (extras.adapter_id) out_.pack_uint64(*extras.adapter_id);
    for (const MultimodalItem& item : extras.mm_items) {
      if (item.offset >= end || item.offset + std::uint64_t{item.length} <= start) continue;
      out_.pack_array(2);
      str(hex(item.content_id));
      out_.pack_int64(static_cast<std::int64_t>(item.offset) - static_cast<std::int64_t>(start));
    }
    if (index == 0 && extras.salt) str(hex(extras.salt->digest));
    if (extras.embeddings_digest) str(hex(*extras.embeddings_digest));
  }

  void stored(const CacheEventLog& log, const StoredRun& run) {
    const ExtraKeys* extras = log.extras(run);
    // block_hashes, parent_block_hash, token_ids, block_size, lora_id,
    // medium, lora_name, [extra_keys], group_idx, kv_cache_spec_kind,
    // [kv_cache_spec_sliding_window]: the window is nil for full attention,
    // so it is written for sliding-window groups only.
    const KvCacheGroupConfig group = log.group(run.group);
    const bool sliding = group.kind == AttentionKind::sliding_window;
    const bool with_extras = extras != nullptr || format_ == KvEventFormat::array;
    open("BlockStored", (with_extras ? 10 : 9) + (sliding ? 1 : 0));
    key("block_hashes");
    const auto hashes = log.hashes(run);
    out_.pack_array(static_cast<std::uint32_t>(hashes.size()));
    for (const BlockHash& h : hashes) hash(h);
    key("parent_block_hash");
    if (run.has_parent) {
      hash(run.parent);
    } else {
      out_.pack_nil();
    }
    key("token_ids");
    const auto tokens = log.tokens(run);
    out_.pack_array(static_cast<std::uint32_t>(tokens.size()));
    for (TokenId t : tokens) out_.pack_uint32(t);
    key("block_size");
    out_.pack_uint32(group.block_size);
    key("lora_id");
    if (extras != nullptr && extras->adapter_id) {
      out_.pack_uint64(*extras->adapter_id);
    } else {
      out_.pack_nil();
    }
    key("medium");
    str(kMedium);
    key("lora_name");
    out_.pack_nil();  // kvscope keys adapters by id; there is no name to send
    if (with_extras) {
      key("extra_keys");
      if (extras == nullptr) {
        out_.pack_nil();
      } else {
        out_.pack_array(run.block_count);
        for (std::uint32_t i = 0; i < run.block_count; ++i)
          block_extra_keys(*extras, run.first_block + i, group.block_size);
      }
    }
    key("group_idx");
    out_.pack_uint32(run.group);
    key("kv_cache_spec_kind");
    str(to_string(group.kind));
    if (sliding) {
      key("kv_cache_spec_sliding_window");
      out_.pack_uint32(group.sliding_window);
    }
  }

  /// A BlockRemoved differs from the next only in its hash bytes (most of a
  /// batch under eviction churn): it is packed once per batch and copied,
  /// with the hash written over the placeholder's bytes.
  class RemovedTemplate {
   public:
    RemovedTemplate(const msgpack::sbuffer& packed, std::size_t hash_at, std::size_t group_at)
        : size_(packed.size()), hash_at_(hash_at), group_at_(group_at) {
      if (size_ > bytes_.size()) throw std::logic_error("kvscope: BlockRemoved template too long");
      std::memcpy(bytes_.data(), packed.data(), size_);
    }
    void write(msgpack::sbuffer& out, const BlockHash& h, std::uint8_t group,
               KvHashEncoding encoding) const {
      const std::size_t at = out.size();
      out.write(bytes_.data(), size_);
      // group_idx is a positive fixint (one byte: groups are < 128).
      out.data()[at + group_at_] = static_cast<char>(group);
      char* hash = out.data() + at + hash_at_;
      if (encoding == KvHashEncoding::uint64) {
        put_big_endian(hash + 1, engine_hash(h));  // after the 0xcf marker
      } else {
        put_big_endian(hash + 2, h.high);  // after bin8's marker and length
        put_big_endian(hash + 10, h.low);
      }
    }

   private:
    static void put_big_endian(char* at, std::uint64_t v) {
      for (int i = 0; i < 8; ++i) at[i] = static_cast<char>(v >> (56 - 8 * i));
    }
    std::array<char, 96> bytes_{};
    std::size_t size_;
    std::size_t hash_at_;
    std::size_t group_at_;
  };

  RemovedTemplate removed_event_template() const {
    msgpack::sbuffer packed(96);
    Encoder encoder(packed, format_, hashes_);
    std::size_t hash_at = 0, group_at = 0;
    encoder.removed(BlockHash{}, &hash_at, &group_at);
    return RemovedTemplate(packed, hash_at, group_at);
  }

  void removed(const BlockHash& h, std::size_t* hash_at, std::size_t* group_at) {
    open("BlockRemoved", 3);
    key("block_hashes");
    out_.pack_array(1);
    *hash_at = buffer_.size();
    hash(h);
    key("medium");
    str(kMedium);
    key("group_idx");
    *group_at = buffer_.size();
    out_.pack_uint32(0);
  }

  void cleared() { open("AllBlocksCleared", 0); }

  KvEventFormat format_;
  KvHashEncoding hashes_;
  msgpack::sbuffer& buffer_;
  msgpack::packer<msgpack::sbuffer> out_;
};

// ---- decoding ----

[[noreturn]] void malformed(const std::string& what) {
  throw KvDecodeError("kvscope: malformed KV event batch: " + what);
}

bool is_nil(const msgpack::object& o) { return o.type == msgpack::type::NIL; }

std::string_view as_view(const msgpack::object& o, const char* what) {
  if (o.type != msgpack::type::STR) malformed(fmt::format("{} is not a string", what));
  return std::string_view(o.via.str.ptr, o.via.str.size);
}

std::string as_string(const msgpack::object& o, const char* what) {
  return std::string(as_view(o, what));
}

std::int64_t as_int(const msgpack::object& o, const char* what) {
  if (o.type == msgpack::type::POSITIVE_INTEGER) return static_cast<std::int64_t>(o.via.u64);
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  malformed(fmt::format("{} is not an integer", what));
}

std::optional<std::int64_t> as_optional_int(const msgpack::object& o, const char* what) {
  if (is_nil(o)) return std::nullopt;
  return as_int(o, what);
}

std::optional<std::string> as_optional_string(const msgpack::object& o, const char* what) {
  if (is_nil(o)) return std::nullopt;
  return as_string(o, what);
}

WireHash as_hash(const msgpack::object& o) {
  WireHash h;
  if (o.type == msgpack::type::POSITIVE_INTEGER) {
    h.low = o.via.u64;
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    h.low = static_cast<std::uint64_t>(o.via.i64);
  } else if (o.type == msgpack::type::BIN && o.via.bin.size <= 16) {
    h.bytes = true;
    for (std::uint32_t i = 0; i < o.via.bin.size; ++i) {
      h.high = (h.high << 8) | (h.low >> 56);
      h.low = (h.low << 8) | static_cast<unsigned char>(o.via.bin.ptr[i]);
    }
  } else {
    malformed("a block hash is neither an integer nor up to 16 bytes");
  }
  return h;
}

std::vector<WireHash> as_hashes(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY) malformed("block_hashes is not an array");
  std::vector<WireHash> out;
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) out.push_back(as_hash(o.via.array.ptr[i]));
  return out;
}

/// Fills one field of `e` from its name; unknown names are ignored
/// (forward compatibility).
void set_field(DecodedEvent& e, std::string_view name, const msgpack::object& v,
               const KvDecodeOptions& options) {
  if (name == "block_hashes") {
    e.block_hashes = as_hashes(v);
  } else if (name == "parent_block_hash") {
    if (!is_nil(v)) e.parent_block_hash = as_hash(v);
  } else if (name == "token_ids") {
    if (v.type != msgpack::type::ARRAY) malformed("token_ids is not an array");
    e.token_count = v.via.array.size;
    if (!options.token_ids) return;
    for (std::uint32_t i = 0; i < v.via.array.size; ++i)
      e.token_ids.push_back(static_cast<std::uint32_t>(as_int(v.via.array.ptr[i], "a token id")));
  } else if (name == "block_size") {
    e.block_size = static_cast<std::uint32_t>(as_int(v, "block_size"));
  } else if (name == "lora_id") {
    e.lora_id = as_optional_int(v, "lora_id");
  } else if (name == "medium") {
    e.medium = as_optional_string(v, "medium");
  } else if (name == "lora_name") {
    e.lora_name = as_optional_string(v, "lora_name");
  } else if (name == "extra_keys") {
    e.has_extra_keys = !is_nil(v);
    if (v.type == msgpack::type::ARRAY) e.extra_key_count = v.via.array.size;
  } else if (name == "group_idx") {
    e.group_idx = as_optional_int(v, "group_idx");
  } else if (name == "kv_cache_spec_kind") {
    e.kv_cache_spec_kind = as_optional_string(v, "kv_cache_spec_kind");
  } else if (name == "kv_cache_spec_sliding_window") {
    e.kv_cache_spec_sliding_window = as_optional_int(v, "kv_cache_spec_sliding_window");
  }
}

DecodedEvent::Kind kind_of(std::string_view type) {
  if (type == "BlockStored") return DecodedEvent::Kind::stored;
  if (type == "BlockRemoved") return DecodedEvent::Kind::removed;
  if (type == "AllBlocksCleared") return DecodedEvent::Kind::cleared;
  return DecodedEvent::Kind::unknown;
}

// Positional field names of the array format, after the type.
constexpr std::string_view kStoredFields[] = {"block_hashes",
                                              "parent_block_hash",
                                              "token_ids",
                                              "block_size",
                                              "lora_id",
                                              "medium",
                                              "lora_name",
                                              "extra_keys",
                                              "group_idx",
                                              "kv_cache_spec_kind",
                                              "kv_cache_spec_sliding_window"};
constexpr std::string_view kRemovedFields[] = {"block_hashes", "medium", "group_idx"};

DecodedEvent decode_event(const msgpack::object& o, bool& map_events,
                          const KvDecodeOptions& options) {
  DecodedEvent e;
  if (o.type == msgpack::type::MAP) {
    map_events = true;
    const auto& m = o.via.map;
    for (std::uint32_t i = 0; i < m.size; ++i) {
      const std::string_view name = as_view(m.ptr[i].key, "an event's key");
      if (name == "type") {
        e.type = as_string(m.ptr[i].val, "type");
        e.kind = kind_of(e.type);
      }
    }
    if (e.type.empty()) malformed("an event map has no \"type\"");
    if (e.kind == DecodedEvent::Kind::unknown) return e;
    for (std::uint32_t i = 0; i < m.size; ++i)
      set_field(e, as_view(m.ptr[i].key, "an event's key"), m.ptr[i].val, options);
    return e;
  }
  if (o.type != msgpack::type::ARRAY || o.via.array.size == 0)
    malformed("an event is neither a map nor a non-empty array");
  const auto& a = o.via.array;
  e.type = as_string(a.ptr[0], "an event's type");
  e.kind = kind_of(e.type);
  std::span<const std::string_view> fields;
  if (e.kind == DecodedEvent::Kind::stored) fields = kStoredFields;
  if (e.kind == DecodedEvent::Kind::removed) fields = kRemovedFields;
  for (std::uint32_t i = 1; i < a.size && i - 1 < fields.size(); ++i)
    set_field(e, fields[i - 1], a.ptr[i], options);
  return e;
}

}  // namespace

std::size_t detail::encoded_size_estimate(const CacheEventLog& log) noexcept {
  // ~200 bytes of keys and scalars per event, 9 per uint64 hash, <= 5 per token.
  return 64 + 200 * log.size() + 9 * log.stored_blocks() + 5 * log.stored_tokens();
}

KvEventCounts detail::encode_kv_event_batch_into(msgpack::sbuffer& out, const CacheEventLog& log,
                                                 double ts, std::uint32_t dp_rank,
                                                 KvEventFormat format, KvHashEncoding hashes) {
  Encoder encoder(out, format, hashes);
  KvEventCounts written;
  encoder.batch(log, ts, dp_rank, written);
  return written;
}

std::string encode_kv_event_batch(const CacheEventLog& log, double ts, std::uint32_t dp_rank,
                                  KvEventFormat format, KvHashEncoding hashes,
                                  KvEventCounts* counts) {
  msgpack::sbuffer buffer(detail::encoded_size_estimate(log));
  const KvEventCounts written =
      detail::encode_kv_event_batch_into(buffer, log, ts, dp_rank, format, hashes);
  if (counts != nullptr) *counts = written;
  return std::string(buffer.data(), buffer.size());
}

DecodedBatch decode_kv_event_batch(std::span<const std::byte> payload,
                                   const KvDecodeOptions& options) {
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(reinterpret_cast<const char*>(payload.data()), payload.size());
  } catch (const std::exception& e) {
    malformed(e.what());
  }
  const msgpack::object& root = handle.get();
  const msgpack::object* ts = nullptr;
  const msgpack::object* events = nullptr;
  const msgpack::object* rank = nullptr;
  if (root.type == msgpack::type::ARRAY) {
    const auto& a = root.via.array;
    if (a.size < 2 || a.size > 3) malformed("a batch array must hold 2 or 3 elements");
    ts = &a.ptr[0];
    events = &a.ptr[1];
    if (a.size == 3) rank = &a.ptr[2];
  } else if (root.type == msgpack::type::MAP) {
    const auto& m = root.via.map;
    for (std::uint32_t i = 0; i < m.size; ++i) {
      const std::string name = as_string(m.ptr[i].key, "a batch key");
      if (name == "ts") ts = &m.ptr[i].val;
      if (name == "events") events = &m.ptr[i].val;
      if (name == "data_parallel_rank") rank = &m.ptr[i].val;
    }
    if (ts == nullptr || events == nullptr) malformed("a batch map needs \"ts\" and \"events\"");
  } else {
    malformed("a batch is neither an array nor a map");
  }
  DecodedBatch batch;
  if (ts->type == msgpack::type::FLOAT64 || ts->type == msgpack::type::FLOAT32) {
    batch.ts = ts->via.f64;
  } else {
    batch.ts = static_cast<double>(as_int(*ts, "ts"));
  }
  if (events->type != msgpack::type::ARRAY) malformed("events is not an array");
  for (std::uint32_t i = 0; i < events->via.array.size; ++i)
    batch.events.push_back(decode_event(events->via.array.ptr[i], batch.map_events, options));
  if (rank != nullptr) batch.dp_rank = as_optional_int(*rank, "dp_rank");
  return batch;
}

}  // namespace kvscope
