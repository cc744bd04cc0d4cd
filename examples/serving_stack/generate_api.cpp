#include "generate_api.hpp"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace serving_stack {
namespace {

using Json = nlohmann::json;

std::optional<ApiError> read_tokens(const Json& value, const GenerateLimits& limits,
                                    std::vector<kvscope::TokenId>& out) {
  if (!value.is_array()) return ApiError{400, "\"tokens\" must be an array of token ids"};
  if (value.size() > limits.max_prompt_tokens)
    return ApiError{400, fmt::format("\"tokens\" has {} entries; the limit is {}", value.size(),
                                     limits.max_prompt_tokens)};
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto id = bounded_integer(value[i], std::numeric_limits<kvscope::TokenId>::max());
    if (!id)
      return ApiError{400, fmt::format("\"tokens\"[{}] is not a token id (an integer 0 .. {})", i,
                                       std::numeric_limits<kvscope::TokenId>::max())};
    out.push_back(static_cast<kvscope::TokenId>(*id));
  }
  return std::nullopt;
}

std::optional<ApiError> read_prompt(const Json& value, const GenerateLimits& limits,
                                    std::vector<kvscope::TokenId>& out) {
  if (!value.is_string()) return ApiError{400, "\"prompt\" must be a string"};
  out = tokenize(value.get_ref<const std::string&>());
  if (out.size() > limits.max_prompt_tokens)
    return ApiError{400, fmt::format("\"prompt\" has {} tokens; the limit is {}", out.size(),
                                     limits.max_prompt_tokens)};
  return std::nullopt;
}

std::optional<ApiError> read_field(const std::string& key, const Json& value,
                                   const GenerateLimits& limits, GenerateRequest& out) {
  if (key == "tokens") return read_tokens(value, limits, out.tokens);
  if (key == "prompt") return read_prompt(value, limits, out.tokens);
  if (key == "tenant") {
    if (!value.is_string() || !valid_tenant(value.get_ref<const std::string&>()))
      return ApiError{400, fmt::format("\"tenant\" must be {}", kTenantRule)};
    out.tenant = value.get<std::string>();
    return std::nullopt;
  }
  if (key == "max_tokens") {
    const auto n = bounded_integer(value, limits.max_new_tokens);
    if (!n)
      return ApiError{
          400, fmt::format("\"max_tokens\" must be an integer 0 .. {}", limits.max_new_tokens)};
    out.max_tokens = static_cast<std::uint32_t>(*n);
    return std::nullopt;
  }
  return ApiError{
      400, fmt::format("unknown field \"{}\" (known: tokens, prompt, tenant, max_tokens)", key)};
}

}  // namespace

HttpResponse error_response(const ApiError& error) {
  return error_response(error.status, error.message, error.param, error.code);
}

bool valid_tenant(std::string_view tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  for (const char c : tenant) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<std::uint64_t> bounded_integer(const Json& value, std::uint64_t max) {
  if (!value.is_number_integer()) return std::nullopt;
  if (value.is_number_unsigned()) {
    const auto n = value.get<std::uint64_t>();
    return n <= max ? std::optional(n) : std::nullopt;
  }
  const auto n = value.get<std::int64_t>();
  if (n < 0 || static_cast<std::uint64_t>(n) > max) return std::nullopt;
  return static_cast<std::uint64_t>(n);
}

std::variant<GenerateRequest, ApiError> parse_generate_request(std::string_view body,
                                                               const GenerateLimits& limits) {
  const Json document = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return ApiError{400, "the body is not valid JSON"};
  if (!document.is_object()) return ApiError{400, "the body must be a JSON object"};
  const bool has_tokens = document.contains("tokens");
  if (has_tokens == document.contains("prompt"))
    return ApiError{400, "give exactly one of \"tokens\" and \"prompt\""};
  GenerateRequest request;
  request.max_tokens = limits.default_new_tokens;
  for (const auto& [key, value] : document.items())
    if (auto error = read_field(key, value, limits, request)) return std::move(*error);
  if (request.tokens.empty())
    return ApiError{400, has_tokens ? "\"tokens\" is empty" : "\"prompt\" has no tokens"};
  return request;
}

std::string outcome_json(const GenerateOutcome& outcome) {
  const Json body = {
      {"request_id", outcome.request_id},
      {"shard", outcome.shard},
      {"prompt_tokens", outcome.prompt_tokens},
      {"cached_tokens", outcome.cached_tokens},
      {"generated_tokens", outcome.generated_tokens},
      {"blocks", outcome.blocks},
      {"finish_reason", outcome.decode_cut_short ? "pool_full" : "length"},
  };
  return body.dump();
}

}  // namespace serving_stack
