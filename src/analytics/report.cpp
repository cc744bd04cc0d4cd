#include "kvscope/analytics/report.hpp"

#include <fmt/core.h>

namespace kvscope {

namespace {}  // namespace

std::string PerformanceDiagnosis::to_text() const {
  std::string out = fmt::format(
      "token hit rate: {:.1f}% overall, {:.1f}% recent (time window), {:.1f}% over the last "
      "requests\n"
      "memory: {:.1f}% of blocks in use, {:.1f}% hold cached KV, {:.2f} references per used "
      "block\n",
      100 * overall_hit_rate, 100 * recent_hit_rate, 100 * request_window_hit_rate, 100 * usage,
      100 * cached_share, sharing_factor);
  auto breakdown = [&](const char* what, const std::vector<NamedHitRate>& rates) {
    if (rates.empty()) return;
    out += fmt::format("by {}:", what);
    for (std::size_t i = 0; i < rates.size(); ++i) {
      const NamedHitRate& r = rates[i];
      out += fmt::format("{} {} {:.1f}% ({} requests)", i == 0 ? "" : ";", r.name, 100 * r.hit_rate,
                         r.requests);
    }
    out += '\n';
  };
  breakdown("tenant", by_tenant);
  breakdown("adapter", by_adapter);
  breakdown("level", by_level);
  if (recommended_blocks)
    out += fmt::format("recommended capacity: {} blocks\n", *recommended_blocks);
  if (issues.empty()) out += "no issues found\n";
  for (const DiagnosisIssue& i : issues) out += fmt::format("[{}] {}\n", i.severity, i.message);
  return out;
}

}  // namespace kvscope
