// prefix_cache_demo: drives one PrefixCache per eviction policy with a small
// deterministic multi-tenant chat workload and prints what the cache saw.
//
// Workload (seeded): tenants with their own cache salt share system prompts of
// different lengths; multi-turn sessions resend their growing history; a tail
// of unique prompts; now and then a prompt shorter than one block. Each
// request is allocated, decodes a few tokens (append), and is freed.
//
// Usage: prefix_cache_demo [requests] [num_blocks] [seed]
#include <fmt/core.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kvscope/prefix_cache.hpp"

namespace {

using kvscope::TokenId;

struct Session {
  std::uint32_t tenant = 0;
  std::vector<TokenId> history;  // system prompt + all turns so far
};

class ChatWorkload {
 public:
  explicit ChatWorkload(std::uint64_t seed) : rng_(seed) {
    for (const std::uint32_t length : {48u, 300u, 700u})
      system_prompts_.push_back(random_tokens(length));
    sessions_.resize(24);
    for (std::size_t i = 0; i < sessions_.size(); ++i) restart(sessions_[i], i);
  }

  // The next prompt and its tenant salt.
  std::pair<std::vector<TokenId>, std::uint32_t> next() {
    const std::uint32_t dice = pick(100);
    if (dice < 5) return {random_tokens(1 + pick(15)), pick(kTenants)};     // shorter than a block
    if (dice < 15) return {random_tokens(64 + pick(512)), pick(kTenants)};  // unique prompt
    Session& session = sessions_[pick(static_cast<std::uint32_t>(sessions_.size()))];
    if (session.history.size() > 3000) restart(session, pick(1000));
    const auto turn = random_tokens(20 + pick(120));
    session.history.insert(session.history.end(), turn.begin(), turn.end());
    return {session.history, session.tenant};
  }

 private:
  static constexpr std::uint32_t kTenants = 3;

  std::uint32_t pick(std::uint32_t n) {
    return std::uniform_int_distribution<std::uint32_t>(0, n - 1)(rng_);
  }

  std::vector<TokenId> random_tokens(std::uint32_t n) {
    std::vector<TokenId> tokens(n);
    for (auto& t : tokens) t = pick(50'000);
    return tokens;
  }

  void restart(Session& session, std::size_t salt) {
    session.tenant = static_cast<std::uint32_t>(salt % kTenants);
    session.history = system_prompts_[salt % system_prompts_.size()];
  }

  std::mt19937_64 rng_;
  std::vector<std::vector<TokenId>> system_prompts_;
  std::vector<Session> sessions_;
};

kvscope::PrefixCacheStats run(kvscope::EvictionPolicyKind policy, std::uint32_t requests,
                              std::uint32_t num_blocks, std::uint64_t seed) {
  kvscope::PrefixCacheConfig config;
  config.num_blocks = num_blocks;
  config.block_size = 16;
  config.policy = policy;
  kvscope::PrefixCache cache(config);
  ChatWorkload workload(seed);
  const std::vector<TokenId> decode_step(8, 7);
  for (std::uint32_t i = 0; i < requests; ++i) {
    const auto [tokens, tenant] = workload.next();
    kvscope::ExtraKeys extras;
    extras.salt = kvscope::CacheSalt::from_string("tenant-" + std::to_string(tenant));
    const kvscope::RequestId id{i};
    const auto allocated = cache.allocate(kvscope::Request::with_tokens(id, tokens, extras));
    if (!allocated) {
      fmt::print("request {} not admitted: {}\n", i, kvscope::to_string(allocated.status()));
      continue;
    }
    for (int step = 0; step < 4; ++step) {
      if (!cache.append(id, decode_step)) break;  // pool full: stop decoding early
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
      fmt::print("         json: {}\n", stats.to_json());
  }
  return 0;
}
