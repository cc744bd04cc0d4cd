// kvscope/trace/mooncake_trace.hpp - reads Mooncake-format prefix-caching
// traces (JSONL: {"timestamp", "input_length", "output_length", "hash_ids"}
// per line; ../shared/traces/README.md describes the format).
//
// Parsing uses simdjson's DOM parser (Debian's libsimdjson-dev), one line
// at a time in place: full validation (trailing content included) with the
// library's runtime-selected SIMD kernels and one reusable tape, so the 3 MB
// conversation trace parses well inside the 0.2 s budget
// (docs/performance.md). Each line is checked: the four keys with the right
// types and ranges, hash_ids holding ceil(input_length / block_tokens) ids.
// A bad line throws TraceError naming the source and line, unless
// skip_bad_lines is set: then it is counted and the reading goes on.
//
// Any thread; the result is a plain value.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "kvscope/types.hpp"

namespace kvscope {

/// A bad trace: the message names the source and the 1-based line.
class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TraceRequest {
  std::uint64_t timestamp_ms = 0;  ///< arrival, relative to the first request
  std::uint32_t input_length = 0;  ///< prompt tokens
  std::uint32_t output_length = 0;
  std::uint32_t first_block = 0;  ///< index of its first id in MooncakeTrace::blocks
  std::uint32_t block_count = 0;  ///< number of hash_ids
  std::uint32_t line = 0;         ///< 1-based line in the source
};

struct MooncakeTrace {
  std::vector<TraceRequest> requests;  ///< in file order
  /// Every request's ids, flat, as BlockHash::from_id(id).
  std::vector<BlockHash> blocks;
  std::uint64_t skipped_lines = 0;  ///< bad lines passed over (skip_bad_lines)
  std::string first_skipped_error;  ///< the first of them, for reports

  std::span<const BlockHash> blocks_of(const TraceRequest& r) const noexcept {
    return {blocks.data() + r.first_block, r.block_count};
  }
  /// The ids of the blocks the prompt covers fully (the last id is a partial
  /// block unless input_length is a multiple of block_tokens): what a
  /// vLLM-like engine hashes and caches. Precondition: block_tokens >= 1.
  std::span<const BlockHash> full_blocks_of(const TraceRequest& r,
                                            std::uint32_t block_tokens) const noexcept {
    return blocks_of(r).first(std::min<std::size_t>(r.block_count, r.input_length / block_tokens));
  }
  std::uint64_t total_tokens() const noexcept;
};

struct TraceReadOptions {
  /// Tokens per hash id; each line must carry ceil(input_length / block_tokens)
  /// ids. 0 skips that check. The Mooncake traces use 512.
  std::uint32_t block_tokens = 512;
  /// Count bad lines and go on instead of throwing.
  bool skip_bad_lines = false;
  /// Stop after this many requests (a slice for tests and quick runs).
  std::size_t max_requests = SIZE_MAX;
};

/// Reads a trace file. Throws TraceError (cannot open, bad line).
MooncakeTrace read_mooncake_trace(const std::string& path, const TraceReadOptions& options = {});
/// Parses trace text; `source` names it in errors. Throws TraceError.
MooncakeTrace parse_mooncake_trace(std::string_view text, std::string_view source,
                                   const TraceReadOptions& options = {});

}  // namespace kvscope
