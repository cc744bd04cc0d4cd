// `kvscope replay`: a Mooncake trace through the cache core, one capacity
// or a sweep, one policy or all; a table, JSON and an SVG chart with the
// miss-ratio curve the analytics predict beside the measured points.
#include <fmt/core.h>
#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "commands.hpp"
#include "kvscope/metrics/miss_ratio_curve.hpp"
#include "kvscope/trace/trace_replay.hpp"
#include "option_checks.hpp"
#include "svg_chart.hpp"

namespace kvscope::cli {

namespace {

std::vector<EvictionPolicyKind> policies_of(const std::string& name) {
  if (name == "all") return {kEvictionPolicies.begin(), kEvictionPolicies.end()};
  return {*parse_eviction_policy(name)};
}

std::vector<std::string> policy_choices() {
  std::vector<std::string> choices = policy_names();
  choices.emplace_back("all");
  return choices;
}

struct ParsedTrace {
  MooncakeTrace trace;
  double seconds = 0;
};

ParsedTrace read_trace(const ReplayOptions& o) {
  TraceReadOptions read;
  read.block_tokens = o.block_tokens;
  read.skip_bad_lines = o.skip_bad_lines;
  if (o.max_requests > 0) read.max_requests = o.max_requests;
  const auto start = std::chrono::steady_clock::now();
  ParsedTrace parsed{read_mooncake_trace(o.trace, read), 0};
  parsed.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return parsed;
}

/// The LRU model's predicted token hit ratio at each capacity (ascending),
/// from one pass of exact stack distances over the trace, under the same
/// mode rules as the replay.
std::vector<double> predicted_token_hit_ratios(const MooncakeTrace& trace, ReplayMode mode,
                                               std::uint32_t block_tokens,
                                               const std::vector<std::uint64_t>& capacities) {
  MissRatioConfig config;
  config.bound_multiple = 1;
  config.capacity_multiples = {1.0};
  const bool simple = mode == ReplayMode::simple;
  // vLLM frees last-first, so a chain's root is the most recently released.
  config.touch_order = simple ? TouchOrder::root_to_leaf : TouchOrder::leaf_to_root;
  StackDistanceTracker tracker(static_cast<std::uint32_t>(capacities.back()), config);
  for (const TraceRequest& r : trace.requests) {
    const auto ids = trace.blocks_of(r);
    if (simple) {
      tracker.record(ids, r.input_length, block_tokens, r.block_count);
      continue;
    }
    const auto full = trace.full_blocks_of(r, block_tokens);
    const auto count = static_cast<std::uint32_t>(full.size());
    const std::uint32_t hittable = r.input_length == 0 ? 0 : (r.input_length - 1) / block_tokens;
    tracker.record(full, count * block_tokens, block_tokens, std::min(count, hittable));
  }
  std::vector<double> ratios;
  const double total = static_cast<double>(trace.total_tokens());
  for (const MrcPoint& p : tracker.points_at(capacities))
    ratios.push_back(total > 0 ? static_cast<double>(p.prefix_hit_tokens) / total : 0.0);
  return ratios;
}

/// Capacities for the predicted curve: log-spaced over the sweep, plus its points.
std::vector<std::uint64_t> curve_capacities(const std::vector<std::uint32_t>& sweep) {
  const auto [lo, hi] = std::minmax_element(sweep.begin(), sweep.end());
  std::vector<std::uint64_t> out(sweep.begin(), sweep.end());
  const double first = std::max(1.0, *lo / 4.0);
  constexpr int kSteps = 64;
  for (int i = 0; i <= kSteps; ++i)
    out.push_back(static_cast<std::uint64_t>(
        std::llround(first * std::pow(static_cast<double>(*hi) / first, i / double(kSteps)))));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  while (!out.empty() && out.front() == 0) out.erase(out.begin());
  return out;
}

void write_svg(const ReplayOptions& o, const MooncakeTrace& trace, ReplayMode mode,
               const std::vector<ReplayResult>& runs) {
  ChartSpec chart;
  chart.title = fmt::format("{}: token hit ratio vs capacity ({} mode)",
                            std::filesystem::path(o.trace).filename().string(), to_string(mode));
  chart.x_label = "capacity (blocks)";
  chart.y_label = "token hit ratio";
  chart.log_x = true;
  chart.y_min = 0;
  std::map<std::string, ChartSeries> by_policy;
  for (const ReplayResult& r : runs) {
    ChartSeries& s = by_policy[std::string(to_string(r.config.policy))];
    s.name = fmt::format("{} (replayed)", to_string(r.config.policy));
    s.points.push_back({static_cast<double>(r.config.capacity), r.token_hit_ratio()});
  }
  for (auto& [name, series] : by_policy) chart.series.push_back(std::move(series));
  const std::vector<std::uint64_t> capacities = curve_capacities(o.capacities);
  const std::vector<double> predicted =
      predicted_token_hit_ratios(trace, mode, o.block_tokens, capacities);
  // The model is one LRU cache of the whole capacity, however many shards.
  ChartSeries model{o.shards > 1 ? "LRU miss-ratio curve (predicted, one unsharded cache)"
                                 : "LRU miss-ratio curve (predicted)",
                    {},
                    false,
                    true};
  for (std::size_t i = 0; i < capacities.size(); ++i)
    model.points.push_back({static_cast<double>(capacities[i]), predicted[i]});
  chart.series.push_back(std::move(model));
  double top = 0;
  for (const ChartSeries& series : chart.series)
    for (const ChartPoint& p : series.points) top = std::max(top, p.y);
  chart.y_max = std::max(0.05, std::ceil(top * 1.1 * 20) / 20);
  write_file(o.svg_path, render_svg(chart));
}

void print_single(const ReplayResult& r, double parse_seconds, const CliStreams& streams) {
  streams.out << fmt::format(
      "replay: {} requests, {} blocks, {} tokens ({} mode, {}, capacity {}, {} shard(s))\n"
      "  prefix hit blocks {} (ratio {:.4f}), any-hit blocks {}\n"
      "  prefix hit tokens {} (ratio {:.4f})\n"
      "  evictions {}, rejected {}\n"
      "  parse {:.1f} ms, replay {:.1f} ms\n",
      r.requests, r.total_blocks, r.total_tokens, to_string(r.config.mode),
      to_string(r.config.policy), r.config.capacity, r.config.shards, r.prefix_hit_blocks,
      r.block_hit_ratio(), r.any_hit_blocks, r.prefix_hit_tokens, r.token_hit_ratio(), r.evictions,
      r.rejected, parse_seconds * 1e3, r.seconds * 1e3);
}

void print_table(const ReplayOptions& o, const std::vector<ReplayResult>& runs,
                 double parse_seconds, const CliStreams& streams) {
  const auto policies = policies_of(o.policy);
  std::vector<std::uint32_t> capacities = o.capacities;
  std::sort(capacities.begin(), capacities.end());
  double replay_seconds = 0;
  for (const ReplayResult& r : runs) replay_seconds += r.seconds;
  for (const bool tokens : {true, false}) {
    streams.out << fmt::format("{} hit ratio ({} mode)\n{:>10}", tokens ? "token" : "block", o.mode,
                               "capacity");
    for (auto p : policies) streams.out << fmt::format(" {:>8}", to_string(p));
    streams.out << "\n";
    for (const std::uint32_t c : capacities) {
      streams.out << fmt::format("{:>10}", c);
      for (auto p : policies) {
        const auto it = std::find_if(runs.begin(), runs.end(), [&](const ReplayResult& r) {
          return r.config.capacity == c && r.config.policy == p;
        });
        streams.out << fmt::format(" {:>8.4f}",
                                   tokens ? it->token_hit_ratio() : it->block_hit_ratio());
      }
      streams.out << "\n";
    }
  }
  streams.out << fmt::format("parse {:.1f} ms; {} replays, {:.1f} ms each on average\n",
                             parse_seconds * 1e3, runs.size(),
                             replay_seconds * 1e3 / static_cast<double>(runs.size()));
}

nlohmann::json runs_json(const std::vector<ReplayResult>& runs, const MooncakeTrace& trace,
                         double parse_seconds) {
  auto one = [&](const ReplayResult& r) {
    nlohmann::json j = nlohmann::json::parse(r.to_json());
    j["parse_seconds"] = parse_seconds;
    j["skipped_lines"] = trace.skipped_lines;
    return j;
  };
  if (runs.size() == 1) return one(runs.front());
  nlohmann::json all = nlohmann::json::array();
  for (const ReplayResult& r : runs) all.push_back(one(r));
  return {{"runs", std::move(all)},
          {"parse_seconds", parse_seconds},
          {"skipped_lines", trace.skipped_lines}};
}

}  // namespace

CLI::App* add_replay_command(CLI::App& app, ReplayOptions& o) {
  CLI::App* cmd =
      app.add_subcommand("replay", "Replay a Mooncake-format trace through the cache core");
  cmd->add_option("--trace", o.trace, "Trace file (JSONL)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--capacity", o.capacities, "Usable blocks; a comma-separated list for a sweep")
      ->delimiter(',')
      ->check(between(1u, 1u << 31));
  cmd->add_option("--policy", o.policy, "Eviction policy, or all")
      ->check(CLI::IsMember(policy_choices()));
  cmd->add_option("--block-tokens", o.block_tokens, "Tokens per trace id")
      ->check(between(1, 1 << 20));
  cmd->add_option("--mode", o.mode, "vllm (engine rules) or simple (the trace README's LRU)")
      ->check(CLI::IsMember({"vllm", "simple"}));
  cmd->add_option("--shards", o.shards, "Caches the capacity is split across")
      ->check(between(1, 1024));
  cmd->add_option("--route-depth", o.route_depth,
                  "Route by the n-th block id (1 = the first, the runtime's rule)")
      ->check(between(1, 1 << 20));
  cmd->add_option("--requests", o.max_requests, "Replay only the first N requests (0: all)");
  cmd->add_option("--groups", o.groups,
                  "KV cache groups, e.g. full:512,swa:512:4096 (block sizes multiples of "
                  "--block-tokens; vllm mode)");
  cmd->add_flag("--skip-bad-lines", o.skip_bad_lines, "Count bad trace lines and go on");
  cmd->add_option("--json", o.json_path, "Write JSON to this file ('-': standard output only)");
  cmd->add_option("--svg", o.svg_path, "Draw hit ratio against capacity to this SVG file");
  return cmd;
}

int run_replay(const ReplayOptions& o, const CliStreams& streams) {
  const ParsedTrace parsed = read_trace(o);
  const ReplayMode mode = *parse_replay_mode(o.mode);
  std::vector<ReplayResult> runs;
  for (const std::uint32_t capacity : o.capacities) {
    for (const EvictionPolicyKind policy : policies_of(o.policy)) {
      ReplayConfig config;
      config.mode = mode;
      config.policy = policy;
      config.capacity = capacity;
      config.block_tokens = o.block_tokens;
      config.shards = o.shards;
      config.route_depth = o.route_depth;
      config.groups = parse_groups(o.groups);
      runs.push_back(replay_trace(parsed.trace, config));
    }
  }
  const std::string json = runs_json(runs, parsed.trace, parsed.seconds).dump(2) + "\n";
  if (o.json_path == "-") {
    streams.out << json;
  } else {
    if (runs.size() == 1)
      print_single(runs.front(), parsed.seconds, streams);
    else
      print_table(o, runs, parsed.seconds, streams);
    if (parsed.trace.skipped_lines > 0)
      streams.out << fmt::format("skipped {} bad lines (first: {})\n", parsed.trace.skipped_lines,
                                 parsed.trace.first_skipped_error);
    if (!o.json_path.empty()) write_file(o.json_path, json);
  }
  if (!o.svg_path.empty()) write_svg(o, parsed.trace, mode, runs);
  return kExitOk;
}

}  // namespace kvscope::cli
