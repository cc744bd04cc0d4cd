// libFuzzer target: the serving-stack example's own parsing glue - the
// RequestParser policy layer over libhttp-parser (limits, pipelining,
// 100-continue, EOF), the /v1/generate body parser and the OpenAI body
// parser (completions and chat).
//
// The input is a byte stream from one connection; the first bytes choose how
// it is cut into reads. The stream is parsed twice, in one read and in the
// fuzzed reads: both must give the same requests and the same outcome
// (chunking must not change meaning; only the status of a refusal may
// differ, see transcript()). Every request must respect the
// limits, every refusal must carry one of the documented statuses, and the
// body parsers must answer every complete body with a request within the
// limits or a refusal with a message (400, or 404 model_not_found).
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

#include "generate_api.hpp"
#include "http.hpp"
#include "openai_api.hpp"

namespace {

using serving_stack::RequestParser;

void require(bool condition) {
  if (!condition) std::abort();
}

constexpr serving_stack::ParseLimits kLimits{
    .max_target_bytes = 256, .max_header_bytes = 1024, .max_body_bytes = 4096};
constexpr serving_stack::GenerateLimits kGenerateLimits{
    .max_prompt_tokens = 512, .max_new_tokens = 64, .default_new_tokens = 16};
constexpr serving_stack::OpenAiLimits kOpenAiLimits{.generation = kGenerateLimits,
                                                    .max_batch_prompts = 4};
constexpr std::string_view kModel = "m";

void check_openai_body(std::string_view body, serving_stack::OpenAiEndpoint endpoint) {
  const auto parsed =
      serving_stack::parse_completion_request(body, endpoint, kModel, kOpenAiLimits);
  if (const auto* request = std::get_if<serving_stack::CompletionRequest>(&parsed)) {
    require(request->endpoint == endpoint && request->model == kModel);
    require(!request->prompts.empty() &&
            request->prompts.size() <= kOpenAiLimits.max_batch_prompts);
    require(endpoint == serving_stack::OpenAiEndpoint::completions || request->prompts.size() == 1);
    for (const auto& prompt : request->prompts)
      require(!prompt.empty() && prompt.size() <= kGenerateLimits.max_prompt_tokens);
    require(request->max_tokens <= kGenerateLimits.max_new_tokens);
    require(!request->include_usage || request->stream);
    require(request->cache_salt.empty() || serving_stack::valid_tenant(request->cache_salt));
  } else {
    const auto& error = std::get<serving_stack::ApiError>(parsed);
    require(!error.message.empty());
    require(error.status == 400 || (error.status == 404 && error.code == "model_not_found"));
  }
}

void check_request(const serving_stack::HttpRequest& request) {
  require(request.target.size() <= kLimits.max_target_bytes);
  require(request.body.size() <= kLimits.max_body_bytes);
  std::size_t header_bytes = 0;
  for (const auto& [name, value] : request.headers) header_bytes += name.size() + value.size();
  require(header_bytes <= kLimits.max_header_bytes);
  const auto parsed = serving_stack::parse_generate_request(request.body, kGenerateLimits);
  if (const auto* generate = std::get_if<serving_stack::GenerateRequest>(&parsed)) {
    require(!generate->tokens.empty() &&
            generate->tokens.size() <= kGenerateLimits.max_prompt_tokens);
    require(generate->max_tokens <= kGenerateLimits.max_new_tokens);
    require(generate->tenant.size() <= 64);
  } else {
    const auto& error = std::get<serving_stack::ApiError>(parsed);
    require(error.status == 400 && !error.message.empty());
  }
  check_openai_body(request.body, serving_stack::OpenAiEndpoint::completions);
  check_openai_body(request.body, serving_stack::OpenAiEndpoint::chat_completions);
}

/// Parses `stream` cut into `reads` (sizes; the last read takes the rest)
/// and returns a transcript: each request's method, target, body and
/// keep-alive, then the final state and error status.
std::string transcript(std::string_view stream, const std::vector<std::size_t>& reads) {
  std::string out;
  RequestParser parser(kLimits);
  std::size_t next_read = 0;
  while (!stream.empty() && parser.state() != RequestParser::State::failed) {
    std::size_t size = next_read < reads.size() ? reads[next_read++] : stream.size();
    std::string_view chunk = stream.substr(0, std::max<std::size_t>(1, size));
    stream.remove_prefix(chunk.size());
    while (!chunk.empty() && parser.state() == RequestParser::State::incomplete) {
      const std::size_t used = parser.feed(chunk);
      require(used <= chunk.size());
      chunk.remove_prefix(used);
      if (parser.state() == RequestParser::State::complete) {
        const serving_stack::HttpRequest request = parser.take();
        check_request(request);
        out += request.method + ' ' + request.target + ' ' + std::to_string(request.body.size()) +
               ':' + request.body + (request.keep_alive ? " keep\n" : " close\n");
      } else if (used == 0 && parser.state() == RequestParser::State::incomplete) {
        std::abort();  // no progress on non-empty input
      }
    }
  }
  if (parser.state() == RequestParser::State::incomplete) {
    const bool begun = parser.finish_input();
    if (begun && parser.state() == RequestParser::State::complete) {
      const serving_stack::HttpRequest request = parser.take();
      check_request(request);
      out += request.method + " (eof) " + std::to_string(request.body.size()) + '\n';
    }
  }
  if (parser.state() == RequestParser::State::failed) {
    const int status = parser.error_status();
    require(status == 400 || status == 413 || status == 414 || status == 431 || status == 505);
    require(!parser.error_message().empty());
    // Not the status: bytes that break two rules at once (a 300-byte target
    // with a control character) are refused by whichever check sees them
    // first, which depends on where the reads end (414 vs 400 here).
    out += "failed\n";
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  std::vector<std::size_t> reads(data.ConsumeIntegralInRange<std::size_t>(0, 16));
  for (std::size_t& read : reads) read = data.ConsumeIntegralInRange<std::size_t>(1, 64);
  const std::string stream = data.ConsumeRemainingBytesAsString();
  const std::string whole = transcript(stream, {});
  const std::string chunked = transcript(stream, reads);
  if (whole != chunked) {
    std::fprintf(stderr, "one read:\n%s\nfuzzed reads:\n%s\n", whole.c_str(), chunked.c_str());
    std::abort();
  }
  return 0;
}
