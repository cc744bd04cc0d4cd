// The bad-input table of docs/reliability.md, one test per row: each bad
// input gets a clear error (a Status, or an exception whose message names
// the field) and changes nothing - the test compares the state before and
// after. Rows already covered in depth elsewhere name that test too.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/analytics/detector.hpp"
#include "kvscope/metrics/metrics_config.hpp"
#include "kvscope/metrics/sliding_window.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "kvscope/trace/mooncake_trace.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::expect_unchanged;
using testing_util::seq;
using testing_util::Snapshot;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Expects `fn` to throw std::invalid_argument whose message mentions `field`.
void expect_invalid(const std::function<void()>& fn, const std::string& field) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one naming " << field;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos)
        << "message \"" << e.what() << "\" does not name " << field;
  }
}

/// A cache with history to protect: request 1 live (3 blocks), request 2
/// allocated and freed (its blocks cached and free).
class BadCacheInput : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cache_.allocate(Request::with_tokens(RequestId{1}, live_)).ok());
    ASSERT_TRUE(cache_.allocate(Request::with_tokens(RequestId{2}, freed_)).ok());
    ASSERT_TRUE(cache_.free(RequestId{2}).ok());
    before_ = Snapshot::of(cache_);
  }
  void expect_nothing_changed() {
    expect_unchanged(before_, Snapshot::of(cache_));
    EXPECT_EQ(cache_.stats().allocation_failures, before_.stats.allocation_failures);
    cache_.check_invariants();
  }

  PrefixCache cache_{testing_util::config(16, 4)};
  std::vector<TokenId> live_ = seq(10, 100);
  std::vector<TokenId> freed_ = seq(9, 500);
  Snapshot before_;
};

TEST_F(BadCacheInput, EmptyTokenList) {
  const std::vector<TokenId> none;
  EXPECT_EQ(cache_.allocate(Request::with_tokens(RequestId{3}, none)).status(),
            Status::empty_request);
  EXPECT_EQ(cache_.lookup(Request::with_tokens(RequestId{3}, none)).status(),
            Status::empty_request);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, TokenCountOverThePool) {
  const auto huge = seq(16 * 4 + 1, 900);  // one token more than the whole pool holds
  EXPECT_EQ(cache_.allocate(Request::with_tokens(RequestId{3}, huge)).status(),
            Status::request_too_large);
  EXPECT_EQ(cache_.lookup(Request::with_tokens(RequestId{3}, huge)).status(),
            Status::request_too_large);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, UnknownRequestId) {
  const auto more = seq(4, 7);
  EXPECT_EQ(cache_.free(RequestId{99}).status(), Status::unknown_request);
  EXPECT_EQ(cache_.append(RequestId{99}, more).status(), Status::unknown_request);
  EXPECT_EQ(cache_.block_table(RequestId{99}).status(), Status::unknown_request);
  EXPECT_EQ(cache_.num_tokens(RequestId{99}).status(), Status::unknown_request);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, DuplicateRequestId) {
  EXPECT_EQ(cache_.allocate(Request::with_tokens(RequestId{1}, freed_)).status(),
            Status::duplicate_request);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, DoubleFree) {
  EXPECT_EQ(cache_.free(RequestId{2}).status(), Status::unknown_request);  // freed in SetUp
  expect_nothing_changed();
}

TEST_F(BadCacheInput, AppendAfterFree) {
  const auto more = seq(5, 3000);
  EXPECT_EQ(cache_.append(RequestId{2}, more).status(), Status::unknown_request);
  const std::vector<BlockHash> hashes = {BlockHash::from_id(1)};
  EXPECT_EQ(cache_.append_hashes(RequestId{2}, 4, hashes).status(), Status::unknown_request);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, HashCountThatMatchesNoBlockCount) {
  const std::vector<BlockHash> three = {BlockHash::from_id(1), BlockHash::from_id(2),
                                        BlockHash::from_id(3)};
  EXPECT_EQ(cache_.allocate(Request::with_hashes(RequestId{3}, 4, three)).status(),
            Status::invalid_hashes);
  expect_nothing_changed();
}

TEST_F(BadCacheInput, ObserverSampleRateOutOfRange) {
  for (const double rate : {0.0, -0.5, 1.5, kNaN}) {
    ObserverOptions options;
    options.sample_rate = rate;
    expect_invalid([&] { cache_.set_observer(nullptr, options); }, "sample_rate");
  }
  expect_nothing_changed();
}

TEST(BadConfiguration, BlockSizeZero) {
  expect_invalid([] { PrefixCache cache(testing_util::config(16, 0)); }, "block_size");
  RuntimeConfig runtime;
  runtime.cache.block_size = 0;
  expect_invalid([&] { Runtime r(runtime); }, "block_size");
}

TEST(BadConfiguration, ZeroBlocks) {
  expect_invalid([] { PrefixCache cache(testing_util::config(0, 16)); }, "num_blocks");
  RuntimeConfig runtime;
  runtime.shards = 4;
  runtime.cache.num_blocks = 3;  // a shard would get none
  expect_invalid([&] { Runtime r(runtime); }, "num_blocks");
}

TEST(BadConfiguration, SampleRateOutOfRange) {
  for (const double rate : {0.0, -0.1, 1.01, kNaN}) {
    MetricsConfig metrics;
    metrics.residency_sample_rate = rate;
    expect_invalid([&] { metrics.validate(); }, "residency_sample_rate");
  }
}

TEST(BadConfiguration, NaNAndNegativeThresholds) {
  for (const double bad : {kNaN, -0.1}) {
    MetricsConfig metrics;
    metrics.memory_pressure_threshold = bad;
    expect_invalid([&] { metrics.validate(); }, "memory_pressure_threshold");
    AnalyticsConfig analytics;
    analytics.hit_rate_min_drop = bad;
    expect_invalid([&] { analytics.validate(); }, "hit_rate_min_drop");
    analytics = AnalyticsConfig{};
    analytics.eviction_storm_min_turnover = bad;
    expect_invalid([&] { analytics.validate(); }, "eviction_storm_min_turnover");
  }
  ThresholdDetector::Rule rule;
  rule.threshold = kNaN;
  expect_invalid([&] { ThresholdDetector detector({rule}); }, "threshold");
}

TEST(BadConfiguration, WindowSmallerThanItsResolution) {
  WindowConfig window;
  window.window = std::chrono::seconds(1);
  window.resolution = std::chrono::seconds(2);
  expect_invalid([&] { window.validate(); }, "resolution");
  MetricsConfig metrics;
  metrics.window = window;
  expect_invalid([&] { metrics.validate(); }, "resolution");
}

std::string trace_error(const std::string& text) {
  try {
    (void)parse_mooncake_trace(text, "t.jsonl");
  } catch (const TraceError& e) {
    return e.what();
  }
  return "no error";
}

// Parsing is all or nothing: a bad line yields no trace at all (strict), or
// is counted and left out (skip_bad_lines). More cases:
// MooncakeTrace.BadLinesNameFileLineAndProblem.
TEST(BadTraceInput, TruncatedAndMalformedLines) {
  const std::string good =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [0]}\n";
  EXPECT_NE(trace_error(good + "{\"timestamp\": 1, \"input_len").find("t.jsonl:2: not JSON"),
            std::string::npos);
  EXPECT_NE(trace_error(good + "\"just a string\"\n").find("t.jsonl:2: not a JSON object"),
            std::string::npos);
  TraceReadOptions skip;
  skip.skip_bad_lines = true;
  const MooncakeTrace trace =
      parse_mooncake_trace(good + "{\"timestamp\": 1, \"input_len\n" + good, "t.jsonl", skip);
  EXPECT_EQ(trace.requests.size(), 2u);
  EXPECT_EQ(trace.skipped_lines, 1u);
  EXPECT_EQ(trace.blocks.size(), 2u);
}

TEST(BadTraceInput, HugeNumbers) {
  const std::string prefix = "{\"timestamp\": 0, \"output_length\": 1, ";
  EXPECT_NE(trace_error("{\"timestamp\": 1e400, \"input_length\": 1, \"output_length\": 1, "
                        "\"hash_ids\": [0]}")
                .find("t.jsonl:1: "),
            std::string::npos);
  EXPECT_NE(trace_error(prefix + "\"input_length\": 1, \"hash_ids\": [18446744073709551616]}")
                .find("t.jsonl:1: "),
            std::string::npos);
  EXPECT_NE(
      trace_error(prefix + "\"input_length\": 4294967296, \"hash_ids\": [0]}").find("larger than"),
      std::string::npos);
}

}  // namespace
}  // namespace kvscope
