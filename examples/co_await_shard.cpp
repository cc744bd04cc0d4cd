// co_await_shard: a request handler coroutine that hops onto the strand
// owning a PrefixCache, admits a request, and hops back to its own executor.
// This is the pattern the runtime (issue 4) packages behind one awaitable.
#include <fmt/core.h>
#include <asio.hpp>

#include <numeric>
#include <thread>
#include <vector>

#include "kvscope/prefix_cache.hpp"

namespace {

using Strand = asio::strand<asio::io_context::executor_type>;

asio::awaitable<void> handle_request(Strand shard, kvscope::PrefixCache& cache, std::uint64_t id,
                                     std::vector<kvscope::TokenId> prompt) {
  const auto home = co_await asio::this_coro::executor;
  // post (not dispatch) through the strand: the coroutine resumes on it.
  co_await asio::post(asio::bind_executor(shard, asio::use_awaitable));
  const auto admitted =
      cache.allocate(kvscope::Request::with_tokens(kvscope::RequestId{id}, prompt));
  const auto hit = admitted ? admitted->lookup.hit_tokens : 0u;
  if (admitted) (void)cache.free(kvscope::RequestId{id});
  co_await asio::post(asio::bind_executor(home, asio::use_awaitable));  // back home
  fmt::print("request {}: {} of {} prompt tokens from cache\n", id, hit, prompt.size());
}

}  // namespace

asio::awaitable<void> client(Strand shard, kvscope::PrefixCache& cache) {
  std::vector<kvscope::TokenId> system_prompt(256);
  std::iota(system_prompt.begin(), system_prompt.end(), 0u);
  for (std::uint64_t id = 0; id < 3; ++id) {  // one after another, so later requests hit
    auto prompt = system_prompt;
    prompt.insert(prompt.end(), {static_cast<kvscope::TokenId>(1000 + id), 7, 8, 9});
    co_await handle_request(shard, cache, id, std::move(prompt));
  }
}

int main() {
  asio::io_context shard_context;  // run by one thread: an implicit strand
  auto keep_running = asio::make_work_guard(shard_context);
  std::thread shard_thread([&] { shard_context.run(); });
  Strand shard = asio::make_strand(shard_context);
  kvscope::PrefixCache cache({.num_blocks = 1024, .block_size = 16});

  asio::io_context handlers;  // the serving stack's own executor
  asio::co_spawn(handlers, client(shard, cache), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  handlers.run();
  keep_running.reset();
  shard_thread.join();
  return 0;
}
