#include "kvscope/trace/mooncake_trace.hpp"

#include <simdjson.h>

#include <fmt/core.h>

#include <cstring>
#include <limits>

namespace kvscope {

std::uint64_t MooncakeTrace::total_tokens() const noexcept {
  std::uint64_t tokens = 0;
  for (const TraceRequest& r : requests) tokens += r.input_length;
  return tokens;
}

namespace {

/// A bad line: what is wrong with it, without the location.
struct LineError {
  std::string what;
};

std::uint64_t unsigned_field(simdjson::dom::object object, std::string_view key,
                             std::uint64_t max) {
  std::uint64_t value = 0;
  const auto error = object[key].get_uint64().get(value);
  if (error)
    throw LineError{fmt::format("\"{}\" must be a non-negative integer ({})", key,
                                simdjson::error_message(error))};
  if (value > max) throw LineError{fmt::format("\"{}\" = {} is larger than {}", key, value, max)};
  return value;
}

/// Parses one line into `request` and appends its ids to `blocks` (undone
/// by the caller on error). `line` must be followed by SIMDJSON_PADDING
/// readable bytes.
void parse_line(simdjson::dom::parser& parser, std::string_view line,
                const TraceReadOptions& options, TraceRequest& request,
                std::vector<BlockHash>& blocks) {
  simdjson::dom::element doc;
  if (auto error = parser.parse(line.data(), line.size(), false).get(doc))
    throw LineError{fmt::format("not JSON ({})", simdjson::error_message(error))};
  simdjson::dom::object object;
  if (doc.get_object().get(object)) throw LineError{"not a JSON object"};
  constexpr auto u32 = std::numeric_limits<std::uint32_t>::max();
  request.timestamp_ms =
      unsigned_field(object, "timestamp", std::numeric_limits<std::int64_t>::max());
  request.input_length = static_cast<std::uint32_t>(unsigned_field(object, "input_length", u32));
  request.output_length = static_cast<std::uint32_t>(unsigned_field(object, "output_length", u32));
  simdjson::dom::array ids;
  if (auto error = object["hash_ids"].get_array().get(ids))
    throw LineError{
        fmt::format("\"hash_ids\" must be an array ({})", simdjson::error_message(error))};
  for (simdjson::dom::element element : ids) {
    std::uint64_t id = 0;
    if (element.get_uint64().get(id))
      throw LineError{"\"hash_ids\" must hold non-negative integers"};
    blocks.push_back(BlockHash::from_id(id));
  }
  request.block_count = static_cast<std::uint32_t>(blocks.size() - request.first_block);
  if (request.input_length == 0) throw LineError{"\"input_length\" must be >= 1"};
  if (options.block_tokens != 0) {
    const std::uint64_t expected =
        (std::uint64_t{request.input_length} + options.block_tokens - 1) / options.block_tokens;
    if (request.block_count != expected)
      throw LineError{
          fmt::format("\"hash_ids\" holds {} ids; input_length {} needs {} at {} tokens per block",
                      request.block_count, request.input_length, expected, options.block_tokens)};
  }
}

/// Parses every line of `padded` in place: the parser may read up to
/// SIMDJSON_PADDING bytes past a line, which the padded buffer provides.
MooncakeTrace parse_lines(const simdjson::padded_string& padded, std::string_view source,
                          const TraceReadOptions& options) {
  const char* const begin = padded.data();
  const char* const end = begin + padded.size();
  simdjson::dom::parser parser;
  MooncakeTrace trace;
  std::uint32_t line_number = 0;
  for (const char* line = begin; line < end && trace.requests.size() < options.max_requests;) {
    const char* newline = static_cast<const char*>(std::memchr(line, '\n', end - line));
    const char* line_end = newline ? newline : end;
    ++line_number;
    const auto length = static_cast<std::size_t>(line_end - line);
    const bool blank =
        std::string_view(line, length).find_first_not_of(" \t\r") == std::string_view::npos;
    if (!blank) {
      TraceRequest request;
      request.line = line_number;
      request.first_block = static_cast<std::uint32_t>(trace.blocks.size());
      try {
        parse_line(parser, std::string_view(line, length), options, request, trace.blocks);
        trace.requests.push_back(request);
      } catch (const LineError& error) {
        trace.blocks.resize(request.first_block);
        const std::string message = fmt::format("{}:{}: {}", source, line_number, error.what);
        if (!options.skip_bad_lines) throw TraceError(message);
        if (trace.skipped_lines++ == 0) trace.first_skipped_error = message;
      }
    }
    line = line_end + 1;
  }
  return trace;
}

}  // namespace

MooncakeTrace parse_mooncake_trace(std::string_view text, std::string_view source,
                                   const TraceReadOptions& options) {
  return parse_lines(simdjson::padded_string(text), source, options);
}

MooncakeTrace read_mooncake_trace(const std::string& path, const TraceReadOptions& options) {
  simdjson::padded_string text;
  if (auto error = simdjson::padded_string::load(path).get(text))
    throw TraceError(fmt::format("{}: cannot read ({})", path, simdjson::error_message(error)));
  return parse_lines(text, path, options);
}

}  // namespace kvscope
