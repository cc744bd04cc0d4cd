// Private to the events floor: the encoder writing straight into a msgpack
// buffer, so the publisher can hand the bytes to ZeroMQ without a copy.
#pragma once

#include <cstddef>

#include <msgpack.hpp>

#include "kvscope/cache_events.hpp"
#include "kvscope/events/kv_event_codec.hpp"

namespace kvscope::detail {

/// Bytes a batch of `log` takes at most, nearly (a buffer this large rarely grows).
std::size_t encoded_size_estimate(const CacheEventLog& log) noexcept;
/// Appends the batch's payload to `out`; returns the events written by type.
KvEventCounts encode_kv_event_batch_into(msgpack::sbuffer& out, const CacheEventLog& log, double ts,
                                         std::uint32_t dp_rank, KvEventFormat format,
                                         KvHashEncoding hashes);

}  // namespace kvscope::detail
