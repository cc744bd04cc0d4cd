// The embedded chat workload: deterministic by seed, turns extend their
// conversation, system prompts are shared, the mix has the configured shares.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvscope/workload/chat_workload.hpp"

namespace kvscope {
namespace {

std::vector<TokenId> tokens_of(const ChatWorkload& w, const ChatPrompt& p) {
  std::vector<TokenId> out;
  w.tokens(p, out);
  return out;
}

TEST(ChatWorkload, TheSameSeedGivesTheSameRequests) {
  ChatWorkload a({});
  ChatWorkload b({});
  ChatWorkloadConfig other_seed;
  other_seed.seed = 7;
  ChatWorkload c(other_seed);
  bool any_difference = false;
  for (int i = 0; i < 2'000; ++i) {
    const ChatPrompt pa = a.next();
    const ChatPrompt pb = b.next();
    const ChatPrompt pc = c.next();
    ASSERT_EQ(pa.index, static_cast<std::uint64_t>(i));
    ASSERT_EQ(pa.prompt_tokens, pb.prompt_tokens);
    ASSERT_EQ(pa.tenant, pb.tenant);
    ASSERT_EQ(tokens_of(a, pa), tokens_of(b, pb));
    any_difference = any_difference || pa.prompt_tokens != pc.prompt_tokens;
  }
  EXPECT_TRUE(any_difference);
}

TEST(ChatWorkload, ANextTurnResendsTheWholeConversationSoFar) {
  ChatWorkloadConfig config;
  config.sessions = 4;  // turns of one session come often
  ChatWorkload w(config);
  std::map<std::uint64_t, ChatPrompt> last_turn;  // by stream
  int checked = 0;
  for (int i = 0; i < 5'000; ++i) {
    const ChatPrompt p = w.next();
    if (p.kind != ChatPromptKind::session_turn) continue;
    if (auto it = last_turn.find(p.stream); it != last_turn.end()) {
      const ChatPrompt& before = it->second;
      ASSERT_EQ(p.turn, before.turn + 1);
      ASSERT_GT(p.prompt_tokens, before.conversation_tokens());  // a new user turn on top
      const auto now = tokens_of(w, p);
      const auto then = tokens_of(w, before);  // prompt and answer
      ASSERT_TRUE(std::equal(then.begin(), then.end(), now.begin())) << "turn " << p.turn;
      ++checked;
    }
    last_turn[p.stream] = p;
  }
  EXPECT_GT(checked, 1'000);
}

TEST(ChatWorkload, SessionsShareTheirSystemPromptOnly) {
  ChatWorkload w({});
  std::map<std::uint32_t, std::vector<TokenId>> first_of_system_prompt;
  int compared = 0;
  for (int i = 0; i < 3'000; ++i) {
    const ChatPrompt p = w.next();
    if (p.kind != ChatPromptKind::session_turn || p.turn != 0) continue;
    const auto tokens = tokens_of(w, p);
    auto [it, inserted] = first_of_system_prompt.emplace(p.system_prompt, tokens);
    if (inserted) continue;
    const auto& other = it->second;
    ASSERT_TRUE(std::equal(tokens.begin(), tokens.begin() + p.system_tokens, other.begin()));
    // Past the system prompt two sessions have nothing in common (16 tokens).
    EXPECT_FALSE(std::equal(tokens.begin() + p.system_tokens, tokens.begin() + p.system_tokens + 16,
                            other.begin() + p.system_tokens));
    ++compared;
  }
  EXPECT_EQ(first_of_system_prompt.size(), ChatWorkloadConfig{}.system_prompt_tokens.size());
  EXPECT_GT(compared, 10);
}

// Unrelated streams never share a block, wherever it starts: the runtime
// routes a prompt shorter than a block by its id, so a block it decodes that
// another stream also held would live on two shards (the KV event stream then
// showed a repeated store and a removal of an unknown hash). Before every
// position was mixed on its own, 60,000 one-off prompts shared ~1,000 first
// blocks.
TEST(ChatWorkload, UnrelatedStreamsShareNoBlock) {
  ChatWorkloadConfig config;
  config.unique_share = 0.5;
  config.short_share = 0.5;
  ChatWorkload w(config);
  std::set<std::vector<TokenId>> blocks;
  int streams = 0;
  for (int i = 0; i < 60'000; ++i) {
    const ChatPrompt p = w.next();
    const auto tokens = tokens_of(w, p);
    if (tokens.size() < 16) continue;
    // The first block and one at an odd offset, so overlapping positions
    // of two streams would show too.
    ASSERT_TRUE(blocks.emplace(tokens.begin(), tokens.begin() + 16).second) << "prompt " << i;
    if (tokens.size() >= 16 + 7) {
      ASSERT_TRUE(blocks.emplace(tokens.begin() + 7, tokens.begin() + 7 + 16).second)
          << "prompt " << i;
    }
    ++streams;
  }
  EXPECT_GT(streams, 50'000);
}

TEST(ChatWorkload, TheMixHasTheConfiguredShares) {
  ChatWorkloadConfig config;
  ChatWorkload w(config);
  constexpr int kN = 40'000;
  int short_prompts = 0;
  int unique = 0;
  std::vector<int> per_tenant(config.tenants);
  for (int i = 0; i < kN; ++i) {
    const ChatPrompt p = w.next();
    ++per_tenant.at(p.tenant);
    if (p.kind == ChatPromptKind::short_prompt) {
      ++short_prompts;
      EXPECT_LT(p.prompt_tokens, config.short_tokens);
    }
    if (p.kind == ChatPromptKind::unique) {
      ++unique;
      EXPECT_GE(p.prompt_tokens, config.unique_tokens_min);
      EXPECT_LE(p.prompt_tokens, config.unique_tokens_max);
    }
    if (p.kind == ChatPromptKind::session_turn) {
      EXPECT_LE(p.prompt_tokens, config.max_history_tokens);
    }
  }
  // Binomial: 4 standard deviations around the configured shares.
  EXPECT_NEAR(short_prompts, kN * config.short_share, 4 * std::sqrt(kN * 0.03));
  EXPECT_NEAR(unique, kN * config.unique_share, 4 * std::sqrt(kN * 0.1));
  for (int n : per_tenant) EXPECT_GT(n, kN / static_cast<int>(config.tenants) / 2);
}

TEST(ChatWorkload, TenantsHaveDistinctSalts) {
  ChatWorkload w({});
  for (std::uint32_t a = 0; a < w.config().tenants; ++a)
    for (std::uint32_t b = a + 1; b < w.config().tenants; ++b) EXPECT_FALSE(w.salt(a) == w.salt(b));
  EXPECT_EQ(ChatWorkload::tenant_name(3), "tenant-3");
}

TEST(ChatWorkload, BadConfigurationThrowsNamingTheField) {
  auto expect_bad = [](ChatWorkloadConfig c, const std::string& field) {
    try {
      ChatWorkload w(c);
      ADD_FAILURE() << "accepted bad " << field;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  ChatWorkloadConfig c;
  c.tenants = 0;
  expect_bad(c, "tenants");
  c = {};
  c.system_prompt_tokens.clear();
  expect_bad(c, "system_prompt_tokens");
  c = {};
  c.max_history_tokens = 100;
  expect_bad(c, "max_history_tokens");
  c = {};
  c.turn_tokens_min = 300;
  expect_bad(c, "turn_tokens_min");
  c = {};
  c.unique_share = 1.5;
  expect_bad(c, "unique_share");
  c = {};
  c.short_share = 0.95;
  expect_bad(c, "short_share");
  c = {};
  c.short_tokens = 1;
  expect_bad(c, "short_tokens");
}

}  // namespace
}  // namespace kvscope
