// serving_stack/generate_api.hpp - the body of POST /v1/generate: parsing
// and validation (nlohmann/json, already a kvscope dependency) and the
// response body. The tokenizer is in toy_model.hpp.
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
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "http.hpp"
#include "kvscope/types.hpp"
#include "toy_model.hpp"

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

/// Why a body was refused: the HTTP status (400), a message that names the
/// field, and for OpenAI's error shape the field's path ("messages[2].role")
/// and a machine-readable code; empty for none.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param{};
  std::string code{};
};

/// The error response for a refused body (OpenAI's shape, http.hpp).
HttpResponse error_response(const ApiError& error);

/// A tenant name or cache salt: 1-64 characters of [A-Za-z0-9_.-].
bool valid_tenant(std::string_view tenant);
/// The rule valid_tenant() checks, as refusals state it.
inline constexpr std::string_view kTenantRule = "1-64 characters of A-Z a-z 0-9 _ . -";

/// A non-negative integer no larger than `max`, or nullopt (floats,
/// negatives, strings and out-of-range numbers are all refused).
std::optional<std::uint64_t> bounded_integer(const nlohmann::json& value, std::uint64_t max);

std::variant<GenerateRequest, ApiError> parse_generate_request(std::string_view body,
                                                               const GenerateLimits& limits);

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
