// serving_stack/generate_service.hpp - the example's request handler: routes
// HTTP requests and runs a generation against kvscope::Runtime.
//
//   POST /v1/generate  body: see generate_api.hpp. The handler co_awaits the
//                      prefix cache (lookup + allocate on the request's shard),
//                      waits a simulated prefill proportional to the uncached
//                      tokens, appends the decoded tokens block by block,
//                      frees, and answers with the outcome (cached_tokens,
//                      prompt_tokens, blocks, shard, ...).
//   GET /metrics       Prometheus text of the latest snapshot, plus this
//                      service's response counters.
//   GET /snapshot      the latest snapshot as JSON.
//   GET /healthz       200 {"status":"ok",...}; 503 once draining.
//
// Errors are JSON ({"error": {"status", "message"}}): 400 bad body or
// fields, 404 unknown path, 405 wrong method, 422 a prompt larger than a
// shard's pool, 503 pool still full after retries (with Retry-After) or
// shutting down. A refused request changes nothing in the cache: the body
// is validated before the first cache operation, and a failed allocate is
// all-or-nothing.
//
// Thread rules: handle() may run on any executor, concurrently; the service
// keeps only atomics and a mutex-guarded tenant set. The Runtime must
// outlive every handle() in flight.
#pragma once

#include <array>
#include <asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_set>

#include "generate_api.hpp"
#include "http.hpp"
#include "kvscope/runtime/runtime.hpp"

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

  /// Successful generations so far.
  std::uint64_t generations() const noexcept {
    return generations_.load(std::memory_order_relaxed);
  }

 private:
  asio::awaitable<HttpResponse> route(const HttpRequest& request);
  asio::awaitable<HttpResponse> generate(const HttpRequest& request);
  asio::awaitable<HttpResponse> run_generation(GenerateRequest parsed);
  HttpResponse metrics_page() const;
  HttpResponse snapshot_page() const;
  HttpResponse health_page() const;
  /// Names a tenant in every shard's exports the first time it is seen
  /// (up to the metrics' max_tenants names; later ones export by salt digest).
  asio::awaitable<void> name_tenant(const std::string& tenant, const kvscope::CacheSalt& salt);

  /// Responses by status, for /metrics. Index: kStatuses position.
  static constexpr std::array<int, 12> kStatuses{200, 400, 404, 405, 408, 413,
                                                 414, 422, 431, 500, 503, 505};

  kvscope::Runtime& runtime_;
  ServiceConfig config_;
  std::atomic<std::uint64_t> next_request_id_{1};
  std::atomic<std::uint64_t> generations_{0};
  std::atomic<bool> draining_{false};
  std::array<std::atomic<std::uint64_t>, kStatuses.size() + 1> responses_{};  // last: other
  std::mutex tenants_mutex_;
  std::unordered_set<std::string> named_tenants_;
};

}  // namespace serving_stack
