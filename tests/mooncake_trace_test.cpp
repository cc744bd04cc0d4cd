// Reading Mooncake-format traces: the real file's published statistics, and
// a clear error (file and line) for every kind of bad line.
#include <gtest/gtest.h>

#include <string>

#include "kvscope/trace/mooncake_trace.hpp"
#include "trace_util.hpp"

namespace kvscope {
namespace {

TEST(MooncakeTrace, ConversationTraceMatchesItsReadme) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  EXPECT_EQ(trace->requests.size(), 12'031u);
  EXPECT_EQ(trace->blocks.size(), 288'500u);
  EXPECT_EQ(trace->total_tokens(), 144'793'823u);
  EXPECT_EQ(trace->requests.back().timestamp_ms, 3'536'999u);
  EXPECT_EQ(trace->blocks_of(trace->requests[0])[0], BlockHash::from_id(0));
  EXPECT_EQ(trace->skipped_lines, 0u);
}

TEST(MooncakeTrace, ParsesFieldsAndSkipsBlankLines) {
  const std::string text =
      "{\"timestamp\": 5, \"input_length\": 1000, \"output_length\": 7, \"hash_ids\": [3, 4]}\n"
      "\n"
      "{\"timestamp\": 9, \"input_length\": 512, \"output_length\": 0, \"hash_ids\": [3]}";
  const MooncakeTrace trace = parse_mooncake_trace(text, "t.jsonl");
  ASSERT_EQ(trace.requests.size(), 2u);
  EXPECT_EQ(trace.requests[0].timestamp_ms, 5u);
  EXPECT_EQ(trace.requests[0].input_length, 1000u);
  EXPECT_EQ(trace.requests[0].output_length, 7u);
  EXPECT_EQ(trace.requests[1].line, 3u);
  ASSERT_EQ(trace.blocks_of(trace.requests[0]).size(), 2u);
  EXPECT_EQ(trace.blocks_of(trace.requests[0])[1], BlockHash::from_id(4));
  EXPECT_EQ(trace.blocks_of(trace.requests[1])[0], BlockHash::from_id(3));
}

std::string error_of(const std::string& line) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}\n";
  try {
    (void)parse_mooncake_trace(good + line + "\n" + good, "bad.jsonl");
  } catch (const TraceError& e) {
    return e.what();
  }
  return "no error";
}

TEST(MooncakeTrace, BadLinesNameFileLineAndProblem) {
  const struct {
    const char* line;
    const char* expect;
  } cases[] = {
      {"{\"timestamp\": 0, \"input_length\": 10", "not"},
      {"[1, 2]", "not a JSON object"},
      {"{\"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}", "\"timestamp\""},
      {"{\"timestamp\": -1, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}",
       "\"timestamp\""},
      {"{\"timestamp\": 0, \"input_length\": 99999999999, \"output_length\": 1, \"hash_ids\": [0]}",
       "larger than"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": \"x\", \"hash_ids\": [0]}",
       "\"output_length\""},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": 5}",
       "\"hash_ids\" must be an array"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1.5]}",
       "non-negative integers"},
      {"{\"timestamp\": 0, \"input_length\": 1000, \"output_length\": 1, \"hash_ids\": [0]}",
       "needs 2"},
      {"{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}", ">= 1"},
      {"{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]} x",
       "not JSON"},
  };
  for (const auto& c : cases) {
    const std::string message = error_of(c.line);
    EXPECT_NE(message.find("bad.jsonl:2: "), std::string::npos) << c.line << " -> " << message;
    EXPECT_NE(message.find(c.expect), std::string::npos) << c.line << " -> " << message;
  }
}

TEST(MooncakeTrace, SkipBadLinesCountsThemAndKeepsTheRest) {
  const std::string text =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}\n"
      "garbage\n"
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0, 1]}\n"
      "{\"timestamp\": 1, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [0, 2]}\n";
  TraceReadOptions options;
  options.skip_bad_lines = true;
  const MooncakeTrace trace = parse_mooncake_trace(text, "s.jsonl", options);
  ASSERT_EQ(trace.requests.size(), 2u);
  EXPECT_EQ(trace.skipped_lines, 2u);
  EXPECT_EQ(trace.blocks.size(), 3u);  // the bad lines' ids were dropped
  EXPECT_NE(trace.first_skipped_error.find("s.jsonl:2:"), std::string::npos);
  EXPECT_EQ(trace.blocks_of(trace.requests[1])[1], BlockHash::from_id(2));
}

TEST(MooncakeTrace, BlockCountCheckCanBeTurnedOffAndSlicesStop) {
  const std::string text =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0, 1, 2]}\n"
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}\n";
  TraceReadOptions options;
  options.block_tokens = 0;
  options.max_requests = 1;
  const MooncakeTrace trace = parse_mooncake_trace(text, "s", options);
  ASSERT_EQ(trace.requests.size(), 1u);
  EXPECT_EQ(trace.requests[0].block_count, 3u);
}

TEST(MooncakeTrace, MissingFileIsATraceError) {
  EXPECT_THROW((void)read_mooncake_trace("/nonexistent/trace.jsonl"), TraceError);
}

}  // namespace
}  // namespace kvscope
