// serving_stack/http_server.hpp - an Asio HTTP/1.1 server for coroutine
// handlers, thread-per-core: the acceptor runs on one io_context, each
// accepted connection is handed (round robin) to one of the connection
// executors (kvscope::Runtime::shard_executor(i) in the example), where its
// coroutine reads, parses, awaits the handler and writes, with keep-alive
// and pipelining.
//
// Limits: at most max_connections open (one more gets 503 and is closed),
// request size limits (ParseLimits), an idle timeout between requests and
// while a request is arriving (slow clients are closed), a write timeout.
//
// Shutdown: shutdown() stops accepting, closes idle connections at once,
// lets every request in flight finish and answer (with "Connection: close"),
// and completes when no connection is left, or after `shutdown_grace`, when
// the rest are closed.
//
// Thread rules: construct, start() and shutdown() from the acceptor
// context's thread (or before it runs). The handler runs on the connection's
// executor, concurrently across connections. The server, the handler and
// everything it uses must outlive shutdown()'s completion.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "http.hpp"

namespace serving_stack {

struct ServerConfig {
  /// Loopback by default: exposing the example beyond the host is a choice.
  std::string bind_address = "127.0.0.1";
  std::uint16_t port = 8080;  ///< 0 picks a free port (see HttpServer::port())
  std::size_t max_connections = 1024;
  ParseLimits limits{};
  std::chrono::milliseconds idle_timeout{30'000};
  std::chrono::milliseconds write_timeout{10'000};
  std::chrono::milliseconds shutdown_grace{10'000};

  /// Throws std::invalid_argument naming the field.
  void validate() const;
};

/// Server-side events a service may want to count: a response the server
/// wrote itself (parse errors, connection limit).
using ResponseCounter = std::function<void(int status)>;

class HttpServer {
 public:
  using Handler = std::function<asio::awaitable<HttpResponse>(HttpRequest)>;

  /// Binds and listens at once (throws std::system_error if the address is
  /// taken, std::invalid_argument for a bad config). `connection_executors`
  /// must not be empty.
  HttpServer(asio::io_context& acceptor_context,
             std::vector<asio::any_io_executor> connection_executors, ServerConfig config,
             Handler handler, ResponseCounter count_response = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The bound port (the chosen one when config.port was 0).
  std::uint16_t port() const noexcept { return port_; }
  /// Starts the accept loop.
  void start();
  /// Graceful stop, see above. Call once.
  asio::awaitable<void> shutdown();

  std::size_t open_connections() const noexcept;
  std::uint64_t accepted_connections() const noexcept {
    return accepted_.load(std::memory_order_relaxed);
  }

 private:
  class Connection;
  friend class Connection;

  asio::awaitable<void> accept_loop();
  /// Registers a connection and starts it on `executor`, or refuses it when
  /// max_connections are open.
  void admit(asio::ip::tcp::socket socket, const asio::any_io_executor& executor);
  asio::awaitable<void> refuse_connection(asio::ip::tcp::socket socket);
  std::vector<std::shared_ptr<Connection>> live_connections() const;
  void forget(std::uint64_t id);
  void count(int status) const;

  asio::io_context& acceptor_context_;
  std::vector<asio::any_io_executor> executors_;
  ServerConfig config_;
  Handler handler_;
  ResponseCounter count_response_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::size_t next_executor_ = 0;
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;  // guards connections_ (connections end on their own threads)
  std::uint64_t next_connection_id_ = 0;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> connections_;
};

}  // namespace serving_stack
