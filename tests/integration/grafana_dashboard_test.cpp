// Integration (ctest label "integration"): the Grafana dashboard
// docs/grafana/kvscope.json.
//
// Structure (no Prometheus needed): the datasource and instance variables,
// every panel on ${datasource}, unique ids, a description and unit on each
// panel, rate windows of $__rate_interval, every kvscope series filtered by
// $instance, and at least one panel per topic the dashboard promises.
//
// Queries: every panel's PromQL, with Grafana's variables substituted, is run
// against a real Prometheus that scraped the serving_stack example under a
// scripted load (four tenants, shared system prompts, three-turn
// conversations that overflow a 256-block pool, KV events on, a full +
// sliding-window hybrid layout so the KV cache group panels have series).
// Each must parse and return at least one number.
//
// The query test skips without prometheus/promtool unless
// KVSCOPE_REQUIRE_INTEGRATION=1 (prometheus_fixture.hpp).
// g++ 12 false positive in std::string concatenation at -O3 (GCC bug 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "prometheus_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using kvscope::testing_util::http_request;
using kvscope::testing_util::HttpReply;
using kvscope::testing_util::url_encode;
using Json = nlohmann::json;

Json load_dashboard() {
  const fs::path path = fs::path(KVSCOPE_DOCS_DIR) / "grafana/kvscope.json";
  if (!fs::exists(path)) throw std::runtime_error("missing " + path.string());
  return Json::parse(kvscope::testing_util::read_file(path));
}

/// Every panel, depth first: rows, then the panels a collapsed row holds.
std::vector<Json> all_panels(const Json& dashboard) {
  std::vector<Json> out;
  std::function<void(const Json&)> walk = [&](const Json& panels) {
    for (const Json& panel : panels) {
      out.push_back(panel);
      if (panel.contains("panels")) walk(panel.at("panels"));
    }
  };
  walk(dashboard.at("panels"));
  return out;
}

bool is_row(const Json& panel) { return panel.at("type") == "row"; }

struct PanelQuery {
  std::string panel;  // the panel's title, for failure messages
  std::string ref_id;
  std::string expr;  // as written in the dashboard
};

std::vector<PanelQuery> all_queries(const Json& dashboard) {
  std::vector<PanelQuery> out;
  for (const Json& panel : all_panels(dashboard))
    for (const Json& target : panel.value("targets", Json::array()))
      out.push_back({panel.at("title").get<std::string>(), target.at("refId").get<std::string>(),
                     target.at("expr").get<std::string>()});
  return out;
}

std::string describe(const PanelQuery& q) {
  return "panel \"" + q.panel + "\" query " + q.ref_id + ":\n" + q.expr;
}

const Json* find_variable(const Json& dashboard, std::string_view name) {
  for (const Json& variable : dashboard.at("templating").at("list"))
    if (variable.at("name") == name) return &variable;
  return nullptr;
}

/// A variable query's text: a plain string, or Grafana 10's {"query": ...}.
std::string variable_query(const Json& variable) {
  const Json& query = variable.at("query");
  return query.is_string() ? query.get<std::string>() : query.at("query").get<std::string>();
}

/// `expr` as Grafana would send it with every option selected: rate windows
/// of 30 s (the whole load fits in one), each all-selectable variable as its
/// allValue. Anything else ($datasource, a variable without an allValue)
/// stays, and the caller's check for a leftover '$' catches it.
std::string substitute(std::string expr, const Json& dashboard) {
  std::vector<std::pair<std::string, std::string>> values{
      {"__rate_interval", "30s"}, {"__interval", "5s"}, {"__range", "1m"}};
  for (const Json& variable : dashboard.at("templating").at("list"))
    if (variable.value("includeAll", false) && variable.contains("allValue"))
      values.emplace_back(variable.at("name").get<std::string>(),
                          variable.at("allValue").get<std::string>());
  for (const auto& [name, value] : values) {
    const std::regex reference("\\$\\{" + name + "\\}|\\$" + name + "\\b");
    std::string literal;  // '$' is special in a replacement: "$$" is one '$'
    for (const char c : value) literal += c == '$' ? std::string("$$") : std::string(1, c);
    expr = std::regex_replace(expr, reference, literal);
  }
  return expr;
}

// ---------------------------------------------------------------- structure

TEST(GrafanaDashboard, TheDatasourceVariableExistsAndEveryPanelUsesIt) {
  const Json dashboard = load_dashboard();
  const Json* datasource = find_variable(dashboard, "datasource");
  ASSERT_NE(datasource, nullptr) << "no template variable named datasource";
  EXPECT_EQ(datasource->at("type"), "datasource");
  EXPECT_EQ(datasource->at("query"), "prometheus");

  const Json expected = {{"type", "prometheus"}, {"uid", "${datasource}"}};
  std::size_t queried = 0;
  for (const Json& panel : all_panels(dashboard)) {
    if (is_row(panel)) continue;  // rows group panels and run no query
    ++queried;
    EXPECT_EQ(panel.value("datasource", Json()), expected) << panel.at("title");
    ASSERT_FALSE(panel.value("targets", Json::array()).empty()) << panel.at("title");
    for (const Json& target : panel.at("targets"))
      EXPECT_EQ(target.value("datasource", expected), expected)
          << panel.at("title") << " " << target.at("refId");
  }
  EXPECT_GE(queried, 20u);
}

TEST(GrafanaDashboard, TheInstanceVariableSelectsAnyNumberOfInstances) {
  const Json dashboard = load_dashboard();
  const Json* instance = find_variable(dashboard, "instance");
  ASSERT_NE(instance, nullptr);
  EXPECT_EQ(instance->at("type"), "query");
  EXPECT_EQ(variable_query(*instance),
            "label_values(kvscope_prefix_cache_queries_total, instance)");
  EXPECT_EQ(instance->at("multi"), true);
  EXPECT_EQ(instance->at("includeAll"), true);
  EXPECT_EQ(instance->at("allValue"), ".*");
  EXPECT_EQ(instance->at("datasource").at("uid"), "${datasource}");
}

TEST(GrafanaDashboard, PanelIdsAreUniqueAndEveryPanelSaysWhatItShows) {
  const Json dashboard = load_dashboard();
  std::set<int> ids;
  for (const Json& panel : all_panels(dashboard)) {
    const int id = panel.at("id");
    EXPECT_TRUE(ids.insert(id).second) << "id " << id << " twice (" << panel.at("title") << ")";
    EXPECT_FALSE(panel.value("title", "").empty()) << "panel " << id;
    if (is_row(panel)) continue;
    EXPECT_GE(panel.value("description", "").size(), 40u) << panel.at("title");
    EXPECT_FALSE(panel.at("fieldConfig").at("defaults").value("unit", "").empty())
        << panel.at("title");
  }
}

TEST(GrafanaDashboard, QueriesUseTheRateIntervalAndTheInstanceFilter) {
  const Json dashboard = load_dashboard();
  const std::regex range(R"(\[([^\]]*)\])");
  const std::regex selector(R"((kvscope_[a-z_]+)(\{[^}]*\})?)");
  for (const PanelQuery& q : all_queries(dashboard)) {
    for (std::sregex_iterator m(q.expr.begin(), q.expr.end(), range), end; m != end; ++m)
      EXPECT_EQ((*m)[1].str(), "$__rate_interval") << describe(q);
    for (std::sregex_iterator m(q.expr.begin(), q.expr.end(), selector), end; m != end; ++m)
      EXPECT_TRUE((*m)[2].str().find(R"(instance=~"$instance")") != std::string::npos)
          << (*m)[1].str() << " without the instance filter in " << describe(q);
    // Ratios are divided sums; an average of per-shard ratios is wrong.
    EXPECT_EQ(q.expr.find("avg"), std::string::npos) << describe(q);
  }
}

TEST(GrafanaDashboard, EveryTopicHasAPanel) {
  using Test = std::function<bool(const std::string&)>;
  auto has = [](std::initializer_list<std::string_view> parts) -> Test {
    std::vector<std::string> all(parts.begin(), parts.end());
    return [all](const std::string& expr) {
      for (const auto& part : all)
        if (expr.find(part) == std::string::npos) return false;
      return true;
    };
  };
  const std::vector<std::pair<std::string, Test>> topics{
      {"token hit ratio", has({"rate(kvscope_prefix_cache_hits_total", "/",
                               "rate(kvscope_prefix_cache_queries_total"})},
      {"block hit ratio", has({"rate(kvscope_prefix_cache_hit_blocks_total", "/",
                               "rate(kvscope_prefix_cache_query_blocks_total"})},
      {"hit ratio per tenant", has({"by (tenant)", "kvscope_prefix_cache_tenant_hits_total", "/",
                                    "kvscope_prefix_cache_tenant_queries_total"})},
      {"query token rate",
       [](const std::string& e) {
         return e.find("rate(kvscope_prefix_cache_queries_total") != std::string::npos &&
                e.find('/') == std::string::npos;
       }},
      {"hit token rate",
       [](const std::string& e) {
         return e.find("rate(kvscope_prefix_cache_hits_total") != std::string::npos &&
                e.find('/') == std::string::npos;
       }},
      {"KV cache usage ratio", has({"kvscope_kv_cache_usage_ratio"})},
      {"cached blocks", has({"kvscope_kv_cache_blocks", "state"})},
      {"evictions by reason", has({"by (reason)", "rate(kvscope_prefix_cache_evictions_total"})},
      {"lifetime quantiles",
       has({"histogram_quantile", "kvscope_kv_block_lifetime_seconds_bucket"})},
      {"idle-before-evict quantiles",
       has({"histogram_quantile", "kvscope_kv_block_idle_before_evict_seconds_bucket"})},
      {"reuse gap quantiles",
       has({"histogram_quantile", "kvscope_kv_block_reuse_gap_seconds_bucket"})},
      {"miss-ratio curve", has({"kvscope_analytics_mrc_token_hit_ratio", "capacity_multiple"})},
      {"recommended capacity", has({"kvscope_analytics_recommended_blocks"})},
      {"knee", has({"kvscope_analytics_knee_blocks"})},
      {"expected hit ratio", has({"kvscope_analytics_expected_hit_ratio"})},
      {"alerts firing", has({"kvscope_runtime_alerts"})},
      {"shard load share", has({"kvscope_runtime_shard_load_share"})},
      {"load imbalance", has({"kvscope_runtime_load_imbalance"})},
      {"operation latency",
       has({"histogram_quantile", "kvscope_runtime_operation_service_seconds_bucket"})},
      {"KV events published", has({"rate(kvscope_kv_events_total"})},
      {"KV event batches", has({"rate(kvscope_kv_events_batches_total"})},
      {"KV event batches dropped", has({"rate(kvscope_kv_events_batches_dropped_total"})},
      {"KV cache groups", has({"kvscope_kv_cache_group_blocks"})},
  };
  const std::vector<PanelQuery> queries = all_queries(load_dashboard());
  for (const auto& [topic, matches] : topics) {
    const bool covered = std::any_of(queries.begin(), queries.end(),
                                     [&](const PanelQuery& q) { return matches(q.expr); });
    EXPECT_TRUE(covered) << "no panel for " << topic;
  }
}

// ---------------------------------------------------------------- queries

/// What Prometheus answered to an instant query.
struct Answer {
  int http_status = 0;
  std::string status;       // "success", "error", or "" when the reply was not JSON
  Json body;                // discarded when the reply was not JSON
  std::size_t series = 0;   // results (a scalar counts as one)
  std::size_t numbers = 0;  // results that are not NaN
};

Answer ask(std::uint16_t port, const std::string& promql) {
  Answer answer;
  const HttpReply reply = http_request(port, "GET", "/api/v1/query?query=" + url_encode(promql));
  answer.http_status = reply.status;
  answer.body = Json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (!answer.body.is_object()) return answer;
  answer.status = answer.body.value("status", "");
  if (answer.status != "success") return answer;
  const Json& data = answer.body.at("data");
  std::vector<std::string> values;
  if (data.at("resultType") == "scalar") {
    values.push_back(data.at("result").at(1).get<std::string>());
  } else {
    for (const Json& series : data.at("result"))
      values.push_back(series.at("value").at(1).get<std::string>());
  }
  answer.series = values.size();
  for (const std::string& v : values) answer.numbers += std::isnan(std::stod(v)) ? 0 : 1;
  return answer;
}

/// The first value of `promql`, nullopt while there is none (or Prometheus
/// is not answering yet).
std::optional<double> value_of(std::uint16_t port, const std::string& promql) {
  try {
    const Answer answer = ask(port, promql);
    if (answer.series == 0) return std::nullopt;
    const Json& data = answer.body.at("data");
    const Json& value =
        data.at("resultType") == "scalar" ? data.at("result") : data.at("result")[0].at("value");
    return std::stod(value.at(1).get<std::string>());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

/// Polls `promql` every 100 ms (up to 20 s) until `done` accepts its value.
std::optional<double> await(std::uint16_t port, const std::string& promql,
                            const std::function<bool(double)>& done) {
  std::optional<double> last;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < give_up) {
    last = value_of(port, promql);
    if (last && done(*last)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return last;
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class GrafanaDashboardQueries : public kvscope::testing_util::PrometheusFixture {
 protected:
  static constexpr int kTenants = 4;
  static constexpr int kConversationsPerWave = 8;
  static constexpr int kTurns = 3;

  /// One wave: kConversationsPerWave conversations, their turns interleaved.
  /// A conversation opens with its tenant's 64-token system prompt (4 blocks,
  /// hit by every later conversation of the tenant) and each turn adds 40
  /// new tokens to the previous prompt, so turns 2 and 3 hit the earlier
  /// turns' blocks: those blocks are hit twice before later waves evict
  /// them, which is what the reuse-gap histogram records.
  void send_wave(std::uint16_t example, int wave) {
    std::vector<std::vector<std::uint32_t>> prompts(kConversationsPerWave);
    for (int turn = 0; turn < kTurns; ++turn) {
      for (int k = 0; k < kConversationsPerWave; ++k) {
        const int conversation = wave * kConversationsPerWave + k;
        const int tenant = conversation % kTenants;
        auto& prompt = prompts[static_cast<std::size_t>(k)];
        if (prompt.empty())
          for (std::uint32_t t = 0; t < 64; ++t) prompt.push_back(7 + 100 * tenant + t);
        const auto turn_tokens =
            static_cast<std::uint32_t>(100'000 + 1'000 * conversation + 100 * turn);
        for (std::uint32_t t = 0; t < 40; ++t) prompt.push_back(turn_tokens + t);
        const Json body = {
            {"tokens", prompt}, {"tenant", "tenant-" + std::to_string(tenant)}, {"max_tokens", 8}};
        const HttpReply reply = http_request(example, "POST", "/v1/generate", body.dump());
        ASSERT_EQ(reply.status, 200) << reply.body;
        cached_tokens_ += Json::parse(reply.body).at("cached_tokens").get<std::uint64_t>();
        ++requests_;
      }
    }
  }

  /// Waits until Prometheus has scraped the example at or after `unix_time`.
  void await_scrape_after(std::uint16_t prometheus, double unix_time) {
    const auto scraped = await(prometheus, R"(max(timestamp(up{job="kvscope"})))",
                               [&](double at) { return at >= unix_time; });
    ASSERT_TRUE(scraped && *scraped >= unix_time) << "no scrape after " << unix_time;
  }

  int requests_ = 0;
  std::uint64_t cached_tokens_ = 0;
};

TEST_F(GrafanaDashboardQueries, EveryQueryParsesAndReturnsData) {
  const std::uint16_t example =
      start_example({"--blocks", "256", "--kv-events", "inproc://kvscope-dashboard-test",
                     // A hybrid layout, so the KV cache group panels have series too.
                     "--groups", "full:16,swa:16:128"});
  const std::uint16_t prometheus = start_prometheus(example);
  const auto up = await(prometheus, R"(up{job="kvscope"})", [](double v) { return v == 1; });
  ASSERT_EQ(up, 1.0) << "Prometheus never scraped the example";

  // 15 waves (360 requests) in three chunks with a scrape after each: rate()
  // needs two samples of a series, and the tenant series appear only with
  // the first chunk. 120 conversations of up to 11 blocks overflow the pool.
  for (int chunk = 0; chunk < 3; ++chunk) {
    for (int wave = 5 * chunk; wave < 5 * chunk + 5; ++wave)
      ASSERT_NO_FATAL_FAILURE(send_wave(example, wave));
    ASSERT_NO_FATAL_FAILURE(await_scrape_after(prometheus, unix_seconds()));
  }
  ASSERT_GT(cached_tokens_, 0u);
  const auto stored = await(prometheus, "sum(kvscope_prefix_cache_requests_total)",
                            [&](double n) { return n == requests_; });
  ASSERT_EQ(stored, static_cast<double>(requests_));
  ASSERT_NO_FATAL_FAILURE(await_scrape_after(prometheus, unix_seconds() + 2));  // two more

  // The load did what the panels need.
  EXPECT_GT(value_of(prometheus, R"(sum(kvscope_prefix_cache_evictions_total{reason="capacity"}))")
                .value_or(0),
            0)
      << "the pool never evicted";
  EXPECT_EQ(
      value_of(prometheus, "count(count by (tenant) (kvscope_prefix_cache_tenant_hits_total))"),
      static_cast<double>(kTenants));

  const Json dashboard = load_dashboard();
  const std::vector<PanelQuery> queries = all_queries(dashboard);
  ASSERT_GE(queries.size(), 30u);
  for (const PanelQuery& q : queries) {
    const std::string promql = substitute(q.expr, dashboard);
    if (promql.find('$') != std::string::npos) {
      ADD_FAILURE() << "unresolved variable in " << describe(q);
      continue;
    }
    const Answer answer = ask(prometheus, promql);
    EXPECT_EQ(answer.http_status, 200) << describe(q) << "\n" << answer.body.dump();
    EXPECT_EQ(answer.status, "success") << describe(q);
    if (answer.status != "success") continue;
    EXPECT_GT(answer.series, 0u) << "no series for " << describe(q);
    EXPECT_GT(answer.numbers, 0u) << "only NaN for " << describe(q);
  }

  // The instance variable lists the example.
  const Json* instance = find_variable(dashboard, "instance");
  ASSERT_NE(instance, nullptr);
  std::smatch call;
  const std::string definition = variable_query(*instance);
  ASSERT_TRUE(std::regex_match(definition, call, std::regex(R"(label_values\((\w+), (\w+)\))")));
  const HttpReply values = http_request(
      prometheus, "GET", "/api/v1/label/" + call[2].str() + "/values?match[]=" + call[1].str());
  ASSERT_EQ(values.status, 200) << values.body;
  EXPECT_EQ(Json::parse(values.body).at("data"),
            Json::array({"127.0.0.1:" + std::to_string(example)}));
}

}  // namespace
