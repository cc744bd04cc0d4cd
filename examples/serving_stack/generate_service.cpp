#include "generate_service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"

namespace serving_stack {
namespace {

using kvscope::Status;

asio::awaitable<void> sleep_for(std::chrono::nanoseconds how_long) {
  if (how_long < std::chrono::microseconds(1)) co_return;  // below timer resolution
  asio::steady_timer timer(co_await asio::this_coro::executor, how_long);
  co_await timer.async_wait(asio::use_awaitable);
}

/// The example's "model": a deterministic next token, so equal prompts
/// decode equal answers (whose blocks a follow-up turn can hit).
kvscope::TokenId next_token(kvscope::TokenId previous, std::uint32_t step) {
  return 1 + static_cast<kvscope::TokenId>((previous * 2654435761u + step) % 50'000u);
}

HttpResponse json_page(const nlohmann::json& body, int status = 200) {
  return HttpResponse{.status = status, .body = body.dump()};
}

/// The response for an allocation the cache refused.
HttpResponse refused_allocation(Status status, std::uint32_t prompt_tokens,
                                std::uint32_t shard_blocks, std::uint32_t block_size) {
  switch (status) {
    case Status::not_enough_blocks: {
      HttpResponse busy = error_response(503, "the KV-block pool stayed full; retry later");
      busy.headers.emplace_back("Retry-After", "1");
      return busy;
    }
    case Status::request_too_large:
      return error_response(
          422, fmt::format("a prompt of {} tokens needs more blocks than a shard's pool holds "
                           "({} blocks of {} tokens)",
                           prompt_tokens, shard_blocks, block_size));
    case Status::not_running: return error_response(503, "the server is shutting down");
    default:
      return error_response(500, fmt::format("allocate failed: {}", kvscope::to_string(status)));
  }
}

}  // namespace

void ServiceConfig::validate() const {
  if (limits.max_prompt_tokens == 0)
    throw std::invalid_argument("ServiceConfig.limits.max_prompt_tokens must be >= 1");
  if (limits.default_new_tokens > limits.max_new_tokens)
    throw std::invalid_argument(
        "ServiceConfig.limits.default_new_tokens must be <= limits.max_new_tokens");
  if (prefill_per_token.count() < 0 || decode_per_token.count() < 0)
    throw std::invalid_argument("ServiceConfig: simulated times per token must be >= 0");
  if (retry_backoff.count() < 0)
    throw std::invalid_argument("ServiceConfig.retry_backoff must be >= 0");
}

GenerateService::GenerateService(kvscope::Runtime& runtime, ServiceConfig config)
    : runtime_(runtime), config_(std::move(config)) {
  config_.validate();
}

void GenerateService::count_response(int status) noexcept {
  const auto* found = std::find(kStatuses.begin(), kStatuses.end(), status);
  responses_[static_cast<std::size_t>(found - kStatuses.begin())].fetch_add(
      1, std::memory_order_relaxed);
}

asio::awaitable<HttpResponse> GenerateService::handle(HttpRequest request) {
  HttpResponse response;
  try {
    response = co_await route(request);
  } catch (const std::exception& e) {
    response = error_response(500, fmt::format("internal error: {}", e.what()));
  }
  count_response(response.status);
  co_return response;
}

asio::awaitable<HttpResponse> GenerateService::route(const HttpRequest& request) {
  const std::string_view path = request.path();
  const bool get = request.method == "GET";
  if (path == "/v1/generate") {
    if (request.method == "POST") co_return co_await generate(request);
    HttpResponse wrong = error_response(405, "use POST for /v1/generate");
    wrong.headers.emplace_back("Allow", "POST");
    co_return wrong;
  }
  if (path != "/metrics" && path != "/snapshot" && path != "/healthz")
    co_return error_response(
        404, fmt::format("no such path \"{}\" (try POST /v1/generate, GET /metrics, "
                         "/snapshot, /healthz)",
                         path));
  if (!get) {
    HttpResponse wrong = error_response(405, fmt::format("use GET for {}", path));
    wrong.headers.emplace_back("Allow", "GET");
    co_return wrong;
  }
  if (path == "/metrics") co_return metrics_page();
  if (path == "/snapshot") co_return snapshot_page();
  co_return health_page();
}

asio::awaitable<HttpResponse> GenerateService::generate(const HttpRequest& request) {
  auto parsed = parse_generate_request(request.body, config_.limits);
  if (const auto* error = std::get_if<ApiError>(&parsed))
    co_return error_response(error->status, error->message);
  co_return co_await run_generation(std::move(std::get<GenerateRequest>(parsed)));
}

asio::awaitable<HttpResponse> GenerateService::run_generation(GenerateRequest parsed) {
  kvscope::ExtraKeys extras;
  if (!parsed.tenant.empty()) {
    extras.salt = kvscope::CacheSalt::from_string(parsed.tenant);
    co_await name_tenant(parsed.tenant, *extras.salt);
  }
  const kvscope::RequestId id{next_request_id_.fetch_add(1, std::memory_order_relaxed)};
  const auto request = kvscope::Request::with_tokens(id, parsed.tokens, extras);
  const kvscope::ShardId shard = runtime_.route(request);
  const std::uint32_t block_size = runtime_.config().cache.block_size;

  kvscope::Result<kvscope::AllocateResult> admitted = co_await runtime_.allocate(shard, request);
  for (std::uint32_t retry = 0;
       !admitted && admitted.status() == Status::not_enough_blocks && retry < config_.admit_retries;
       ++retry) {
    co_await sleep_for(config_.retry_backoff);  // other requests free blocks meanwhile
    admitted = co_await runtime_.allocate(shard, request);
  }
  if (!admitted)
    co_return refused_allocation(admitted.status(), request.token_count(),
                                 runtime_.shard_blocks(shard), block_size);

  GenerateOutcome outcome{.request_id = id.value,
                          .shard = shard.value,
                          .prompt_tokens = request.token_count(),
                          .cached_tokens = admitted->lookup.hit_tokens};
  co_await sleep_for(config_.prefill_per_token * (outcome.prompt_tokens - outcome.cached_tokens));

  // Decode one block's worth of tokens per append (a scheduler step).
  Status decode_status = Status::ok;
  std::vector<kvscope::TokenId> step_tokens;
  kvscope::TokenId previous = parsed.tokens.back();
  while (outcome.generated_tokens < parsed.max_tokens) {
    const std::uint32_t n = std::min(block_size, parsed.max_tokens - outcome.generated_tokens);
    step_tokens.clear();
    for (std::uint32_t i = 0; i < n; ++i)
      step_tokens.push_back(previous = next_token(previous, outcome.generated_tokens + i));
    co_await sleep_for(config_.decode_per_token * n);
    decode_status = (co_await runtime_.append(shard, id, step_tokens)).status();
    if (decode_status != Status::ok) break;
    outcome.generated_tokens += n;
  }
  outcome.decode_cut_short = decode_status == Status::not_enough_blocks;
  const std::uint32_t total_tokens = outcome.prompt_tokens + outcome.generated_tokens;
  outcome.blocks = (total_tokens + block_size - 1) / block_size;

  const kvscope::Result<kvscope::FreeResult> freed = co_await runtime_.free(shard, id);
  if (decode_status != Status::ok && !outcome.decode_cut_short)
    co_return error_response(500,
                             fmt::format("append failed: {}", kvscope::to_string(decode_status)));
  if (!freed)
    co_return error_response(500,
                             fmt::format("free failed: {}", kvscope::to_string(freed.status())));
  generations_.fetch_add(1, std::memory_order_relaxed);
  co_return HttpResponse{.status = 200, .body = outcome_json(outcome)};
}

asio::awaitable<void> GenerateService::name_tenant(const std::string& tenant,
                                                   const kvscope::CacheSalt& salt) {
  {
    const std::lock_guard lock(tenants_mutex_);
    if (named_tenants_.contains(tenant) ||
        named_tenants_.size() >= runtime_.config().metrics.max_tenants)
      co_return;
    named_tenants_.insert(tenant);
  }
  auto set_name = [salt, tenant](kvscope::MeteredPrefixCache& cache,
                                 kvscope::MultiLevelCacheMetrics&) {
    cache.metrics().set_tenant_name(salt, tenant);
    return kvscope::Result<void>{};
  };
  (void)co_await runtime_.for_each_shard(std::move(set_name));  // not_running: shutting down
}

HttpResponse GenerateService::metrics_page() const {
  const kvscope::SnapshotPtr snapshot = runtime_.snapshot();
  if (!snapshot) return error_response(503, "no snapshot published yet");
  std::string text = to_prometheus(*snapshot, runtime_.config().metrics);
  text +=
      "# HELP serving_stack_http_responses_total HTTP responses of the example server, by status "
      "code.\n# TYPE serving_stack_http_responses_total counter\n";
  for (std::size_t i = 0; i <= kStatuses.size(); ++i) {
    const std::string code = i < kStatuses.size() ? std::to_string(kStatuses[i]) : "other";
    text += fmt::format("serving_stack_http_responses_total{{code=\"{}\"}} {}\n", code,
                        responses_[i].load(std::memory_order_relaxed));
  }
  return HttpResponse{.status = 200,
                      .content_type = "text/plain; version=0.0.4; charset=utf-8",
                      .body = std::move(text)};
}

HttpResponse GenerateService::snapshot_page() const {
  const kvscope::SnapshotPtr snapshot = runtime_.snapshot();
  if (!snapshot) return error_response(503, "no snapshot published yet");
  return HttpResponse{.status = 200, .body = to_json(*snapshot)};
}

HttpResponse GenerateService::health_page() const {
  const kvscope::SnapshotPtr snapshot = runtime_.snapshot();
  const bool draining = draining_.load(std::memory_order_relaxed);
  const bool ok = !draining && runtime_.running();
  return json_page({{"status", ok ? "ok" : "draining"},
                    {"shards", runtime_.shard_count()},
                    {"snapshot_sequence", snapshot ? snapshot->sequence : 0},
                    {"generations", generations()}},
                   ok ? 200 : 503);
}

}  // namespace serving_stack
