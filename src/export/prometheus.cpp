#include "kvscope/export/prometheus.hpp"

#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace kvscope {
namespace {

bool valid_name(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

// Label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline only (format 0.0.4).
std::string escape(std::string_view text, bool quotes) {
  std::string out;
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::string sample_line(std::string_view name, const PrometheusLabels& labels, double value) {
  std::string line(name);
  if (!labels.empty()) {
    line += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) line += ',';
      line += fmt::format("{}=\"{}\"", labels[i].first, escape(labels[i].second, true));
    }
    line += '}';
  }
  return line + ' ' + format_value(value);
}

void check_labels(const PrometheusLabels& labels) {
  for (const auto& [name, value] : labels) {
    if (!valid_name(name, false) || name.starts_with("__")) {
      throw std::invalid_argument("kvscope: bad Prometheus label name \"" + name + "\"");
    }
  }
}

PrometheusLabels with(PrometheusLabels labels, std::string name, std::string value) {
  labels.emplace_back(std::move(name), std::move(value));
  return labels;
}

double as_double(std::uint64_t v) { return static_cast<double>(v); }

}  // namespace

// ---------------------------------------------------------------- writer

PrometheusWriter::Family& PrometheusWriter::family(std::string_view name, std::string_view help,
                                                   std::string_view type) {
  if (!valid_name(name, true)) {
    throw std::invalid_argument("kvscope: bad Prometheus metric name \"" + std::string(name) +
                                "\"");
  }
  if (type == "counter" && !name.ends_with("_total")) {
    throw std::invalid_argument("kvscope: Prometheus counter \"" + std::string(name) +
                                "\" must end in _total");
  }
  const auto it = families_.find(name);
  if (it != families_.end()) {
    if (it->second.type != type) {
      throw std::invalid_argument("kvscope: Prometheus family \"" + std::string(name) + "\" is a " +
                                  it->second.type + ", not a " + std::string(type));
    }
    return it->second;
  }
  order_.emplace_back(name);
  return families_.emplace(std::string(name), Family{std::string(help), std::string(type), {}})
      .first->second;
}

void PrometheusWriter::counter(std::string_view name, std::string_view help,
                               const PrometheusLabels& labels, double value) {
  check_labels(labels);
  family(name, help, "counter").samples.push_back(sample_line(name, labels, value));
}

void PrometheusWriter::gauge(std::string_view name, std::string_view help,
                             const PrometheusLabels& labels, double value) {
  check_labels(labels);
  family(name, help, "gauge").samples.push_back(sample_line(name, labels, value));
}

void PrometheusWriter::histogram(std::string_view name, std::string_view help,
                                 const PrometheusLabels& labels, const Histogram& h,
                                 std::span<const double> bounds, double scale) {
  check_labels(labels);
  Family& f = family(name, help, "histogram");
  const std::string base(name);
  for (const double bound : bounds) {
    // The largest recorded value that still counts as <= bound.
    const double raw = std::floor(bound / scale);
    const auto limit = raw >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(raw);
    f.samples.push_back(sample_line(base + "_bucket", with(labels, "le", format_value(bound)),
                                    as_double(h.count_at_or_below(limit))));
  }
  f.samples.push_back(
      sample_line(base + "_bucket", with(labels, "le", "+Inf"), as_double(h.count())));
  f.samples.push_back(sample_line(base + "_sum", labels, h.sum_as_double() * scale));
  f.samples.push_back(sample_line(base + "_count", labels, as_double(h.count())));
}

std::string PrometheusWriter::text() const {
  std::string out;
  for (const std::string& name : order_) {
    const Family& f = families_.find(name)->second;
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape(f.help, false), name, f.type);
    for (const std::string& sample : f.samples) out += sample + '\n';
  }
  return out;
}

// ---------------------------------------------------------------- shard snapshot

namespace {

void write_query_counts(PrometheusWriter& out, const std::string& prefix, const QueryCounts& c,
                        const PrometheusLabels& labels, std::string_view who) {
  out.counter(prefix + "requests_total", fmt::format("Requests admitted ({})", who), labels,
              as_double(c.requests));
  out.counter(prefix + "queries_total",
              fmt::format("Prompt tokens looked up by admitted requests ({})", who), labels,
              as_double(c.query_tokens));
  out.counter(prefix + "hits_total", fmt::format("Prompt tokens served from cache ({})", who),
              labels, as_double(c.hit_tokens));
  out.counter(prefix + "query_blocks_total",
              fmt::format("Prompt blocks looked up, the partial last one included ({})", who),
              labels, as_double(c.query_blocks));
  out.counter(prefix + "hit_blocks_total", fmt::format("Prompt blocks served from cache ({})", who),
              labels, as_double(c.hit_blocks));
}

void write_labelled(PrometheusWriter& out, const std::string& label,
                    const std::map<std::string, LabelledCounts>& by_label,
                    const PrometheusLabels& labels) {
  const std::string prefix = "kvscope_prefix_cache_" + label + "_";
  for (const auto& [value, counts] : by_label) {
    const PrometheusLabels l = with(labels, label, value);
    out.counter(prefix + "queries_total", "Prompt tokens of fresh admissions, by " + label, l,
                as_double(counts.fresh.query_tokens));
    out.counter(prefix + "hits_total",
                "Prompt tokens served from cache, fresh admissions, by " + label, l,
                as_double(counts.fresh.hit_tokens));
  }
}

void write_residency(PrometheusWriter& out, const ResidencySnapshot& r,
                     const PrometheusLabels& labels, const MetricsConfig& config) {
  const auto& bounds = config.residency_bounds_seconds;
  out.histogram("kvscope_kv_block_lifetime_seconds",
                "Sampled blocks: time from allocation to eviction", labels, r.lifetime, bounds,
                1e-9);
  out.histogram("kvscope_kv_block_idle_before_evict_seconds",
                "Sampled blocks: time from the last access (or allocation) to eviction", labels,
                r.idle, bounds, 1e-9);
  out.histogram("kvscope_kv_block_idle_since_free_seconds",
                "Sampled blocks: time from the last release to the pool to eviction", labels,
                r.idle_since_free, bounds, 1e-9);
  out.histogram("kvscope_kv_block_reuse_gap_seconds",
                "Sampled blocks: time between consecutive prefix hits (last 4 hits)", labels,
                r.reuse_gap, bounds, 1e-9);
  const std::pair<const char*, std::uint64_t> samples[] = {{"lifetime", r.evicted_blocks},
                                                           {"idle_before_evict", r.evicted_blocks},
                                                           {"idle_since_free", r.evicted_blocks},
                                                           {"reuse_gap", r.reuse_gap_samples}};
  for (const auto& [histogram, count] : samples) {
    out.counter("kvscope_kv_block_residency_samples_total",
                "Observations behind each residency histogram (the histograms add each "
                "sample's weight, 1 / its sample rate, and estimate all blocks)",
                with(labels, "histogram", histogram), as_double(count));
  }
  out.counter("kvscope_kv_block_sampled_total", "Block allocations followed by residency sampling",
              labels, as_double(r.sampled_blocks));
  out.counter("kvscope_kv_block_sampled_evictions_total", "Sampled blocks evicted", labels,
              as_double(r.evicted_blocks));
  out.counter("kvscope_kv_block_never_reused_total",
              "Evicted blocks without a single prefix hit (estimated from the samples)", labels,
              as_double(r.never_reused));
  out.counter("kvscope_prefix_cache_refault_checks_total",
              "Admissions that missed, checked against the ghost table of sampled evictions",
              labels, as_double(r.misses_checked));
  out.counter("kvscope_prefix_cache_refaults_within_capacity_total",
              "Misses on a hash evicted within one pool size of evictions (estimated from the "
              "sampled evictions)",
              labels, as_double(r.refaults_within_capacity));
  out.gauge("kvscope_kv_block_sample_ratio",
            "Share of block allocations sampled for residency now (steered to a target of "
            "watched blocks per second)",
            labels, r.sample_rate);
  out.gauge("kvscope_kv_block_effective_sample_ratio",
            "Share of block allocations sampled for residency since start", labels,
            r.effective_sample_rate());
}

}  // namespace

namespace {

// KV cache groups (hybrid layouts only): a `group` label (the index) and the
// group's `kind`, beside the unlabelled totals.
void write_groups(PrometheusWriter& out, const std::vector<KvCacheGroupSnapshot>& groups,
                  const PrometheusLabels& labels) {
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const KvCacheGroupStats& st = groups[g].stats;
    const PrometheusLabels l = with(with(labels, "group", std::to_string(g)), "kind",
                                    std::string(to_string(groups[g].config.kind)));
    out.gauge("kvscope_kv_cache_group_blocks", "Pool blocks of a KV cache group",
              with(l, "state", "used"), as_double(st.used_blocks));
    out.gauge("kvscope_kv_cache_group_blocks", "Pool blocks of a KV cache group",
              with(l, "state", "cached"), as_double(st.cached_blocks));
    out.counter("kvscope_kv_cache_group_query_blocks_total",
                "Blocks of a KV cache group that admissions asked for", l,
                as_double(st.query_blocks));
    out.counter("kvscope_kv_cache_group_hit_blocks_total", "Of those, blocks served from the cache",
                l, as_double(st.hit_blocks));
    out.counter("kvscope_kv_cache_group_placeholder_blocks_total",
                "Of those, blocks needing no KV (before a sliding window)", l,
                as_double(st.placeholder_blocks));
    out.counter("kvscope_kv_cache_group_evictions_total",
                "Cached blocks of a KV cache group reclaimed for new blocks", l,
                as_double(st.evictions));
  }
}

}  // namespace

void write_prometheus(PrometheusWriter& out, const ShardSnapshot& s, const PrometheusLabels& labels,
                      const MetricsConfig& config) {
  write_query_counts(out, "kvscope_prefix_cache_", s.total.fresh, labels, "not preempted");
  write_query_counts(out, "kvscope_prefix_cache_preempted_", s.total.preempted, labels,
                     "looked up again after preemption");
  out.counter("kvscope_prefix_cache_probes_total", "lookup() probes without admission", labels,
              as_double(s.total.probes.requests));
  out.counter("kvscope_prefix_cache_allocation_failures_total",
              "Allocations refused for lack of free blocks", labels,
              as_double(s.total.allocation_failures));
  out.counter("kvscope_prefix_cache_verification_failures_total",
              "Resident hashes refused because the block's content fingerprint differed "
              "(collisions caught; verify_tokens only)",
              labels, as_double(s.total.verification_failures));
  const EvictionCounts evictions = s.evictions();
  for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
    out.counter("kvscope_prefix_cache_evictions_total", "Cached blocks un-hashed, by reason",
                with(labels, "reason", std::string(to_string(static_cast<EvictionReason>(r)))),
                as_double(evictions.blocks[r]));
  }
  out.counter("kvscope_prefix_cache_too_short_requests_total",
              "Fresh admissions shorter than one block (they can never hit)", labels,
              as_double(s.prefixes.stop_count(LookupStop::too_short)));
  out.gauge("kvscope_kv_cache_usage_ratio",
            "Blocks in use / blocks; cached-but-free blocks count as free", labels, s.usage());
  out.gauge("kvscope_kv_cache_blocks", "Pool blocks", with(labels, "state", "total"),
            as_double(s.num_blocks));
  out.gauge("kvscope_kv_cache_blocks", "Pool blocks", with(labels, "state", "used"),
            as_double(s.used_blocks));
  out.gauge("kvscope_kv_cache_blocks", "Pool blocks", with(labels, "state", "cached"),
            as_double(s.cached_blocks));
  out.gauge("kvscope_prefix_cache_sharing_factor", "Block references per block in use", labels,
            s.sharing_factor());
  out.gauge("kvscope_prefix_cache_live_requests", "Requests holding blocks", labels,
            as_double(s.live_requests));
  out.gauge("kvscope_metrics_memory_bytes", "Bytes of metric state", labels,
            as_double(s.metrics_memory_bytes));
  write_labelled(out, "tenant", s.prefixes.tenants, labels);
  write_labelled(out, "adapter", s.prefixes.adapters, labels);
  if (s.residency) write_residency(out, *s.residency, labels, config);
  write_groups(out, s.groups, labels);
}

void write_prometheus(PrometheusWriter& out, const MultiLevelSnapshot& s,
                      const PrometheusLabels& labels, const MetricsConfig& config) {
  out.counter("kvscope_cache_requests_total", "Requests counted across cache levels", labels,
              as_double(s.total.requests));
  out.counter("kvscope_cache_requests_served_total", "Requests served by some cache level", labels,
              as_double(s.total.served));
  for (const CachingSnapshot& level : s.levels) {
    const PrometheusLabels l = with(labels, "level", std::string(level.type.name()));
    out.counter("kvscope_cache_hits_total", "Items served from the level", l,
                as_double(level.total.hits));
    out.counter("kvscope_cache_misses_total", "Items looked up and not found", l,
                as_double(level.total.misses));
    out.counter("kvscope_cache_hit_bytes_total", "Bytes served from the level", l,
                as_double(level.total.hit_bytes));
    out.counter("kvscope_cache_miss_bytes_total", "Bytes looked up and not found", l,
                as_double(level.total.miss_bytes));
    out.counter("kvscope_cache_write_bytes_total", "Bytes written into the level", l,
                as_double(level.total.write_bytes));
    for (std::size_t r = 0; r < kEvictionReasonCount; ++r) {
      const auto reason = std::string(to_string(static_cast<EvictionReason>(r)));
      out.counter("kvscope_cache_evictions_total", "Blocks evicted from the level, by reason",
                  with(l, "reason", reason), as_double(level.total.evictions.blocks[r]));
    }
    out.gauge("kvscope_cache_resident_bytes", "Bytes held by the level", l,
              as_double(level.resident_bytes));
    out.gauge("kvscope_cache_capacity_bytes", "Bytes the level may hold (0: unknown)", l,
              as_double(level.capacity_bytes));
    out.histogram("kvscope_cache_lookup_latency_seconds", "Lookup latency", l, level.latency,
                  config.latency_bounds_seconds, 1e-9);
  }
}

std::string to_prometheus(std::span<const ShardSnapshot> shards, const MetricsConfig& config) {
  PrometheusWriter out;
  for (std::size_t i = 0; i < shards.size(); ++i) {
    write_prometheus(out, shards[i], {{"shard", std::to_string(i)}}, config);
  }
  return out.text();
}

}  // namespace kvscope
