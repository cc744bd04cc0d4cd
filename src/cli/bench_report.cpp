#include "bench_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>

#include "kvscope/export/json.hpp"

namespace kvscope::cli {

namespace {

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1e3; }

struct Percentiles {
  double p50, p90, p99, p999, max;
};

Percentiles percentiles_us(const Histogram& h) {
  return {us(h.quantile(0.5)), us(h.quantile(0.9)), us(h.quantile(0.99)), us(h.quantile(0.999)),
          us(h.max())};
}

nlohmann::json percentiles_json(const Histogram& h) {
  const Percentiles p = percentiles_us(h);
  return {{"count", h.count()}, {"p50", p.p50},   {"p90", p.p90},
          {"p99", p.p99},       {"p999", p.p999}, {"max", p.max}};
}

std::uint64_t alerts_of_kind(const LoadResult& r, AlertTransition::Kind kind) {
  std::uint64_t n = 0;
  for (const auto& e : r.alert_events) n += e.kind == kind;
  return n;
}

// ---- text sections ----

void headline(fmt::memory_buffer& out, const LoadResult& r) {
  const auto& c = r.clients;
  fmt::format_to(std::back_inserter(out),
                 "kvscope bench: {} requests in {:.2f} s = {:.0f} requests/s\n"
                 "  {} shards, {} client threads, {} client coroutines\n"
                 "  errors {}, allocation retries {}, decodes cut short (pool full) {}\n",
                 c.requests, r.seconds, r.requests_per_second(), r.shards, r.threads, r.concurrency,
                 c.errors, c.retries, c.decode_cut_short);
  for (const auto& [status, n] : c.errors_by_status)
    fmt::format_to(std::back_inserter(out), "    {}: {}\n", status, n);
}

// The shards' service time per admitted request (0 before any).
double core_cost_per_request_us(const RuntimeSnapshot& s) {
  const std::uint64_t requests = s.global.total.fresh.requests;
  return requests > 0 ? s.service().total_ns() / 1e3 / static_cast<double>(requests) : 0.0;
}

// Two views of each operation: the time it spent on its shard's thread
// (service: kvscope's own cost) and the time from co_await to resumption
// (service plus queueing behind other clients' operations plus two hops).
void latency_section(fmt::memory_buffer& out, const LoadResult& r) {
  const ServiceTimes service = r.final_snapshot->service();
  auto row = [&out](std::string_view name, const Histogram& h, std::uint64_t count) {
    const Percentiles p = percentiles_us(h);
    fmt::format_to(std::back_inserter(out),
                   "  {:<30} {:>8} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.2f} {:>8.1f}\n", name, count,
                   p.p50, p.p90, p.p99, p.p999, p.max);
  };
  auto on_shard = [&](std::string_view name, ShardOperation kind) {
    const auto k = static_cast<std::size_t>(kind);
    row(name, service.service_ns[k], service.operations[k]);
  };
  fmt::format_to(std::back_inserter(out),
                 "\nop time on the shard: service, kvscope's own work (us; 1 in {} timed)\n"
                 "                                    count      p50      p90      p99    "
                 "p99.9      max\n",
                 service.sampling);
  on_shard("allocate (lookup + allocate)", ShardOperation::allocate);
  on_shard("append (decode growth)", ShardOperation::append);
  on_shard("free", ShardOperation::free);
  const double cost_us = core_cost_per_request_us(*r.final_snapshot);
  fmt::format_to(std::back_inserter(out),
                 "  core cost per request: {:.2f} us on the shards ({:.0f} requests/s per busy "
                 "core)\n",
                 cost_us, cost_us > 0 ? 1e6 / cost_us : 0.0);
  fmt::format_to(std::back_inserter(out),
                 "\nop latency, await to resume: service + queueing behind {} clients + hops "
                 "(us)\n"
                 "                                    count      p50      p90      p99    "
                 "p99.9      max\n",
                 r.concurrency);
  const Histogram all = r.clients.all_ops_ns();
  row("allocate (lookup + allocate)", r.clients.allocate_ns, r.clients.allocate_ns.count());
  row("append (decode growth)", r.clients.append_ns, r.clients.append_ns.count());
  row("free", r.clients.free_ns, r.clients.free_ns.count());
  row("all operations", all, all.count());
}

void hit_ratio_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  const ShardSnapshot& g = s.global;
  fmt::format_to(std::back_inserter(out),
                 "\nhit ratio                           tokens   blocks\n"
                 "  since start                       {:>7.4f}  {:>7.4f}\n"
                 "  last {:>6.1f} s (time window)      {:>7.4f}  {:>7.4f}\n"
                 "  last {:>5} requests              {:>7.4f}  {:>7.4f}\n",
                 g.total.fresh.token_hit_rate(), g.total.fresh.block_hit_rate(),
                 std::chrono::duration<double>(g.window_span).count(),
                 g.window.fresh.token_hit_rate(), g.window.fresh.block_hit_rate(),
                 g.request_window.requests, g.request_window.token_hit_rate(),
                 g.request_window.block_hit_rate());
}

void shard_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  fmt::format_to(std::back_inserter(out),
                 "\nshards (load imbalance {:.2f}; 1 = even)\n"
                 "  shard   requests  share   usage  hit(tokens)  evictions  operations\n",
                 s.load_imbalance());
  std::uint64_t all = s.global.total.fresh.requests;
  for (std::size_t i = 0; i < s.shards.size(); ++i) {
    const ShardSnapshot& sh = s.shards[i];
    const double share =
        all == 0 ? 0.0 : static_cast<double>(sh.total.fresh.requests) / static_cast<double>(all);
    fmt::format_to(std::back_inserter(out),
                   "  {:>5} {:>10} {:>6.3f} {:>7.3f} {:>12.4f} {:>10} {:>11}\n", i,
                   sh.total.fresh.requests, share, sh.usage(), sh.total.fresh.token_hit_rate(),
                   sh.total.evictions, i < s.load.size() ? s.load[i].operations : 0);
  }
}

void eviction_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  const EvictionCounts total = s.global.evictions();
  fmt::format_to(std::back_inserter(out), "\nevictions by reason:");
  for (std::size_t i = 0; i < kEvictionReasonCount; ++i)
    if (total.blocks[i] > 0)
      fmt::format_to(std::back_inserter(out), " {} {}", to_string(static_cast<EvictionReason>(i)),
                     total.blocks[i]);
  if (total.total_blocks() == 0) fmt::format_to(std::back_inserter(out), " none");
  fmt::format_to(std::back_inserter(out), "; window rate {:.0f} blocks/s; allocation failures {}\n",
                 s.global.window_eviction_rate(), s.global.total.allocation_failures);
}

void residency_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  if (!s.global.residency) return;
  const ResidencySnapshot& r = *s.global.residency;
  fmt::format_to(std::back_inserter(out),
                 "\nblock residency ({} blocks watched, {:.2g} of allocations; now {:.2g})\n"
                 "  {:<44} {:>10} {:>10} {:>10}   (ms)\n",
                 r.sampled_blocks, r.effective_sample_rate(), r.sample_rate, "", "p50", "p90",
                 "p99");
  auto row = [&out](std::string_view name, const Histogram& h, std::uint64_t samples) {
    fmt::format_to(std::back_inserter(out), "  {:<44} {:>10.3f} {:>10.3f} {:>10.3f}   {} samples\n",
                   name, static_cast<double>(h.quantile(0.5)) / 1e6,
                   static_cast<double>(h.quantile(0.9)) / 1e6,
                   static_cast<double>(h.quantile(0.99)) / 1e6, samples);
  };
  row("lifetime (allocated to evicted)", r.lifetime, r.evicted_blocks);
  row("idle at eviction (since last access)", r.idle, r.evicted_blocks);
  row("reuse gap (between accesses)", r.reuse_gap, r.reuse_gap_samples);
  fmt::format_to(std::back_inserter(out),
                 "  evicted never reused {:.3f}, hot (>= {} hits) {:.3f}, thrash share {:.3f}\n",
                 r.never_reused_share(), r.hot_reuse_threshold, r.hot_share(), r.thrash_share());
}

void alert_section(fmt::memory_buffer& out, const LoadResult& r) {
  fmt::format_to(std::back_inserter(out),
                 "\nalerts: {} raised, {} resolved, {} firing at the end\n",
                 alerts_of_kind(r, AlertTransition::Kind::fired),
                 alerts_of_kind(r, AlertTransition::Kind::resolved),
                 std::count_if(r.final_snapshot->alerts.begin(), r.final_snapshot->alerts.end(),
                               [](const CacheAlert& a) { return a.state == AlertState::firing; }));
  constexpr std::size_t kShown = 12;
  for (std::size_t i = 0; i < r.alert_events.size() && i < kShown; ++i) {
    const AlertTransition& e = r.alert_events[i];
    fmt::format_to(std::back_inserter(out), "  {:<13} {:<8} {}\n", to_string(e.kind),
                   to_string(e.alert.level), e.alert.message);
  }
  if (r.alert_events.size() > kShown)
    fmt::format_to(std::back_inserter(out), "  ... {} more in --json\n",
                   r.alert_events.size() - kShown);
}

void miss_ratio_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  if (!s.global.miss_ratio) return;
  const MissRatioCurve& c = *s.global.miss_ratio;
  fmt::format_to(std::back_inserter(out),
                 "\nmiss-ratio curve (exact LRU model, {} admissions): predicted token hit ratio\n",
                 c.requests);
  for (const double want : {0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0}) {
    for (const MrcPoint& p : c.points) {
      if (std::abs(p.multiple - want) > 1e-9) continue;
      fmt::format_to(std::back_inserter(out), "  {:>5.2f}x = {:>9} blocks  {:.4f}\n", p.multiple,
                     p.capacity_blocks, c.token_hit_ratio(p));
    }
  }
  if (!s.analytics.capacity) return;
  const CapacityAdvice& a = *s.analytics.capacity;
  fmt::format_to(std::back_inserter(out),
                 "capacity advice: {} blocks now: measured {:.4f}, model {:.4f}; best {:.4f} at "
                 "{} blocks; knee at {} blocks ({:.4f})",
                 a.current_blocks, a.measured_hit_ratio, a.expected_hit_ratio, a.best_hit_ratio,
                 a.best_blocks, a.knee_blocks, a.knee_hit_ratio);
  if (a.blocks_for_target)
    fmt::format_to(std::back_inserter(out), "; {:.4f} needs {} blocks", a.target_hit_ratio,
                   *a.blocks_for_target);
  fmt::format_to(std::back_inserter(out), "\n");
}

void memory_section(fmt::memory_buffer& out, const LoadResult& r) {
  const MemoryGrowth g = r.memory_growth();
  constexpr double kMiB = 1024.0 * 1024.0;
  if (!g.measured) {
    fmt::format_to(
        std::back_inserter(out),
        "\nmemory: no sample after the {:.0f} s warm-up (run longer to measure growth)\n",
        r.memory_warmup_seconds);
    return;
  }
  fmt::format_to(std::back_inserter(out),
                 "\nmemory: resident {:.1f} MiB at {:.1f} s (after warm-up), peak {:.1f} MiB "
                 "later: {:+.2f}% over {} samples\n",
                 static_cast<double>(g.baseline_bytes) / kMiB, g.baseline_seconds,
                 static_cast<double>(g.peak_bytes) / kMiB, 100.0 * g.growth(), g.samples);
}

void client_check_section(fmt::memory_buffer& out, const LoadResult& r) {
  const QueryCounts& f = r.final_snapshot->global.total.fresh;
  const bool agree = clients_agree_with_snapshot(r);
  fmt::format_to(std::back_inserter(out),
                 "\nclient check: clients saw {} admissions / {} hit tokens, the final snapshot "
                 "{} / {}: {}\n",
                 r.clients.admitted, r.clients.hit_tokens, f.requests, f.hit_tokens,
                 agree ? "equal" : "DIFFERENT");
}

void kv_events_section(fmt::memory_buffer& out, const RuntimeSnapshot& s) {
  if (!s.kv_events) return;
  const KvEventStats& k = *s.kv_events;
  fmt::format_to(std::back_inserter(out),
                 "\nKV events: {} batches, {} BlockStored ({} blocks), {} BlockRemoved, {} "
                 "AllBlocksCleared, {:.1f} MiB; {} batches dropped (queue full); replay {} "
                 "served, {} refused\n",
                 k.batches, k.events.stored, k.events.blocks_stored, k.events.removed,
                 k.events.cleared, static_cast<double>(k.bytes) / (1 << 20), k.batches_dropped,
                 k.replay_served, k.replay_refused);
}

}  // namespace

namespace {

// One line per KV cache group (only with more than one, or a sliding
// window): its cached blocks at the end (every request is freed by then, so
// nothing is in use) and the share of its admitted blocks that hits served
// or that needed no block (before a window).
void group_section(fmt::memory_buffer& out, const LoadResult& r) {
  const bool plain =
      r.group_configs.size() == 1 && r.group_configs[0].kind == AttentionKind::full_attention;
  if (plain || r.group_configs.size() != r.group_stats.size()) return;
  std::uint64_t pool = 0;
  for (const ShardSnapshot& sh : r.final_snapshot->shards) pool += sh.num_blocks;
  fmt::format_to(std::back_inserter(out),
                 "\nKV cache groups (pool of {} blocks)  peak in use        cached at the end    "
                 "hit blocks   no block needed\n",
                 pool);
  for (std::size_t g = 0; g < r.group_configs.size(); ++g) {
    const KvCacheGroupConfig& c = r.group_configs[g];
    const KvCacheGroupStats& st = r.group_stats[g];
    const std::string name =
        c.kind == AttentionKind::sliding_window
            ? fmt::format("{} sliding window {}, blocks of {}", g, c.sliding_window, c.block_size)
            : fmt::format("{} full attention, blocks of {}", g, c.block_size);
    const double q = st.query_blocks > 0 ? static_cast<double>(st.query_blocks) : 1.0;
    const std::uint64_t peak = g < r.group_peak_used.size() ? r.group_peak_used[g] : 0;
    auto share = [pool](std::uint64_t blocks) {
      return pool > 0 ? 100.0 * static_cast<double>(blocks) / static_cast<double>(pool) : 0.0;
    };
    fmt::format_to(std::back_inserter(out),
                   "  {:<34} {:>9} ({:>5.1f}%)  {:>9} ({:>5.1f}%)   {:>10.4f}   {:>15.4f}\n", name,
                   peak, share(peak), st.cached_blocks, share(st.cached_blocks), st.hit_blocks / q,
                   st.placeholder_blocks / q);
  }
}

nlohmann::json groups_json(const LoadResult& r) {
  nlohmann::json groups = nlohmann::json::array();
  for (std::size_t g = 0; g < r.group_configs.size() && g < r.group_stats.size(); ++g) {
    const KvCacheGroupConfig& c = r.group_configs[g];
    const KvCacheGroupStats& st = r.group_stats[g];
    groups.push_back(
        {{"group", g},
         {"kind", to_string(c.kind)},
         {"block_size", c.block_size},
         {"sliding_window",
          c.kind == AttentionKind::sliding_window ? nlohmann::json(c.sliding_window) : nullptr},
         {"used_blocks", st.used_blocks},
         {"cached_blocks", st.cached_blocks},
         {"query_blocks", st.query_blocks},
         {"hit_blocks", st.hit_blocks},
         {"placeholder_blocks", st.placeholder_blocks},
         {"evictions", st.evictions},
         {"peak_used_blocks", g < r.group_peak_used.size() ? r.group_peak_used[g] : 0}});
  }
  return groups;
}

}  // namespace

std::string bench_report_text(const LoadResult& r) {
  const RuntimeSnapshot& s = *r.final_snapshot;
  fmt::memory_buffer out;
  headline(out, r);
  latency_section(out, r);
  hit_ratio_section(out, s);
  group_section(out, r);
  shard_section(out, s);
  eviction_section(out, s);
  residency_section(out, s);
  alert_section(out, r);
  miss_ratio_section(out, s);
  memory_section(out, r);
  kv_events_section(out, s);
  client_check_section(out, r);
  fmt::format_to(std::back_inserter(out), "\n{}", s.analytics.diagnosis.to_text());
  return fmt::to_string(out);
}

// ---- JSON ----

namespace {

nlohmann::json per_shard_json(const RuntimeSnapshot& s) {
  nlohmann::json shards = nlohmann::json::array();
  for (std::size_t i = 0; i < s.shards.size(); ++i) {
    const ShardSnapshot& sh = s.shards[i];
    shards.push_back({{"shard", i},
                      {"requests", sh.total.fresh.requests},
                      {"operations", i < s.load.size() ? s.load[i].operations : 0},
                      {"num_blocks", sh.num_blocks},
                      {"usage", sh.usage()},
                      {"hit_ratio_tokens", sh.total.fresh.token_hit_rate()},
                      {"hit_ratio_blocks", sh.total.fresh.block_hit_rate()},
                      {"evictions", sh.total.evictions}});
  }
  return shards;
}

nlohmann::json alerts_json(const LoadResult& r) {
  nlohmann::json events = nlohmann::json::array();
  for (const AlertTransition& e : r.alert_events)
    events.push_back(
        {{"kind", to_string(e.kind)}, {"alert", nlohmann::json::parse(to_json(e.alert))}});
  return {{"raised", alerts_of_kind(r, AlertTransition::Kind::fired)},
          {"resolved", alerts_of_kind(r, AlertTransition::Kind::resolved)},
          {"events", std::move(events)}};
}

nlohmann::json mrc_json(const RuntimeSnapshot& s) {
  if (!s.global.miss_ratio) return nullptr;
  const MissRatioCurve& c = *s.global.miss_ratio;
  nlohmann::json points = nlohmann::json::array();
  for (const MrcPoint& p : c.points)
    points.push_back({{"multiple", p.multiple},
                      {"capacity_blocks", p.capacity_blocks},
                      {"token_hit_ratio", c.token_hit_ratio(p)},
                      {"block_hit_ratio", c.block_hit_ratio(p)}});
  nlohmann::json out = {{"capacity_blocks", c.capacity_blocks},
                        {"requests", c.requests},
                        {"points", std::move(points)}};
  if (s.analytics.capacity) {
    const CapacityAdvice& a = *s.analytics.capacity;
    out["advice"] = {
        {"current_blocks", a.current_blocks},
        {"measured_hit_ratio", a.measured_hit_ratio},
        {"expected_hit_ratio", a.expected_hit_ratio},
        {"target_hit_ratio", a.target_hit_ratio},
        {"blocks_for_target",
         a.blocks_for_target ? nlohmann::json(*a.blocks_for_target) : nlohmann::json(nullptr)},
        {"knee_blocks", a.knee_blocks},
        {"best_blocks", a.best_blocks},
        {"best_hit_ratio", a.best_hit_ratio}};
  }
  return out;
}

nlohmann::json memory_json(const LoadResult& r) {
  const MemoryGrowth g = r.memory_growth();
  nlohmann::json samples = nlohmann::json::array();
  for (const MemorySample& m : r.memory) samples.push_back({m.seconds, m.rss_bytes});
  return {{"warmup_seconds", r.memory_warmup_seconds},
          {"measured", g.measured},
          {"baseline_seconds", g.baseline_seconds},
          {"baseline_rss_bytes", g.baseline_bytes},
          {"peak_rss_bytes", g.peak_bytes},
          {"growth", g.growth()},
          {"samples", std::move(samples)}};
}

}  // namespace

bool clients_agree_with_snapshot(const LoadResult& r) {
  const QueryCounts& f = r.final_snapshot->global.total.fresh;
  return f.requests == r.clients.admitted && f.hit_tokens == r.clients.hit_tokens &&
         f.query_tokens == r.clients.prompt_tokens;
}

nlohmann::json bench_report_json(const LoadResult& r) {
  const RuntimeSnapshot& s = *r.final_snapshot;
  const ShardSnapshot& g = s.global;
  nlohmann::json latency = percentiles_json(r.clients.all_ops_ns());
  latency["by_op"] = {{"allocate", percentiles_json(r.clients.allocate_ns)},
                      {"append", percentiles_json(r.clients.append_ns)},
                      {"free", percentiles_json(r.clients.free_ns)}};
  const ServiceTimes service = s.service();
  nlohmann::json service_us = {{"sampling", service.sampling}};
  for (const ShardOperation kind :
       {ShardOperation::allocate, ShardOperation::append, ShardOperation::free}) {
    const auto k = static_cast<std::size_t>(kind);
    nlohmann::json figures = percentiles_json(service.service_ns[k]);
    figures["count"] = service.operations[k];
    service_us[std::string(to_string(kind))] = std::move(figures);
  }
  const double core_cost_us = core_cost_per_request_us(s);
  nlohmann::json evictions;
  const EvictionCounts counts = g.evictions();
  for (std::size_t i = 0; i < kEvictionReasonCount; ++i)
    evictions[std::string(to_string(static_cast<EvictionReason>(i)))] = counts.blocks[i];
  return {{"requests", r.clients.requests},
          {"errors", r.clients.errors},
          {"errors_by_status", r.clients.errors_by_status},
          {"allocation_retries", r.clients.retries},
          {"decodes_cut_short", r.clients.decode_cut_short},
          {"seconds", r.seconds},
          {"requests_per_second", r.requests_per_second()},
          {"hit_ratio_tokens", g.total.fresh.token_hit_rate()},
          {"hit_ratio_blocks", g.total.fresh.block_hit_rate()},
          {"window_hit_ratio_tokens", g.window.fresh.token_hit_rate()},
          {"window_hit_ratio_blocks", g.window.fresh.block_hit_rate()},
          {"request_window_hit_ratio_tokens", g.request_window.token_hit_rate()},
          {"shards", r.shards},
          {"threads", r.threads},
          {"concurrency", r.concurrency},
          {"latency_us", std::move(latency)},
          {"service_us", std::move(service_us)},
          {"core_cost_per_request_us", core_cost_us},
          {"per_shard", per_shard_json(s)},
          {"kv_cache_groups", groups_json(r)},
          {"load_imbalance", s.load_imbalance()},
          {"evictions", std::move(evictions)},
          {"alerts", alerts_json(r)},
          {"mrc", mrc_json(s)},
          {"memory", memory_json(r)},
          {"client_check",
           {{"admitted", r.clients.admitted},
            {"hit_tokens", r.clients.hit_tokens},
            {"prompt_tokens", r.clients.prompt_tokens},
            {"snapshot_admitted", g.total.fresh.requests},
            {"snapshot_hit_tokens", g.total.fresh.hit_tokens},
            {"snapshot_prompt_tokens", g.total.fresh.query_tokens},
            {"equal", clients_agree_with_snapshot(r)}}},
          {"snapshot", nlohmann::json::parse(to_json(s))}};
}

}  // namespace kvscope::cli
