#include "http_server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <stdexcept>

namespace serving_stack {
namespace {

using Clock = std::chrono::steady_clock;
using asio::ip::tcp;

void log_failure(std::string_view what, std::exception_ptr error) {
  if (!error) return;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    fmt::print(stderr, "serving_stack: {}: {}\n", what, e.what());
  } catch (...) {
    fmt::print(stderr, "serving_stack: {}: unknown exception\n", what);
  }
}

}  // namespace

void ServerConfig::validate() const {
  if (max_connections == 0)
    throw std::invalid_argument("ServerConfig.max_connections must be >= 1");
  if (limits.max_body_bytes == 0 || limits.max_header_bytes == 0 || limits.max_target_bytes == 0)
    throw std::invalid_argument("ServerConfig.limits: every size limit must be >= 1 byte");
  if (idle_timeout.count() <= 0 || write_timeout.count() <= 0 || shutdown_grace.count() < 0)
    throw std::invalid_argument("ServerConfig: timeouts must be > 0 (shutdown_grace >= 0)");
}

// ---- Connection: one client socket, served on one executor ----

class HttpServer::Connection final : public std::enable_shared_from_this<Connection>,
                                     private BodyWriter {
 public:
  Connection(HttpServer& server, std::uint64_t id, tcp::socket socket)
      : server_(server),
        id_(id),
        idle_timeout_(server.config_.idle_timeout),
        write_timeout_(server.config_.write_timeout),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        parser_(server.config_.limits) {}

  static asio::awaitable<void> run(std::shared_ptr<Connection> self) {
    try {
      co_await self->serve();
    } catch (...) {
      log_failure("connection", std::current_exception());
    }
    self->close();
    self->server_.forget(self->id_);
  }

  /// Closes the socket when the deadline passes while the client, not the
  /// handler, is what we wait for.
  static asio::awaitable<void> watchdog(std::shared_ptr<Connection> self) {
    while (!self->closed_) {
      self->timer_.expires_at(self->deadline_);
      std::error_code ignored;
      co_await self->timer_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
      if (self->closed_) break;
      if (self->phase_ == Phase::handling) {
        self->deadline_ = Clock::now() + self->idle_timeout_;
      } else if (Clock::now() >= self->deadline_) {
        self->close();
      }
    }
  }

  /// Any thread: finish the request in flight, if any, then close.
  void request_stop() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->stop_requested_ = true;
      if (self->phase_ == Phase::idle) self->close();
    });
  }

  /// Any thread: close now (the grace period is over).
  void force_close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->close(); });
  }

 private:
  enum class Phase { idle, reading, handling, writing };
  enum class ReadOutcome { complete, failed, closed };

  asio::awaitable<void> serve() {
    for (;;) {
      const ReadOutcome read = co_await read_request();
      if (read == ReadOutcome::closed) co_return;
      if (read == ReadOutcome::failed) {
        server_.count(parser_.error_status());
        co_await write_response(error_response(parser_.error_status(), parser_.error_message()),
                                false);
        co_await linger();
        co_return;
      }
      HttpRequest request = parser_.take();
      const bool client_keeps_alive = request.keep_alive;
      const bool chunked = !request.http_1_0;
      phase_ = Phase::handling;
      const HttpResponse response = co_await server_.handler_(std::move(request));
      // An HTTP/1.0 client gets a streamed body that ends when we close.
      const bool keep_alive =
          client_keeps_alive && !stop_requested_ && (chunked || !response.stream);
      if (response.stream)
        co_await write_streamed(response, keep_alive, chunked);
      else
        co_await write_response(response, keep_alive);
      if (!keep_alive || closed_) co_return;
    }
  }

  asio::awaitable<void> write_streamed(const HttpResponse& response, bool keep_alive,
                                       bool chunked) {
    chunked_ = chunked;
    std::string head = serialize(response, keep_alive, chunked);
    co_await write_bytes(std::move(head));
    phase_ = Phase::handling;  // the producer's pauses are the handler's time
    co_await response.stream(*this);
    if (chunked) co_await write_bytes(std::string(kLastChunk));
  }

  /// BodyWriter: one piece of a streamed body.
  asio::awaitable<bool> write(std::string piece) override {
    if (closed_) co_return false;
    if (piece.empty()) co_return true;  // an empty chunk would end the body
    // Named first: g++ 12 mishandles temporaries in a co_await operand.
    std::string bytes = chunked_ ? chunk_frame(piece) : std::move(piece);
    co_await write_bytes(std::move(bytes));
    phase_ = Phase::handling;
    co_return !closed_;
  }

  asio::awaitable<ReadOutcome> read_request() {
    bool sent_continue = false;
    std::array<char, 16 * 1024> chunk;
    while (parser_.state() == RequestParser::State::incomplete) {
      if (!pending_.empty()) {
        pending_.erase(0, parser_.feed(pending_));  // pipelined bytes first
        continue;
      }
      if (parser_.expects_continue() && !sent_continue) {
        sent_continue = true;
        co_await write_bytes("HTTP/1.1 100 Continue\r\n\r\n");
      }
      if (closed_ || (stop_requested_ && !parser_.started())) co_return ReadOutcome::closed;
      phase_ = parser_.started() ? Phase::reading : Phase::idle;
      set_deadline(Clock::now() + idle_timeout_);
      std::error_code error;
      const std::size_t n = co_await socket_.async_read_some(
          asio::buffer(chunk), asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        // A request cut short by EOF gets a 400; idle closes, timeouts and
        // resets end quietly.
        const bool cut_short = error == asio::error::eof && parser_.finish_input();
        co_return cut_short ? ReadOutcome::failed : ReadOutcome::closed;
      }
      pending_.append(chunk.data(), n);
    }
    co_return parser_.state() == RequestParser::State::complete ? ReadOutcome::complete
                                                                : ReadOutcome::failed;
  }

  /// After an error response to a request we did not read to its end (a
  /// body over the limit, say): stop sending and discard what the client
  /// still sends, for a bounded time and amount, before closing. Closing at
  /// once with unread bytes would make the kernel send a reset, which can
  /// destroy the error response before the client reads it.
  asio::awaitable<void> linger() {
    constexpr std::size_t kMaxDiscard = 4 * 1024 * 1024;
    std::error_code error;
    socket_.shutdown(tcp::socket::shutdown_send, error);
    phase_ = Phase::reading;
    set_deadline(Clock::now() +
                 std::min<std::chrono::milliseconds>(idle_timeout_, std::chrono::seconds(2)));
    std::array<char, 16 * 1024> discard;
    for (std::size_t total = 0; !error && !closed_ && total < kMaxDiscard;)
      total += co_await socket_.async_read_some(asio::buffer(discard),
                                                asio::redirect_error(asio::use_awaitable, error));
  }

  asio::awaitable<void> write_response(const HttpResponse& response, bool keep_alive) {
    co_await write_bytes(serialize(response, keep_alive));
  }

  asio::awaitable<void> write_bytes(std::string bytes) {
    if (closed_) co_return;
    phase_ = Phase::writing;
    set_deadline(Clock::now() + write_timeout_);
    std::error_code error;
    co_await asio::async_write(socket_, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, error));
    if (error) close();
  }

  void set_deadline(Clock::time_point deadline) {
    const bool earlier = deadline < deadline_;
    deadline_ = deadline;
    if (earlier) timer_.cancel();  // the watchdog re-arms for the earlier time
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
  }

  HttpServer& server_;
  const std::uint64_t id_;
  const std::chrono::milliseconds idle_timeout_;
  const std::chrono::milliseconds write_timeout_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  RequestParser parser_;
  std::string pending_;  // received, not yet parsed
  Phase phase_ = Phase::idle;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool stop_requested_ = false;
  bool closed_ = false;
  bool chunked_ = true;  // the streamed body in progress uses chunked framing
};

// ---- HttpServer ----

HttpServer::HttpServer(asio::io_context& acceptor_context,
                       std::vector<asio::any_io_executor> connection_executors, ServerConfig config,
                       Handler handler, ResponseCounter count_response)
    : acceptor_context_(acceptor_context),
      executors_(std::move(connection_executors)),
      config_(std::move(config)),
      handler_(std::move(handler)),
      count_response_(std::move(count_response)),
      acceptor_(acceptor_context) {
  config_.validate();
  if (executors_.empty()) throw std::invalid_argument("HttpServer needs at least one executor");
  if (!handler_) throw std::invalid_argument("HttpServer needs a handler");
  const tcp::endpoint endpoint(asio::ip::make_address(config_.bind_address), config_.port);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
}

HttpServer::~HttpServer() {
  std::error_code ignored;
  acceptor_.close(ignored);
}

void HttpServer::start() {
  asio::co_spawn(acceptor_context_, accept_loop(),
                 [](std::exception_ptr e) { log_failure("accept loop", e); });
}

std::size_t HttpServer::open_connections() const noexcept {
  const std::lock_guard lock(mutex_);
  return connections_.size();
}

void HttpServer::count(int status) const {
  if (count_response_) count_response_(status);
}

void HttpServer::forget(std::uint64_t id) {
  const std::lock_guard lock(mutex_);
  connections_.erase(id);
}

asio::awaitable<void> HttpServer::accept_loop() {
  asio::steady_timer pause(acceptor_context_);
  while (!stopping_.load(std::memory_order_relaxed)) {
    const asio::any_io_executor& executor = executors_[next_executor_++ % executors_.size()];
    std::error_code error;
    tcp::socket socket =
        co_await acceptor_.async_accept(executor, asio::redirect_error(asio::use_awaitable, error));
    if (error) {
      if (stopping_.load(std::memory_order_relaxed) || error == asio::error::operation_aborted)
        co_return;
      fmt::print(stderr, "serving_stack: accept: {}\n", error.message());
      pause.expires_after(std::chrono::milliseconds(10));  // e.g. out of file descriptors
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, error));
      continue;
    }
    accepted_.fetch_add(1, std::memory_order_relaxed);
    socket.set_option(tcp::no_delay(true), error);  // small responses, keep-alive
    admit(std::move(socket), executor);
  }
}

void HttpServer::admit(tcp::socket socket, const asio::any_io_executor& executor) {
  std::shared_ptr<Connection> connection;
  {
    const std::lock_guard lock(mutex_);
    if (connections_.size() < config_.max_connections) {
      const std::uint64_t id = next_connection_id_++;
      connection = std::make_shared<Connection>(*this, id, std::move(socket));
      connections_.emplace(id, connection);
    }
  }
  if (!connection) {
    asio::co_spawn(executor, refuse_connection(std::move(socket)),
                   [](std::exception_ptr e) { log_failure("refusing a connection", e); });
    return;
  }
  asio::co_spawn(executor, Connection::run(connection),
                 [](std::exception_ptr e) { log_failure("connection", e); });
  asio::co_spawn(executor, Connection::watchdog(std::move(connection)),
                 [](std::exception_ptr e) { log_failure("connection watchdog", e); });
}

asio::awaitable<void> HttpServer::refuse_connection(tcp::socket socket) {
  count(503);
  const std::string bytes = serialize(
      error_response(503, fmt::format("too many connections (limit {})", config_.max_connections)),
      false);
  std::error_code ignored;
  co_await asio::async_write(socket, asio::buffer(bytes),
                             asio::redirect_error(asio::use_awaitable, ignored));
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

std::vector<std::shared_ptr<HttpServer::Connection>> HttpServer::live_connections() const {
  std::vector<std::shared_ptr<Connection>> live;
  const std::lock_guard lock(mutex_);
  for (const auto& [id, weak] : connections_)
    if (auto connection = weak.lock()) live.push_back(std::move(connection));
  return live;
}

asio::awaitable<void> HttpServer::shutdown() {
  stopping_.store(true, std::memory_order_relaxed);
  std::error_code ignored;
  acceptor_.close(ignored);
  for (const auto& connection : live_connections()) connection->request_stop();

  asio::steady_timer poll(acceptor_context_);
  const auto grace_end = Clock::now() + config_.shutdown_grace;
  bool forced = false;
  while (open_connections() > 0) {
    if (!forced && Clock::now() >= grace_end) {
      forced = true;  // requests still running get their sockets closed
      for (const auto& connection : live_connections()) connection->force_close();
    }
    poll.expires_after(std::chrono::milliseconds(5));
    co_await poll.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
}

}  // namespace serving_stack
