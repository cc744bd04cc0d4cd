// The serving-stack example's OpenAI request parsing, response shapes and
// toy model (tokenizer, chat template, decoded text), without a server.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "openai_api.hpp"
#include "toy_model.hpp"

namespace serving_stack {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kModel = "m";

CompletionRequest parse_ok(const Json& body, OpenAiEndpoint endpoint = OpenAiEndpoint::completions,
                           const OpenAiLimits& limits = {}) {
  auto parsed = parse_completion_request(body.dump(), endpoint, kModel, limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) {
    ADD_FAILURE() << body.dump() << " refused: " << error->message;
    return {};
  }
  return std::get<CompletionRequest>(std::move(parsed));
}

ApiError parse_error(std::string_view body, OpenAiEndpoint endpoint = OpenAiEndpoint::completions,
                     const OpenAiLimits& limits = {}) {
  auto parsed = parse_completion_request(body, endpoint, kModel, limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) return *error;
  ADD_FAILURE() << body << " was accepted";
  return {};
}

Json chat(Json messages) { return {{"model", "m"}, {"messages", std::move(messages)}}; }

TEST(OpenAiApi, PromptAsTextTokenIdsOrABatch) {
  const auto text = parse_ok({{"model", "m"}, {"prompt", "hello big world"}});
  ASSERT_EQ(text.prompts.size(), 1u);
  EXPECT_EQ(text.prompts[0], tokenize("hello big world"));
  EXPECT_EQ(text.max_tokens, 16u);  // GenerateLimits::default_new_tokens, OpenAI's default too
  EXPECT_FALSE(text.stream);

  const auto ids = parse_ok({{"model", "m"}, {"prompt", {5, 6, 7}}, {"max_tokens", 3}});
  ASSERT_EQ(ids.prompts.size(), 1u);
  EXPECT_EQ(ids.prompts[0], (std::vector<kvscope::TokenId>{5, 6, 7}));
  EXPECT_EQ(ids.max_tokens, 3u);

  const auto batch = parse_ok({{"model", "m"}, {"prompt", {"a b", {1, 2}, "c"}}});
  ASSERT_EQ(batch.prompts.size(), 3u);
  EXPECT_EQ(batch.prompts[1], (std::vector<kvscope::TokenId>{1, 2}));
  EXPECT_EQ(batch.prompts[2], tokenize("c"));
}

TEST(OpenAiApi, StreamingTenancyAndIgnoredSamplingFields) {
  const auto request = parse_ok({{"model", "m"},
                                 {"prompt", "x"},
                                 {"stream", true},
                                 {"stream_options", {{"include_usage", true}}},
                                 {"cache_salt", "acme-1"},
                                 {"user", "someone"},
                                 {"temperature", 0.7},
                                 {"top_p", 1},
                                 {"seed", 42},
                                 {"n", 1},
                                 {"echo", false},
                                 {"stop", nullptr},
                                 {"logprobs", nullptr}});
  EXPECT_TRUE(request.stream);
  EXPECT_TRUE(request.include_usage);
  EXPECT_EQ(request.cache_salt, "acme-1");
}

TEST(OpenAiApi, ChatRendersTheDocumentedTemplate) {
  const auto request = parse_ok(
      chat({{{"role", "system"}, {"content", "Be brief."}},
            {{"role", "user"},
             {"content",
              {{{"type", "text"}, {"text", "Hi"}}, {{"type", "text"}, {"text", "there"}}}}}}),
      OpenAiEndpoint::chat_completions);
  ASSERT_EQ(request.prompts.size(), 1u);
  EXPECT_EQ(request.prompts[0],
            tokenize("<|system|>\nBe brief.\n<|user|>\nHi there\n<|assistant|>\n"));
  const std::vector<ChatMessage> messages{{"user", "a b"}};
  EXPECT_EQ(render_chat(messages), "<|user|>\na b\n<|assistant|>\n");
  // max_completion_tokens is chat's newer name for max_tokens.
  Json body = chat({{{"role", "user"}, {"content", "x"}}});
  body["max_completion_tokens"] = 5;
  EXPECT_EQ(parse_ok(body, OpenAiEndpoint::chat_completions).max_tokens, 5u);
}

TEST(OpenAiApi, BadBodiesNameTheFieldInParam) {
  struct Case {
    std::string body;
    std::string param;
    std::string message_part;
  };
  const OpenAiEndpoint completions = OpenAiEndpoint::completions;
  const std::vector<Case> cases{
      {R"({"model":"m","prompt":"x","bogus":1})", "bogus", "unknown field \"bogus\""},
      {R"({"prompt":"x"})", "model", "\"model\" is required"},
      {R"({"model":"m"})", "prompt", "\"prompt\" is required"},
      {R"({"model":"m","prompt":""})", "prompt", "no tokens"},
      {R"({"model":"m","prompt":[]})", "prompt", "non-empty"},
      {R"({"model":"m","prompt":["a",""]})", "prompt[1]", "\"prompt[1]\" has no tokens"},
      {R"({"model":"m","prompt":[1,4294967296]})", "prompt", "\"prompt\"[1] is not a token id"},
      {R"({"model":"m","prompt":[18446744073709551616]})", "prompt", "is not a token id"},
      {R"({"model":"m","prompt":"x","max_tokens":100000})", "max_tokens", "0 .. 4096"},
      {R"({"model":"m","prompt":"x","max_tokens":1e20})", "max_tokens", "0 .. 4096"},
      {R"({"model":"m","prompt":"x","max_tokens":-1})", "max_tokens", "0 .. 4096"},
      {R"({"model":"m","prompt":"x","n":2})", "n", "\"n\" must be 1"},
      {R"({"model":"m","prompt":"x","echo":true})", "echo", "must be false"},
      {R"({"model":"m","prompt":"x","stop":["."]})", "stop", "must be null"},
      {R"({"model":"m","prompt":"x","stream":"yes"})", "stream", "true or false"},
      {R"({"model":"m","prompt":"x","stream_options":{"include_usage":true}})", "stream_options",
       "only with \"stream\": true"},
      {R"({"model":"m","prompt":"x","stream":true,"stream_options":{"x":1}})", "stream_options.x",
       "only \"include_usage\""},
      {R"({"model":"m","prompt":"x","cache_salt":"a b"})", "cache_salt", "1-64 characters"},
      {R"({"model":"m","prompt":"x","temperature":"hot"})", "temperature", "must be a number"},
      {R"({"model":"m","messages":[]})", "messages", "unknown field"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    const ApiError error = parse_error(c.body, completions);
    EXPECT_EQ(error.status, 400);
    EXPECT_EQ(error.param, c.param);
    EXPECT_NE(error.message.find(c.message_part), std::string::npos) << error.message;
  }
  EXPECT_EQ(parse_error("{not json").message, "the body is not valid JSON");
  EXPECT_EQ(parse_error(R"({"model":"m","prompt":[1e400]})").message,
            "the body is not valid JSON");  // beyond a double's range
  EXPECT_EQ(parse_error("[1]").message, "the body must be a JSON object");
}

TEST(OpenAiApi, BadChatMessagesNameTheMessage) {
  const OpenAiEndpoint endpoint = OpenAiEndpoint::chat_completions;
  EXPECT_EQ(parse_error(R"({"model":"m","messages":[]})", endpoint).param, "messages");
  EXPECT_EQ(
      parse_error(
          R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"y"}]})",
          endpoint)
          .param,
      "messages[1].role");
  EXPECT_EQ(parse_error(R"({"model":"m","messages":[{"role":"user"}]})", endpoint).param,
            "messages[0]");
  EXPECT_EQ(parse_error(R"({"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]})",
                        endpoint)
                .param,
            "messages[0].name");
  EXPECT_EQ(
      parse_error(R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
                  endpoint)
          .param,
      "messages[0].content[0]");
  EXPECT_EQ(
      parse_error(
          R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1,"max_completion_tokens":1})",
          endpoint)
          .param,
      "max_completion_tokens");
  EXPECT_EQ(parse_error(R"({"model":"m","prompt":"x"})", endpoint).param, "prompt");  // not chat's
}

TEST(OpenAiApi, AnotherModelIs404ModelNotFound) {
  const ApiError error = parse_error(R"({"model":"gpt-4","prompt":"x"})");
  EXPECT_EQ(error.status, 404);
  EXPECT_EQ(error.code, "model_not_found");
  EXPECT_EQ(error.param, "model");
  EXPECT_NE(error.message.find("\"m\""), std::string::npos) << error.message;
}

TEST(OpenAiApi, LimitsOnPromptLengthAndBatchSize) {
  OpenAiLimits limits;
  limits.generation.max_prompt_tokens = 3;
  limits.max_batch_prompts = 2;
  EXPECT_NE(parse_error(R"({"model":"m","prompt":"a b c d"})", OpenAiEndpoint::completions, limits)
                .message.find("4 tokens; the limit is 3"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"model":"m","prompt":[1,2,3,4]})", OpenAiEndpoint::completions, limits)
                .message.find("the limit is 3"),
            std::string::npos);
  EXPECT_EQ(
      parse_error(R"({"model":"m","prompt":["a","b","c"]})", OpenAiEndpoint::completions, limits)
          .message,
      "\"prompt\" has 3 prompts; the limit is 2");
  parse_ok({{"model", "m"}, {"prompt", {"a b c", "d"}}}, OpenAiEndpoint::completions, limits);
}

TEST(OpenAiApi, ResponsesHaveOpenAisShapeAndUsage) {
  const ResponseIdentity identity{.id = "cmpl-7", .created = 1700000000, .model = "m"};
  std::vector<ChoiceOutcome> choices(2);
  choices[0] = {.prompt_tokens = 40, .cached_tokens = 32, .generated = {next_token(1, 0)}};
  choices[1] = {.prompt_tokens = 10, .cached_tokens = 0, .generated = {}};
  const Json completion =
      Json::parse(completion_json(OpenAiEndpoint::completions, identity, choices));
  EXPECT_EQ(completion["object"], "text_completion");
  EXPECT_EQ(completion["id"], "cmpl-7");
  EXPECT_EQ(completion["created"], 1700000000);
  EXPECT_EQ(completion["choices"].size(), 2u);
  EXPECT_EQ(completion["choices"][0]["text"], token_text(next_token(1, 0)));
  EXPECT_EQ(completion["choices"][1]["index"], 1);
  EXPECT_EQ(completion["choices"][1]["finish_reason"], "length");
  const Json expected_usage = {{"prompt_tokens", 50},
                               {"completion_tokens", 1},
                               {"total_tokens", 51},
                               {"prompt_tokens_details", {{"cached_tokens", 32}}}};
  EXPECT_EQ(completion["usage"], expected_usage);

  const Json chat_response =
      Json::parse(completion_json(OpenAiEndpoint::chat_completions, identity, choices));
  EXPECT_EQ(chat_response["object"], "chat.completion");
  EXPECT_EQ(chat_response["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(chat_response["choices"][0]["message"]["content"], token_text(next_token(1, 0)));

  const Json opening = Json::parse(chunk_json(OpenAiEndpoint::chat_completions, identity,
                                              {.index = 0, .text = "", .first = true}, true));
  EXPECT_EQ(opening["object"], "chat.completion.chunk");
  EXPECT_EQ(opening["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(opening["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(opening.contains("usage") && opening["usage"].is_null());
  const Json closing =
      Json::parse(chunk_json(OpenAiEndpoint::completions, identity,
                             {.index = 1, .text = "", .finish_reason = "length"}, false));
  EXPECT_EQ(closing["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(closing["choices"][0]["index"], 1);
  EXPECT_FALSE(closing.contains("usage"));
  const Json usage = Json::parse(usage_chunk_json(OpenAiEndpoint::completions, identity, choices));
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], expected_usage);

  const Json models = Json::parse(models_json("m", 5));
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], "m");
  EXPECT_EQ(models["data"][0]["object"], "model");
}

TEST(ToyModel, TokenizerSplitsOnWhitespaceDeterministically) {
  EXPECT_EQ(tokenize("  hello\tworld\n"), tokenize("hello world"));
  EXPECT_EQ(tokenize("hello world").size(), 2u);
  EXPECT_NE(tokenize("Hi,")[0], tokenize("Hi")[0]);
  EXPECT_TRUE(tokenize(" \n\t").empty());
  for (const auto t : tokenize("a b c d e f g")) {
    EXPECT_GE(t, 1u);
    EXPECT_LE(t, 50'000u);
  }
}

TEST(ToyModel, DecodedTextTokenizesBackToTheDecodedTokens) {
  std::vector<kvscope::TokenId> decoded;
  std::set<std::string_view> words;
  kvscope::TokenId previous = tokenize("<|assistant|>")[0];
  for (std::uint32_t step = 0; step < 500; ++step) {
    decoded.push_back(previous = next_token(previous, step));
    words.insert(token_text(previous));
  }
  EXPECT_EQ(tokenize(detokenize(decoded)), decoded);
  EXPECT_GT(words.size(), 50u);  // the model uses its vocabulary, not one word
  EXPECT_FALSE(words.contains(" <unk>"));
  EXPECT_EQ(token_text(0), " <unk>");
  EXPECT_EQ(next_token(123, 4), next_token(123, 4));  // deterministic
}

}  // namespace
}  // namespace serving_stack
