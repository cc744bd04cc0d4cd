// libFuzzer target: the Mooncake trace parser (simdjson, line by line) on
// arbitrary text, strict and skipping bad lines. A bad line must be a
// TraceError naming the line (strict) or a counted skip (lenient); anything
// accepted must satisfy the format's rules; nothing else may escape.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kvscope/trace/mooncake_trace.hpp"

namespace {

void require(bool condition) {
  if (!condition) std::abort();
}

// What every accepted request promises (mooncake_trace.hpp).
void check_trace(const kvscope::MooncakeTrace& trace, const kvscope::TraceReadOptions& options) {
  std::uint64_t ids = 0;
  std::uint32_t previous_line = 0;
  for (const kvscope::TraceRequest& r : trace.requests) {
    require(r.first_block == ids);
    ids += r.block_count;
    require(r.line > previous_line);
    previous_line = r.line;
    if (options.block_tokens > 0) {
      const std::uint64_t expected =
          (std::uint64_t{r.input_length} + options.block_tokens - 1) / options.block_tokens;
      require(r.block_count == expected);
      require(trace.full_blocks_of(r, options.block_tokens).size() <= r.block_count);
    }
  }
  require(ids == trace.blocks.size());
  require(trace.skipped_lines == 0 || !trace.first_skipped_error.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  if (size == 0) return 0;
  // The first byte picks the block size (0: no count check); the rest is the trace.
  constexpr std::uint32_t kBlockTokens[] = {512, 16, 1, 0};
  const std::string_view text(reinterpret_cast<const char*>(bytes) + 1, size - 1);
  kvscope::TraceReadOptions options;
  options.block_tokens = kBlockTokens[bytes[0] % 4];

  std::uint64_t strict_requests = 0;
  bool strict_ok = false;
  try {
    const kvscope::MooncakeTrace strict = kvscope::parse_mooncake_trace(text, "fuzz", options);
    check_trace(strict, options);
    require(strict.skipped_lines == 0);
    strict_requests = strict.requests.size();
    strict_ok = true;
  } catch (const kvscope::TraceError& e) {
    require(std::string_view(e.what()).find("fuzz") != std::string_view::npos);
  }

  options.skip_bad_lines = true;
  const kvscope::MooncakeTrace lenient = kvscope::parse_mooncake_trace(text, "fuzz", options);
  check_trace(lenient, options);
  // Strict success means no bad line: the lenient reading is the same.
  if (strict_ok) require(lenient.skipped_lines == 0 && lenient.requests.size() == strict_requests);
  if (!strict_ok) require(lenient.skipped_lines > 0);
  return 0;
}
