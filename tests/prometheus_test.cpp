// Prometheus exposition: the writer's rules, the shard export read back by a
// strict test parser, and golden files of a scripted timeline (JSON and text).
#include "kvscope/export/prometheus.hpp"
#include "kvscope/export/json.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "prometheus_parser.hpp"
#include "test_util.hpp"

namespace kvscope {
namespace {

using testing_util::PromParser;

TEST(PrometheusWriter, PrintsEachFamilyOnceWithHelpAndType) {
  PrometheusWriter w;
  w.counter("kvscope_x_total", "X things", {{"shard", "0"}}, 3);
  w.gauge("kvscope_y", "Y level", {}, 0.5);
  w.counter("kvscope_x_total", "X things", {{"shard", "1"}}, 4);
  EXPECT_EQ(w.text(),
            "# HELP kvscope_x_total X things\n"
            "# TYPE kvscope_x_total counter\n"
            "kvscope_x_total{shard=\"0\"} 3\n"
            "kvscope_x_total{shard=\"1\"} 4\n"
            "# HELP kvscope_y Y level\n"
            "# TYPE kvscope_y gauge\n"
            "kvscope_y 0.5\n");
}

TEST(PrometheusWriter, HistogramHasCumulativeBucketsSumAndCount) {
  Histogram h;
  for (const std::uint64_t ns : {500'000u, 1'500'000u, 1'500'000u, 30'000'000u}) h.record(ns);
  PrometheusWriter w;
  const std::vector<double> bounds = {0.001, 0.002, 0.01};
  w.histogram("kvscope_h_seconds", "H", {}, h, bounds, 1e-9);
  EXPECT_EQ(w.text(),
            "# HELP kvscope_h_seconds H\n"
            "# TYPE kvscope_h_seconds histogram\n"
            "kvscope_h_seconds_bucket{le=\"0.001\"} 1\n"
            "kvscope_h_seconds_bucket{le=\"0.002\"} 3\n"
            "kvscope_h_seconds_bucket{le=\"0.01\"} 3\n"
            "kvscope_h_seconds_bucket{le=\"+Inf\"} 4\n"
            "kvscope_h_seconds_sum 0.0335\n"
            "kvscope_h_seconds_count 4\n");
  EXPECT_NO_THROW(PromParser::parse(w.text()));
}

TEST(PrometheusWriter, RefusesBadNamesAndTypeConflictsWithoutAddingAnything) {
  PrometheusWriter w;
  EXPECT_THROW(w.counter("kvscope_no_suffix", "h", {}, 1), std::invalid_argument);
  EXPECT_THROW(w.gauge("1bad", "h", {}, 1), std::invalid_argument);
  EXPECT_THROW(w.gauge("kvscope_ok", "h", {{"bad-label", "v"}}, 1), std::invalid_argument);
  EXPECT_THROW(w.gauge("kvscope_ok", "h", {{"__reserved", "v"}}, 1), std::invalid_argument);
  w.gauge("kvscope_g", "h", {}, 1);
  EXPECT_THROW(w.counter("kvscope_g", "h", {}, 1), std::invalid_argument);
  EXPECT_EQ(w.text(), "# HELP kvscope_g h\n# TYPE kvscope_g gauge\nkvscope_g 1\n");
}

TEST(PrometheusWriter, EscapesLabelValuesSoTheyReadBack) {
  PrometheusWriter w;
  w.gauge("kvscope_g", "h", {{"tenant", "a\"b\\c\nd"}}, 2);
  const auto families = PromParser::parse(w.text());
  EXPECT_EQ(PromParser::value(families, "kvscope_g", "kvscope_g", {{"tenant", "a\"b\\c\nd"}}), 2);
}

TEST(PromParser, RejectsWhatAScraperWouldReject) {
  EXPECT_THROW(PromParser::parse("kvscope_a 1\n"), std::runtime_error);  // no HELP/TYPE
  EXPECT_THROW(PromParser::parse("# HELP a h\n# TYPE a counter\na 1\n"), std::runtime_error);
  EXPECT_THROW(PromParser::parse("# HELP a_total h\n# TYPE a_total counter\na_total{x=1} 1\n"),
               std::runtime_error);
  EXPECT_THROW(PromParser::parse("# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                                 "h_bucket{le=\"+Inf\"} 1\nh_count 1\n"),
               std::runtime_error);
}

// A scripted timeline, fully deterministic: pool of 6 blocks of 4 tokens,
// every block watched, a manual clock.
struct Timeline {
  ManualClock clock{Timestamp{std::chrono::seconds(100)}};
  std::unique_ptr<MeteredPrefixCache> cache;

  Timeline() {
    PrefixCacheConfig c;
    c.num_blocks = 6;
    c.block_size = 4;
    MetricsConfig m;
    m.clock = &clock;
    m.residency_sample_rate = 1.0;
    m.window = WindowConfig{std::chrono::seconds(10), std::chrono::seconds(1)};
    cache = std::make_unique<MeteredPrefixCache>(c, m);
  }

  void admit(std::uint64_t id, std::vector<TokenId> tokens, std::optional<std::string> tenant,
             std::optional<std::uint64_t> adapter = std::nullopt) {
    ExtraKeys extras;
    if (tenant) extras.salt = CacheSalt::from_string(*tenant);
    extras.adapter_id = adapter;
    ASSERT_TRUE(cache->allocate(Request::with_tokens(RequestId{id}, tokens, extras)).ok());
  }
  void finish(std::uint64_t id) { ASSERT_TRUE(cache->free(RequestId{id}).ok()); }
  void wait_ms(int ms) { clock.advance(std::chrono::milliseconds(ms)); }

  ShardSnapshot run() {
    cache->metrics().set_tenant_name(CacheSalt::from_string("acme"), "acme");
    const std::vector<TokenId> system = {1, 2, 3, 4, 5, 6, 7, 8};
    admit(1, {1, 2, 3, 4, 5, 6, 7, 8, 9}, "acme");
    wait_ms(250);
    admit(2, {1, 2, 3, 4, 5, 6, 7, 8, 10, 11}, "acme", 7);
    wait_ms(500);
    finish(1);
    finish(2);
    cache->metrics().tick(clock.now());
    wait_ms(1500);
    admit(3, {1, 2, 3, 4, 5, 6, 7, 8, 12}, "acme");
    admit(4, {40, 41}, std::nullopt);  // shorter than a block: can never hit
    wait_ms(100);
    finish(3);
    finish(4);
    wait_ms(2000);
    admit(5, {50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69},
          "beta");  // 5 blocks: evicts cached blocks
    wait_ms(300);
    finish(5);
    return cache->metrics().snapshot(clock.now());
  }
};

TEST(PrometheusExport, ShardCountersReadBackEqualToTheSnapshot) {
  Timeline t;
  const ShardSnapshot s = t.run();
  const std::vector<ShardSnapshot> shards = {s, s};
  const auto families = PromParser::parse(to_prometheus(shards));
  for (const std::string shard : {"0", "1"}) {
    const auto value = [&](std::string_view family) {
      return PromParser::value(families, family, family, {{"shard", shard}});
    };
    EXPECT_EQ(value("kvscope_prefix_cache_queries_total"), s.total.fresh.query_tokens);
    EXPECT_EQ(value("kvscope_prefix_cache_hits_total"), s.total.fresh.hit_tokens);
    EXPECT_EQ(value("kvscope_prefix_cache_query_blocks_total"), s.total.fresh.query_blocks);
    EXPECT_EQ(value("kvscope_prefix_cache_hit_blocks_total"), s.total.fresh.hit_blocks);
    EXPECT_EQ(value("kvscope_prefix_cache_requests_total"), 5);
    EXPECT_EQ(value("kvscope_prefix_cache_too_short_requests_total"), 1);
    EXPECT_DOUBLE_EQ(value("kvscope_kv_cache_usage_ratio"), 0.0);
    EXPECT_EQ(PromParser::value(families, "kvscope_prefix_cache_evictions_total",
                                "kvscope_prefix_cache_evictions_total",
                                {{"shard", shard}, {"reason", "capacity"}}),
              s.total.evictions);
    EXPECT_EQ(PromParser::value(families, "kvscope_prefix_cache_tenant_hits_total",
                                "kvscope_prefix_cache_tenant_hits_total",
                                {{"shard", shard}, {"tenant", "acme"}}),
              s.prefixes.tenants.at("acme").fresh.hit_tokens);
    EXPECT_EQ(PromParser::value(families, "kvscope_kv_block_lifetime_seconds",
                                "kvscope_kv_block_lifetime_seconds_count", {{"shard", shard}}),
              s.residency->evicted_blocks);
  }
  EXPECT_GT(s.total.fresh.hit_tokens, 0u);
  EXPECT_GT(s.total.evictions, 0u);
  // vLLM's 21 bounds plus +Inf per shard.
  const auto& lifetime = PromParser::find(families, "kvscope_kv_block_lifetime_seconds");
  EXPECT_EQ(lifetime.samples.size(), 2u * (21 + 1 + 2));
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compares `actual` with the golden file; KVSCOPE_UPDATE_GOLDEN=1 rewrites it.
void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(KVSCOPE_GOLDEN_DIR) + "/" + name;
  if (std::getenv("KVSCOPE_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  const std::string expected = read_file(path);
  ASSERT_FALSE(expected.empty()) << "missing golden file " << path;
  EXPECT_EQ(actual, expected) << "golden file " << path
                              << " differs (KVSCOPE_UPDATE_GOLDEN=1 rewrites it)";
}

TEST(GoldenExport, ShardSnapshotJson) {
  Timeline t;
  const ShardSnapshot s = t.run();
  auto json = nlohmann::json::parse(to_json(s));
  json.erase("metrics_memory_bytes");  // depends on the standard library's containers
  expect_golden("shard_snapshot.json", json.dump(2) + "\n");
}

TEST(GoldenExport, ShardSnapshotPrometheus) {
  Timeline t;
  ShardSnapshot s = t.run();
  s.metrics_memory_bytes = 0;  // depends on the standard library's containers
  PrometheusWriter w;
  write_prometheus(w, s, {{"shard", "0"}});
  expect_golden("shard_snapshot.prom", w.text());
}

TEST(GoldenExport, EvictionEventsCsvAndJson) {
  Timeline t;
  t.run();
  auto* tracker = t.cache->metrics().residency();
  ASSERT_NE(tracker, nullptr);
  expect_golden("eviction_events.csv", eviction_events_csv(tracker->recent_events()));
  expect_golden(
      "eviction_events.json",
      nlohmann::json::parse(eviction_events_json(tracker->recent_events())).dump(2) + "\n");
}

}  // namespace
}  // namespace kvscope
