// serving_stack/generate_api.hpp - the body of POST /v1/generate: parsing
// and validation (nlohmann/json, already a kvscope dependency), the example's
// tokenizer and the response body.
//
// Request body, a JSON object:
//   "tokens":     array of token ids (integers 0 .. 2^32-1), or
//   "prompt":     text, split by tokenize(); exactly one of the two;
//   "tenant":     optional, 1-64 characters of [A-Za-z0-9_.-]: the cache salt,
//                 so tenants never share blocks;
//   "max_tokens": optional decode length, 0 .. limits.max_new_tokens (default 16).
// Any other field is refused, so a misspelt field is an error rather than
// silently ignored.
//
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "kvscope/types.hpp"

namespace serving_stack {

struct GenerateLimits {
  std::uint32_t max_prompt_tokens = 32768;
  std::uint32_t max_new_tokens = 4096;
  std::uint32_t default_new_tokens = 16;
};

struct GenerateRequest {
  std::vector<kvscope::TokenId> tokens;
  std::string tenant;  ///< empty: no salt
  std::uint32_t max_tokens = 0;
};

/// Why a body was refused: the HTTP status (400) and a message that names
/// the field.
struct ApiError {
  int status = 400;
  std::string message;
};

std::variant<GenerateRequest, ApiError> parse_generate_request(std::string_view body,
                                                               const GenerateLimits& limits);

/// The example's tokenizer: splits on ASCII whitespace and maps each word to
/// an id in [1, 50,000] by its FNV-1a hash. Deterministic: equal text gives
/// equal tokens, so repeated prompts share cached blocks.
std::vector<kvscope::TokenId> tokenize(std::string_view text);

/// What a finished generation reports to the client.
struct GenerateOutcome {
  std::uint64_t request_id = 0;
  std::uint32_t shard = 0;
  std::uint32_t prompt_tokens = 0;
  std::uint32_t cached_tokens = 0;     ///< prompt tokens served from the prefix cache
  std::uint32_t generated_tokens = 0;  ///< < max_tokens when the pool ran out mid-decode
  std::uint32_t blocks = 0;            ///< blocks the request held at the end
  bool decode_cut_short = false;
};

std::string outcome_json(const GenerateOutcome& outcome);

}  // namespace serving_stack
