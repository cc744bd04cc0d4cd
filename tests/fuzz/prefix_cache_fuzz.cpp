// libFuzzer target: random operation sequences on the prefix cache core,
// every policy, checked step by step against the reference model and the
// invariants (tests/prefix_cache_model.hpp); or, when the first byte says
// so, a hybrid-attention layout of two or three KV cache groups (equal or
// different block sizes, LRU) against tests/hybrid_cache_model.hpp. The fuzzer's bytes choose the
// configuration and every decision of the run; any disagreement with the
// model is a GoogleTest failure, which break_on_failure turns into a crash
// that libFuzzer reports and saves.
#include <fuzzer/FuzzedDataProvider.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>

#include "hybrid_cache_model.hpp"
#include "prefix_cache_model.hpp"

namespace {

using kvscope::testing_util::RandomOps;

class FuzzedChoices : public kvscope::testing_util::Choices {
 public:
  explicit FuzzedChoices(FuzzedDataProvider& data) : data_(data) {}
  std::uint32_t uniform(std::uint32_t lo, std::uint32_t hi) override {
    return data_.ConsumeIntegralInRange<std::uint32_t>(lo, hi);
  }
  bool chance(double p) override { return data_.ConsumeProbability<double>() < p; }

 private:
  FuzzedDataProvider& data_;
};

// Pools of 4..24 blocks of 2..8 tokens: small enough that eviction, full
// pools and too-large requests happen within a few operations (and at most
// 192 tokens, inside the model's 256-token prompt families).
kvscope::PrefixCacheConfig fuzzed_config(FuzzedDataProvider& data) {
  kvscope::PrefixCacheConfig config;
  config.policy = kvscope::kEvictionPolicies[data.ConsumeIntegralInRange<std::size_t>(
      0, kvscope::kEvictionPolicies.size() - 1)];
  config.num_blocks = data.ConsumeIntegralInRange<std::uint32_t>(4, 24);
  config.block_size = data.ConsumeIntegralInRange<std::uint32_t>(2, 8);
  if (data.ConsumeBool()) config.hash_seed.secret = data.ConsumeIntegral<std::uint64_t>();
  config.s3fifo_small_ratio = data.ConsumeIntegralInRange<int>(1, 9) / 10.0;
  config.verify_tokens = data.ConsumeBool();  // with real hashes it must change nothing
  return config;
}

// Two or three groups over a hash block of 1..4 tokens: full attention or
// a sliding window of 2..24 tokens, blocks of 1..3 hash blocks; a pool of
// 16..48 blocks.
kvscope::PrefixCacheConfig fuzzed_hybrid_config(FuzzedDataProvider& data) {
  kvscope::PrefixCacheConfig config;
  config.num_blocks = data.ConsumeIntegralInRange<std::uint32_t>(16, 48);
  config.block_size = data.ConsumeIntegralInRange<std::uint32_t>(1, 4);
  const int groups = data.ConsumeIntegralInRange<int>(2, 3);
  for (int g = 0; g < groups; ++g) {
    kvscope::KvCacheGroupConfig group;
    group.block_size = config.block_size * data.ConsumeIntegralInRange<std::uint32_t>(1, 3);
    if (data.ConsumeBool()) {
      group.kind = kvscope::AttentionKind::sliding_window;
      group.sliding_window = data.ConsumeIntegralInRange<std::uint32_t>(2, 24);
    }
    config.groups.push_back(group);
  }
  return config;
}

template <class Ops>
int run(Ops& ops, FuzzedDataProvider& data) {
  for (int step = 0; step < 400 && data.remaining_bytes() > 0; ++step) {
    if (!ops.step(step)) std::abort();
  }
  ops.drain();
  if (::testing::Test::HasFailure()) std::abort();
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  GTEST_FLAG_SET(break_on_failure, true);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  FuzzedDataProvider data(bytes, size);
  if (data.ConsumeBool()) {
    const kvscope::PrefixCacheConfig config = fuzzed_hybrid_config(data);
    FuzzedChoices choices(data);
    kvscope::testing_util::HybridRandomOps ops(config, choices);
    return run(ops, data);
  }
  const kvscope::PrefixCacheConfig config = fuzzed_config(data);
  FuzzedChoices choices(data);
  RandomOps ops(config, choices);
  return run(ops, data);
}
