// The commands of the `kvscope` CLI. Each registers its options on a CLI11
// subcommand (filling its options struct as CLI11 parses) and runs from it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <CLI/App.hpp>

#include "cli.hpp"
#include "kvscope/kv_cache_groups.hpp"

namespace kvscope::cli {

struct BenchOptions {
  std::uint32_t shards = 0;   ///< 0: one per hardware thread
  std::uint32_t threads = 0;  ///< client threads; 0: one per shard
  std::uint64_t requests = 300'000;
  double duration_seconds = 0;
  std::uint32_t concurrency = 1'024;
  std::uint32_t blocks = 262'144;
  std::uint32_t block_size = 0;  ///< 0: 16, or 512 (the trace's block tokens) with --trace
  std::string policy = "lru";
  std::uint64_t seed = 42;
  std::string trace;
  double speedup = 0;
  std::uint32_t route_depth = 1;
  bool skip_bad_lines = false;
  double prefill_ns_per_token = 20;
  std::uint32_t decode_steps = 4;
  std::uint32_t snapshot_ms = 500;
  double warmup_seconds = 10;  ///< resident-memory growth is measured after this
  /// Fail the run when resident memory grows more than this after warm-up (a soak check).
  std::optional<double> max_rss_growth_percent;
  std::string json_path;
  std::string prometheus_path;
  bool quiet = false;
  /// KV cache events (docs/kv-events.md): the PUB endpoint; empty: off.
  std::string kv_events;
  std::string kv_events_replay;  ///< the ROUTER endpoint for replay; empty: none
  std::string kv_events_topic;
  std::string kv_events_format = "map";
  /// KV cache groups of a hybrid-attention model, e.g. "full:16,swa:16:4096"; empty: one group.
  std::string groups;
};

/// Parses --groups: comma-separated `full:BLOCK` or `swa:BLOCK:WINDOW`
/// (`sliding` for `swa`). Throws std::invalid_argument naming the flag.
std::vector<KvCacheGroupConfig> parse_groups(const std::string& text);

struct ReplayOptions {
  std::string trace;
  std::vector<std::uint32_t> capacities{10'000};
  std::string policy = "lru";  ///< a policy or "all"
  std::uint32_t block_tokens = 512;
  std::string mode = "vllm";
  std::uint32_t shards = 1;
  std::uint32_t route_depth = 1;
  std::uint64_t max_requests = 0;  ///< 0: the whole trace
  std::string groups;  ///< --groups, as for bench (block sizes multiples of block_tokens)
  bool skip_bad_lines = false;
  std::string json_path;  ///< "-" for stdout
  std::string svg_path;
};

/// The names of every eviction policy ("lru", ...), for option checks.
std::vector<std::string> policy_names();

CLI::App* add_bench_command(CLI::App& app, BenchOptions& options);
CLI::App* add_replay_command(CLI::App& app, ReplayOptions& options);
/// `kvscope events`: `run` is set to the command's runner (its options
/// live with it).
CLI::App* add_events_command(CLI::App& app, std::function<int(const CliStreams&)>& run);

/// Run a parsed command; return an exit code. Errors are reported on
/// streams.err (std::exception messages) with kExitFailure.
int run_bench(const BenchOptions& options, const CliStreams& streams);
int run_replay(const ReplayOptions& options, const CliStreams& streams);

/// Writes `text` to `path`; throws std::runtime_error naming the path.
void write_file(const std::string& path, const std::string& text);

}  // namespace kvscope::cli
