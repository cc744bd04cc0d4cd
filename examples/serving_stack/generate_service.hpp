// serving_stack/generate_service.hpp - the example's request handler: routes
// HTTP requests to the endpoints below, all generating through one Generator.
//
//   POST /v1/generate          the example's own API; body: generate_api.hpp.
//                              Answers with the outcome (cached_tokens,
//                              prompt_tokens, blocks, shard, ...).
//   GET  /v1/models            OpenAI-compatible (openai_service.hpp).
//   POST /v1/completions       OpenAI-compatible, streaming or not.
//   POST /v1/chat/completions  OpenAI-compatible, streaming or not.
//   GET  /metrics              Prometheus text of the latest snapshot, plus
//                              this service's response counters.
//   GET  /snapshot             the latest snapshot as JSON.
//   GET  /healthz              200 {"status":"ok",...}; 503 once draining.
//
// Errors use OpenAI's shape everywhere ({"error": {"message", "type",
// "param", "code"}}): 400 bad body or fields, 404 unknown path or model, 405
// wrong method, 422 (/v1/generate) or 400 context_length_exceeded (OpenAI
// endpoints) a prompt larger than a shard's pool, 503 pool still full after
// retries (with Retry-After) or shutting down. A refused request changes
// nothing in the cache: the body is validated before the first cache
// operation, and a failed allocate is all-or-nothing.
//
// Thread rules: handle() may run on any executor, concurrently; the service
// keeps only atomics. The Runtime must outlive every handle() in flight.
#pragma once

#include <array>
#include <asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "generate_api.hpp"
#include "generation.hpp"
#include "http.hpp"
#include "kvscope/runtime/runtime.hpp"
#include "openai_service.hpp"

namespace serving_stack {

struct ServiceConfig {
  GenerateLimits limits{};
  /// Simulated prefill time per token not served from the cache.
  std::chrono::nanoseconds prefill_per_token{1000};
  /// Simulated decode time per generated token.
  std::chrono::nanoseconds decode_per_token{10'000};
  /// A full pool is retried this many times, `retry_backoff` apart, before 503.
  std::uint32_t admit_retries = 50;
  std::chrono::milliseconds retry_backoff{2};
  /// The model name the OpenAI endpoints serve (GET /v1/models).
  std::string model_name = "kvscope-example";
  /// Prompts in one /v1/completions batch at most.
  std::uint32_t max_batch_prompts = 64;

  /// Throws std::invalid_argument naming the field.
  void validate() const;
};

class GenerateService {
 public:
  /// Throws std::invalid_argument for a bad config.
  GenerateService(kvscope::Runtime& runtime, ServiceConfig config);

  /// Answers one request. Never throws: an unexpected exception becomes a
  /// 500 response.
  asio::awaitable<HttpResponse> handle(HttpRequest request);

  /// /healthz answers 503 from now on, so a load balancer drains this instance.
  void begin_draining() noexcept { draining_.store(true, std::memory_order_relaxed); }

  /// Counts a response the server produced without handle() (a request that
  /// failed to parse), so /metrics shows every response.
  void count_response(int status) noexcept;

  /// Successful generations so far, on every endpoint.
  std::uint64_t generations() const noexcept { return generator_.generations(); }

 private:
  asio::awaitable<HttpResponse> route(const HttpRequest& request);
  asio::awaitable<HttpResponse> generate(const HttpRequest& request);
  HttpResponse metrics_page() const;
  HttpResponse snapshot_page() const;
  HttpResponse health_page() const;

  /// Responses by status, for /metrics. Index: kStatuses position.
  static constexpr std::array<int, 12> kStatuses{200, 400, 404, 405, 408, 413,
                                                 414, 422, 431, 500, 503, 505};

  kvscope::Runtime& runtime_;
  ServiceConfig config_;
  Generator generator_;
  OpenAiService openai_;
  std::atomic<bool> draining_{false};
  std::array<std::atomic<std::uint64_t>, kStatuses.size() + 1> responses_{};  // last: other
};

}  // namespace serving_stack
