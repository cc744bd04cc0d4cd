// The serving-stack example end to end, in-process: a Runtime, the
// GenerateService and the HttpServer on a loopback port, driven by a
// blocking HTTP client.
// g++ 12 false positives in libstdc++ inlined into this file: -Wrestrict in
// std::string concatenation at -O3 (GCC bug 105329), -Wmaybe-uninitialized
// under ASan at -O2 (GCC bug 105562).
#pragma GCC diagnostic ignored "-Wrestrict"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <asio/co_spawn.hpp>
#include <asio/read_until.hpp>
#include <asio/use_future.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "generate_service.hpp"
#include "http_client.hpp"
#include "http_server.hpp"
#include "prometheus_parser.hpp"
#include "test_util.hpp"

namespace serving_stack {
namespace {

using kvscope::testing_util::http_exchange;
using kvscope::testing_util::http_request;
using kvscope::testing_util::HttpReply;
using kvscope::testing_util::PromParser;
using Json = nlohmann::json;

ServiceConfig instant_service() {
  ServiceConfig config;
  config.prefill_per_token = std::chrono::nanoseconds(0);
  config.decode_per_token = std::chrono::nanoseconds(0);
  return config;
}

kvscope::RuntimeConfig small_runtime(std::uint32_t blocks = 256) {
  kvscope::RuntimeConfig config;
  config.shards = 2;
  config.cache.num_blocks = blocks;
  config.cache.block_size = 16;
  config.snapshot_interval = std::chrono::milliseconds(10);
  return config;
}

std::string tokens_body(std::uint32_t n, kvscope::TokenId first, const std::string& extra = "") {
  Json body = {{"tokens", kvscope::testing_util::seq(n, first)}};
  if (!extra.empty()) body.update(Json::parse(extra));
  return body.dump();
}

/// Waits (up to 10 s) for `condition`; false if it never held.
template <class Condition>
bool eventually(Condition condition) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

/// A connected client socket whose reads give up after 10 s.
struct RawClient {
  asio::io_context io;
  asio::ip::tcp::socket socket{io};

  explicit RawClient(std::uint16_t port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
    const timeval timeout{10, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  void send(const std::string& bytes) { asio::write(socket, asio::buffer(bytes)); }
  /// Reads until `marker` has arrived; returns everything read.
  std::string read_until(std::string_view marker) {
    std::string got;
    asio::read_until(socket, asio::dynamic_buffer(got), marker);
    return got;
  }
  /// Reads until the server closes; returns what arrived before.
  std::string read_to_eof(std::error_code& error) {
    std::string got;
    asio::read(socket, asio::dynamic_buffer(got), error);
    return got;
  }
};

class ServingStackServer : public ::testing::Test {
 protected:
  void start(kvscope::RuntimeConfig runtime_config = small_runtime(),
             ServiceConfig service_config = instant_service(), ServerConfig server_config = {}) {
    server_config.port = 0;
    runtime_ = std::make_unique<kvscope::Runtime>(std::move(runtime_config));
    runtime_->start();
    service_ = std::make_unique<GenerateService>(*runtime_, service_config);
    std::vector<asio::any_io_executor> executors;
    for (kvscope::ShardId s{0}; s.value < runtime_->shard_count(); ++s.value)
      executors.emplace_back(runtime_->shard_executor(s));
    auto handler = [this](HttpRequest request) { return service_->handle(std::move(request)); };
    auto count = [this](int status) { service_->count_response(status); };
    server_ =
        std::make_unique<HttpServer>(io_, std::move(executors), server_config, handler, count);
    server_->start();
    io_thread_ = std::thread([this] { io_.run(); });
  }

  /// Graceful shutdown; returns once it completed.
  void shutdown() {
    if (!io_thread_.joinable()) return;
    auto done = asio::co_spawn(io_, server_->shutdown(), asio::use_future);
    done.get();
    io_thread_.join();
  }

  void TearDown() override {
    shutdown();
    if (runtime_) runtime_->stop();
  }

  std::uint16_t port() const { return server_->port(); }

  HttpReply generate(const std::string& body) {
    return http_request(port(), "POST", "/v1/generate", body);
  }

  Json generate_ok(const std::string& body) {
    const HttpReply reply = generate(body);
    EXPECT_EQ(reply.status, 200) << reply.body;
    return Json::parse(reply.body);
  }

  /// Every shard's cache state, read on its own thread.
  std::vector<kvscope::testing_util::Snapshot> cache_state() {
    std::vector<kvscope::testing_util::Snapshot> state;
    for (kvscope::ShardId s{0}; s.value < runtime_->shard_count(); ++s.value) {
      auto read = [](kvscope::MeteredPrefixCache& cache, kvscope::MultiLevelCacheMetrics&) {
        return kvscope::Result<kvscope::testing_util::Snapshot>(
            kvscope::testing_util::Snapshot::of(cache.cache()));
      };
      state.push_back(*runtime_->with_shard(s, read, asio::use_future).get());
    }
    return state;
  }

  /// Every shard's cache state still equals `before` (a cache_state()).
  void expect_cache_unchanged(const std::vector<kvscope::testing_util::Snapshot>& before) {
    const auto after = cache_state();
    ASSERT_EQ(before.size(), after.size());
    for (std::size_t s = 0; s < before.size(); ++s) {
      SCOPED_TRACE("shard " + std::to_string(s));
      kvscope::testing_util::expect_unchanged(before[s], after[s]);
    }
  }

  /// One shard of 8 blocks, 20 ms per decoded token, a full pool retried
  /// twice 1 ms apart: one long request keeps the pool busy.
  void start_small_slow_pool() {
    ServiceConfig service = instant_service();
    service.admit_retries = 2;
    service.retry_backoff = std::chrono::milliseconds(1);
    service.decode_per_token = std::chrono::milliseconds(20);
    kvscope::RuntimeConfig runtime = small_runtime(8);
    runtime.shards = 1;
    start(runtime, service);
  }

  std::size_t live_requests() {
    std::size_t live = 0;
    for (const auto& shard : cache_state()) live += shard.num_requests;
    return live;
  }

  /// A snapshot that began after everything completed so far.
  kvscope::SnapshotPtr settled_snapshot() {
    const std::uint64_t now = runtime_->snapshot()->sequence;
    return runtime_->next_snapshot(now + 1, asio::use_future).get();
  }

  std::unique_ptr<kvscope::Runtime> runtime_;
  std::unique_ptr<GenerateService> service_;
  asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::thread io_thread_;
};

TEST_F(ServingStackServer, RepeatedPromptHitsItsCachedPrefix) {
  start();
  const std::string body = tokens_body(64, 1000, R"({"max_tokens": 16})");
  const Json first = generate_ok(body);
  EXPECT_EQ(first["prompt_tokens"], 64);
  EXPECT_EQ(first["cached_tokens"], 0);
  EXPECT_EQ(first["generated_tokens"], 16);
  EXPECT_EQ(first["blocks"], 5);  // (64 + 16) / 16
  EXPECT_EQ(first["finish_reason"], "length");
  const auto tokens = kvscope::testing_util::seq(64, 1000);
  const auto routed = kvscope::Request::with_tokens(kvscope::RequestId{0}, tokens);
  EXPECT_EQ(first["shard"], runtime_->route(routed).value);

  const Json second = generate_ok(body);
  EXPECT_EQ(second["cached_tokens"], 48);  // 4 cached blocks, capped at 63 tokens: 3 blocks
  EXPECT_EQ(second["shard"], first["shard"]);
  EXPECT_NE(second["request_id"], first["request_id"]);
  EXPECT_EQ(live_requests(), 0u);  // every generation freed its blocks
}

TEST_F(ServingStackServer, PromptTextUsesTheTokenizer) {
  start();
  std::string prompt;
  for (int i = 0; i < 40; ++i) prompt += "word" + std::to_string(i) + " ";
  const std::string body = Json{{"prompt", prompt}, {"max_tokens", 0}}.dump();
  EXPECT_EQ(generate_ok(body)["prompt_tokens"], 40);
  EXPECT_EQ(generate_ok(body)["cached_tokens"], 32);
}

TEST_F(ServingStackServer, TenantsNeverShareBlocks) {
  start();
  EXPECT_EQ(generate_ok(tokens_body(64, 0, R"({"tenant":"a"})"))["cached_tokens"], 0);
  EXPECT_EQ(generate_ok(tokens_body(64, 0, R"({"tenant":"a"})"))["cached_tokens"], 48);
  EXPECT_EQ(generate_ok(tokens_body(64, 0, R"({"tenant":"b"})"))["cached_tokens"], 0);
  EXPECT_EQ(generate_ok(tokens_body(64, 0))["cached_tokens"], 0);  // no tenant: no salt
  // Named in the exports after a snapshot.
  const auto snapshot = settled_snapshot();
  EXPECT_TRUE(snapshot->global.prefixes.tenants.contains("a"));
  EXPECT_TRUE(snapshot->global.prefixes.tenants.contains("b"));
}

TEST_F(ServingStackServer, RefusedRequestsAnswer4xxAndChangeNothing) {
  ServerConfig server;
  server.limits.max_body_bytes = 64 * 1024;
  start(small_runtime(), instant_service(), server);
  generate_ok(tokens_body(40, 0));  // some cached state to protect
  const auto before = cache_state();

  EXPECT_EQ(generate("{not json").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[1,2],"bogus":1})").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[]})").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[1,2],"max_tokens":100000})").status, 400);
  // Huge numbers: over 2^32, over 2^64, beyond a double's range.
  EXPECT_EQ(generate(R"({"tokens":[1,4294967296]})").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[18446744073709551616]})").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[1e400]})").status, 400);
  EXPECT_EQ(generate(R"({"tokens":[1],"max_tokens":1e20})").status, 400);
  const HttpReply too_big = generate(tokens_body(3000, 0));  // a shard holds 128 blocks of 16
  EXPECT_EQ(too_big.status, 422) << too_big.body;
  EXPECT_NE(too_big.body.find("3000 tokens"), std::string::npos) << too_big.body;
  EXPECT_EQ(generate(std::string(1024 * 1024, ' ')).status, 413);  // answered before it is read
  EXPECT_EQ(http_request(port(), "GET", "/nowhere").status, 404);
  const HttpReply wrong_method = http_request(port(), "GET", "/v1/generate");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("Allow"), "POST");
  EXPECT_EQ(http_request(port(), "DELETE", "/metrics").status, 405);
  const auto malformed = http_exchange(port(), "NOT HTTP AT ALL\r\n\r\n");
  ASSERT_EQ(malformed.size(), 1u);
  EXPECT_EQ(malformed[0].status, 400);
  EXPECT_EQ(malformed[0].header("Connection"), "close");
  const Json error = Json::parse(generate("[]").body);
  EXPECT_EQ(error["error"]["type"], "invalid_request_error");
  EXPECT_FALSE(error["error"]["message"].get<std::string>().empty());

  expect_cache_unchanged(before);
}

TEST_F(ServingStackServer, FullPoolAnswers503WithRetryAfter) {
  start_small_slow_pool();
  // The first request holds 4 of the 8 blocks while it decodes (~300 ms).
  auto holder = std::async(
      std::launch::async, [this] { return generate(tokens_body(64, 0, R"({"max_tokens": 15})")); });
  ASSERT_TRUE(eventually([this] { return live_requests() == 1; }));
  const HttpReply busy = generate(tokens_body(80, 5000));  // needs 5 blocks: 4 free
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_EQ(busy.header("Retry-After"), "1");
  EXPECT_EQ(holder.get().status, 200);
  EXPECT_EQ(generate(tokens_body(80, 5000)).status, 200);  // the pool recovered
}

TEST_F(ServingStackServer, KeepAliveServesPipelinedRequestsInOrder) {
  start();
  const std::string body = tokens_body(32, 77);
  const std::string post =
      "POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const auto replies =
      http_exchange(port(), post + post + "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(Json::parse(replies[0].body)["cached_tokens"], 0);
  EXPECT_EQ(Json::parse(replies[1].body)["cached_tokens"], 16);
  EXPECT_EQ(replies[1].header("Connection"), "");  // still kept alive
  EXPECT_EQ(Json::parse(replies[2].body)["status"], "ok");
  EXPECT_EQ(replies[2].header("Connection"), "close");
}

TEST_F(ServingStackServer, ExpectContinueGetsAnInterimResponse) {
  start();
  const std::string body = tokens_body(20, 1);
  RawClient client(port());
  client.send(
      "POST /v1/generate HTTP/1.1\r\nExpect: 100-continue\r\nConnection: close\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n");
  EXPECT_EQ(client.read_until("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  client.send(body);
  std::error_code error;
  const auto replies = kvscope::testing_util::parse_http_responses(client.read_to_eof(error));
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].status, 200);
}

TEST_F(ServingStackServer, MetricsAndSnapshotMatchWhatClientsWereTold) {
  start();
  // Four client threads, shared prefixes per tenant: concurrent handlers on both shards.
  std::atomic<std::uint64_t> prompt_tokens{0}, cached_tokens{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; i < 25; ++i) {
        const std::string tenant = "t" + std::to_string((c + i) % 3);
        auto tokens = kvscope::testing_util::seq(48, 0);
        const auto suffix = kvscope::testing_util::seq(5 + i % 7, 100'000 + 100 * c + i);
        tokens.insert(tokens.end(), suffix.begin(), suffix.end());
        const HttpReply reply =
            generate(Json{{"tokens", tokens}, {"tenant", tenant}, {"max_tokens", i % 20}}.dump());
        ASSERT_EQ(reply.status, 200) << reply.body;
        const Json outcome = Json::parse(reply.body);
        prompt_tokens += outcome["prompt_tokens"].get<std::uint64_t>();
        cached_tokens += outcome["cached_tokens"].get<std::uint64_t>();
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_GT(cached_tokens.load(), 0u);

  const auto snapshot = settled_snapshot();
  EXPECT_EQ(snapshot->global.total.fresh.query_tokens, prompt_tokens.load());
  EXPECT_EQ(snapshot->global.total.fresh.hit_tokens, cached_tokens.load());

  const HttpReply metrics = http_request(port(), "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto families = PromParser::parse(metrics.body);
  double hits = 0, queries = 0;
  for (const auto& s : PromParser::find(families, "kvscope_prefix_cache_hits_total").samples)
    hits += s.value;
  for (const auto& s : PromParser::find(families, "kvscope_prefix_cache_queries_total").samples)
    queries += s.value;
  EXPECT_EQ(hits, static_cast<double>(cached_tokens.load()));
  EXPECT_EQ(queries, static_cast<double>(prompt_tokens.load()));
  EXPECT_GE(PromParser::value(families, "serving_stack_http_responses_total",
                              "serving_stack_http_responses_total", {{"code", "200"}}),
            100.0);

  const HttpReply snapshot_page = http_request(port(), "GET", "/snapshot");
  ASSERT_EQ(snapshot_page.status, 200);
  const Json json = Json::parse(snapshot_page.body);
  EXPECT_GE(json["sequence"].get<std::uint64_t>(), snapshot->sequence);
  EXPECT_EQ(json["shards"].size(), 2u);
  EXPECT_EQ(live_requests(), 0u);
}

TEST_F(ServingStackServer, HealthzTurns503WhileDraining) {
  start();
  const HttpReply healthy = http_request(port(), "GET", "/healthz");
  EXPECT_EQ(healthy.status, 200);
  EXPECT_EQ(Json::parse(healthy.body)["shards"], 2);
  service_->begin_draining();
  const HttpReply draining = http_request(port(), "GET", "/healthz");
  EXPECT_EQ(draining.status, 503);
  EXPECT_EQ(Json::parse(draining.body)["status"], "draining");
}

TEST_F(ServingStackServer, ConnectionLimitRefusesTheExtraConnection) {
  ServerConfig server;
  server.max_connections = 1;
  start(small_runtime(), instant_service(), server);
  {
    RawClient first(port());  // admitted once it has been answered
    first.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_NE(first.read_until("}").find("200 OK"), std::string::npos);
    const HttpReply refused = http_request(port(), "GET", "/healthz");
    EXPECT_EQ(refused.status, 503);
    EXPECT_NE(refused.body.find("too many connections"), std::string::npos);
  }
  ASSERT_TRUE(eventually([this] { return server_->open_connections() == 0; }));
  EXPECT_EQ(http_request(port(), "GET", "/healthz").status, 200);
}

TEST_F(ServingStackServer, SlowClientIsClosedAfterTheIdleTimeout) {
  ServerConfig server;
  server.idle_timeout = std::chrono::milliseconds(50);
  start(small_runtime(), instant_service(), server);
  RawClient slow(port());
  slow.send("POST /v1/generate HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"tok");  // and stalls
  std::error_code error;
  EXPECT_EQ(slow.read_to_eof(error), "");
  EXPECT_EQ(error, asio::error::eof);
  EXPECT_EQ(live_requests(), 0u);
}

TEST_F(ServingStackServer, ShutdownFinishesRequestsInFlightAndClosesIdleConnections) {
  ServiceConfig service = instant_service();
  service.decode_per_token = std::chrono::milliseconds(5);
  start(small_runtime(), service);
  RawClient idle(port());
  idle.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  idle.read_until("}");  // answered, kept alive, now idle

  RawClient busy(port());
  const std::string body = tokens_body(32, 9, R"({"max_tokens": 40})");  // ~200 ms of decode
  busy.send("POST /v1/generate HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body);
  ASSERT_TRUE(eventually([this] { return live_requests() == 1; }));

  shutdown();  // returns once every connection is gone
  std::error_code error;
  const auto replies = kvscope::testing_util::parse_http_responses(busy.read_to_eof(error));
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0].status, 200);
  EXPECT_EQ(Json::parse(replies[0].body)["generated_tokens"], 40);
  EXPECT_EQ(replies[0].header("Connection"), "close");
  EXPECT_EQ(idle.read_to_eof(error), "");  // closed without a response
  EXPECT_EQ(server_->open_connections(), 0u);
  EXPECT_EQ(live_requests(), 0u);
  asio::io_context io;
  asio::ip::tcp::socket late(io);
  late.connect({asio::ip::make_address("127.0.0.1"), port()}, error);
  EXPECT_TRUE(error) << "the listener should be closed";
}

// Secure defaults: reachable from this machine only, bounded bodies,
// headers and connections (the command line's defaults are these).
// ---- The OpenAI-compatible endpoints ----

/// Words "w0 w1 ..." from `first`: a prompt of `n` tokens.
std::string words(int n, int first = 0) {
  std::string text;
  for (int i = 0; i < n; ++i) text += "w" + std::to_string(first + i) + " ";
  return text;
}

Json completion_body(const std::string& prompt, int max_tokens = 4) {
  return {{"model", "kvscope-example"}, {"prompt", prompt}, {"max_tokens", max_tokens}};
}

/// The data of each server-sent event, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> events;
  std::size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const std::size_t end = body.find("\n\n", at);
    if (end == std::string::npos) break;
    events.push_back(body.substr(at + 6, end - at - 6));
    at = end + 2;
  }
  return events;
}

class OpenAiEndpoints : public ServingStackServer {
 protected:
  HttpReply post(const std::string& path, const Json& body, const std::string& headers = "") {
    return http_request(port(), "POST", path, body.dump(), headers);
  }
  Json post_ok(const std::string& path, const Json& body, const std::string& headers = "") {
    const HttpReply reply = post(path, body, headers);
    EXPECT_EQ(reply.status, 200) << reply.body;
    return Json::parse(reply.body);
  }
  std::uint64_t cached(const Json& response) {
    return response["usage"]["prompt_tokens_details"]["cached_tokens"].get<std::uint64_t>();
  }
};

TEST_F(OpenAiEndpoints, ModelsListsTheServedModel) {
  start();
  const HttpReply reply = http_request(port(), "GET", "/v1/models");
  ASSERT_EQ(reply.status, 200);
  const Json models = Json::parse(reply.body);
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "kvscope-example");
  EXPECT_EQ(http_request(port(), "POST", "/v1/models").status, 405);
}

TEST_F(OpenAiEndpoints, CompletionReportsTheCacheHitAsCachedTokens) {
  start();
  const Json first = post_ok("/v1/completions", completion_body(words(40), 4));
  EXPECT_EQ(first["object"], "text_completion");
  EXPECT_EQ(first["usage"]["prompt_tokens"], 40);
  EXPECT_EQ(first["usage"]["completion_tokens"], 4);
  EXPECT_EQ(first["usage"]["total_tokens"], 44);
  EXPECT_EQ(cached(first), 0u);
  EXPECT_EQ(first["choices"][0]["finish_reason"], "length");
  const Json second = post_ok("/v1/completions", completion_body(words(40), 4));
  EXPECT_EQ(cached(second), 32u);                                        // two full blocks of 16
  EXPECT_EQ(second["choices"][0]["text"], first["choices"][0]["text"]);  // a deterministic model
  EXPECT_NE(second["id"], first["id"]);

  const auto snapshot = settled_snapshot();
  EXPECT_EQ(snapshot->global.total.fresh.hit_tokens, 32u);
  EXPECT_EQ(snapshot->global.total.fresh.query_tokens, 80u);
  EXPECT_EQ(live_requests(), 0u);
}

TEST_F(OpenAiEndpoints, ABatchRunsItsPromptsInOrder) {
  start();
  const Json body = {
      {"model", "kvscope-example"}, {"prompt", {words(40), words(40)}}, {"max_tokens", 2}};
  const Json response = post_ok("/v1/completions", body);
  ASSERT_EQ(response["choices"].size(), 2u);
  EXPECT_EQ(response["choices"][1]["index"], 1);
  EXPECT_EQ(cached(response), 32u);  // the second prompt hits the first one's blocks
  EXPECT_EQ(response["usage"]["prompt_tokens"], 80);
}

TEST_F(OpenAiEndpoints, AChatFollowUpHitsTheEarlierTurnAndItsAnswer) {
  start();
  Json messages = {{{"role", "system"}, {"content", words(30)}},
                   {{"role", "user"}, {"content", "What is cached?"}}};
  const Json body = {{"model", "kvscope-example"}, {"messages", messages}, {"max_tokens", 20}};
  const Json first = post_ok("/v1/chat/completions", body);
  EXPECT_EQ(first["object"], "chat.completion");
  const Json& message = first["choices"][0]["message"];
  EXPECT_EQ(message["role"], "assistant");
  const std::uint64_t turn_tokens = first["usage"]["total_tokens"].get<std::uint64_t>();

  messages.push_back(message);
  messages.push_back({{"role", "user"}, {"content", "And then?"}});
  const Json second =
      post_ok("/v1/chat/completions",
              {{"model", "kvscope-example"}, {"messages", messages}, {"max_tokens", 4}});
  // The earlier prompt and its decoded answer, in whole blocks.
  EXPECT_EQ(cached(second), turn_tokens / 16 * 16);
  EXPECT_GT(cached(second), 32u);
}

TEST_F(OpenAiEndpoints, StreamingSendsChunksUsageAndDone) {
  start();
  const Json body = {{"model", "kvscope-example"},
                     {"messages", {{{"role", "user"}, {"content", words(20)}}}},
                     {"max_tokens", 40},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}};
  const HttpReply reply = post("/v1/chat/completions", body);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(reply.header("Transfer-Encoding"), "chunked");
  const auto events = sse_data(reply.body);
  ASSERT_GE(events.size(), 5u) << reply.body;  // role, 3 steps of <= 16 tokens, close, usage, DONE
  EXPECT_EQ(events.back(), "[DONE]");
  std::string content;
  for (std::size_t i = 0; i + 3 < events.size(); ++i) {
    const Json chunk = Json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk["usage"].is_null());
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    content += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(Json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(Json::parse(events[events.size() - 3])["choices"][0]["finish_reason"], "length");
  const Json usage = Json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 40);

  // The same request without streaming decodes the same text.
  Json whole = body;
  whole.erase("stream");
  whole.erase("stream_options");
  EXPECT_EQ(post_ok("/v1/chat/completions", whole)["choices"][0]["message"]["content"], content);
  EXPECT_EQ(live_requests(), 0u);
}

TEST_F(OpenAiEndpoints, AnHttp10ClientGetsTheStreamUntilTheConnectionCloses) {
  start();
  const std::string body = Json{
      {"model", "kvscope-example"},
      {"prompt", "a b c"},
      {"max_tokens", 3},
      {"stream", true}}.dump();
  const std::string raw =
      "POST /v1/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n" + body;
  const std::string bytes = kvscope::testing_util::http_roundtrip_bytes(port(), raw);
  EXPECT_EQ(bytes.find("Transfer-Encoding"), std::string::npos) << bytes;
  EXPECT_NE(bytes.find("Connection: close"), std::string::npos) << bytes;
  const auto events = sse_data(bytes.substr(bytes.find("\r\n\r\n") + 4));
  ASSERT_EQ(events.size(), 3u) << bytes;  // one step of 3 tokens, the close, DONE
  EXPECT_EQ(events.back(), "[DONE]");
}

TEST_F(OpenAiEndpoints, AClientThatLeavesMidStreamFreesItsBlocks) {
  ServiceConfig service = instant_service();
  service.decode_per_token = std::chrono::milliseconds(2);
  start(small_runtime(), service);
  const std::string body = Json{
      {"model", "kvscope-example"},
      {"prompt", words(40)},
      {"max_tokens", 2000},
      {"stream", true}}.dump();
  {
    RawClient client(port());
    client.send("POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\n\r\n" + body);
    client.read_until("data: ");  // the first decode step arrived
    EXPECT_EQ(live_requests(), 1u);
  }  // the client closes its socket
  EXPECT_TRUE(eventually([&] { return live_requests() == 0; }));
}

TEST_F(OpenAiEndpoints, CacheSaltOrHeaderSelectsTheTenant) {
  start();
  Json salted = completion_body(words(40));
  salted["cache_salt"] = "acme";
  EXPECT_EQ(cached(post_ok("/v1/completions", salted)), 0u);
  EXPECT_EQ(cached(post_ok("/v1/completions", salted)), 32u);
  EXPECT_EQ(
      cached(post_ok("/v1/completions", completion_body(words(40)), "X-Cache-Salt: acme\r\n")),
      32u);
  EXPECT_EQ(cached(post_ok("/v1/completions", completion_body(words(40)))), 0u);  // the default
  EXPECT_EQ(
      cached(post_ok("/v1/completions", completion_body(words(40)), "X-Cache-Salt: other\r\n")),
      0u);
  const HttpReply conflict = post("/v1/completions", salted, "X-Cache-Salt: someone-else\r\n");
  EXPECT_EQ(conflict.status, 400);
  EXPECT_EQ(Json::parse(conflict.body)["error"]["param"], "cache_salt");
  EXPECT_EQ(post("/v1/completions", completion_body("x"), "X-Cache-Salt: a b\r\n").status, 400);
  EXPECT_TRUE(settled_snapshot()->global.prefixes.tenants.contains("acme"));
}

TEST_F(OpenAiEndpoints, RefusalsUseOpenAisErrorShapeAndChangeNothing) {
  ServerConfig server;
  server.limits.max_body_bytes = 64 * 1024;
  start(small_runtime(), instant_service(), server);
  (void)post_ok("/v1/completions", completion_body(words(40)));  // some cached state to protect
  const auto before = cache_state();

  struct Case {
    std::string path;
    std::string body;
    int status;
    std::string param;
  };
  const std::string m = R"("model":"kvscope-example",)";
  const std::vector<Case> cases{
      {"/v1/completions", "{not json", 400, ""},
      {"/v1/completions", "{" + m + R"("prompt":"x","bogus":1})", 400, "bogus"},
      {"/v1/chat/completions",
       "{" + m + R"("messages":[{"role":"user","content":"x"}],"tools":[]})", 400, "tools"},
      {"/v1/completions", "{" + m + R"("prompt":[1,4294967296]})", 400, "prompt"},
      {"/v1/completions", "{" + m + R"("prompt":[18446744073709551616]})", 400, "prompt"},
      {"/v1/completions", "{" + m + R"("prompt":[1e400]})", 400, ""},
      {"/v1/completions", "{" + m + R"("prompt":"x","max_tokens":1e20})", 400, "max_tokens"},
      {"/v1/completions", "{" + m + R"("prompt":"x","max_tokens":100000})", 400, "max_tokens"},
      {"/v1/completions", "{" + m + R"("prompt":""})", 400, "prompt"},
      {"/v1/completions", R"({"model":"gpt-4","prompt":"x"})", 404, "model"},
      {"/v1/chat/completions", "{" + m + R"("messages":[{"role":"tool","content":"x"}]})", 400,
       "messages[0].role"},
      // 3,000 tokens: more than a shard's pool of 128 blocks of 16.
      {"/v1/completions", "{" + m + "\"prompt\":\"" + words(3000) + "\"}", 400, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path + " " + c.body.substr(0, 120));
    const HttpReply reply = http_request(port(), "POST", c.path, c.body);
    EXPECT_EQ(reply.status, c.status) << reply.body;
    const Json error = Json::parse(reply.body)["error"];
    EXPECT_FALSE(error["message"].get<std::string>().empty());
    EXPECT_EQ(error["type"], "invalid_request_error");
    EXPECT_EQ(error["param"].is_null() ? "" : error["param"].get<std::string>(), c.param);
    EXPECT_TRUE(error.contains("code"));
  }
  const HttpReply too_long = http_request(port(), "POST", "/v1/completions",
                                          "{" + m + "\"prompt\":\"" + words(3000) + "\"}");
  EXPECT_EQ(Json::parse(too_long.body)["error"]["code"], "context_length_exceeded");
  const HttpReply too_big =
      http_request(port(), "POST", "/v1/completions", std::string(1024 * 1024, ' '));
  EXPECT_EQ(too_big.status, 413);
  EXPECT_EQ(Json::parse(too_big.body)["error"]["type"], "invalid_request_error");
  const HttpReply wrong_method = http_request(port(), "GET", "/v1/chat/completions");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.header("Allow"), "POST");

  expect_cache_unchanged(before);
}

TEST_F(OpenAiEndpoints, AFullPoolIs503WithRetryAfterBeforeTheStreamStarts) {
  start_small_slow_pool();
  // The first request holds 4 of the 8 blocks while it decodes (~300 ms).
  auto holder = std::async(std::launch::async,
                           [&] { return post("/v1/completions", completion_body(words(64), 15)); });
  ASSERT_TRUE(eventually([&] { return live_requests() == 1; }));
  Json streamed = completion_body(words(80, 1000), 1);
  streamed["stream"] = true;
  const HttpReply busy = post("/v1/completions", streamed);
  EXPECT_EQ(busy.status, 503) << busy.body;
  EXPECT_EQ(busy.header("Retry-After"), "1");
  EXPECT_EQ(Json::parse(busy.body)["error"]["type"], "server_error");
  EXPECT_EQ(holder.get().status, 200);
}

TEST(ServingStackConfig, DefaultsBindLoopbackAndLimitBodiesAndConnections) {
  const ServerConfig server;
  EXPECT_TRUE(asio::ip::make_address(server.bind_address).is_loopback()) << server.bind_address;
  EXPECT_EQ(server.limits.max_body_bytes, 1024u * 1024u);
  EXPECT_EQ(server.limits.max_header_bytes, 16u * 1024u);
  EXPECT_EQ(server.max_connections, 1024u);
  EXPECT_NO_THROW(server.validate());
}

TEST(ServingStackConfig, BadConfigurationThrowsWithTheField) {
  ServerConfig server;
  server.max_connections = 0;
  EXPECT_THROW(server.validate(), std::invalid_argument);
  ServiceConfig service;
  service.limits.default_new_tokens = service.limits.max_new_tokens + 1;
  try {
    service.validate();
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("default_new_tokens"), std::string::npos);
  }
}

}  // namespace
}  // namespace serving_stack
