#include "http.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <nlohmann/json.hpp>

namespace serving_stack {

std::string_view HttpRequest::path() const noexcept {
  const std::string_view whole = target;
  return whole.substr(0, whole.find('?'));
}

const std::string* HttpRequest::header(std::string_view lower_name) const noexcept {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return &value;
  return nullptr;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string serialize(const HttpResponse& response, bool keep_alive, bool chunked) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\n", response.status,
                                reason_phrase(response.status), response.content_type);
  if (!response.stream)
    out += fmt::format("Content-Length: {}\r\n", response.body.size());
  else if (chunked)
    out += "Transfer-Encoding: chunked\r\n";
  for (const auto& [name, value] : response.headers) out += fmt::format("{}: {}\r\n", name, value);
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!response.stream) out += response.body;
  return out;
}

std::string chunk_frame(std::string_view piece) {
  return fmt::format("{:x}\r\n{}\r\n", piece.size(), piece);
}

HttpResponse error_response(int status, std::string_view message, std::string_view param,
                            std::string_view code) {
  auto or_null = [](std::string_view text) {
    return text.empty() ? nlohmann::json(nullptr) : nlohmann::json(text);
  };
  const nlohmann::json body = {{"error",
                                {{"message", message},
                                 {"type", status >= 500 ? "server_error" : "invalid_request_error"},
                                 {"param", or_null(param)},
                                 {"code", or_null(code)}}}};
  return HttpResponse{.status = status, .body = body.dump()};
}

// ---- RequestParser ----

RequestParser::RequestParser(ParseLimits limits) : limits_(limits) {
  http_parser_init(&parser_, HTTP_REQUEST);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_message_begin = &on_message_begin;
  settings_.on_url = &on_url;
  settings_.on_header_field = &on_header_field;
  settings_.on_header_value = &on_header_value;
  settings_.on_headers_complete = &on_headers_complete;
  settings_.on_body = &on_body;
  settings_.on_message_complete = &on_message_complete;
}

RequestParser& RequestParser::self(http_parser* parser) noexcept {
  return *static_cast<RequestParser*>(parser->data);
}

std::size_t RequestParser::feed(std::string_view data) {
  if (state_ != State::incomplete || data.empty()) return 0;
  const std::size_t used = http_parser_execute(&parser_, &settings_, data.data(), data.size());
  const auto error = HTTP_PARSER_ERRNO(&parser_);
  if (state_ == State::complete) return used;  // paused by on_message_complete
  if (error != HPE_OK) fail_from_parser();
  return used;
}

bool RequestParser::finish_input() {
  if (state_ != State::incomplete || !started_) return false;
  // Request bodies are delimited (Content-Length or chunked), never by EOF,
  // so a request still incomplete at EOF was cut short.
  state_ = State::failed;
  error_status_ = 400;
  error_message_ = "connection closed in the middle of a request";
  return true;
}

HttpRequest RequestParser::take() {
  HttpRequest request = std::move(request_);
  request_ = HttpRequest{};
  state_ = State::incomplete;
  started_ = false;
  expect_continue_ = false;
  in_header_value_ = false;
  header_bytes_ = 0;
  http_parser_pause(&parser_, 0);
  return request;
}

int RequestParser::refuse(int status, std::string message) {
  error_status_ = status;
  error_message_ = std::move(message);
  return -1;
}

void RequestParser::fail_from_parser() {
  state_ = State::failed;
  if (error_status_ != 0) return;  // a limit of ours stopped the parser
  const auto error = HTTP_PARSER_ERRNO(&parser_);
  error_status_ = error == HPE_HEADER_OVERFLOW ? 431 : 400;
  error_message_ = fmt::format("malformed HTTP request: {}", http_errno_description(error));
}

bool RequestParser::add_header_bytes(std::size_t length) {
  header_bytes_ += length;
  return header_bytes_ <= limits_.max_header_bytes;
}

int RequestParser::on_message_begin(http_parser* parser) {
  RequestParser& p = self(parser);
  p.started_ = true;
  return 0;
}

int RequestParser::on_url(http_parser* parser, const char* at, std::size_t length) {
  RequestParser& p = self(parser);
  p.started_ = true;
  if (p.request_.target.size() + length > p.limits_.max_target_bytes)
    return p.refuse(414,
                    fmt::format("request target longer than {} bytes", p.limits_.max_target_bytes));
  p.request_.target.append(at, length);
  return 0;
}

int RequestParser::on_header_field(http_parser* parser, const char* at, std::size_t length) {
  RequestParser& p = self(parser);
  if (!p.add_header_bytes(length))
    return p.refuse(431, fmt::format("headers longer than {} bytes", p.limits_.max_header_bytes));
  // A field may arrive in pieces; a new one starts after a value.
  if (p.in_header_value_ || p.request_.headers.empty()) p.request_.headers.emplace_back();
  p.in_header_value_ = false;
  std::string& name = p.request_.headers.back().first;
  std::transform(at, at + length, std::back_inserter(name), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  return 0;
}

int RequestParser::on_header_value(http_parser* parser, const char* at, std::size_t length) {
  RequestParser& p = self(parser);
  if (!p.add_header_bytes(length))
    return p.refuse(431, fmt::format("headers longer than {} bytes", p.limits_.max_header_bytes));
  p.in_header_value_ = true;
  p.request_.headers.back().second.append(at, length);
  return 0;
}

int RequestParser::on_headers_complete(http_parser* parser) {
  RequestParser& p = self(parser);
  if (parser->http_major != 1)
    return p.refuse(505, fmt::format("HTTP/{}.{} is not supported; use HTTP/1.1",
                                     parser->http_major, parser->http_minor));
  // Refused from Content-Length alone: the body is never read into memory.
  if (parser->content_length != ULLONG_MAX && parser->content_length > p.limits_.max_body_bytes)
    return p.refuse(413, fmt::format("body of {} bytes is over the limit of {} bytes",
                                     parser->content_length, p.limits_.max_body_bytes));
  p.request_.method = http_method_str(static_cast<http_method>(parser->method));
  p.request_.keep_alive = http_should_keep_alive(parser) != 0;
  p.request_.http_1_0 = parser->http_minor == 0;
  const std::string* expect = p.request_.header("expect");
  p.expect_continue_ =
      expect != nullptr && (*expect == "100-continue" || *expect == "100-Continue");
  return 0;
}

int RequestParser::on_body(http_parser* parser, const char* at, std::size_t length) {
  RequestParser& p = self(parser);
  if (p.request_.body.size() + length > p.limits_.max_body_bytes)  // chunked bodies
    return p.refuse(413, fmt::format("body over the limit of {} bytes", p.limits_.max_body_bytes));
  p.request_.body.append(at, length);
  return 0;
}

int RequestParser::on_message_complete(http_parser* parser) {
  RequestParser& p = self(parser);
  p.request_.keep_alive = http_should_keep_alive(parser) != 0;
  p.state_ = State::complete;
  // Stop here: bytes after this request (pipelining) wait for take().
  http_parser_pause(parser, 1);
  return 0;
}

}  // namespace serving_stack
