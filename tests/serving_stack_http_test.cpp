// The serving-stack example's request parsing: the HTTP layer over
// http_parser (limits, pipelining, keep-alive) and the /v1/generate body.
// g++ 12 false positives in libstdc++ inlined into this file: -Wrestrict in
// std::string concatenation at -O3 (GCC bug 105329), -Wmaybe-uninitialized
// under ASan at -O2 (GCC bug 105562).
#pragma GCC diagnostic ignored "-Wrestrict"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <gtest/gtest.h>

#include <string>

#include "generate_api.hpp"
#include "http.hpp"

namespace serving_stack {
namespace {

using State = RequestParser::State;

/// Feeds all of `bytes`, one request at a time; the parser ends in the
/// state of the last request.
std::vector<HttpRequest> parse_all(RequestParser& parser, std::string_view bytes) {
  std::vector<HttpRequest> requests;
  while (!bytes.empty() && parser.state() == State::incomplete) {
    bytes.remove_prefix(parser.feed(bytes));
    if (parser.state() == State::complete) requests.push_back(parser.take());
  }
  return requests;
}

TEST(HttpRequestParser, ParsesAPostWithBodyAndHeaders) {
  RequestParser parser;
  const std::string raw =
      "POST /v1/generate?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
      "Content-Length: 13\r\n\r\n{\"tokens\":[]}";
  ASSERT_EQ(parser.feed(raw), raw.size());
  ASSERT_EQ(parser.state(), State::complete);
  const HttpRequest request = parser.take();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/v1/generate?x=1");
  EXPECT_EQ(request.path(), "/v1/generate");
  ASSERT_NE(request.header("content-type"), nullptr);
  EXPECT_EQ(*request.header("content-type"), "application/json");
  EXPECT_EQ(request.body, "{\"tokens\":[]}");
  EXPECT_TRUE(request.keep_alive);
  EXPECT_EQ(parser.state(), State::incomplete);  // ready for the next request
  EXPECT_FALSE(parser.started());
}

TEST(HttpRequestParser, ByteByByteGivesTheSameRequest) {
  RequestParser parser;
  const std::string raw =
      "POST /v1/generate HTTP/1.1\r\nX-Long-Header-Name: some value\r\nContent-Length: 5\r\n\r\n"
      "hello";
  for (std::size_t i = 0; i < raw.size(); ++i) {
    ASSERT_EQ(parser.state(), State::incomplete) << "at byte " << i;
    ASSERT_EQ(parser.feed(std::string_view(raw).substr(i, 1)), 1u);
  }
  ASSERT_EQ(parser.state(), State::complete);
  const HttpRequest request = parser.take();
  ASSERT_NE(request.header("x-long-header-name"), nullptr);
  EXPECT_EQ(*request.header("x-long-header-name"), "some value");
  EXPECT_EQ(request.body, "hello");
}

TEST(HttpRequestParser, PipelinedRequestsStopAtEachBoundary) {
  RequestParser parser;
  const std::string one = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string two = "POST /v1/generate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
  const std::string three = "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n";
  const std::string all = one + two + three;
  EXPECT_EQ(parser.feed(all), one.size());  // the rest waits for take()
  EXPECT_EQ(parser.take().path(), "/healthz");
  const auto requests = parse_all(parser, std::string_view(all).substr(one.size()));
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].body, "{}");
  EXPECT_EQ(requests[1].path(), "/metrics");
  EXPECT_FALSE(requests[1].keep_alive);
}

TEST(HttpRequestParser, ChunkedBodyIsDecoded) {
  RequestParser parser;
  const auto requests = parse_all(parser,
                                  "POST /v1/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body, "abcde");
}

TEST(HttpRequestParser, Http10ClosesUnlessKeptAlive) {
  RequestParser parser;
  auto requests = parse_all(parser, "GET /healthz HTTP/1.0\r\n\r\n");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_FALSE(requests[0].keep_alive);
  requests = parse_all(parser, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_TRUE(requests[0].keep_alive);
}

TEST(HttpRequestParser, BodyOverTheLimitIsRefusedFromContentLength) {
  RequestParser parser({.max_body_bytes = 100});
  const std::string head = "POST /v1/generate HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
  parser.feed(head);  // no body byte sent: refused before reading it
  ASSERT_EQ(parser.state(), State::failed);
  EXPECT_EQ(parser.error_status(), 413);
  EXPECT_NE(parser.error_message().find("101"), std::string::npos) << parser.error_message();
}

TEST(HttpRequestParser, ChunkedBodyOverTheLimitIsRefused) {
  RequestParser parser({.max_body_bytes = 4});
  parser.feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n");
  ASSERT_EQ(parser.state(), State::failed);
  EXPECT_EQ(parser.error_status(), 413);
}

TEST(HttpRequestParser, ExactlyTheLimitIsAccepted) {
  RequestParser parser({.max_body_bytes = 3});
  const auto requests = parse_all(parser, "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].body, "abc");
}

TEST(HttpRequestParser, LongTargetAndLargeHeadersAreRefused) {
  RequestParser long_target({.max_target_bytes = 16});
  long_target.feed("GET /" + std::string(16, 'a') + " HTTP/1.1\r\n\r\n");
  ASSERT_EQ(long_target.state(), State::failed);
  EXPECT_EQ(long_target.error_status(), 414);

  RequestParser large_headers({.max_header_bytes = 64});
  large_headers.feed("GET / HTTP/1.1\r\nX-A: " + std::string(70, 'v') + "\r\n\r\n");
  ASSERT_EQ(large_headers.state(), State::failed);
  EXPECT_EQ(large_headers.error_status(), 431);
}

TEST(HttpRequestParser, MalformedRequestsGet400) {
  for (const std::string raw : {"GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                "GET / HTTP/1.1\r\nBad Header\r\n\r\n"}) {
    RequestParser parser;
    parser.feed(raw);
    ASSERT_EQ(parser.state(), State::failed) << raw;
    EXPECT_EQ(parser.error_status(), 400) << raw;
    EXPECT_FALSE(parser.error_message().empty());
  }
}

TEST(HttpRequestParser, OnlyHttp1IsSupported) {
  RequestParser parser;
  parser.feed("GET / HTTP/2.0\r\n\r\n");
  ASSERT_EQ(parser.state(), State::failed);
  EXPECT_EQ(parser.error_status(), 505);
}

TEST(HttpRequestParser, ExpectContinueIsReportedUntilTheBodyArrives) {
  RequestParser parser;
  parser.feed("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_TRUE(parser.expects_continue());
  parser.feed("{}");
  EXPECT_EQ(parser.state(), State::complete);
  EXPECT_FALSE(parser.expects_continue());
}

TEST(HttpRequestParser, EofInTheMiddleFailsAndEofBetweenRequestsDoesNot) {
  RequestParser idle;
  EXPECT_FALSE(idle.finish_input());
  EXPECT_EQ(idle.state(), State::incomplete);

  RequestParser cut;
  cut.feed("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_TRUE(cut.started());
  EXPECT_TRUE(cut.finish_input());
  EXPECT_EQ(cut.state(), State::failed);
  EXPECT_EQ(cut.error_status(), 400);
}

TEST(HttpResponse, SerializesStatusLengthAndConnection) {
  const HttpResponse response{.status = 503,
                              .content_type = "text/plain",
                              .body = "busy",
                              .headers = {{"Retry-After", "1"}}};
  EXPECT_EQ(serialize(response, true),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
            "Retry-After: 1\r\n\r\nbusy");
  EXPECT_EQ(serialize(response, false).find("Connection: close\r\n") != std::string::npos, true);
  EXPECT_EQ(
      error_response(404, "no \"x\"").body,
      R"({"error":{"code":null,"message":"no \"x\"","param":null,"type":"invalid_request_error"}})");
  EXPECT_EQ(
      error_response(503, "busy", "model", "overloaded").body,
      R"({"error":{"code":"overloaded","message":"busy","param":"model","type":"server_error"}})");
}

TEST(HttpResponse, AStreamedResponseSendsItsHeadAndFramesChunks) {
  HttpResponse response{.status = 200, .content_type = "text/event-stream"};
  response.body = "ignored";
  response.stream = [](BodyWriter&) -> asio::awaitable<void> { co_return; };
  EXPECT_EQ(serialize(response, true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: "
            "chunked\r\n\r\n");
  // An HTTP/1.0 client: no framing, the body ends when the connection closes.
  EXPECT_EQ(serialize(response, false, /*chunked=*/false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(chunk_frame("data: x\n\n"), "9\r\ndata: x\n\n\r\n");
  EXPECT_EQ(chunk_frame(std::string(26, 'a')).substr(0, 4), "1a\r\n");
  EXPECT_EQ(kLastChunk, "0\r\n\r\n");
}

// ---- /v1/generate bodies ----

GenerateRequest parse_ok(std::string_view body, const GenerateLimits& limits = {}) {
  auto parsed = parse_generate_request(body, limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) {
    ADD_FAILURE() << body << " refused: " << error->message;
    return {};
  }
  return std::get<GenerateRequest>(std::move(parsed));
}

ApiError parse_error(std::string_view body, const GenerateLimits& limits = {}) {
  auto parsed = parse_generate_request(body, limits);
  if (const auto* error = std::get_if<ApiError>(&parsed)) return *error;
  ADD_FAILURE() << body << " was accepted";
  return {};
}

TEST(GenerateApi, TokensTenantAndMaxTokens) {
  const GenerateRequest r =
      parse_ok(R"({"tokens":[0,7,4294967295],"tenant":"a-b_c.9","max_tokens":3})");
  EXPECT_EQ(r.tokens, (std::vector<kvscope::TokenId>{0, 7, 4294967295u}));
  EXPECT_EQ(r.tenant, "a-b_c.9");
  EXPECT_EQ(r.max_tokens, 3u);
  EXPECT_EQ(parse_ok(R"({"tokens":[1]})").max_tokens, GenerateLimits{}.default_new_tokens);
  EXPECT_EQ(parse_ok(R"({"tokens":[1],"max_tokens":0})").max_tokens, 0u);
}

TEST(GenerateApi, PromptIsTokenizedDeterministically) {
  const GenerateRequest r = parse_ok(R"({"prompt":"  hello world\n hello "})");
  ASSERT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.tokens[0], r.tokens[2]);
  EXPECT_NE(r.tokens[0], r.tokens[1]);
  EXPECT_EQ(tokenize("hello world hello"), r.tokens);
  for (const auto t : tokenize("a b c d e f g")) {
    EXPECT_GE(t, 1u);
    EXPECT_LE(t, 50'000u);
  }
  EXPECT_TRUE(tokenize(" \t\r\n").empty());
}

TEST(GenerateApi, BadBodiesNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{bad", "not valid JSON"},
      {"[1,2]", "JSON object"},
      {"{}", "exactly one"},
      {R"({"tokens":[1],"prompt":"x"})", "exactly one"},
      {R"({"tokens":[]})", "empty"},
      {R"({"prompt":"   "})", "no tokens"},
      {R"({"tokens":"1 2"})", "array"},
      {R"({"tokens":[1,-2]})", "\"tokens\"[1]"},
      {R"({"tokens":[1.5]})", "\"tokens\"[0]"},
      {R"({"tokens":[4294967296]})", "\"tokens\"[0]"},
      {R"({"tokens":[1e30]})", "\"tokens\"[0]"},
      {R"({"tokens":[99999999999999999999999999]})", "\"tokens\"[0]"},
      {R"({"tokens":[true]})", "\"tokens\"[0]"},
      {R"({"prompt":7})", "string"},
      {R"({"tokens":[1],"tenant":""})", "tenant"},
      {R"({"tokens":[1],"tenant":"a b"})", "tenant"},
      {R"({"tokens":[1],"tenant":5})", "tenant"},
      {R"({"tokens":[1],"max_tokens":-1})", "max_tokens"},
      {R"({"tokens":[1],"max_tokens":4097})", "max_tokens"},
      {R"({"tokens":[1],"max_tokens":"3"})", "max_tokens"},
      {R"({"tokens":[1],"temperature":0.5})", "unknown field \"temperature\""},
  };
  for (const auto& [body, expected] : cases) {
    const ApiError error = parse_error(body);
    EXPECT_EQ(error.status, 400) << body;
    EXPECT_NE(error.message.find(expected), std::string::npos)
        << body << " -> " << error.message << " (expected to mention " << expected << ")";
  }
}

TEST(GenerateApi, PromptLimitCountsTokens) {
  const GenerateLimits limits{.max_prompt_tokens = 3};
  EXPECT_EQ(parse_ok(R"({"tokens":[1,2,3]})", limits).tokens.size(), 3u);
  EXPECT_NE(parse_error(R"({"tokens":[1,2,3,4]})", limits).message.find("limit is 3"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"prompt":"a b c d"})", limits).message.find("limit is 3"),
            std::string::npos);
}

TEST(GenerateApi, OutcomeJsonHasEveryField) {
  const std::string json = outcome_json({.request_id = 9,
                                         .shard = 1,
                                         .prompt_tokens = 40,
                                         .cached_tokens = 32,
                                         .generated_tokens = 5,
                                         .blocks = 3,
                                         .decode_cut_short = true});
  EXPECT_EQ(json,
            R"({"blocks":3,"cached_tokens":32,"finish_reason":"pool_full","generated_tokens":5,)"
            R"("prompt_tokens":40,"request_id":9,"shard":1})");
}

}  // namespace
}  // namespace serving_stack
