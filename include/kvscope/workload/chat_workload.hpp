// kvscope/workload/chat_workload.hpp - the embedded default workload of
// `kvscope bench`: deterministic multi-tenant chat traffic, for load tests
// of kvscope or of a serving stack that embeds it.
//
// What it generates (every choice drawn from one seeded generator):
//  - tenants, each with its own cache salt, so equal prompts of different
//    tenants never share blocks;
//  - a few shared system prompts of different lengths;
//  - multi-turn sessions: each turn resends the whole conversation so far
//    (system prompt, earlier turns, earlier answers) plus a new user turn;
//    a session that grows past max_history_tokens starts over;
//  - a tail of unique prompts and, now and then, a prompt shorter than one
//    block (it can never hit).
//
// Prompts are compact descriptions (ChatPrompt); tokens() writes the tokens
// of a prompt's conversation on demand from a counter-based generator, so a
// run of millions of requests holds no token history. A conversation's
// tokens past the prompt are its answer: decoding them (PrefixCache::append)
// caches the blocks the next turn will hit, as in a real chat server.
//
// Thread rules: next() mutates (one thread at a time, or a lock); tokens()
// and salt() are const and safe from any thread. Cost: next() O(1);
// tokens() under one multiply per token.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "kvscope/block_hasher.hpp"
#include "kvscope/types.hpp"

namespace kvscope {

/// validate() throws std::invalid_argument naming the bad field.
struct ChatWorkloadConfig {
  std::uint64_t seed = 42;
  std::uint32_t tenants = 8;  ///< 1 .. 65,536
  /// Lengths of the shared system prompts, tokens; 1 .. 64 of them, each >= 1.
  std::vector<std::uint32_t> system_prompt_tokens{64, 400, 1'000, 2'000};
  std::uint32_t sessions = 2048;  ///< conversations alive at a time; >= 1
  /// A session whose next prompt would pass this starts over; > every system prompt.
  std::uint32_t max_history_tokens = 6'000;
  std::uint32_t turn_tokens_min = 16;     ///< user turn length, uniform in [min, max]
  std::uint32_t turn_tokens_max = 200;    ///< >= turn_tokens_min
  std::uint32_t answer_tokens_min = 16;   ///< answer (decode) length, uniform in [min, max]
  std::uint32_t answer_tokens_max = 160;  ///< >= answer_tokens_min
  double unique_share = 0.10;             ///< prompts unrelated to anything; [0, 1]
  std::uint32_t unique_tokens_min = 64;   ///< their length, uniform in [min, max]
  std::uint32_t unique_tokens_max = 1'500;
  double short_share = 0.03;        ///< prompts shorter than short_tokens; [0, 1 - unique_share]
  std::uint32_t short_tokens = 16;  ///< set to the cache's block size: "shorter than a block"; >= 2

  void validate() const;
};

enum class ChatPromptKind : std::uint8_t { session_turn, unique, short_prompt };

/// One request of the workload. Its conversation's tokens are
/// [system prompt (system_tokens of them)] [the conversation's own stream];
/// the prompt is the first prompt_tokens, the answer the next answer_tokens.
struct ChatPrompt {
  std::uint64_t index = 0;   ///< 0, 1, 2, ... in generation order
  std::uint64_t stream = 0;  ///< the conversation's own token stream
  std::uint32_t tenant = 0;
  std::uint32_t system_prompt = 0;  ///< index into the system prompts (when system_tokens > 0)
  std::uint32_t system_tokens = 0;  ///< leading tokens from that system prompt
  std::uint32_t prompt_tokens = 0;
  std::uint32_t answer_tokens = 0;
  std::uint32_t turn = 0;  ///< 0 for a session's first request and for one-off prompts
  ChatPromptKind kind = ChatPromptKind::session_turn;

  std::uint32_t conversation_tokens() const noexcept { return prompt_tokens + answer_tokens; }
};

class ChatWorkload {
 public:
  /// Throws std::invalid_argument on a bad config.
  explicit ChatWorkload(ChatWorkloadConfig config);

  /// The next request. Deterministic: the n-th call returns the same prompt
  /// for the same config.
  ChatPrompt next();

  /// Writes the prompt's conversation tokens (prompt then answer) into `out`,
  /// resizing it. The same prompt always gives the same tokens; equal
  /// prefixes of one conversation's turns are equal tokens.
  void tokens(const ChatPrompt& prompt, std::vector<TokenId>& out) const;

  /// The tenant's cache salt ("tenant-<i>"). Precondition: tenant < tenants.
  const CacheSalt& salt(std::uint32_t tenant) const { return salts_.at(tenant); }
  /// "tenant-<i>", for exports.
  static std::string tenant_name(std::uint32_t tenant);

  const ChatWorkloadConfig& config() const noexcept { return config_; }

 private:
  struct Session {
    std::uint64_t stream = 0;
    std::uint32_t tenant = 0;
    std::uint32_t system_prompt = 0;
    std::uint32_t length = 0;  ///< conversation tokens so far (prompts and answers)
    std::uint32_t turns = 0;
  };

  std::uint32_t uniform(std::uint32_t low, std::uint32_t high);  // inclusive
  void start_session(Session& session);
  ChatPrompt one_off(ChatPromptKind kind, std::uint32_t length);
  ChatPrompt next_turn(Session& session);

  ChatWorkloadConfig config_;
  std::mt19937_64 rng_;
  std::vector<CacheSalt> salts_;
  std::vector<Session> sessions_;
  std::uint64_t next_index_ = 0;
  std::uint64_t next_stream_ = 0;
};

}  // namespace kvscope
