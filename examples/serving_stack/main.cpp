// serving_stack: kvscope inside an async HTTP serving stack.
//
//   serving_stack --port 8080 --shards 2 --blocks 16384 --block-size 16
//
// Thread-per-core: every connection is served on one of the Runtime's shard
// threads (Runtime::shard_executor), so a handler's cache operations on its
// own shard need no thread switch. The main thread accepts connections and
// waits for SIGINT/SIGTERM: the first drains (healthz turns 503; after
// --drain-delay-ms the listener closes, requests in flight finish within
// --shutdown-grace-ms, idle connections close, the runtime publishes its
// final snapshot), a second one exits at once.
//
// Prints "serving_stack: listening on http://ADDRESS:PORT ..." on stdout once
// it accepts connections (with --port 0, the port the kernel chose), and with
// --kv-events the endpoints its KV cache events go to (docs/kv-events.md).
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <csignal>
#include <cstdio>

#include "commands.hpp"
#include "generate_service.hpp"
#include "http_server.hpp"
#include "kv_event_options.hpp"
#include "kvscope/eviction_policy.hpp"
#include "kvscope/runtime/runtime.hpp"

namespace {

struct Options {
  serving_stack::ServerConfig server;
  std::uint32_t shards = 0;
  std::uint32_t blocks = 16384;
  std::uint32_t block_size = 16;
  std::string policy = "lru";
  std::uint32_t snapshot_ms = 1000;
  double prefill_us_per_token = 1.0;
  double decode_us_per_token = 10.0;
  bool miss_ratio_curve = true;
  bool verify_tokens = false;
  std::uint64_t hash_secret = 0;
  std::uint32_t drain_delay_ms = 0;
  std::uint32_t shutdown_grace_ms = 10'000;
  serving_stack::GenerateLimits limits;
  std::string model_name = "kvscope-example";
  std::string groups;
  std::string kv_events, kv_events_replay, kv_events_topic, kv_events_format = "map";
};

void add_options(CLI::App& app, Options& o) {
  app.add_option("--port", o.server.port, "TCP port (0: any free port)")->capture_default_str();
  app.add_option("--bind", o.server.bind_address, "Address to listen on")->capture_default_str();
  app.add_option("--shards", o.shards, "Runtime shards (0: one per hardware thread)")
      ->capture_default_str();
  app.add_option("--blocks", o.blocks, "KV blocks in the whole pool")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--block-size", o.block_size, "Tokens per block")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  std::vector<std::string> policies;
  for (const auto kind : kvscope::kEvictionPolicies)
    policies.emplace_back(kvscope::to_string(kind));
  app.add_option("--policy", o.policy, "Eviction policy")
      ->check(CLI::IsMember(policies))
      ->capture_default_str();
  app.add_option("--snapshot-ms", o.snapshot_ms, "Snapshot (and /metrics) refresh period")
      ->check(CLI::Range(1u, 3'600'000u))
      ->capture_default_str();
  app.add_option("--prefill-us-per-token", o.prefill_us_per_token,
                 "Simulated prefill time per uncached prompt token")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--decode-us-per-token", o.decode_us_per_token,
                 "Simulated decode time per generated token")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  app.add_option("--max-connections", o.server.max_connections, "Open connections at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-body-bytes", o.server.limits.max_body_bytes, "Largest request body")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-prompt-tokens", o.limits.max_prompt_tokens, "Longest prompt")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--model-name", o.model_name,
                 "Model name the OpenAI endpoints serve (GET /v1/models; requests must name it)")
      ->capture_default_str();
  app.add_option("--groups", o.groups,
                 "KV cache groups of a hybrid-attention model, e.g. full:16,swa:16:4096 "
                 "(full:BLOCK or swa:BLOCK:WINDOW; block sizes multiples of --block-size); "
                 "default: one full-attention group");
  app.add_flag("--verify-tokens", o.verify_tokens,
               "Verify token content on every cache hit (collision defence; docs/reliability.md)");
  app.add_option("--hash-secret", o.hash_secret,
                 "Secret key of the block-hash chain (0: the public default), so tenants "
                 "cannot predict hashes")
      ->capture_default_str();
  app.add_flag("!--no-miss-ratio-curve", o.miss_ratio_curve,
               "Turn off the miss-ratio curve and capacity advice (on by default)");
  app.add_option("--drain-delay-ms", o.drain_delay_ms,
                 "On SIGTERM, keep serving this long with /healthz at 503 before closing the "
                 "listener, so a load balancer can take the instance out first")
      ->check(CLI::Range(0u, 600'000u))
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", o.shutdown_grace_ms,
                 "Then wait this long for requests in flight before closing their connections")
      ->check(CLI::Range(0u, 600'000u))
      ->capture_default_str();
  kvscope::cli::add_kv_event_options(app, o.kv_events, o.kv_events_replay, o.kv_events_topic,
                                     o.kv_events_format);
}

kvscope::RuntimeConfig runtime_config(const Options& o) {
  kvscope::RuntimeConfig config;
  config.shards = o.shards;
  config.cache.num_blocks = o.blocks;
  config.cache.block_size = o.block_size;
  config.cache.policy = *kvscope::parse_eviction_policy(o.policy);
  config.cache.verify_tokens = o.verify_tokens;
  config.cache.groups = kvscope::cli::parse_groups(o.groups);
  config.cache.hash_seed.secret = o.hash_secret;
  config.snapshot_interval = std::chrono::milliseconds(o.snapshot_ms);
  config.metrics.miss_ratio.enabled = o.miss_ratio_curve;  // capacity advice in /metrics
  config.kv_events = kvscope::cli::kv_events_config(o.kv_events, o.kv_events_replay,
                                                    o.kv_events_topic, o.kv_events_format);
  return config;
}

serving_stack::ServiceConfig service_config(const Options& o) {
  serving_stack::ServiceConfig config;
  config.limits = o.limits;
  config.model_name = o.model_name;
  config.prefill_per_token =
      std::chrono::nanoseconds(static_cast<std::int64_t>(o.prefill_us_per_token * 1000));
  config.decode_per_token =
      std::chrono::nanoseconds(static_cast<std::int64_t>(o.decode_us_per_token * 1000));
  return config;
}

asio::awaitable<void> drain(serving_stack::GenerateService& service,
                            serving_stack::HttpServer& server, asio::signal_set& signals,
                            std::chrono::milliseconds delay) {
  service.begin_draining();  // /healthz answers 503 from now on
  asio::steady_timer wait(co_await asio::this_coro::executor, delay);
  co_await wait.async_wait(asio::use_awaitable);
  co_await server.shutdown();
  std::error_code ignored;
  signals.cancel(ignored);  // nothing left keeps the acceptor context running
}

int serve(const Options& o) {
  kvscope::Runtime runtime(runtime_config(o));
  runtime.start();
  serving_stack::GenerateService service(runtime, service_config(o));
  std::vector<asio::any_io_executor> executors;
  for (std::uint32_t shard = 0; shard < runtime.shard_count(); ++shard)
    executors.emplace_back(runtime.shard_executor(kvscope::ShardId{shard}));

  asio::io_context acceptor_context;
  serving_stack::ServerConfig server_config = o.server;
  server_config.shutdown_grace = std::chrono::milliseconds(o.shutdown_grace_ms);
  auto handler = [&service](serving_stack::HttpRequest request) {
    return service.handle(std::move(request));
  };
  auto count = [&service](int status) { service.count_response(status); };
  serving_stack::HttpServer server(acceptor_context, std::move(executors), server_config, handler,
                                   count);
  server.start();

  asio::signal_set signals(acceptor_context, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code error, int signal_number) {
    if (error) return;
    fmt::print(stderr, "serving_stack: signal {}: draining\n", signal_number);
    signals.async_wait([](std::error_code again, int) {
      if (!again) std::_Exit(1);  // a second signal: give up on draining
    });
    const std::chrono::milliseconds delay(o.drain_delay_ms);
    asio::co_spawn(acceptor_context, drain(service, server, signals, delay),
                   [](std::exception_ptr e) {
                     if (e) std::rethrow_exception(e);
                   });
  });
  fmt::print("serving_stack: listening on http://{}:{} ({} shards, {} blocks of {} tokens, {})\n",
             o.server.bind_address, server.port(), runtime.shard_count(), o.blocks, o.block_size,
             o.policy);
  if (const kvscope::KvEventPublisher* events = runtime.kv_event_publisher()) {
    fmt::print("serving_stack: KV events on {}{}{} ({} format)\n", events->endpoint(),
               events->replay_endpoint().empty() ? "" : ", replay on ", events->replay_endpoint(),
               to_string(events->config().format));
  }
  std::fflush(stdout);

  acceptor_context.run();
  runtime.stop();  // final snapshot: every request above accounted for
  const kvscope::SnapshotPtr last = runtime.snapshot();
  fmt::print(
      "serving_stack: stopped after {} generations on {} connections; token hit ratio {:.4f}\n",
      service.generations(), server.accepted_connections(), last->global.total.hit_rate());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"serving_stack: an HTTP/1.1 server that serves generations through kvscope"};
  Options options;
  add_options(app, options);
  CLI11_PARSE(app, argc, argv);
  try {
    return serve(options);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "serving_stack: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "serving_stack: {}\n", e.what());
    return 1;
  }
}
