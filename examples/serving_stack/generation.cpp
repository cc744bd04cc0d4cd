#include "generation.hpp"

#include <fmt/format.h>
#include <algorithm>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <exception>

#include "toy_model.hpp"

namespace serving_stack {
namespace {

using kvscope::Status;

asio::awaitable<void> sleep_for(std::chrono::nanoseconds how_long) {
  if (how_long < std::chrono::microseconds(1)) co_return;  // below timer resolution
  asio::steady_timer timer(co_await asio::this_coro::executor, how_long);
  co_await timer.async_wait(asio::use_awaitable);
}

}  // namespace

Generator::Generator(kvscope::Runtime& runtime, GenerationConfig config)
    : runtime_(runtime), config_(config) {}

asio::awaitable<kvscope::Result<Admission>> Generator::admit(std::vector<kvscope::TokenId> tokens,
                                                             std::string tenant) {
  kvscope::ExtraKeys extras;
  if (!tenant.empty()) {
    extras.salt = kvscope::CacheSalt::from_string(tenant);
    co_await name_tenant(tenant, *extras.salt);
  }
  const kvscope::RequestId id{next_request_id_.fetch_add(1, std::memory_order_relaxed)};
  const auto request = kvscope::Request::with_tokens(id, tokens, extras);
  const kvscope::ShardId shard = runtime_.route(request);
  kvscope::Result<kvscope::AllocateResult> admitted = co_await runtime_.allocate(shard, request);
  for (std::uint32_t retry = 0;
       !admitted && admitted.status() == Status::not_enough_blocks && retry < config_.admit_retries;
       ++retry) {
    co_await sleep_for(config_.retry_backoff);  // other requests free blocks meanwhile
    admitted = co_await runtime_.allocate(shard, request);
  }
  if (!admitted) co_return admitted.status();
  co_return Admission{.id = id,
                      .shard = shard,
                      .prompt_tokens = request.token_count(),
                      .cached_tokens = admitted->lookup.hit_tokens,
                      .last_token = tokens.back()};
}

asio::awaitable<DecodeResult> Generator::decode_and_free(Admission admission,
                                                         std::uint32_t max_tokens,
                                                         DecodeSink& sink) {
  DecodeResult result;
  std::exception_ptr thrown;
  try {
    result = co_await decode(admission, max_tokens, sink);
  } catch (...) {
    thrown = std::current_exception();  // freed below first: no co_await in a handler
  }
  const kvscope::Result<kvscope::FreeResult> freed =
      co_await runtime_.free(admission.shard, admission.id);
  if (thrown) std::rethrow_exception(thrown);
  if (!freed && result.failure == Status::ok) result.failure = freed.status();
  if (result.failure == Status::ok) generations_.fetch_add(1, std::memory_order_relaxed);
  co_return result;
}

asio::awaitable<DecodeResult> Generator::decode(const Admission& admission,
                                                std::uint32_t max_tokens, DecodeSink& sink) {
  co_await sleep_for(config_.prefill_per_token *
                     (admission.prompt_tokens - admission.cached_tokens));
  DecodeResult result;
  std::vector<kvscope::TokenId> step;
  kvscope::TokenId previous = admission.last_token;
  while (result.generated_tokens < max_tokens) {
    const std::uint32_t n = std::min(block_size(), max_tokens - result.generated_tokens);
    step.clear();
    for (std::uint32_t i = 0; i < n; ++i)
      step.push_back(previous = next_token(previous, result.generated_tokens + i));
    co_await sleep_for(config_.decode_per_token * n);
    const Status appended =
        (co_await runtime_.append(admission.shard, admission.id, step)).status();
    if (appended == Status::not_enough_blocks) {
      result.cut_short = true;
      break;
    }
    if (appended != Status::ok) {
      result.failure = appended;
      break;
    }
    result.generated_tokens += n;
    if (!co_await sink.on_tokens(step)) break;
  }
  co_return result;
}

asio::awaitable<void> Generator::name_tenant(const std::string& tenant,
                                             const kvscope::CacheSalt& salt) {
  {
    const std::lock_guard lock(tenants_mutex_);
    if (named_tenants_.contains(tenant) ||
        named_tenants_.size() >= runtime_.config().metrics.max_tenants)
      co_return;
    named_tenants_.insert(tenant);
  }
  auto set_name = [salt, tenant](kvscope::MeteredPrefixCache& cache,
                                 kvscope::MultiLevelCacheMetrics&) {
    cache.metrics().set_tenant_name(salt, tenant);
    return kvscope::Result<void>{};
  };
  (void)co_await runtime_.for_each_shard(std::move(set_name));  // not_running: shutting down
}

HttpResponse refused_admission(Status status, std::uint32_t prompt_tokens,
                               const Generator& generator, TooLargeAnswer too_large) {
  switch (status) {
    case Status::not_enough_blocks: {
      HttpResponse busy = error_response(503, "the KV-block pool stayed full; retry later");
      busy.headers.emplace_back("Retry-After", "1");
      return busy;
    }
    case Status::request_too_large:
      return error_response(
          too_large.status,
          fmt::format("a prompt of {} tokens needs more KV blocks than a shard's pool holds "
                      "({} blocks of {} tokens)",
                      prompt_tokens, generator.runtime().shard_blocks(kvscope::ShardId{0}),
                      generator.block_size()),
          "", too_large.code);
    case Status::not_running: return error_response(503, "the server is shutting down");
    default:
      return error_response(500, fmt::format("admission failed: {}", kvscope::to_string(status)));
  }
}

HttpResponse decode_failed(Status failure) {
  return error_response(500, fmt::format("decode failed: {}", kvscope::to_string(failure)));
}

}  // namespace serving_stack
