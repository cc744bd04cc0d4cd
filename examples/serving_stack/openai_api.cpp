#include "openai_api.hpp"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>

namespace serving_stack {
namespace {

using Json = nlohmann::json;
using Tokens = std::vector<kvscope::TokenId>;

ApiError invalid(std::string param, std::string message) {
  return ApiError{.status = 400, .message = std::move(message), .param = std::move(param)};
}

std::optional<ApiError> token_ids(const Json& array, const std::string& param,
                                  const GenerateLimits& limits, Tokens& out) {
  if (array.size() > limits.max_prompt_tokens)
    return invalid(param, fmt::format("\"{}\" has {} tokens; the limit is {}", param, array.size(),
                                      limits.max_prompt_tokens));
  for (std::size_t i = 0; i < array.size(); ++i) {
    const auto id = bounded_integer(array[i], std::numeric_limits<kvscope::TokenId>::max());
    if (!id)
      return invalid(param, fmt::format("\"{}\"[{}] is not a token id (an integer 0 .. {})", param,
                                        i, std::numeric_limits<kvscope::TokenId>::max()));
    out.push_back(static_cast<kvscope::TokenId>(*id));
  }
  return std::nullopt;
}

/// A prompt's tokens, checked against the limit and for emptiness.
std::optional<ApiError> checked_prompt(Tokens tokens, const std::string& param,
                                       const GenerateLimits& limits, std::vector<Tokens>& prompts) {
  if (tokens.empty()) return invalid(param, fmt::format("\"{}\" has no tokens", param));
  if (tokens.size() > limits.max_prompt_tokens)
    return invalid(param, fmt::format("\"{}\" has {} tokens; the limit is {}", param, tokens.size(),
                                      limits.max_prompt_tokens));
  prompts.push_back(std::move(tokens));
  return std::nullopt;
}

/// One element of a prompt batch: a string or an array of token ids.
std::optional<ApiError> batch_prompt(const Json& item, const std::string& param,
                                     const GenerateLimits& limits, std::vector<Tokens>& prompts) {
  if (item.is_string())
    return checked_prompt(tokenize(item.get<std::string>()), param, limits, prompts);
  if (!item.is_array())
    return invalid(param, fmt::format("\"{}\" must be a string or an array of token ids", param));
  Tokens tokens;
  if (auto error = token_ids(item, param, limits, tokens)) return error;
  return checked_prompt(std::move(tokens), param, limits, prompts);
}

std::optional<ApiError> read_prompt(const Json& value, const OpenAiLimits& limits,
                                    std::vector<Tokens>& prompts) {
  const GenerateLimits& generation = limits.generation;
  if (value.is_string())
    return checked_prompt(tokenize(value.get<std::string>()), "prompt", generation, prompts);
  if (!value.is_array() || value.empty())
    return invalid("prompt",
                   "\"prompt\" must be a string, an array of token ids, or a non-empty array of "
                   "strings or of token-id arrays");
  if (value[0].is_number()) {  // one prompt given as token ids
    Tokens tokens;
    if (auto error = token_ids(value, "prompt", generation, tokens)) return error;
    return checked_prompt(std::move(tokens), "prompt", generation, prompts);
  }
  if (value.size() > limits.max_batch_prompts)
    return invalid("prompt", fmt::format("\"prompt\" has {} prompts; the limit is {}", value.size(),
                                         limits.max_batch_prompts));
  for (std::size_t i = 0; i < value.size(); ++i)
    if (auto error = batch_prompt(value[i], fmt::format("prompt[{}]", i), generation, prompts))
      return error;
  return std::nullopt;
}

/// A message's content: a string or an array of text parts.
std::optional<ApiError> message_content(const Json& value, const std::string& param,
                                        std::string& out) {
  if (value.is_string()) {
    out = value.get<std::string>();
    return std::nullopt;
  }
  if (!value.is_array())
    return invalid(param, fmt::format("\"{}\" must be a string or an array of text parts", param));
  for (std::size_t i = 0; i < value.size(); ++i) {
    const Json& part = value[i];
    const bool text_part = part.is_object() && part.size() == 2 && part.contains("type") &&
                           part["type"] == "text" && part.contains("text") &&
                           part["text"].is_string();
    if (!text_part)
      return invalid(fmt::format("{}[{}]", param, i),
                     fmt::format("\"{}[{}]\" must be {{\"type\": \"text\", \"text\": \"...\"}} "
                                 "(the example takes text only)",
                                 param, i));
    if (i > 0) out += ' ';
    out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

std::optional<ApiError> read_message(const Json& value, std::size_t i,
                                     std::vector<ChatMessage>& messages) {
  const std::string param = fmt::format("messages[{}]", i);
  if (!value.is_object())
    return invalid(param, fmt::format("\"{}\" must be an object with role and content", param));
  ChatMessage message;
  for (const auto& [key, field] : value.items()) {
    if (key == "role") {
      const bool known = field.is_string() && (field == "system" || field == "developer" ||
                                               field == "user" || field == "assistant");
      if (!known)
        return invalid(param + ".role", fmt::format("\"{}.role\" must be one of system, "
                                                    "developer, user, assistant",
                                                    param));
      message.role = field.get<std::string>();
    } else if (key == "content") {
      if (auto error = message_content(field, param + ".content", message.content)) return error;
    } else {
      return invalid(param + "." + key,
                     fmt::format("unknown field \"{}.{}\" (known: role, content)", param, key));
    }
  }
  if (message.role.empty() || !value.contains("content"))
    return invalid(param, fmt::format("\"{}\" needs a role and a content", param));
  messages.push_back(std::move(message));
  return std::nullopt;
}

std::optional<ApiError> read_messages(const Json& value, const GenerateLimits& limits,
                                      std::vector<Tokens>& prompts) {
  if (!value.is_array() || value.empty())
    return invalid("messages", "\"messages\" must be a non-empty array of messages");
  std::vector<ChatMessage> messages;
  for (std::size_t i = 0; i < value.size(); ++i)
    if (auto error = read_message(value[i], i, messages)) return error;
  return checked_prompt(tokenize(render_chat(messages)), "messages", limits, prompts);
}

std::optional<ApiError> read_stream_options(const Json& value, CompletionRequest& out) {
  if (!value.is_object()) return invalid("stream_options", "\"stream_options\" must be an object");
  for (const auto& [key, field] : value.items()) {
    if (key != "include_usage" || !field.is_boolean())
      return invalid("stream_options." + key,
                     "\"stream_options\" takes only \"include_usage\": true or false");
    out.include_usage = field.get<bool>();
  }
  return std::nullopt;
}

/// Fields the example cannot honour, accepted at their neutral value only.
std::optional<ApiError> neutral_only(const std::string& key, const Json& value) {
  bool neutral = false;
  std::string_view expected;
  if (key == "n" || key == "best_of") {
    neutral = value.is_null() || value == 1;
    expected = "1";
  } else if (key == "echo") {
    neutral = value.is_null() || value == false;
    expected = "false";
  } else if (key == "logprobs") {
    neutral = value.is_null() || value == false;
    expected = "null or false";
  } else {  // top_logprobs, stop, suffix
    neutral = value.is_null();
    expected = "null";
  }
  if (neutral) return std::nullopt;
  return invalid(key, fmt::format("\"{}\" must be {}: the example's model does not support it", key,
                                  expected));
}

bool is_number_or_null(const Json& value) { return value.is_null() || value.is_number(); }

class RequestReader {
 public:
  RequestReader(OpenAiEndpoint endpoint, const OpenAiLimits& limits)
      : endpoint_(endpoint), limits_(limits) {
    request_.endpoint = endpoint;
    request_.max_tokens = limits.generation.default_new_tokens;
  }

  std::optional<ApiError> field(const std::string& key, const Json& value) {
    const bool chat = endpoint_ == OpenAiEndpoint::chat_completions;
    if (key == "model") {
      if (!value.is_string()) return invalid("model", "\"model\" must be a string");
      request_.model = value.get<std::string>();
      return std::nullopt;
    }
    if (key == (chat ? "messages" : "prompt"))
      return chat ? read_messages(value, limits_.generation, request_.prompts)
                  : read_prompt(value, limits_, request_.prompts);
    if (key == "max_tokens" || (chat && key == "max_completion_tokens"))
      return max_tokens(key, value);
    if (key == "stream") {
      if (!value.is_boolean() && !value.is_null())
        return invalid("stream", "\"stream\" must be true or false");
      request_.stream = value.is_boolean() && value.get<bool>();
      return std::nullopt;
    }
    if (key == "stream_options")
      return value.is_null() ? std::nullopt : read_stream_options(value, request_);
    if (key == "cache_salt") {
      if (!value.is_string() || !valid_tenant(value.get_ref<const std::string&>()))
        return invalid("cache_salt", fmt::format("\"cache_salt\" must be {}", kTenantRule));
      request_.cache_salt = value.get<std::string>();
      return std::nullopt;
    }
    if (key == "user") {
      if (!value.is_string()) return invalid("user", "\"user\" must be a string");
      return std::nullopt;
    }
    if (key == "temperature" || key == "top_p" || key == "seed" || key == "presence_penalty" ||
        key == "frequency_penalty") {
      if (!is_number_or_null(value))
        return invalid(key, fmt::format("\"{}\" must be a number", key));
      return std::nullopt;
    }
    if (key == "n" || key == "echo" || key == "logprobs" || key == "stop" ||
        (chat ? key == "top_logprobs" : (key == "best_of" || key == "suffix")))
      return neutral_only(key, value);
    return invalid(key, fmt::format("unknown field \"{}\"", key));
  }

  std::variant<CompletionRequest, ApiError> finish(const Json& document,
                                                   std::string_view served_model) && {
    const bool chat = endpoint_ == OpenAiEndpoint::chat_completions;
    if (!document.contains("model")) return invalid("model", "\"model\" is required");
    if (request_.prompts.empty())
      return invalid(chat ? "messages" : "prompt",
                     fmt::format("\"{}\" is required", chat ? "messages" : "prompt"));
    if (chat && document.contains("max_tokens") && document.contains("max_completion_tokens"))
      return invalid("max_completion_tokens",
                     "give one of \"max_tokens\" and \"max_completion_tokens\"");
    if (request_.include_usage && !request_.stream)
      return invalid("stream_options", "\"stream_options\" is allowed only with \"stream\": true");
    if (request_.model != served_model)
      return ApiError{.status = 404,
                      .message = fmt::format("the model \"{}\" does not exist; this server serves "
                                             "\"{}\" (GET /v1/models)",
                                             request_.model, served_model),
                      .param = "model",
                      .code = "model_not_found"};
    return std::move(request_);
  }

 private:
  std::optional<ApiError> max_tokens(const std::string& key, const Json& value) {
    if (value.is_null()) return std::nullopt;
    const auto n = bounded_integer(value, limits_.generation.max_new_tokens);
    if (!n)
      return invalid(key, fmt::format("\"{}\" must be an integer 0 .. {}", key,
                                      limits_.generation.max_new_tokens));
    request_.max_tokens = static_cast<std::uint32_t>(*n);
    return std::nullopt;
  }

  OpenAiEndpoint endpoint_;
  const OpenAiLimits& limits_;
  CompletionRequest request_;
};

std::string_view object_name(OpenAiEndpoint endpoint, bool chunk) {
  if (endpoint == OpenAiEndpoint::completions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

Json response_head(OpenAiEndpoint endpoint, const ResponseIdentity& identity, bool chunk) {
  return {{"id", identity.id},
          {"object", object_name(endpoint, chunk)},
          {"created", identity.created},
          {"model", identity.model}};
}

Json finish_reason_json(std::optional<std::string_view> reason) {
  return reason ? Json(*reason) : Json(nullptr);
}

}  // namespace

std::variant<CompletionRequest, ApiError> parse_completion_request(std::string_view body,
                                                                   OpenAiEndpoint endpoint,
                                                                   std::string_view served_model,
                                                                   const OpenAiLimits& limits) {
  const Json document = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded())
    return ApiError{.status = 400, .message = "the body is not valid JSON"};
  if (!document.is_object())
    return ApiError{.status = 400, .message = "the body must be a JSON object"};
  RequestReader reader(endpoint, limits);
  for (const auto& [key, value] : document.items())
    if (auto error = reader.field(key, value)) return std::move(*error);
  return std::move(reader).finish(document, served_model);
}

Json usage_json(const std::vector<ChoiceOutcome>& choices) {
  std::uint64_t prompt = 0, cached = 0, completion = 0;
  for (const ChoiceOutcome& choice : choices) {
    prompt += choice.prompt_tokens;
    cached += choice.cached_tokens;
    completion += choice.generated.size();
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string completion_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                            const std::vector<ChoiceOutcome>& choices) {
  Json body = response_head(endpoint, identity, /*chunk=*/false);
  Json list = Json::array();
  for (std::size_t i = 0; i < choices.size(); ++i) {
    Json choice = {
        {"index", i}, {"finish_reason", choices[i].finish_reason}, {"logprobs", nullptr}};
    const std::string text = detokenize(choices[i].generated);
    if (endpoint == OpenAiEndpoint::completions)
      choice["text"] = text;
    else
      choice["message"] = {{"role", "assistant"}, {"content", text}};
    list.push_back(std::move(choice));
  }
  body["choices"] = std::move(list);
  body["usage"] = usage_json(choices);
  return body.dump();
}

std::string chunk_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                       const ChunkContent& content, bool include_usage) {
  Json body = response_head(endpoint, identity, /*chunk=*/true);
  Json choice = {{"index", content.index},
                 {"finish_reason", finish_reason_json(content.finish_reason)},
                 {"logprobs", nullptr}};
  if (endpoint == OpenAiEndpoint::completions) {
    choice["text"] = content.text;
  } else {
    Json delta = {{"content", content.text}};
    if (content.first) delta["role"] = "assistant";
    choice["delta"] = std::move(delta);
  }
  body["choices"] = Json::array({std::move(choice)});
  if (include_usage) body["usage"] = nullptr;
  return body.dump();
}

std::string usage_chunk_json(OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                             const std::vector<ChoiceOutcome>& choices) {
  Json body = response_head(endpoint, identity, /*chunk=*/true);
  body["choices"] = Json::array();
  body["usage"] = usage_json(choices);
  return body.dump();
}

std::string models_json(std::string_view model, std::int64_t created) {
  const Json body = {
      {"object", "list"},
      {"data",
       Json::array(
           {{{"id", model}, {"object", "model"}, {"created", created}, {"owned_by", "kvscope"}}})}};
  return body.dump();
}

}  // namespace serving_stack
