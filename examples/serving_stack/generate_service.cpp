#include "generate_service.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "kvscope/export/json.hpp"
#include "kvscope/export/prometheus.hpp"

namespace serving_stack {
namespace {

using kvscope::Status;

HttpResponse json_page(const nlohmann::json& body, int status = 200) {
  return HttpResponse{.status = status, .body = body.dump()};
}

/// /v1/generate returns no text: the decoded tokens are only counted.
class DiscardingSink final : public DecodeSink {
 public:
  // (The parameter is named: g++ 12 mishandles unnamed coroutine parameters.)
  asio::awaitable<bool> on_tokens(std::span<const kvscope::TokenId> tokens) override {
    static_cast<void>(tokens);
    co_return true;
  }
};

HttpResponse wrong_method(std::string_view path, std::string_view allowed) {
  HttpResponse wrong = error_response(405, fmt::format("use {} for {}", allowed, path));
  wrong.headers.emplace_back("Allow", std::string(allowed));
  return wrong;
}

GenerationConfig generation_config(const ServiceConfig& config) {
  return GenerationConfig{.prefill_per_token = config.prefill_per_token,
                          .decode_per_token = config.decode_per_token,
                          .admit_retries = config.admit_retries,
                          .retry_backoff = config.retry_backoff};
}

ServiceConfig validated(ServiceConfig config) {
  config.validate();
  return config;
}

OpenAiConfig openai_config(const ServiceConfig& config) {
  return OpenAiConfig{
      .model_name = config.model_name,
      .limits = {.generation = config.limits, .max_batch_prompts = config.max_batch_prompts}};
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
  if (model_name.empty()) throw std::invalid_argument("ServiceConfig.model_name must not be empty");
  if (max_batch_prompts == 0)
    throw std::invalid_argument("ServiceConfig.max_batch_prompts must be >= 1");
}

GenerateService::GenerateService(kvscope::Runtime& runtime, ServiceConfig config)
    : runtime_(runtime),
      config_(validated(std::move(config))),
      generator_(runtime, generation_config(config_)),
      openai_(generator_, openai_config(config_)) {}

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
  const bool post = request.method == "POST";
  // Awaited into a named response, never `co_return co_await`: g++ 12 has
  // destroyed that temporary twice here.
  HttpResponse response;
  if (path == "/v1/generate") {
    if (!post) co_return wrong_method(path, "POST");
    response = co_await generate(request);
    co_return response;
  }
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (!post) co_return wrong_method(path, "POST");
    const OpenAiEndpoint endpoint =
        path == "/v1/completions" ? OpenAiEndpoint::completions : OpenAiEndpoint::chat_completions;
    response = co_await openai_.complete(request, endpoint);
    co_return response;
  }
  if (path != "/v1/models" && path != "/metrics" && path != "/snapshot" && path != "/healthz")
    co_return error_response(
        404, fmt::format("no such path \"{}\" (try POST /v1/completions, /v1/chat/completions, "
                         "/v1/generate; GET /v1/models, /metrics, /snapshot, /healthz)",
                         path));
  if (request.method != "GET") co_return wrong_method(path, "GET");
  if (path == "/v1/models") co_return openai_.models();
  if (path == "/metrics") co_return metrics_page();
  if (path == "/snapshot") co_return snapshot_page();
  co_return health_page();
}

asio::awaitable<HttpResponse> GenerateService::generate(const HttpRequest& request) {
  auto parsed = parse_generate_request(request.body, config_.limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) co_return error_response(*error);
  GenerateRequest generate = std::move(std::get<GenerateRequest>(parsed));
  const auto prompt_tokens = static_cast<std::uint32_t>(generate.tokens.size());
  kvscope::Result<Admission> admission =
      co_await generator_.admit(std::move(generate.tokens), generate.tenant);
  if (!admission)
    co_return refused_admission(admission.status(), prompt_tokens, generator_,
                                TooLargeAnswer{.status = 422});
  DiscardingSink sink;
  const DecodeResult decoded =
      co_await generator_.decode_and_free(*admission, generate.max_tokens, sink);
  if (decoded.failure != Status::ok) co_return decode_failed(decoded.failure);
  const std::uint32_t block_size = generator_.block_size();
  const std::uint32_t total_tokens = admission->prompt_tokens + decoded.generated_tokens;
  const GenerateOutcome outcome{.request_id = admission->id.value,
                                .shard = admission->shard.value,
                                .prompt_tokens = admission->prompt_tokens,
                                .cached_tokens = admission->cached_tokens,
                                .generated_tokens = decoded.generated_tokens,
                                .blocks = (total_tokens + block_size - 1) / block_size,
                                .decode_cut_short = decoded.cut_short};
  co_return HttpResponse{.status = 200, .body = outcome_json(outcome)};
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
