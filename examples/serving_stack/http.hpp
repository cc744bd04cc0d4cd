// serving_stack/http.hpp - HTTP/1.1 messages for the example server: the
// request parser (a thin layer over Debian's libhttp-parser, which does the
// protocol work: request line, headers, Content-Length and chunked bodies,
// keep-alive rules) and response serialization.
//
// What this layer adds is policy: size limits checked while bytes arrive
// (a body over the limit is refused from its Content-Length, before it is
// read), one request at a time (pipelined bytes stay buffered for the next
// one) and an HTTP status for every way a request can be malformed.
//
// Thread rules: a RequestParser belongs to one connection; no sharing.
// Cost: feed() is linear in the bytes given; no allocation beyond the
// request's own strings.
#pragma once

#include <http_parser.h>

#include <asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace serving_stack {

struct HttpRequest {
  std::string method;  ///< "GET", "POST", ...
  std::string target;  ///< as sent: path and query
  /// Header names lower-cased, values as sent, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;  ///< HTTP/1.1 default, "Connection: close", HTTP/1.0 rules
  bool http_1_0 = false;   ///< an HTTP/1.0 client: no chunked responses

  /// The target without its query string.
  std::string_view path() const noexcept;
  /// The first header named `lower_name`, or nullptr.
  const std::string* header(std::string_view lower_name) const noexcept;
};

/// Where a streamed body goes: the connection serving the response.
class BodyWriter {
 public:
  /// Sends one piece of the body (empty pieces are skipped). Returns false
  /// once the client is gone; the producer should then stop early.
  virtual asio::awaitable<bool> write(std::string piece) = 0;

 protected:
  ~BodyWriter() = default;
};

struct HttpResponse {
  int status = 200;
  std::string content_type{"application/json"};
  std::string body{};
  /// Extra headers (e.g. Retry-After, Allow); never Content-Length,
  /// Transfer-Encoding or Connection.
  std::vector<std::pair<std::string, std::string>> headers{};
  /// When set, the body is produced while it is sent (server-sent events)
  /// and `body` is ignored: the server writes the head (with
  /// "Transfer-Encoding: chunked", or for an HTTP/1.0 client a body that
  /// ends when the connection closes), runs `stream` exactly once - even
  /// when the client is already gone, so the producer can release what it
  /// holds - and then ends the body.
  std::function<asio::awaitable<void>(BodyWriter&)> stream{};
};

/// The standard reason phrase ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status) noexcept;

/// The response as bytes on the wire, with Content-Length and, unless
/// `keep_alive`, "Connection: close". For a streamed response, the head
/// only: "Transfer-Encoding: chunked" when `chunked`, else no length.
std::string serialize(const HttpResponse& response, bool keep_alive, bool chunked = true);

/// One piece of a chunked body ("SIZE-IN-HEX\r\nPIECE\r\n"); the body
/// ends with kLastChunk.
std::string chunk_frame(std::string_view piece);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

/// A JSON error response in OpenAI's shape, used for every error the
/// example answers: {"error": {"message", "type", "param", "code"}}. type is
/// "invalid_request_error" for 4xx and "server_error" for 5xx; param and
/// code are null when empty.
HttpResponse error_response(int status, std::string_view message, std::string_view param = {},
                            std::string_view code = {});

/// Limits enforced while parsing; each violation has its own status.
struct ParseLimits {
  std::size_t max_target_bytes = 8 * 1024;   ///< 414 URI Too Long
  std::size_t max_header_bytes = 16 * 1024;  ///< 431 (names + values of all headers)
  std::size_t max_body_bytes = 1024 * 1024;  ///< 413 Content Too Large
};

class RequestParser {
 public:
  enum class State { incomplete, complete, failed };

  explicit RequestParser(ParseLimits limits = {});
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  /// Parses bytes of the stream and returns how many it consumed: all of
  /// `data`, or fewer when a request completed (the rest belongs to the next
  /// request: feed it again after take()) or parsing failed.
  /// Precondition: state() == incomplete.
  std::size_t feed(std::string_view data);
  /// The peer closed its side: completes a request whose body runs to EOF,
  /// fails one that was cut short. Returns false if no request had begun.
  bool finish_input();

  State state() const noexcept { return state_; }
  /// Some bytes of a request have arrived (it is not idle between requests).
  bool started() const noexcept { return started_; }
  /// Headers are complete, carried "Expect: 100-continue" and the body is
  /// still to come: the connection should send "100 Continue" once.
  bool expects_continue() const noexcept { return expect_continue_ && state_ == State::incomplete; }

  /// Precondition: state() == complete. Hands over the request and gets
  /// ready for the next one on the same connection.
  HttpRequest take();

  /// After a failure: the status to answer with (400, 413, 414, 431, 505)
  /// and why; the connection must close afterwards.
  int error_status() const noexcept { return error_status_; }
  const std::string& error_message() const noexcept { return error_message_; }

 private:
  static int on_message_begin(http_parser* parser);
  static int on_url(http_parser* parser, const char* at, std::size_t length);
  static int on_header_field(http_parser* parser, const char* at, std::size_t length);
  static int on_header_value(http_parser* parser, const char* at, std::size_t length);
  static int on_headers_complete(http_parser* parser);
  static int on_body(http_parser* parser, const char* at, std::size_t length);
  static int on_message_complete(http_parser* parser);
  static RequestParser& self(http_parser* parser) noexcept;

  /// Records a limit violation; returns non-zero so http_parser stops.
  int refuse(int status, std::string message);
  void fail_from_parser();
  bool add_header_bytes(std::size_t length);

  ParseLimits limits_;
  http_parser parser_{};
  http_parser_settings settings_{};
  HttpRequest request_;
  State state_ = State::incomplete;
  bool started_ = false;
  bool expect_continue_ = false;
  bool in_header_value_ = false;
  std::size_t header_bytes_ = 0;
  int error_status_ = 0;
  std::string error_message_;
};

}  // namespace serving_stack
