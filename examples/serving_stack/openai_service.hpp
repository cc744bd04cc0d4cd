// serving_stack/openai_service.hpp - OpenAI's completion endpoints over the
// Generator:
//
//   GET  /v1/models             the one served model.
//   POST /v1/completions        body: see openai_api.hpp; one choice per prompt.
//   POST /v1/chat/completions   body: see openai_api.hpp.
//
// usage.prompt_tokens_details.cached_tokens is the prompt's prefix-cache hit,
// exactly what kvscope counts in kvscope_prefix_cache_hits_total. The tenant
// is the body's "cache_salt" or the X-Cache-Salt header (both: they must
// agree); without either, requests share the default cache.
//
// Without "stream" the answer comes once every choice is decoded. With
// "stream": true it is server-sent events: the first prompt is admitted
// before the response starts (so a refusal is still an HTTP error), then one
// `data: {chunk}` event per decode step (a block's worth of tokens), a
// closing chunk per choice with its finish_reason, the usage chunk when
// stream_options.include_usage is set, and `data: [DONE]`. The prompts of a
// batch run one after the other; if a later one cannot be admitted, the
// stream carries `data: {"error": {...}}` and ends. A client that goes away
// stops the decode and frees its blocks.
//
// Errors use OpenAI's shape (http.hpp error_response): 400 bad body (param
// names the field), 404 unknown model ("model_not_found"), 400 a prompt
// larger than a shard's pool ("context_length_exceeded"), 503 pool full
// (with Retry-After) or shutting down. A refused body changes nothing in
// the cache. The prompts of a batch run one after the other: if a later one
// cannot be admitted, the answer is that refusal, and the earlier ones have
// run (their blocks stay cached, their hits are counted).
//
// Thread rules: as Generator; the service itself is immutable after
// construction.
#pragma once

#include <asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generation.hpp"
#include "http.hpp"
#include "openai_api.hpp"

namespace serving_stack {

struct OpenAiConfig {
  std::string model_name = "kvscope-example";
  OpenAiLimits limits{};
};

class OpenAiService {
 public:
  OpenAiService(Generator& generator, OpenAiConfig config);

  HttpResponse models() const;
  asio::awaitable<HttpResponse> complete(const HttpRequest& request, OpenAiEndpoint endpoint);

 private:
  struct StreamJob;

  asio::awaitable<HttpResponse> complete_at_once(CompletionRequest request, std::string tenant);
  asio::awaitable<HttpResponse> start_stream(CompletionRequest request, std::string tenant);
  asio::awaitable<void> stream(std::shared_ptr<StreamJob> job, BodyWriter& writer);
  /// Streams one choice; false when the stream must end (client gone, or a
  /// decode failure already reported).
  asio::awaitable<bool> stream_choice(const StreamJob& job, std::uint32_t index,
                                      Admission admission, BodyWriter& writer,
                                      std::vector<ChoiceOutcome>& choices);
  ResponseIdentity identity(OpenAiEndpoint endpoint, kvscope::RequestId first) const;
  /// The answer for an admission the cache refused.
  HttpResponse refused(kvscope::Status status, std::uint32_t prompt_tokens) const;

  Generator& generator_;
  OpenAiConfig config_;
  std::int64_t created_;  // Unix seconds when the service started: the model's "created"
};

}  // namespace serving_stack
