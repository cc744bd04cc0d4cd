// Integration (ctest label "integration"): the serving_stack example as a
// real process, scraped by a real Prometheus server (Debian's prometheus
// package) on loopback. The counters Prometheus stored must equal what the
// example told its clients, and promtool must accept the exposition, the
// documented scrape config and the documented rules.
//
// Skips when prometheus/promtool are not installed, unless
// KVSCOPE_REQUIRE_INTEGRATION=1 (.ci/run sets it), which turns that into a
// failure (prometheus_fixture.hpp).
// g++ 12 false positive in std::string concatenation at -O3 (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "prometheus_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using kvscope::testing_util::http_request;
using kvscope::testing_util::HttpReply;
using kvscope::testing_util::kPromtool;
using kvscope::testing_util::read_file;
using kvscope::testing_util::url_encode;
using Json = nlohmann::json;

/// The single value of an instant PromQL query, or nullopt (no result yet,
/// or Prometheus not answering).
std::optional<double> query(std::uint16_t port, std::string_view promql) {
  try {
    const HttpReply reply = http_request(port, "GET", "/api/v1/query?query=" + url_encode(promql));
    if (reply.status != 200) return std::nullopt;
    const Json body = Json::parse(reply.body);
    const Json& result = body.at("data").at("result");
    if (result.size() != 1) return std::nullopt;
    return std::stod(result[0].at("value").at(1).get<std::string>());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// Polls `promql` (every 200 ms, up to 60 s) until it yields `expected`;
/// returns the last value seen.
std::optional<double> await_value(std::uint16_t port, std::string_view promql, double expected) {
  std::optional<double> last;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    last = query(port, promql);
    if (last == expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return last;
}

/// A 4096-block pool: the 60 requests below never evict.
class PrometheusScrape : public kvscope::testing_util::PrometheusFixture {
 protected:
  std::uint16_t start_example() { return PrometheusFixture::start_example({"--blocks", "4096"}); }
};

TEST_F(PrometheusScrape, StoredCountersEqualWhatTheExampleReported) {
  const std::uint16_t example = start_example();
  const std::uint16_t prometheus = start_prometheus(example);

  // 60 requests: 3 tenants, a shared 64-token system prompt, distinct questions.
  std::uint64_t prompt_tokens = 0, cached_tokens = 0;
  constexpr int kRequests = 60;
  for (int i = 0; i < kRequests; ++i) {
    std::vector<std::uint32_t> tokens(64);
    for (std::uint32_t t = 0; t < 64; ++t) tokens[t] = 7 + t;
    for (int t = 0; t < 9 + i % 11; ++t)
      tokens.push_back(static_cast<std::uint32_t>(1000 + 50 * i + t));
    const Json body = {
        {"tokens", tokens}, {"tenant", "tenant-" + std::to_string(i % 3)}, {"max_tokens", 8}};
    const HttpReply reply = http_request(example, "POST", "/v1/generate", body.dump());
    ASSERT_EQ(reply.status, 200) << reply.body;
    const Json outcome = Json::parse(reply.body);
    prompt_tokens += outcome.at("prompt_tokens").get<std::uint64_t>();
    cached_tokens += outcome.at("cached_tokens").get<std::uint64_t>();
  }
  ASSERT_GT(cached_tokens, 0u);

  // Prometheus scrapes every second; the example snapshots every 100 ms.
  const auto hits = await_value(prometheus, "sum(kvscope_prefix_cache_hits_total)",
                                static_cast<double>(cached_tokens));
  const auto queries = await_value(prometheus, "sum(kvscope_prefix_cache_queries_total)",
                                   static_cast<double>(prompt_tokens));
  EXPECT_EQ(hits, static_cast<double>(cached_tokens)) << "Prometheus log:\n"
                                                      << read_file(dir_ / "prometheus.log");
  EXPECT_EQ(queries, static_cast<double>(prompt_tokens));
  EXPECT_EQ(query(prometheus, "up{job=\"kvscope\"}"), 1.0);
  EXPECT_GE(query(prometheus, "sum(serving_stack_http_responses_total{code=\"200\"})").value_or(0),
            static_cast<double>(kRequests));
  EXPECT_EQ(query(prometheus, "count(kvscope_prefix_cache_hits_total)"), 2.0);  // one per shard

  // The example's own view agrees.
  const Json snapshot = Json::parse(http_request(example, "GET", "/snapshot").body);
  EXPECT_EQ(snapshot.at("global").at("total").at("hits"), cached_tokens);

  // Graceful stop: exit 0, every generation accounted for.
  EXPECT_EQ(example_->stop(SIGTERM), 0);
  bool summary_seen = false;
  while (const auto line = example_->read_line(std::chrono::seconds(5)))
    summary_seen = summary_seen || line->find("stopped after 60 generations") != std::string::npos;
  EXPECT_TRUE(summary_seen);
}

TEST_F(PrometheusScrape, PromtoolAcceptsTheExpositionWithoutWarnings) {
  const std::uint16_t example = start_example();
  ASSERT_EQ(http_request(example, "POST", "/v1/generate",
                         R"({"prompt":"a b c d e f g h i j k l m n o p q r s","tenant":"x"})")
                .status,
            200);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a snapshot with the request
  const HttpReply metrics = http_request(example, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const auto [code, output] =
      kvscope::testing_util::run_tool({kPromtool, "check", "metrics"}, metrics.body);
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output, "") << "promtool printed warnings";
}

TEST_F(PrometheusScrape, DocumentedConfigAndRulesAreValid) {
  const fs::path docs = KVSCOPE_DOCS_DIR;
  const auto [config_code, config_output] =
      kvscope::testing_util::run_tool({kPromtool, "check", "config", "--syntax-only",
                                       (docs / "prometheus/prometheus.yml").string()},
                                      "");
  EXPECT_EQ(config_code, 0) << config_output;
  const auto [rules_code, rules_output] = kvscope::testing_util::run_tool(
      {kPromtool, "check", "rules", (docs / "prometheus/kvscope-rules.yml").string()}, "");
  EXPECT_EQ(rules_code, 0) << rules_output;
  EXPECT_NE(rules_output.find("SUCCESS"), std::string::npos) << rules_output;
}

}  // namespace
