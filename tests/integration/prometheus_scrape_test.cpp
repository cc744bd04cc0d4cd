// Integration (ctest label "integration"): the serving_stack example as a
// real process, scraped by a real Prometheus server (Debian's prometheus
// package) on loopback. The counters Prometheus stored must equal what the
// example told its clients, and promtool must accept the exposition, the
// documented scrape config and the documented rules.
//
// Skips when prometheus/promtool are not installed, unless
// KVSCOPE_REQUIRE_INTEGRATION=1 (.ci/run sets it), which turns that into a
// failure.
// g++ 12 false positive in std::string concatenation at -O3 (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "child_process.hpp"
#include "http_client.hpp"

namespace {

namespace fs = std::filesystem;
using kvscope::testing_util::ChildProcess;
using kvscope::testing_util::http_request;
using kvscope::testing_util::HttpReply;
using Json = nlohmann::json;

constexpr const char* kPrometheus = "/usr/bin/prometheus";
constexpr const char* kPromtool = "/usr/bin/promtool";

bool tools_present() { return fs::exists(kPrometheus) && fs::exists(kPromtool); }

bool required() {
  const char* value = std::getenv("KVSCOPE_REQUIRE_INTEGRATION");
  return value != nullptr && std::string(value) == "1";
}

/// A loopback port nobody listens on right now.
std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

/// Percent-encodes a PromQL expression for a query string.
std::string url_encode(std::string_view text) {
  std::string out;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

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

fs::path make_temp_dir() {
  std::string pattern = (fs::temp_directory_path() / "kvscope-prom-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class PrometheusScrape : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!tools_present()) {
      if (required()) FAIL() << "prometheus/promtool missing: apt-get install prometheus";
      GTEST_SKIP() << "prometheus not installed (apt-get install prometheus)";
    }
    dir_ = make_temp_dir();
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty() && !HasFailure()) fs::remove_all(dir_, ignored);
  }

  /// Starts serving_stack on a free port; returns the port it printed.
  std::uint16_t start_example() {
    example_ = std::make_unique<ChildProcess>(std::vector<std::string>{
        KVSCOPE_SERVING_STACK, "--port", "0", "--shards", "2", "--blocks", "4096", "--snapshot-ms",
        "100", "--prefill-us-per-token", "0", "--decode-us-per-token", "0"});
    const auto line = example_->read_line(std::chrono::seconds(30));
    if (!line) throw std::runtime_error("serving_stack printed nothing");
    std::smatch match;
    if (!std::regex_search(*line, match, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))")))
      throw std::runtime_error("unexpected first line: " + *line);
    return static_cast<std::uint16_t>(std::stoi(match[1]));
  }

  /// Starts Prometheus scraping 127.0.0.1:target every second; returns its port.
  std::uint16_t start_prometheus(std::uint16_t target) {
    const fs::path config = dir_ / "prometheus.yml";
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          << "scrape_configs:\n  - job_name: kvscope\n    static_configs:\n"
                          << "      - targets: ['127.0.0.1:" << target << "']\n";
    const std::uint16_t port = free_port();
    prometheus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kPrometheus, "--config.file=" + config.string(),
                                 "--storage.tsdb.path=" + (dir_ / "data").string(),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                 "--log.level=warn"},
        (dir_ / "prometheus.log").string());
    return port;
  }

  fs::path dir_;
  std::unique_ptr<ChildProcess> example_;
  std::unique_ptr<ChildProcess> prometheus_;
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
