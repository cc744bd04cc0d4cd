// Integration (ctest label "integration"): the serving_stack example as a
// real process, driven by the official OpenAI SDK for Node
// (openai_sdk_client.mjs: models, completions and chat, streamed and not, a
// shared prefix, a follow-up turn, tenancy, typed errors; every check an
// assertion there). Here: the client exits 0, and the prompt and cached
// tokens it was told add up to exactly what the example's /metrics counts.
//
// Needs node and the SDK in KVSCOPE_OPENAI_SDK_DIR/node_modules (default
// build/node; scripts/openai-sdk.sh installs both). Skips without them
// unless KVSCOPE_REQUIRE_INTEGRATION=1 (.ci/run sets it), which turns that
// into a failure.
// g++ 12 false positive in std::string concatenation at -O3 (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "prometheus_fixture.hpp"
#include "prometheus_parser.hpp"

namespace {

namespace fs = std::filesystem;
using kvscope::testing_util::http_request;
using kvscope::testing_util::PromParser;
using Json = nlohmann::json;

fs::path sdk_dir() {
  const char* configured = std::getenv("KVSCOPE_OPENAI_SDK_DIR");
  return configured != nullptr ? fs::path(configured) : fs::path(KVSCOPE_DEFAULT_OPENAI_SDK_DIR);
}

/// node on PATH, or "" when there is none.
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path != nullptr ? path : "/usr/bin:/usr/local/bin";
  while (!rest.empty()) {
    const std::size_t colon = rest.find(':');
    const fs::path candidate = fs::path(rest.substr(0, colon)) / "node";
    if (fs::exists(candidate)) return candidate.string();
    rest = colon == std::string_view::npos ? "" : rest.substr(colon + 1);
  }
  return "";
}

/// Sum over shards of a counter family in a /metrics page.
double metric_sum(const std::string& page, const std::string& family) {
  double sum = 0;
  for (const auto& sample : PromParser::find(PromParser::parse(page), family).samples)
    sum += sample.value;
  return sum;
}

TEST(OpenAiSdk, TheOfficialNodeClientDrivesTheExampleAndCachedTokensMatchMetrics) {
  const std::string node = find_node();
  const fs::path sdk = sdk_dir();
  if (node.empty() || !fs::exists(sdk / "node_modules/openai/package.json")) {
    if (kvscope::testing_util::required())
      FAIL() << "node or the OpenAI SDK missing in " << sdk << ": run scripts/openai-sdk.sh";
    GTEST_SKIP() << "node or the OpenAI SDK missing (scripts/openai-sdk.sh installs them)";
  }
  // The client imports 'openai', resolved from the node_modules beside it.
  const fs::path client = sdk / "openai_sdk_client.mjs";
  fs::copy_file(fs::path(KVSCOPE_TESTS_DIR) / "integration/openai_sdk_client.mjs", client,
                fs::copy_options::overwrite_existing);

  auto example = kvscope::testing_util::start_serving_stack({"--blocks", "2048"});
  const std::string base_url = "http://127.0.0.1:" + std::to_string(example.port) + "/v1";
  const auto [code, output] =
      kvscope::testing_util::run_tool({node, client.string(), base_url, "kvscope-example"}, "");
  ASSERT_EQ(code, 0) << output;
  const Json totals = Json::parse(output.substr(output.rfind('{')));
  const double prompt_tokens = totals.at("prompt_tokens").get<double>();
  const double cached_tokens = totals.at("cached_tokens").get<double>();
  EXPECT_GE(totals.at("requests").get<int>(), 7);
  EXPECT_GT(cached_tokens, 0);

  // The example snapshots every 100 ms: wait for one that holds every request.
  std::string page;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    page = http_request(example.port, "GET", "/metrics").body;
  } while (metric_sum(page, "kvscope_prefix_cache_queries_total") < prompt_tokens &&
           std::chrono::steady_clock::now() < give_up);
  EXPECT_EQ(metric_sum(page, "kvscope_prefix_cache_queries_total"), prompt_tokens);
  EXPECT_EQ(metric_sum(page, "kvscope_prefix_cache_hits_total"), cached_tokens);
  EXPECT_EQ(example.process->stop(SIGTERM), 0);
}

}  // namespace
