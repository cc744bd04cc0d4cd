// A blocking HTTP/1.1 client for tests: sends raw request bytes on one
// connection, reads until the server closes it and parses every response
// with http_parser (Content-Length and chunked bodies). Requests are written
// by hand on purpose, so tests can send malformed or pipelined ones.
#pragma once

#include <http_parser.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kvscope::testing_util {

struct HttpReply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names as sent
  std::string body;

  /// The value of the first header named `name` (case-insensitive), or "".
  std::string header(std::string_view name) const {
    auto lower = [](std::string_view s) {
      std::string out(s);
      for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return out;
    };
    for (const auto& [n, v] : headers)
      if (lower(n) == lower(name)) return v;
    return "";
  }
};

/// Parses a stream of responses; throws on malformed bytes.
inline std::vector<HttpReply> parse_http_responses(const std::string& bytes) {
  struct State {
    std::vector<HttpReply> replies;
    bool in_value = false;
  } state;
  http_parser_settings settings;
  http_parser_settings_init(&settings);
  settings.on_message_begin = [](http_parser* p) {
    auto& s = *static_cast<State*>(p->data);
    s.replies.emplace_back();
    s.in_value = false;
    return 0;
  };
  settings.on_header_field = [](http_parser* p, const char* at, std::size_t n) {
    auto& s = *static_cast<State*>(p->data);
    auto& headers = s.replies.back().headers;
    if (s.in_value || headers.empty()) headers.emplace_back();
    s.in_value = false;
    headers.back().first.append(at, n);
    return 0;
  };
  settings.on_header_value = [](http_parser* p, const char* at, std::size_t n) {
    auto& s = *static_cast<State*>(p->data);
    s.in_value = true;
    s.replies.back().headers.back().second.append(at, n);
    return 0;
  };
  settings.on_headers_complete = [](http_parser* p) {
    auto& s = *static_cast<State*>(p->data);
    s.replies.back().status = static_cast<int>(p->status_code);
    // A "100 Continue" interim response has no body.
    return p->status_code == 100 ? 1 : 0;
  };
  settings.on_body = [](http_parser* p, const char* at, std::size_t n) {
    static_cast<State*>(p->data)->replies.back().body.append(at, n);
    return 0;
  };
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &state;
  const std::size_t used = http_parser_execute(&parser, &settings, bytes.data(), bytes.size());
  http_parser_execute(&parser, &settings, nullptr, 0);  // EOF ends a body without length
  if (used != bytes.size() || HTTP_PARSER_ERRNO(&parser) != HPE_OK)
    throw std::runtime_error(std::string("malformed HTTP response: ") +
                             http_errno_description(HTTP_PARSER_ERRNO(&parser)));
  return std::move(state.replies);
}

/// Connects to 127.0.0.1:port, writes `raw`, reads until EOF.
inline std::string http_roundtrip_bytes(std::uint16_t port, const std::string& raw) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), port});
  std::error_code error;
  // A server may answer and stop reading before the request is all sent
  // (a body over its limit): the write then fails, the answer is still there.
  asio::write(socket, asio::buffer(raw), error);
  std::string received;
  asio::read(socket, asio::dynamic_buffer(received), error);
  if (error && error != asio::error::eof && error != asio::error::connection_reset)
    throw std::runtime_error("reading the response: " + error.message());
  return received;
}

/// Every response to the raw request bytes.
inline std::vector<HttpReply> http_exchange(std::uint16_t port, const std::string& raw) {
  return parse_http_responses(http_roundtrip_bytes(port, raw));
}

/// One request with "Connection: close"; the one response (throws if the
/// server sent none or several). `extra_headers`: raw "Name: value\r\n" lines.
inline HttpReply http_request(std::uint16_t port, const std::string& method,
                              const std::string& target, const std::string& body = "",
                              const std::string& extra_headers = "") {
  std::string raw = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  raw += extra_headers;
  if (!body.empty() || method == "POST")
    raw +=
        "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  raw += "\r\n" + body;
  std::vector<HttpReply> replies = http_exchange(port, raw);
  if (replies.size() != 1)
    throw std::runtime_error("expected one response, got " + std::to_string(replies.size()));
  return std::move(replies.front());
}

}  // namespace kvscope::testing_util
