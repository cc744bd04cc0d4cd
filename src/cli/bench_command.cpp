// `kvscope bench`: a load run of the Runtime on the embedded chat workload
// (or a trace), with a live progress line and a final report.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "bench_report.hpp"
#include "commands.hpp"
#include "kv_event_options.hpp"
#include "kvscope/eviction_policy.hpp"
#include "kvscope/export/prometheus.hpp"
#include "load_driver.hpp"
#include "option_checks.hpp"

namespace kvscope::cli {

namespace {

LoadConfig load_config(const BenchOptions& o, const MooncakeTrace* trace) {
  LoadConfig config;
  config.runtime.shards = o.shards;
  config.runtime.cache.num_blocks = o.blocks;
  config.runtime.cache.block_size = o.block_size;
  config.runtime.cache.policy = *parse_eviction_policy(o.policy);
  config.runtime.snapshot_interval = std::chrono::milliseconds(o.snapshot_ms);
  config.runtime.metrics.miss_ratio.enabled = true;  // the report's curve and advice
  config.threads = o.threads;
  config.concurrency = o.concurrency;
  config.requests = o.requests;
  // Rounded up, so any positive duration is a limit (0 means none).
  config.duration = std::chrono::ceil<std::chrono::milliseconds>(
      std::chrono::duration<double>(o.duration_seconds));
  config.workload.seed = o.seed;
  config.workload.short_tokens = std::max<std::uint32_t>(2, o.block_size);
  config.trace = trace;
  config.speedup = o.speedup;
  config.trace_route_depth = o.route_depth;
  config.prefill_ns_per_token = o.prefill_ns_per_token;
  config.decode_steps = o.decode_steps;
  config.memory_warmup =
      std::chrono::ceil<std::chrono::milliseconds>(std::chrono::duration<double>(o.warmup_seconds));
  config.runtime.kv_events =
      kv_events_config(o.kv_events, o.kv_events_replay, o.kv_events_topic, o.kv_events_format);
  config.runtime.cache.groups = parse_groups(o.groups);
  return config;
}

/// "[  3.2 s] 123,456 / 300,000 requests  38,512 req/s  hit 0.612  usage 0.43  alerts 0"
std::string progress_line(const LoadProgress& p) {
  const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0.0;
  std::string line = fmt::format("[{:6.1f} s] {:>9} / {} requests  {:>9.0f} req/s", p.seconds,
                                 p.done, p.target, rate);
  if (p.snapshot) {
    const ShardSnapshot& g = p.snapshot->global;
    line += fmt::format("  hit {:.3f}  usage {:.2f}  alerts {}", g.total.fresh.token_hit_rate(),
                        g.usage(), p.snapshot->alerts.size());
  }
  return line;
}

ProgressCallback progress_printer(const BenchOptions& o, const CliStreams& streams) {
  if (o.quiet) return {};
  if (streams.interactive)
    return [&streams](const LoadProgress& p) {
      streams.out << "\r\x1b[K" << progress_line(p) << std::flush;
    };
  return [&streams](const LoadProgress& p) { streams.out << progress_line(p) << "\n"; };
}

std::optional<MooncakeTrace> read_trace(const BenchOptions& o) {
  if (o.trace.empty()) return std::nullopt;
  TraceReadOptions read;
  read.block_tokens = o.block_size;
  read.skip_bad_lines = o.skip_bad_lines;
  return read_mooncake_trace(o.trace, read);
}

/// The run passes when no request failed, the clients' counts equal the
/// final snapshot's, and (with --max-rss-growth) memory stayed flat.
/// Prints why it failed.
bool run_passed(const BenchOptions& o, const LoadResult& result, const CliStreams& streams) {
  bool pass = true;
  if (result.clients.errors > 0) pass = false;  // the report lists them by status
  if (!clients_agree_with_snapshot(result)) {
    streams.err << "kvscope bench: the clients' counts differ from the final snapshot's\n";
    pass = false;
  }
  if (o.max_rss_growth_percent) {
    const MemoryGrowth growth = result.memory_growth();
    if (!growth.measured) {
      streams.err << fmt::format(
          "kvscope bench: --max-rss-growth: no memory sample after the {} s warm-up; run "
          "longer (--duration) or shorten --warmup\n",
          o.warmup_seconds);
      pass = false;
    } else if (100.0 * growth.growth() > *o.max_rss_growth_percent) {
      streams.err << fmt::format(
          "kvscope bench: resident memory grew {:.2f}% after warm-up (limit {}%)\n",
          100.0 * growth.growth(), *o.max_rss_growth_percent);
      pass = false;
    }
  }
  return pass;
}

}  // namespace

std::vector<KvCacheGroupConfig> parse_groups(const std::string& text) {
  std::vector<KvCacheGroupConfig> groups;
  if (text.empty()) return groups;
  auto bad = [&](const std::string& why) {
    return std::invalid_argument(fmt::format("--groups {}: {}", text, why));
  };
  auto number = [&](const std::string& field, const char* what) {
    std::size_t used = 0;
    unsigned long value = 0;
    try {
      value = std::stoul(field, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != field.size() || value == 0 || value > (1UL << 31))
      throw bad(fmt::format("{} must be a whole number 1 .. 2147483648, got \"{}\"", what, field));
    return static_cast<std::uint32_t>(value);
  };
  std::stringstream items(text);
  for (std::string item; std::getline(items, item, ',');) {
    std::vector<std::string> parts;
    std::stringstream fields(item);
    for (std::string field; std::getline(fields, field, ':');) parts.push_back(field);
    KvCacheGroupConfig group;
    if (parts.size() == 2 && parts[0] == "full") {
      group.block_size = number(parts[1], "a block size");
    } else if (parts.size() == 3 && (parts[0] == "swa" || parts[0] == "sliding")) {
      group.kind = AttentionKind::sliding_window;
      group.block_size = number(parts[1], "a block size");
      group.sliding_window = number(parts[2], "a window");
    } else {
      throw bad(fmt::format("\"{}\" is neither full:BLOCK nor swa:BLOCK:WINDOW", item));
    }
    groups.push_back(group);
  }
  if (groups.size() > kMaxKvCacheGroups)
    throw bad(fmt::format("at most {} groups", kMaxKvCacheGroups));
  return groups;
}

std::vector<std::string> policy_names() {
  std::vector<std::string> names;
  for (const EvictionPolicyKind kind : kEvictionPolicies) names.emplace_back(to_string(kind));
  return names;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) throw std::runtime_error(fmt::format("cannot open {} for writing", path));
  file << text;
  if (!file.flush()) throw std::runtime_error(fmt::format("cannot write {}", path));
}

CLI::App* add_bench_command(CLI::App& app, BenchOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "bench", "Load run: client coroutines drive the sharded runtime (the main job)");
  cmd->add_option("--shards", o.shards, "Shards (threads); 0 = one per hardware thread")
      ->check(between(0, 1024));
  cmd->add_option("--threads", o.threads,
                  "Client threads; the first ones are the shards' own threads; 0 = --shards")
      ->check(between(0, 1024));
  cmd->add_option("--requests", o.requests, "Request cycles to run (with --trace: at most)")
      ->check(at_least(1));
  cmd->add_option("--duration", o.duration_seconds,
                  "Stop issuing after this many seconds (0: no limit)")
      ->check(between(0.0, 1e6));
  cmd->add_option("--concurrency", o.concurrency, "Client coroutines")->check(between(1, 100'000));
  cmd->add_option("--blocks", o.blocks, "Blocks in the whole pool (split across shards)")
      ->check(between(1u, 1u << 31));
  cmd->add_option("--block-size", o.block_size, "Tokens per block (default 16; 512 with --trace)")
      ->check(between(0, 1 << 20));
  cmd->add_option("--policy", o.policy, "Eviction policy")->check(CLI::IsMember(policy_names()));
  cmd->add_option("--seed", o.seed, "Workload seed");
  cmd->add_option("--trace", o.trace, "Replay a Mooncake-format trace instead of the chat workload")
      ->check(CLI::ExistingFile);
  cmd->add_option("--speedup", o.speedup,
                  "Trace pacing: arrival = timestamp / speedup (0: as fast as possible)")
      ->check(at_least(0));
  cmd->add_flag("--skip-bad-lines", o.skip_bad_lines, "Count bad trace lines and go on");
  cmd->add_option("--route-depth", o.route_depth,
                  "Trace requests go to the shard of their n-th id (1: the runtime's own "
                  "routing by the first block, which sends a Mooncake trace to one shard)")
      ->check(between(1, 1 << 20));
  cmd->add_option("--prefill-ns-per-token", o.prefill_ns_per_token,
                  "Simulated prefill time per uncached prompt token")
      ->check(between(0.0, 1e9));
  cmd->add_option("--decode-steps", o.decode_steps, "Appends per request (decode growth; 0: none)")
      ->check(between(0, 1024));
  cmd->add_option("--snapshot-ms", o.snapshot_ms, "Aggregator period in milliseconds")
      ->check(between(1, 3'600'000));
  cmd->add_option("--warmup", o.warmup_seconds,
                  "Seconds of warm-up before resident-memory growth is measured")
      ->check(between(0.0, 1e6));
  cmd->add_option("--max-rss-growth", o.max_rss_growth_percent,
                  "Soak check: fail when resident memory grows more than this many percent "
                  "after the warm-up")
      ->check(between(0.0, 1e6));
  cmd->add_option("--json", o.json_path, "Write the report as JSON to this file");
  cmd->add_option("--prometheus", o.prometheus_path,
                  "Write the final Prometheus exposition text to this file");
  cmd->add_option("--groups", o.groups,
                  "KV cache groups of a hybrid-attention model, e.g. full:16,swa:16:4096 "
                  "(full:BLOCK or swa:BLOCK:WINDOW; --block-size then defaults to their gcd)");
  cmd->add_flag("--quiet", o.quiet, "No progress lines");
  add_kv_event_options(*cmd, o.kv_events, o.kv_events_replay, o.kv_events_topic,
                       o.kv_events_format);
  return cmd;
}

int run_bench(const BenchOptions& options, const CliStreams& streams) {
  BenchOptions o = options;
  const std::uint32_t shards =
      o.shards != 0 ? o.shards : std::max(1u, std::thread::hardware_concurrency());
  if (o.blocks < shards)
    throw std::invalid_argument(fmt::format(
        "--blocks must be >= the number of shards ({}): every shard needs a block", shards));
  if (o.block_size == 0) {
    // With groups the block size is the hash block: their gcd by default.
    o.block_size = o.trace.empty() ? 16 : 512;
    std::uint32_t gcd = 0;
    for (const KvCacheGroupConfig& g : parse_groups(o.groups)) gcd = std::gcd(gcd, g.block_size);
    if (gcd != 0) o.block_size = gcd;
  }
  const std::optional<MooncakeTrace> trace = read_trace(o);
  const LoadConfig config = load_config(o, trace ? &*trace : nullptr);
  if (!o.quiet) {
    streams.out << fmt::format(
        "kvscope bench: {} on {} blocks of {} tokens, {} policy, {} clients\n",
        trace ? fmt::format("trace {} ({} requests)", o.trace, trace->requests.size())
              : fmt::format("chat workload (seed {}), {} requests", o.seed, o.requests),
        o.blocks, o.block_size, o.policy, o.concurrency);
  }
  const auto every = std::chrono::milliseconds(streams.interactive ? 250 : 2'000);
  const LoadResult result = run_load(config, progress_printer(o, streams), every);
  if (streams.interactive && !o.quiet) streams.out << "\r\x1b[K";
  streams.out << bench_report_text(result);
  if (trace && trace->skipped_lines > 0)
    streams.out << fmt::format("trace lines skipped: {} (first: {})\n", trace->skipped_lines,
                               trace->first_skipped_error);
  if (!o.json_path.empty()) {
    nlohmann::json report = bench_report_json(result);
    report["trace_skipped_lines"] = trace ? trace->skipped_lines : 0;
    write_file(o.json_path, report.dump(2) + "\n");
  }
  if (!o.prometheus_path.empty())
    write_file(o.prometheus_path, to_prometheus(*result.final_snapshot, result.metrics));
  return run_passed(o, result, streams) ? kExitOk : kExitFailure;
}

}  // namespace kvscope::cli
