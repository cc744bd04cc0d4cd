// prefix_cache_demo: drives one PrefixCache per eviction policy with a small
// deterministic multi-tenant chat workload (kvscope::ChatWorkload, the one
// `kvscope bench` uses, scaled down) and prints what each cache saw.
//
// Each request is allocated, decodes its answer in four appends (so the
// next turn of its session can hit the answer's blocks), and is freed.
//
// Usage: prefix_cache_demo [requests] [num_blocks] [seed]
#include <fmt/core.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kvscope/export/json.hpp"
#include "kvscope/prefix_cache.hpp"
#include "kvscope/workload/chat_workload.hpp"

namespace {

kvscope::ChatWorkloadConfig small_chat(std::uint64_t seed) {
  kvscope::ChatWorkloadConfig config;
  config.seed = seed;
  config.tenants = 3;
  config.system_prompt_tokens = {48, 300, 700};
  config.sessions = 24;
  config.max_history_tokens = 3'000;
  config.unique_tokens_max = 600;
  config.short_share = 0.05;
  return config;
}

kvscope::PrefixCacheStats run(kvscope::EvictionPolicyKind policy, std::uint32_t requests,
                              std::uint32_t num_blocks, std::uint64_t seed) {
  kvscope::PrefixCacheConfig config;
  config.num_blocks = num_blocks;
  config.block_size = 16;
  config.policy = policy;
  kvscope::PrefixCache cache(config);
  kvscope::ChatWorkload workload(small_chat(seed));
  std::vector<kvscope::TokenId> tokens;
  for (std::uint32_t i = 0; i < requests; ++i) {
    const kvscope::ChatPrompt prompt = workload.next();
    workload.tokens(prompt, tokens);  // the prompt, then its answer
    kvscope::ExtraKeys extras;
    extras.salt = workload.salt(prompt.tenant);
    const std::span<const kvscope::TokenId> all(tokens);
    const kvscope::RequestId id{i};
    const auto allocated =
        cache.allocate(kvscope::Request::with_tokens(id, all.first(prompt.prompt_tokens), extras));
    if (!allocated) {
      fmt::print("request {} not admitted: {}\n", i, kvscope::to_string(allocated.status()));
      continue;
    }
    const auto answer = all.subspan(prompt.prompt_tokens);
    const std::size_t step = std::max<std::size_t>(1, (answer.size() + 3) / 4);
    for (std::size_t done = 0; done < answer.size(); done += step) {
      const auto chunk = answer.subspan(done, std::min(step, answer.size() - done));
      if (!cache.append(id, chunk)) break;  // pool full: stop decoding early
    }
    (void)cache.free(id);
  }
  cache.check_invariants();
  return cache.stats();
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint32_t requests =
      argc > 1 ? static_cast<std::uint32_t>(std::stoul(argv[1])) : 20'000;
  const std::uint32_t num_blocks =
      argc > 2 ? static_cast<std::uint32_t>(std::stoul(argv[2])) : 2'048;
  const std::uint64_t seed = argc > 3 ? std::stoull(argv[3]) : 42;
  fmt::print("kvscope prefix cache demo: {} requests, {} blocks of 16 tokens, seed {}\n\n",
             requests, num_blocks, seed);
  fmt::print("{:<8} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10}\n", "policy", "requests", "queries",
             "hits", "hit_rate", "blk_rate", "evictions");
  for (const auto policy :
       {kvscope::EvictionPolicyKind::lru, kvscope::EvictionPolicyKind::lfu,
        kvscope::EvictionPolicyKind::arc, kvscope::EvictionPolicyKind::s3fifo}) {
    const auto stats = run(policy, requests, num_blocks, seed);
    fmt::print("{:<8} {:>10} {:>12} {:>12} {:>10.4f} {:>10.4f} {:>10}\n",
               kvscope::to_string(policy), stats.fresh.requests, stats.fresh.query_tokens,
               stats.fresh.hit_tokens, stats.hit_rate(), stats.fresh.block_hit_rate(),
               stats.evictions);
    if (policy == kvscope::EvictionPolicyKind::lru)
      fmt::print("         json: {}\n", to_json(stats));
  }
  return 0;
}
