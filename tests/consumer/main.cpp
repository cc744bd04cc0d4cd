// Uses an installed kvscope: one request handler coroutine awaits the
// runtime twice with the same prompt; the second must hit the cache.
// Exits 0 and prints "consumer ok" when it does.
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <cstdio>
#include <kvscope/runtime/runtime.hpp>
#include <numeric>
#include <vector>

namespace {

asio::awaitable<std::uint32_t> admit_and_free(kvscope::Runtime& runtime, std::uint64_t id,
                                              std::vector<kvscope::TokenId> prompt) {
  const auto request = kvscope::Request::with_tokens(kvscope::RequestId{id}, prompt);
  const kvscope::ShardId shard = runtime.route(request);
  const auto admitted = co_await runtime.allocate(shard, request);
  if (!admitted) co_return 0;
  (void)co_await runtime.free(shard, request.id);
  co_return admitted->lookup.hit_tokens;
}

asio::awaitable<bool> two_turns(kvscope::Runtime& runtime) {
  std::vector<kvscope::TokenId> prompt(100);
  std::iota(prompt.begin(), prompt.end(), 1u);
  const std::uint32_t first = co_await admit_and_free(runtime, 1, prompt);
  const std::uint32_t second = co_await admit_and_free(runtime, 2, prompt);
  co_return first == 0 && second == 96;  // 6 full blocks of 16 cached
}

}  // namespace

int main() {
  kvscope::Runtime runtime({.shards = 2, .cache = {.num_blocks = 64, .block_size = 16}});
  runtime.start();
  asio::io_context handlers;
  bool ok = false;
  asio::co_spawn(handlers, two_turns(runtime),
                 [&ok](std::exception_ptr e, bool result) { ok = !e && result; });
  handlers.run();
  runtime.stop();
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}
