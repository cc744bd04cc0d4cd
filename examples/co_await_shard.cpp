// co_await_shard: request handler coroutines on the serving stack's own
// io_context await kvscope::Runtime operations; each runs on the shard that
// owns the request's prefix and resumes the handler on its own executor.
#include <fmt/core.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <numeric>
#include <vector>

#include "kvscope/runtime/runtime.hpp"

namespace {

asio::awaitable<void> handle_request(kvscope::Runtime& runtime, std::uint64_t id,
                                     std::vector<kvscope::TokenId> prompt) {
  const auto request = kvscope::Request::with_tokens(kvscope::RequestId{id}, prompt);
  const kvscope::ShardId shard = runtime.route(request);  // by the first block's hash
  const auto admitted = co_await runtime.allocate(shard, request);
  if (!admitted) {  // a value with a reason: not_enough_blocks, duplicate_request, ...
    fmt::print("request {}: refused ({})\n", id, kvscope::to_string(admitted.status()));
    co_return;
  }
  fmt::print("request {} on shard {}: {} of {} prompt tokens from cache\n", id, shard.value,
             admitted->lookup.hit_tokens, prompt.size());
  // ... prefill and decode with the engine's KV memory ...
  (void)co_await runtime.free(shard, request.id);
}

asio::awaitable<void> client(kvscope::Runtime& runtime) {
  std::vector<kvscope::TokenId> system_prompt(256);
  std::iota(system_prompt.begin(), system_prompt.end(), 0u);
  for (std::uint64_t id = 0; id < 3; ++id) {  // one after another, so later requests hit
    auto prompt = system_prompt;
    prompt.insert(prompt.end(), {static_cast<kvscope::TokenId>(1000 + id), 7, 8, 9});
    co_await handle_request(runtime, id, std::move(prompt));
  }
}

}  // namespace

int main() {
  kvscope::Runtime runtime({.shards = 2, .cache = {.num_blocks = 2048, .block_size = 16}});
  runtime.start();
  asio::io_context handlers;  // the serving stack's own executor
  asio::co_spawn(handlers, client(runtime), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  handlers.run();
  runtime.stop();  // final snapshot: every completed operation accounted for
  const auto last = runtime.snapshot();
  fmt::print("snapshot {}: {} requests, token hit rate {:.3f}\n", last->sequence,
             last->global.total.fresh.requests, last->global.total.hit_rate());
  return 0;
}
