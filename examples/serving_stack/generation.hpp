// serving_stack/generation.hpp - one generation against kvscope::Runtime, in
// the steps a serving engine takes: admit the prompt (lookup + allocate on
// the request's shard, retrying while the pool is full), wait a simulated
// prefill proportional to the uncached tokens, decode block by block
// (appending each step's tokens to the cache and handing them to a sink),
// free. Every HTTP endpoint of the example generates through this class.
//
// Thread rules: any member may run on any executor, concurrently; the class
// keeps only atomics and a mutex-guarded tenant set. The Runtime must outlive
// every call in flight. An Admission must be passed to decode_and_free()
// exactly once, which always frees it.
#pragma once

#include <asio/awaitable.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include "http.hpp"
#include "kvscope/runtime/runtime.hpp"

namespace serving_stack {

struct GenerationConfig {
  /// Simulated prefill time per token not served from the cache.
  std::chrono::nanoseconds prefill_per_token{1000};
  /// Simulated decode time per generated token.
  std::chrono::nanoseconds decode_per_token{10'000};
  /// A full pool is retried this many times, `retry_backoff` apart, before
  /// the admission fails with not_enough_blocks.
  std::uint32_t admit_retries = 50;
  std::chrono::milliseconds retry_backoff{2};
};

/// A prompt holding its blocks on its shard.
struct Admission {
  kvscope::RequestId id{};
  kvscope::ShardId shard{};
  std::uint32_t prompt_tokens = 0;
  std::uint32_t cached_tokens = 0;  ///< served from the prefix cache
  kvscope::TokenId last_token = 0;  ///< the prompt's last token (the model's first input)
};

/// Receives the tokens of each decode step.
class DecodeSink {
 public:
  /// Returns false to stop decoding (the client is gone).
  virtual asio::awaitable<bool> on_tokens(std::span<const kvscope::TokenId> tokens) = 0;

 protected:
  ~DecodeSink() = default;
};

struct DecodeResult {
  std::uint32_t generated_tokens = 0;
  /// The pool ran out mid-decode (fewer tokens than asked for).
  bool cut_short = false;
  /// ok, or why an append or the free failed (a server fault).
  kvscope::Status failure = kvscope::Status::ok;
};

class Generator {
 public:
  Generator(kvscope::Runtime& runtime, GenerationConfig config);

  /// Admits `tokens` (not empty) under `tenant` ("" for the shared default;
  /// else its salt, and the tenant is named in the exports). Fails with
  /// not_enough_blocks (the pool stayed full), request_too_large (more than
  /// a shard's pool) or not_running; a failed admission changes nothing.
  asio::awaitable<kvscope::Result<Admission>> admit(std::vector<kvscope::TokenId> tokens,
                                                    std::string tenant);

  /// Prefill, then up to `max_tokens` decoded tokens (a step of at most a
  /// block's worth at a time, handed to `sink`), then frees the request -
  /// also when the sink stops early or throws.
  asio::awaitable<DecodeResult> decode_and_free(Admission admission, std::uint32_t max_tokens,
                                                DecodeSink& sink);

  kvscope::Runtime& runtime() noexcept { return runtime_; }
  const kvscope::Runtime& runtime() const noexcept { return runtime_; }
  std::uint32_t block_size() const noexcept { return runtime_.config().cache.block_size; }

  /// Successful generations so far.
  std::uint64_t generations() const noexcept {
    return generations_.load(std::memory_order_relaxed);
  }

 private:
  asio::awaitable<DecodeResult> decode(const Admission& admission, std::uint32_t max_tokens,
                                       DecodeSink& sink);
  /// Names a tenant in every shard's exports the first time it is seen
  /// (up to the metrics' max_tenants names; later ones export by salt digest).
  asio::awaitable<void> name_tenant(const std::string& tenant, const kvscope::CacheSalt& salt);

  kvscope::Runtime& runtime_;
  GenerationConfig config_;
  std::atomic<std::uint64_t> next_request_id_{1};
  std::atomic<std::uint64_t> generations_{0};
  std::mutex tenants_mutex_;
  std::unordered_set<std::string> named_tenants_;
};

/// How an endpoint answers a prompt larger than a shard's pool: its status
/// and error code (/v1/generate: 422, none; OpenAI: 400,
/// "context_length_exceeded").
struct TooLargeAnswer {
  int status = 422;
  std::string_view code{};
};

/// The answer every endpoint gives for an admission the Generator refused:
/// 503 with Retry-After when the pool stayed full, 503 when shutting down,
/// `too_large` for a prompt larger than a shard's pool, 500 otherwise.
HttpResponse refused_admission(kvscope::Status status, std::uint32_t prompt_tokens,
                               const Generator& generator, TooLargeAnswer too_large);

/// The 500 for a decode whose append or free failed.
HttpResponse decode_failed(kvscope::Status failure);

}  // namespace serving_stack
