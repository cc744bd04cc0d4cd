#include "openai_service.hpp"

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>

#include "toy_model.hpp"

namespace serving_stack {
namespace {

using kvscope::Status;

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Sends one server-sent event; false once the client is gone.
// (Callers pass named strings: g++ 12 mishandles temporaries in a co_await
// operand, so no event text is built inside one.)
asio::awaitable<bool> send_event(BodyWriter& writer, std::string data) {
  std::string event = "data: " + data + "\n\n";
  co_return co_await writer.write(std::move(event));
}

/// Collects a non-streamed choice's tokens.
class CollectingSink final : public DecodeSink {
 public:
  explicit CollectingSink(std::vector<kvscope::TokenId>& out) : out_(out) {}
  asio::awaitable<bool> on_tokens(std::span<const kvscope::TokenId> tokens) override {
    out_.insert(out_.end(), tokens.begin(), tokens.end());
    co_return true;
  }

 private:
  std::vector<kvscope::TokenId>& out_;
};

/// Sends each decode step of a streamed choice as one chunk event.
class StreamingSink final : public DecodeSink {
 public:
  StreamingSink(BodyWriter& writer, OpenAiEndpoint endpoint, const ResponseIdentity& identity,
                std::uint32_t index, bool include_usage, std::vector<kvscope::TokenId>& out)
      : writer_(writer),
        endpoint_(endpoint),
        identity_(identity),
        index_(index),
        include_usage_(include_usage),
        out_(out) {}

  asio::awaitable<bool> on_tokens(std::span<const kvscope::TokenId> tokens) override {
    out_.insert(out_.end(), tokens.begin(), tokens.end());
    const ChunkContent content{.index = index_, .text = detokenize(tokens)};
    std::string data = chunk_json(endpoint_, identity_, content, include_usage_);
    co_return co_await send_event(writer_, std::move(data));
  }

 private:
  BodyWriter& writer_;
  OpenAiEndpoint endpoint_;
  const ResponseIdentity& identity_;
  std::uint32_t index_;
  bool include_usage_;
  std::vector<kvscope::TokenId>& out_;
};

ChoiceOutcome choice_of(const Admission& admission) {
  return ChoiceOutcome{.prompt_tokens = admission.prompt_tokens,
                       .cached_tokens = admission.cached_tokens};
}

}  // namespace

struct OpenAiService::StreamJob {
  CompletionRequest request;
  std::string tenant;
  Admission first;
  ResponseIdentity identity;
};

OpenAiService::OpenAiService(Generator& generator, OpenAiConfig config)
    : generator_(generator), config_(std::move(config)), created_(unix_seconds()) {}

HttpResponse OpenAiService::models() const {
  return HttpResponse{.status = 200, .body = models_json(config_.model_name, created_)};
}

ResponseIdentity OpenAiService::identity(OpenAiEndpoint endpoint, kvscope::RequestId first) const {
  const std::string_view prefix =
      endpoint == OpenAiEndpoint::chat_completions ? "chatcmpl" : "cmpl";
  return ResponseIdentity{.id = fmt::format("{}-{}", prefix, first.value),
                          .created = unix_seconds(),
                          .model = config_.model_name};
}

HttpResponse OpenAiService::refused(Status status, std::uint32_t prompt_tokens) const {
  return refused_admission(status, prompt_tokens, generator_,
                           TooLargeAnswer{.status = 400, .code = "context_length_exceeded"});
}

asio::awaitable<HttpResponse> OpenAiService::complete(const HttpRequest& request,
                                                      OpenAiEndpoint endpoint) {
  auto parsed =
      parse_completion_request(request.body, endpoint, config_.model_name, config_.limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) co_return error_response(*error);
  CompletionRequest completion = std::move(std::get<CompletionRequest>(parsed));
  std::string tenant = completion.cache_salt;
  if (const std::string* header = request.header("x-cache-salt")) {
    if (!valid_tenant(*header))
      co_return error_response(400, fmt::format("the X-Cache-Salt header must be {}", kTenantRule));
    if (!tenant.empty() && tenant != *header)
      co_return error_response(400, "\"cache_salt\" and the X-Cache-Salt header disagree",
                               "cache_salt");
    tenant = *header;
  }
  // A named response, never `co_return co_await` (see GenerateService::route).
  HttpResponse response;
  if (completion.stream)
    response = co_await start_stream(std::move(completion), std::move(tenant));
  else
    response = co_await complete_at_once(std::move(completion), std::move(tenant));
  co_return response;
}

asio::awaitable<HttpResponse> OpenAiService::complete_at_once(CompletionRequest request,
                                                              std::string tenant) {
  std::vector<ChoiceOutcome> choices;
  ResponseIdentity response_identity;
  for (std::vector<kvscope::TokenId>& prompt : request.prompts) {
    const auto prompt_tokens = static_cast<std::uint32_t>(prompt.size());
    kvscope::Result<Admission> admission = co_await generator_.admit(std::move(prompt), tenant);
    if (!admission) co_return refused(admission.status(), prompt_tokens);
    if (choices.empty()) response_identity = identity(request.endpoint, admission->id);
    ChoiceOutcome& choice = choices.emplace_back(choice_of(*admission));
    CollectingSink sink(choice.generated);
    const DecodeResult decoded =
        co_await generator_.decode_and_free(*admission, request.max_tokens, sink);
    if (decoded.failure != Status::ok) co_return decode_failed(decoded.failure);
  }
  co_return HttpResponse{.status = 200,
                         .body = completion_json(request.endpoint, response_identity, choices)};
}

asio::awaitable<HttpResponse> OpenAiService::start_stream(CompletionRequest request,
                                                          std::string tenant) {
  const auto prompt_tokens = static_cast<std::uint32_t>(request.prompts[0].size());
  kvscope::Result<Admission> first =
      co_await generator_.admit(std::move(request.prompts[0]), tenant);
  if (!first) co_return refused(first.status(), prompt_tokens);
  auto job = std::make_shared<StreamJob>(StreamJob{
      .request = std::move(request), .tenant = std::move(tenant), .first = *first, .identity = {}});
  job->identity = identity(job->request.endpoint, first->id);
  HttpResponse response{.status = 200, .content_type = "text/event-stream"};
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.stream = [this, job](BodyWriter& writer) { return stream(job, writer); };
  co_return response;
}

asio::awaitable<void> OpenAiService::stream(std::shared_ptr<StreamJob> job, BodyWriter& writer) {
  const CompletionRequest& request = job->request;
  std::vector<ChoiceOutcome> choices;
  for (std::uint32_t index = 0; index < request.prompts.size(); ++index) {
    std::optional<Admission> admission;
    if (index == 0) {
      admission = job->first;
    } else {
      const auto prompt_tokens = static_cast<std::uint32_t>(request.prompts[index].size());
      kvscope::Result<Admission> next =
          co_await generator_.admit(std::move(job->request.prompts[index]), job->tenant);
      if (!next) {
        std::string error = refused(next.status(), prompt_tokens).body;
        (void)co_await send_event(writer, std::move(error));
        break;
      }
      admission = *next;
    }
    const bool client_here = co_await stream_choice(*job, index, *admission, writer, choices);
    if (!client_here) co_return;
  }
  if (request.include_usage) {
    std::string usage = usage_chunk_json(request.endpoint, job->identity, choices);
    (void)co_await send_event(writer, std::move(usage));
  }
  std::string done = "[DONE]";
  (void)co_await send_event(writer, std::move(done));
}

asio::awaitable<bool> OpenAiService::stream_choice(const StreamJob& job, std::uint32_t index,
                                                   Admission admission, BodyWriter& writer,
                                                   std::vector<ChoiceOutcome>& choices) {
  const CompletionRequest& request = job.request;
  ChoiceOutcome& choice = choices.emplace_back(choice_of(admission));
  bool client_here = true;
  if (request.endpoint == OpenAiEndpoint::chat_completions) {
    // OpenAI's first chat chunk: the role, no content yet.
    const ChunkContent opening{.index = index, .first = true};
    std::string data = chunk_json(request.endpoint, job.identity, opening, request.include_usage);
    client_here = co_await send_event(writer, std::move(data));
  }
  StreamingSink sink(writer, request.endpoint, job.identity, index, request.include_usage,
                     choice.generated);
  // Decoded (0 tokens) even when the client already left: that frees.
  const DecodeResult decoded =
      co_await generator_.decode_and_free(admission, client_here ? request.max_tokens : 0, sink);
  if (decoded.failure != Status::ok) {
    std::string error = decode_failed(decoded.failure).body;
    (void)co_await send_event(writer, std::move(error));
    co_return false;
  }
  const ChunkContent closing{.index = index, .finish_reason = choice.finish_reason};
  std::string data = chunk_json(request.endpoint, job.identity, closing, request.include_usage);
  co_return co_await send_event(writer, std::move(data));
}

}  // namespace serving_stack
