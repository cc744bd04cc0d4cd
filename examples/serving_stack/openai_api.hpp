// serving_stack/openai_api.hpp - the bodies of OpenAI's completion endpoints
// (POST /v1/completions, POST /v1/chat/completions, GET /v1/models): request
// parsing and validation, and the response, stream-chunk and usage JSON.
//
// What is accepted (anything else is refused with 400 and the field's name,
// so a misspelt field is an error rather than silently ignored):
//   model        required; must be the served model's name (else 404,
//                code "model_not_found").
//   prompt       (completions) a string, an array of token ids, or an array
//                of strings or of token-id arrays: a batch, one choice each.
//   messages     (chat) [{role, content}], role one of system, developer,
//                user, assistant; content a string or an array of
//                {"type": "text", "text": ...} parts. Rendered by the chat
//                template of toy_model.hpp.
//   max_tokens   0 .. limits.max_new_tokens (default limits.default_new_tokens);
//                chat also takes max_completion_tokens (one of the two).
//   stream, stream_options.include_usage   server-sent events.
//   cache_salt   vLLM's per-tenant salt: 1-64 characters of [A-Za-z0-9_.-];
//                requests without one share the default (unsalted) cache.
//   user         OpenAI's end-user id: accepted, not used.
//   temperature, top_p, seed, presence_penalty, frequency_penalty
//                accepted and ignored: the example's model is deterministic.
//   n, best_of (1), echo (false), logprobs, top_logprobs, stop, suffix (null)
//                accepted only at those values; anything else is refused
//                because the example cannot honour it.
//
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "generate_api.hpp"
#include "kvscope/types.hpp"

namespace serving_stack {

enum class OpenAiEndpoint { completions, chat_completions };

struct OpenAiLimits {
  GenerateLimits generation{};
  /// Prompts in one completions batch at most.
  std::uint32_t max_batch_prompts = 64;
};

struct CompletionRequest {
  OpenAiEndpoint endpoint = OpenAiEndpoint::completions;
  std::string model;
  /// One per choice; never empty, no prompt empty.
  std::vector<std::vector<kvscope::TokenId>> prompts;
  std::uint32_t max_tokens = 0;
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage
  std::string cache_salt;      ///< empty: the shared default
};

/// Parses and validates a body for `endpoint`. `served_model` is the only
/// model name accepted.
std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body,
                                                                   OpenAiEndpoint endpoint,
                                                                   std::string_view served_model,
                                                                   const OpenAiLimits& limits);

/// What one choice (one prompt) produced.
struct ChoiceOutcome {
  std::uint32_t prompt_tokens = 0;
  std::uint32_t cached_tokens = 0;  ///< prompt tokens served from the prefix cache
  std::vector<kvscope::TokenId> generated{};
  /// "length" (max_tokens reached, or the pool ran out mid-decode: then
  /// fewer tokens than max_tokens were generated).
  std::string_view finish_reason = "length";
};

/// usage: prompt_tokens, completion_tokens, total_tokens and
/// prompt_tokens_details.cached_tokens, summed over `choices`.
nlohmann::json usage_json(const std::vector<ChoiceOutcome>& choices);

/// Identity of one response: "cmpl-N" / "chatcmpl-N", the creation time
/// (Unix seconds) and the model.
struct ResponseIdentity {
  std::string id;
  std::int64_t created = 0;
  std::string model;
};

/// The whole (non-streamed) response: object "text_completion" or
/// "chat.completion", one choice per outcome, usage.
std::string completion_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                            const std::vector<ChoiceOutcome>& choices);

/// One streamed chunk for choice `index`: `text` as the choice's text
/// (completions) or delta content (chat; `first` adds the assistant role);
/// `finish_reason` set on the choice's last chunk. With include_usage every
/// chunk carries "usage": null, as OpenAI's do.
struct ChunkContent {
  std::uint32_t index = 0;
  std::string text{};
  bool first = false;
  std::optional<std::string_view> finish_reason{};
};
std::string chunk_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                       const ChunkContent& content, bool include_usage);

/// The last chunk of a stream with include_usage: no choices, the usage.
std::string usage_chunk_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                             const std::vector<ChoiceOutcome>& choices);

/// GET /v1/models: the one served model.
std::string models_json(std::string_view model, std::int64_t created);

}  // namespace serving_stack
