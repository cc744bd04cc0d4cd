// kvscope/export/prometheus.hpp - Prometheus text exposition format 0.0.4,
// the export floor: reads the snapshot types below it, writes text.
//
// PrometheusWriter collects samples family by family and prints each family
// once - HELP and TYPE lines, then all its samples together, as the format
// requires - so callers may add samples of several shards in any order.
// Names are kvscope_..., in base units (seconds, bytes), counters end in
// _total, histograms get cumulative _bucket{le=...} lines, _sum and _count.
// docs/metrics.md lists every family kvscope exports.
//
// Not thread-safe; build the text from snapshots (plain values) on any thread.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvscope/metrics/histogram.hpp"
#include "kvscope/metrics/multi_level_metrics.hpp"
#include "kvscope/metrics/shard_metrics.hpp"
#include "kvscope/runtime/snapshot.hpp"

namespace kvscope {

using PrometheusLabels = std::vector<std::pair<std::string, std::string>>;

class PrometheusWriter {
 public:
  /// `name` must match [a-zA-Z_:][a-zA-Z0-9_:]* and end in "_total" for a
  /// counter; label names must match [a-zA-Z_][a-zA-Z0-9_]*. A family's help
  /// and type are fixed by its first sample. Throws std::invalid_argument on
  /// a bad name or a type conflict (nothing is added then).
  void counter(std::string_view name, std::string_view help, const PrometheusLabels& labels,
               double value);
  void gauge(std::string_view name, std::string_view help, const PrometheusLabels& labels,
             double value);
  /// Exports `h` with cumulative buckets at `bounds` (exported unit) plus
  /// +Inf; `scale` converts recorded values to the exported unit (1e-9 for
  /// nanoseconds to seconds). Bucket counts have the histogram's bucket
  /// resolution (<= 2^-precision_bits relative).
  void histogram(std::string_view name, std::string_view help, const PrometheusLabels& labels,
                 const Histogram& h, std::span<const double> bounds, double scale);

  /// The exposition text, families in the order they were first added.
  std::string text() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::vector<std::string> samples;
  };
  Family& family(std::string_view name, std::string_view help, std::string_view type);

  std::vector<std::string> order_;
  std::map<std::string, Family, std::less<>> families_;
};

/// Writes one shard's snapshot; `labels` (e.g. {{"shard", "0"}}) go on every sample.
void write_prometheus(PrometheusWriter& out, const ShardSnapshot& snapshot,
                      const PrometheusLabels& labels, const MetricsConfig& config = {});
/// Writes a multi-level snapshot with a `level` label per cache level.
void write_prometheus(PrometheusWriter& out, const MultiLevelSnapshot& snapshot,
                      const PrometheusLabels& labels, const MetricsConfig& config = {});
/// Every shard with its label shard="i" (i = position), as exposition text.
std::string to_prometheus(std::span<const ShardSnapshot> shards, const MetricsConfig& config = {});
/// A runtime snapshot: every shard's families with shard="i", the levels,
/// kvscope_runtime_* and kvscope_analytics_* families (docs/metrics.md).
/// `config` gives the histogram bounds (use the runtime's metrics config).
std::string to_prometheus(const RuntimeSnapshot& snapshot, const MetricsConfig& config = {});

}  // namespace kvscope
