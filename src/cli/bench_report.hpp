// The report of `kvscope bench`: a human text report and the JSON document
// of --json, both built from one LoadResult. Pure functions of their input.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "load_driver.hpp"

namespace kvscope::cli {

/// Throughput, latency percentiles, hit ratios (since start, time window,
/// last-N window), per-shard balance, evictions by reason, residency,
/// alerts, the miss-ratio curve and capacity advice, the diagnosis.
/// Precondition: result.final_snapshot is set.
std::string bench_report_text(const LoadResult& result);

/// The clients' own counts of admissions and tokens equal the final
/// snapshot's: no operation was lost or counted twice.
/// Precondition: result.final_snapshot is set.
bool clients_agree_with_snapshot(const LoadResult& result);

/// {"requests", "errors", "errors_by_status", "requests_per_second",
///  "seconds", "hit_ratio_tokens", "hit_ratio_blocks", "window_hit_ratio_tokens",
///  "window_hit_ratio_blocks", "shards", "threads", "concurrency",
///  "latency_us": {"p50", "p90", "p99", "p999", "max", "by_op": {...}},
///  "per_shard": [...], "load_imbalance", "evictions", "alerts": {"raised",
///  "resolved", "events": [...]}, "mrc" (with "advice"; null when the curve
///  is off), "memory" (resident-memory samples and growth after warm-up),
///  "client_check", "snapshot"}.
/// Precondition: result.final_snapshot is set.
nlohmann::json bench_report_json(const LoadResult& result);

}  // namespace kvscope::cli
