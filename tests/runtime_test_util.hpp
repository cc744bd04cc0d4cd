// Helpers for tests that drive a Runtime from client coroutines: a caller
// io_context run by a few threads, and the clients' own tallies.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kvscope::testing_util {

/// A caller io_context run by `threads` threads: the serving stack's side.
class Callers {
 public:
  explicit Callers(int threads = 1) : threads_(threads) {}
  /// Spawns the coroutine; failures are rethrown by run_all().
  void spawn(asio::awaitable<void> coroutine) {
    ++spawned_;
    asio::co_spawn(io_, std::move(coroutine), [this](std::exception_ptr failure) {
      if (failure) {
        std::lock_guard lock(mutex_);
        failure_ = failure;
      }
      finished_.fetch_add(1);
    });
  }
  /// Runs until every spawned coroutine finished.
  void run_all() {
    std::vector<std::thread> extra;
    for (int i = 1; i < threads_; ++i) extra.emplace_back([this] { io_.run(); });
    io_.run();
    for (auto& t : extra) t.join();
    io_.restart();
    if (failure_) std::rethrow_exception(failure_);
  }
  int finished() const { return finished_.load(); }
  int spawned() const { return spawned_; }
  asio::io_context& io() { return io_; }

 private:
  asio::io_context io_;
  int threads_;
  int spawned_ = 0;
  std::atomic<int> finished_{0};
  std::mutex mutex_;
  std::exception_ptr failure_;
};

/// What client coroutines saw, summed over all of them.
struct ClientTally {
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<std::uint64_t> hit_tokens{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> freed{0};
};

}  // namespace kvscope::testing_util
