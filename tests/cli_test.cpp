// The kvscope CLI, run in-process: argument errors, exact replay counts,
// sweeps with their table, JSON and SVG, and a tiny bench run whose JSON
// report has every field.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "tiny_trace.hpp"
#include "trace_util.hpp"

namespace kvscope::cli {
namespace {

struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

CliRun run(std::vector<std::string> args) {
  args.insert(args.begin(), "kvscope");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  CliRun r;
  r.code = run_cli(static_cast<int>(argv.size()), argv.data(), CliStreams{out, err, false});
  r.out = out.str();
  r.err = err.str();
  return r;
}

/// A file under the temp directory, removed when the test ends.
class TempFile {
 public:
  explicit TempFile(const std::string& name, const std::string& text = "")
      : path_(std::filesystem::temp_directory_path() /
              ("kvscope_cli_test_" + std::to_string(::getpid()) + "_" + name)) {
    if (!text.empty()) std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }
  std::string read() const {
    std::ifstream in(path_);
    return {std::istreambuf_iterator<char>(in), {}};
  }

 private:
  std::filesystem::path path_;
};

using testing_util::kTinyTrace;

TEST(Cli, NoCommandOrUnknownFlagIsAUsageError) {
  const CliRun none = run({});
  EXPECT_EQ(none.code, kExitUsage);
  EXPECT_NE(none.err.find("subcommand"), std::string::npos) << none.err;
  const CliRun unknown = run({"bench", "--no-such-flag"});
  EXPECT_EQ(unknown.code, kExitUsage);
  EXPECT_NE(unknown.err.find("--no-such-flag"), std::string::npos) << unknown.err;
}

TEST(Cli, BadNumbersAndChoicesAreUsageErrors) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"bench", "--requests", "many"},
        {"bench", "--requests", "0"},
        {"bench", "--concurrency", "-3"},
        {"bench", "--policy", "fifo"},
        {"bench", "--duration", "-1"}}) {
    const CliRun r = run(args);
    EXPECT_EQ(r.code, kExitUsage) << args[1] << " " << args[2];
    EXPECT_NE(r.err.find(args[1]), std::string::npos) << r.err;
  }
  TempFile trace("tiny.jsonl", kTinyTrace);
  const CliRun capacity = run({"replay", "--trace", trace.path(), "--capacity", "10,x"});
  EXPECT_EQ(capacity.code, kExitUsage);
  const CliRun mode = run({"replay", "--trace", trace.path(), "--mode", "fast"});
  EXPECT_EQ(mode.code, kExitUsage);
  EXPECT_NE(mode.err.find("--mode"), std::string::npos) << mode.err;
}

TEST(Cli, MissingFilesAreUsageErrors) {
  const CliRun replay = run({"replay", "--trace", "/no/such/trace.jsonl"});
  EXPECT_EQ(replay.code, kExitUsage);
  EXPECT_NE(replay.err.find("/no/such/trace.jsonl"), std::string::npos) << replay.err;
  const CliRun bench = run({"bench", "--trace", "/no/such/trace.jsonl"});
  EXPECT_EQ(bench.code, kExitUsage);
  const CliRun required = run({"replay"});
  EXPECT_EQ(required.code, kExitUsage);
  EXPECT_NE(required.err.find("--trace"), std::string::npos) << required.err;
}

TEST(Cli, ABadTraceLineNamesFileAndLineUnlessSkipped) {
  TempFile trace("bad.jsonl",
                 std::string(kTinyTrace) + "{\"timestamp\": 6, \"input_length\": 4}\n");
  const CliRun failed = run({"replay", "--trace", trace.path(), "--block-tokens", "4"});
  EXPECT_EQ(failed.code, kExitFailure);
  EXPECT_NE(failed.err.find(trace.path()), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find(":8:"), std::string::npos) << failed.err;  // the line
  const CliRun skipped = run({"replay", "--trace", trace.path(), "--block-tokens", "4",
                              "--capacity", "4", "--skip-bad-lines", "--json", "-"});
  ASSERT_EQ(skipped.code, kExitOk) << skipped.err;
  const auto j = nlohmann::json::parse(skipped.out);
  EXPECT_EQ(j["skipped_lines"], 1);
  EXPECT_EQ(j["requests"], 7);
}

// With room for everything, a full-attention group beside a sliding window
// longer than any prompt hits exactly what one group hits; groups need the
// vllm mode.
TEST(Cli, ReplayRunsKvCacheGroups) {
  TempFile trace("tiny-groups.jsonl", kTinyTrace);
  const CliRun one = run({"replay", "--trace", trace.path(), "--block-tokens", "4", "--capacity",
                          "1000", "--json", "-"});
  const CliRun two = run({"replay", "--trace", trace.path(), "--block-tokens", "4", "--capacity",
                          "1000", "--groups", "full:4,swa:4:1000", "--json", "-"});
  ASSERT_EQ(one.code, kExitOk) << one.err;
  ASSERT_EQ(two.code, kExitOk) << two.err;
  const auto a = nlohmann::json::parse(one.out);
  const auto b = nlohmann::json::parse(two.out);
  EXPECT_GT(a["prefix_hit_tokens"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(b["prefix_hit_tokens"], a["prefix_hit_tokens"]);
  EXPECT_EQ(b["evictions"], 0);
  const CliRun simple = run({"replay", "--trace", trace.path(), "--block-tokens", "4", "--mode",
                             "simple", "--groups", "full:4,swa:4:8"});
  EXPECT_NE(simple.code, kExitOk);
  EXPECT_NE(simple.err.find("KV cache groups need the vllm mode"), std::string::npos) << simple.err;
}

TEST(Cli, ReplayGivesTheExactCountsOfTheTinyTrace) {
  TempFile trace("tiny.jsonl", kTinyTrace);
  const CliRun r = run(
      {"replay", "--trace", trace.path(), "--block-tokens", "4", "--capacity", "4", "--json", "-"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto j = nlohmann::json::parse(r.out);  // standard output is the JSON alone
  // Worked out by hand in trace_replay_test.cpp (VllmModeFollowsTheEngineRules).
  EXPECT_EQ(j["requests"], 7);
  EXPECT_EQ(j["total_blocks"], 23);
  EXPECT_EQ(j["total_tokens"], 87);
  EXPECT_EQ(j["prefix_hit_blocks"], 7);
  EXPECT_EQ(j["prefix_hit_tokens"], 28);
  EXPECT_EQ(j["any_hit_blocks"], 8);
  EXPECT_EQ(j["evictions"], 4);
  EXPECT_EQ(j["rejected"], 1);
  EXPECT_EQ(j["mode"], "vllm");
  EXPECT_EQ(j["policy"], "lru");
  EXPECT_EQ(j["capacity"], 4);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["block_hit_ratio"].get<double>(), 7.0 / 23.0);
}

TEST(Cli, SimpleLruReplayReproducesTheReferenceTable) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  const CliRun r =
      run({"replay", "--trace", testing_util::conversation_trace_path(), "--mode", "simple",
           "--policy", "lru", "--capacity", "1000,10000,100000", "--json", "-"});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto runs = nlohmann::json::parse(r.out)["runs"];
  ASSERT_EQ(runs.size(), 3u);
  // ../shared/traces/README.md: prefix_hit_blocks, any_hit_blocks, prefix_hit_tokens.
  const std::uint64_t expected[3][3] = {
      {12'831, 12'845, 6'567'267}, {60'921, 61'042, 31'174'981}, {104'924, 104'924, 53'695'979}};
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(runs[i]["prefix_hit_blocks"], expected[i][0]) << runs[i]["capacity"];
    EXPECT_EQ(runs[i]["any_hit_blocks"], expected[i][1]) << runs[i]["capacity"];
    EXPECT_EQ(runs[i]["prefix_hit_tokens"], expected[i][2]) << runs[i]["capacity"];
    EXPECT_EQ(runs[i]["total_blocks"], 288'500);
  }
}

// What a user sees for each mistake the operator-experience review found
// (issue 22): the flag they typed, its range in plain numbers, one prefix.
TEST(Cli, MessagesNameTheFlagAndItsRangeInPlainNumbers) {
  const CliRun zero = run({"bench", "--requests", "0"});
  EXPECT_EQ(zero.code, kExitUsage);
  EXPECT_EQ(zero.err, "kvscope: --requests must be >= 1\nRun with --help for more information.\n");
  const CliRun shards = run({"bench", "--shards", "5000"});
  EXPECT_EQ(shards.err,
            "kvscope: --shards must be 0 .. 1024\nRun with --help for more information.\n");
  const CliRun blocks = run({"bench", "--blocks", "1", "--shards", "2", "--quiet"});
  EXPECT_EQ(blocks.code, kExitUsage);
  EXPECT_EQ(blocks.err,
            "kvscope: --blocks must be >= the number of shards (2): every shard needs a block\n"
            "Run with --help for more information.\n");
  const CliRun duration = run({"bench", "--duration", "2e6"});
  EXPECT_EQ(duration.err,
            "kvscope: --duration must be 0 .. 1000000\nRun with --help for more information.\n");
  const CliRun capacity = run({"replay", "--trace", "/dev/null", "--capacity", "0"});
  EXPECT_EQ(capacity.err,
            "kvscope: --capacity must be 1 .. 2147483648\n"
            "Run with --help for more information.\n");
}

TEST(Cli, EveryHelpShowsTheDefaults) {
  const CliRun bench = run({"bench", "--help"});
  EXPECT_EQ(bench.code, kExitOk);
  for (const char* shown : {"--requests UINT:>= 1=300000", "--concurrency UINT:1 .. 100000=1024",
                            "=lru", "--blocks UINT:1 .. 2147483648=262144"})
    EXPECT_NE(bench.out.find(shown), std::string::npos) << shown << " in\n" << bench.out;
  const CliRun replay = run({"replay", "--help"});
  for (const char* shown :
       {"--capacity UINT:1 .. 2147483648=[10000]", "--block-tokens", "=512", "=vllm"})
    EXPECT_NE(replay.out.find(shown), std::string::npos) << shown << " in\n" << replay.out;
  const CliRun events = run({"events", "--help"});
  EXPECT_NE(events.out.find("--idle FLOAT:0 .. 10000000=0"), std::string::npos) << events.out;
}

// The chart's title names the trace by its file name, not its path; the
// report's per-tenant line has no trailing separator.
TEST(Cli, TheChartTitleUsesTheFileNameAndTheReportReadsCleanly) {
  TempFile trace("tiny-title.jsonl", kTinyTrace);
  TempFile svg("title.svg");
  const CliRun r = run({"replay", "--trace", trace.path(), "--block-tokens", "4", "--capacity",
                        "4,8", "--svg", svg.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const std::string chart = svg.read();
  EXPECT_NE(chart.find("tiny-title.jsonl: token hit ratio vs capacity"), std::string::npos);
  EXPECT_EQ(chart.find(std::filesystem::temp_directory_path().string()), std::string::npos);

  const CliRun bench = run({"bench", "--requests", "300", "--concurrency", "16", "--shards", "2",
                            "--blocks", "8192", "--quiet"});
  ASSERT_EQ(bench.code, kExitOk) << bench.err;
  const std::size_t at = bench.out.find("by tenant: ");
  ASSERT_NE(at, std::string::npos) << bench.out;
  const std::string line = bench.out.substr(at, bench.out.find('\n', at) - at);
  EXPECT_NE(line.back(), ';') << line;
  EXPECT_NE(line.find(" requests); tenant-"), std::string::npos) << line;
}

TEST(Cli, ASweepOverPoliciesPrintsATableAndDrawsTheChart) {
  KVSCOPE_TRACE_OR_SKIP(trace, SIZE_MAX);
  TempFile svg("sweep.svg");
  TempFile json("sweep.json");
  const CliRun r = run({"replay", "--trace", testing_util::conversation_trace_path(), "--requests",
                        "2000", "--capacity", "500,2000", "--policy", "all", "--svg", svg.path(),
                        "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  for (const char* word : {"capacity", "lru", "lfu", "arc", "s3fifo", "500", "2000"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " in\n" << r.out;
  const auto runs = nlohmann::json::parse(json.read())["runs"];
  EXPECT_EQ(runs.size(), 8u);
  for (const auto& run : runs) EXPECT_EQ(run["requests"], 2'000);
  const std::string chart = svg.read();
  EXPECT_EQ(chart.rfind("<svg", 0) == 0 || chart.find("<svg") < 100, true);
  EXPECT_NE(chart.find("miss-ratio curve"), std::string::npos);
  for (const char* policy : {"lru", "lfu", "arc", "s3fifo"})
    EXPECT_NE(chart.find(policy), std::string::npos) << policy;
}

const char* const kBenchFields[] = {"requests",
                                    "errors",
                                    "requests_per_second",
                                    "hit_ratio_tokens",
                                    "hit_ratio_blocks",
                                    "shards",
                                    "threads",
                                    "latency_us",
                                    "per_shard",
                                    "alerts",
                                    "mrc",
                                    "service_us",
                                    "core_cost_per_request_us"};

TEST(Cli, ATinyBenchRunWritesEveryJsonFieldAndTheExposition) {
  TempFile json("bench.json");
  TempFile prometheus("bench.prom");
  const CliRun r = run({"bench", "--requests", "300", "--concurrency", "16", "--shards", "2",
                        "--threads", "2", "--blocks", "8192", "--snapshot-ms", "20", "--quiet",
                        "--json", json.path(), "--prometheus", prometheus.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  EXPECT_NE(r.out.find("requests/s"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(json.read());
  for (const char* field : kBenchFields) EXPECT_TRUE(j.contains(field)) << field;
  for (const char* p : {"p50", "p90", "p99", "p999"}) EXPECT_TRUE(j["latency_us"].contains(p)) << p;
  EXPECT_EQ(j["requests"], 300);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["shards"], 2);
  EXPECT_EQ(j["threads"], 2);
  EXPECT_EQ(j["per_shard"].size(), 2u);
  EXPECT_TRUE(j["client_check"]["equal"].get<bool>()) << j["client_check"];
  EXPECT_FALSE(j["mrc"].is_null());
  EXPECT_GT(j["hit_ratio_tokens"].get<double>(), 0.0);
  EXPECT_NE(prometheus.read().find("kvscope_prefix_cache_queries_total"), std::string::npos);
}

// A hybrid-attention layout through the runtime: the report shows every
// group, the JSON counts each one's blocks, and bad --groups text is refused
// naming the flag.
TEST(Cli, BenchRunsKvCacheGroupsAndReportsEachOne) {
  TempFile json("groups.json");
  const CliRun r = run({"bench", "--requests", "400", "--concurrency", "16", "--shards", "2",
                        "--threads", "2", "--blocks", "16384", "--quiet", "--groups",
                        "full:16,swa:16:256", "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  EXPECT_NE(r.out.find("KV cache groups (pool of 16384 blocks)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 sliding window 256, blocks of 16"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(json.read());
  ASSERT_EQ(j["kv_cache_groups"].size(), 2u);
  const auto& full = j["kv_cache_groups"][0];
  const auto& swa = j["kv_cache_groups"][1];
  EXPECT_EQ(full["kind"], "full_attention");
  EXPECT_EQ(swa["kind"], "sliding_window");
  EXPECT_EQ(swa["sliding_window"], 256);
  EXPECT_GT(full["cached_blocks"].get<std::uint64_t>(), 0u);
  EXPECT_GT(swa["hit_blocks"].get<std::uint64_t>(), 0u);
  EXPECT_GT(swa["placeholder_blocks"].get<std::uint64_t>(), 0u) << "prompts longer than the window";
  EXPECT_EQ(full["placeholder_blocks"], 0);
  EXPECT_EQ(full["used_blocks"], 0) << "every request is freed at the end";
  EXPECT_EQ(j["errors"], 0);
  EXPECT_TRUE(j["client_check"]["equal"].get<bool>());

  const CliRun bad = run({"bench", "--requests", "10", "--quiet", "--groups", "full:16,swa:16"});
  EXPECT_NE(bad.code, kExitOk);
  EXPECT_NE(bad.err.find("--groups full:16,swa:16: \"swa:16\" is neither full:BLOCK nor "
                         "swa:BLOCK:WINDOW"),
            std::string::npos)
      << bad.err;
  const CliRun zero = run({"bench", "--requests", "10", "--quiet", "--groups", "full:0"});
  EXPECT_NE(zero.err.find("a block size must be a whole number 1 .. 2147483648, got \"0\""),
            std::string::npos)
      << zero.err;
}

TEST(Cli, BenchPublishesKvEventsAndReportsThem) {
  TempFile json("bench-events.json");
  const CliRun r = run({"bench",
                        "--requests",
                        "300",
                        "--concurrency",
                        "16",
                        "--shards",
                        "2",
                        "--threads",
                        "2",
                        "--blocks",
                        "512",
                        "--quiet",
                        "--json",
                        json.path(),
                        "--kv-events",
                        "tcp://127.0.0.1:*",
                        "--kv-events-format",
                        "array",
                        "--kv-events-topic",
                        "kv@test@model"});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  EXPECT_NE(r.out.find("KV events: "), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(json.read());
  const auto& events = j["snapshot"]["kv_events"];
  ASSERT_FALSE(events.is_null());
  EXPECT_GT(events["batches"].get<std::uint64_t>(), 0u);
  EXPECT_GT(events["events"]["BlockStored"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(events["batches_dropped"], 0);
  // The options need --kv-events, and the format is map or array.
  EXPECT_EQ(run({"bench", "--kv-events-topic", "t"}).code, kExitUsage);
  EXPECT_EQ(run({"bench", "--kv-events", "tcp://*:5557", "--kv-events-format", "json"}).code,
            kExitUsage);
  // A bad endpoint fails at start, naming the option.
  const CliRun bad = run({"bench", "--requests", "10", "--kv-events", "tcp://nowhere"});
  EXPECT_NE(bad.code, kExitOk);
  EXPECT_NE(bad.err.find("KvEventsConfig.endpoint"), std::string::npos) << bad.err;
}

TEST(Cli, BenchReplaysATraceWithConcurrency) {
  TempFile trace("tiny.jsonl", kTinyTrace);
  TempFile json("trace_bench.json");
  const CliRun r = run({"bench", "--trace", trace.path(), "--block-size", "4", "--blocks", "64",
                        "--concurrency", "3", "--shards", "1", "--quiet", "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  const auto j = nlohmann::json::parse(json.read());
  EXPECT_EQ(j["requests"], 7);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_TRUE(j["client_check"]["equal"].get<bool>()) << j["client_check"];
}

// Answers that complete blocks: every decode append names the blocks it
// completes (request-private hashes); a wrong count would be an error.
constexpr const char* kLongAnswers =
    R"({"timestamp": 0, "input_length": 10, "output_length": 23, "hash_ids": [1, 2, 3]}
{"timestamp": 2, "input_length": 9, "output_length": 9, "hash_ids": [1, 2, 5]}
{"timestamp": 4, "input_length": 16, "output_length": 17, "hash_ids": [1, 2, 6, 7]}
{"timestamp": 6, "input_length": 3, "output_length": 40, "hash_ids": [8]}
)";

TEST(Cli, BenchTraceDecodesCompleteBlocksWithoutErrors) {
  TempFile trace("long_answers.jsonl", kLongAnswers);
  TempFile json("long_answers.json");
  for (const char* steps : {"1", "3", "7"}) {
    const CliRun r = run({"bench", "--trace", trace.path(), "--block-size", "4", "--blocks", "64",
                          "--concurrency", "2", "--shards", "2", "--route-depth", "2",
                          "--decode-steps", steps, "--quiet", "--json", json.path()});
    ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
    const auto j = nlohmann::json::parse(json.read());
    EXPECT_EQ(j["requests"], 4) << "steps " << steps;
    EXPECT_EQ(j["errors"], 0) << j["errors_by_status"];
    EXPECT_EQ(j["decodes_cut_short"], 0);
    // 1 + 3 + 7 appends per request, none for an empty step.
    const std::uint64_t appends = j["latency_us"]["by_op"]["append"]["count"];
    EXPECT_EQ(appends, 4u * std::stoul(steps)) << "steps " << steps;
    // The shards counted the same operations (exactly; their times are sampled).
    EXPECT_EQ(j["service_us"]["append"]["count"], appends) << "steps " << steps;
    EXPECT_EQ(j["service_us"]["allocate"]["count"], 4u);
    EXPECT_EQ(j["service_us"]["free"]["count"], 4u);
  }
}

TEST(Cli, BenchRunsClientThreadsBeyondTheShards) {
  TempFile json("extra_threads.json");
  const CliRun r = run({"bench", "--requests", "200", "--concurrency", "8", "--shards", "1",
                        "--threads", "3", "--blocks", "8192", "--quiet", "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  const auto j = nlohmann::json::parse(json.read());
  EXPECT_EQ(j["requests"], 200);
  EXPECT_EQ(j["threads"], 3);
  EXPECT_EQ(j["shards"], 1);
  EXPECT_TRUE(j["client_check"]["equal"].get<bool>()) << j["client_check"];
}

TEST(Cli, APacedTraceStopsAtTheDeadline) {
  // Arrivals at 0, 1, ..., 6 s (speedup 1000 of 1 ms steps would be fast;
  // speedup 0.001 makes them seconds apart): only the first ones come
  // before a 0.5 s deadline.
  TempFile trace("tiny.jsonl", kTinyTrace);
  TempFile json("paced.json");
  const CliRun r = run({"bench", "--trace", trace.path(), "--block-size", "4", "--blocks", "64",
                        "--concurrency", "7", "--shards", "1", "--speedup", "0.001", "--duration",
                        "0.5", "--quiet", "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err << r.out;
  const auto j = nlohmann::json::parse(json.read());
  EXPECT_EQ(j["requests"], 1);                 // only the request at timestamp 0
  EXPECT_LT(j["seconds"].get<double>(), 5.0);  // did not wait for the 6 s arrival
}

TEST(Cli, OptionsThatConflictAreUsageErrors) {
  TempFile trace("tiny.jsonl", kTinyTrace);
  const CliRun replay = run({"replay", "--trace", trace.path(), "--block-tokens", "4", "--capacity",
                             "2", "--shards", "4"});
  EXPECT_EQ(replay.code, kExitUsage);
  EXPECT_NE(replay.err.find("capacity"), std::string::npos) << replay.err;
  const CliRun bench = run({"bench", "--blocks", "1", "--shards", "2", "--quiet"});
  EXPECT_EQ(bench.code, kExitUsage);
  EXPECT_NE(bench.err.find("block"), std::string::npos) << bench.err;
}

TEST(Cli, BenchStopsAtTheDeadline) {
  TempFile json("deadline.json");
  const CliRun r =
      run({"bench", "--requests", "100000000", "--duration", "0.3", "--concurrency", "8",
           "--shards", "1", "--blocks", "8192", "--quiet", "--json", json.path()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  const auto j = nlohmann::json::parse(json.read());
  EXPECT_LT(j["requests"].get<std::uint64_t>(), 100'000'000u);
  EXPECT_GT(j["requests"].get<std::uint64_t>(), 0u);
  EXPECT_LT(j["seconds"].get<double>(), 30.0);  // stopped near 0.3 s, not at the request count
}

// The soak check: resident memory is sampled from the start; growth is
// measured after the warm-up, and a run too short to measure it fails.
TEST(Cli, MaxRssGrowthMeasuresAfterTheWarmUpAndFailsWhenItCannot) {
  TempFile json("soak.json");
  const CliRun measured =
      run({"bench",  "--requests",       "100000000", "--duration",    "0.5",  "--warmup",
           "0.1",    "--max-rss-growth", "1000",      "--snapshot-ms", "50",   "--concurrency",
           "8",      "--shards",         "1",         "--blocks",      "8192", "--quiet",
           "--json", json.path()});
  ASSERT_EQ(measured.code, kExitOk) << measured.err;
  EXPECT_NE(measured.out.find("memory: resident"), std::string::npos) << measured.out;
  const auto memory = nlohmann::json::parse(json.read())["memory"];
  EXPECT_TRUE(memory["measured"].get<bool>()) << memory;
  EXPECT_GT(memory["baseline_rss_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_GE(memory["peak_rss_bytes"], memory["baseline_rss_bytes"]);
  EXPECT_GE(memory["samples"].size(), 2u);

  const CliRun too_short =
      run({"bench", "--requests", "50", "--warmup", "3600", "--max-rss-growth", "5",
           "--concurrency", "4", "--shards", "1", "--blocks", "8192", "--quiet"});
  EXPECT_EQ(too_short.code, kExitFailure);
  EXPECT_NE(too_short.err.find("no memory sample after the 3600 s warm-up"), std::string::npos)
      << too_short.err;
}

}  // namespace
}  // namespace kvscope::cli
