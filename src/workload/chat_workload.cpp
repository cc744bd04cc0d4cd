#include "kvscope/workload/chat_workload.hpp"

#include <algorithm>
#include <span>
#include <stdexcept>

#include <fmt/core.h>

#include "detail/hash_mix.hpp"

namespace kvscope {

namespace {

void require(bool ok, std::string_view what) {
  if (!ok) throw std::invalid_argument(fmt::format("ChatWorkloadConfig: {}", what));
}

/// The key of a token stream: well spread, so two streams never overlap.
std::uint64_t stream_key(std::uint64_t seed, std::uint64_t kind, std::uint64_t stream) {
  std::uint64_t state = seed ^ (kind << 56) ^ stream;
  return detail::splitmix64(state);
}

constexpr std::uint64_t kSystemPromptStream = 1;
constexpr std::uint64_t kConversationStream = 2;

/// Counter-based tokens in a 131,072-token vocabulary: position `pos` of
/// the stream keyed `key` is 17 bits of SplitMix64's output for state
/// key + pos / 3 (three tokens per output, so a token costs a third of a
/// mix). Every group of positions is mixed on its own: the former bare
/// multiply (pos * constant) made a block depend on little more than its
/// first token's bits, so unrelated streams shared whole blocks now and then
/// (and, routed to different shards, broke the KV event stream's "one
/// chain, one shard").
std::uint64_t stream_mix(std::uint64_t key, std::uint64_t group) noexcept {
  std::uint64_t state = key + group;
  return detail::splitmix64(state);
}

constexpr TokenId token_of(std::uint64_t mixed, std::uint64_t lane) noexcept {
  return static_cast<TokenId>((mixed >> (47 - 17 * lane)) & ((std::uint64_t{1} << 17) - 1));
}

void write_stream(std::uint64_t key, std::uint32_t first_pos, std::span<TokenId> out) {
  std::uint64_t pos = first_pos;
  std::size_t i = 0;
  const std::size_t n = out.size();
  for (; i < n && pos % 3 != 0; ++i, ++pos) out[i] = token_of(stream_mix(key, pos / 3), pos % 3);
  for (std::uint64_t group = pos / 3; i + 3 <= n; i += 3, ++group) {  // whole groups
    const std::uint64_t mixed = stream_mix(key, group);
    out[i] = token_of(mixed, 0);
    out[i + 1] = token_of(mixed, 1);
    out[i + 2] = token_of(mixed, 2);
  }
  pos = first_pos + i;
  for (; i < n; ++i, ++pos) out[i] = token_of(stream_mix(key, pos / 3), pos % 3);
}

}  // namespace

void ChatWorkloadConfig::validate() const {
  require(tenants >= 1 && tenants <= 65'536, "tenants must be 1 .. 65536");
  require(!system_prompt_tokens.empty() && system_prompt_tokens.size() <= 64,
          "system_prompt_tokens needs 1 .. 64 lengths");
  const auto longest = *std::max_element(system_prompt_tokens.begin(), system_prompt_tokens.end());
  require(*std::min_element(system_prompt_tokens.begin(), system_prompt_tokens.end()) >= 1,
          "system prompt lengths must be >= 1");
  require(sessions >= 1, "sessions must be >= 1");
  require(max_history_tokens > longest + turn_tokens_max,
          "max_history_tokens must exceed the longest system prompt plus one turn");
  require(turn_tokens_min >= 1 && turn_tokens_min <= turn_tokens_max,
          "turn_tokens_min must be 1 .. turn_tokens_max");
  require(answer_tokens_min <= answer_tokens_max, "answer_tokens_min must be <= answer_tokens_max");
  require(unique_share >= 0 && unique_share <= 1, "unique_share must be in [0, 1]");
  require(unique_tokens_min >= 1 && unique_tokens_min <= unique_tokens_max,
          "unique_tokens_min must be 1 .. unique_tokens_max");
  require(short_share >= 0 && short_share <= 1 - unique_share,
          "short_share must be in [0, 1 - unique_share]");
  require(short_tokens >= 2, "short_tokens must be >= 2");
}

ChatWorkload::ChatWorkload(ChatWorkloadConfig config) : config_(std::move(config)) {
  config_.validate();
  rng_.seed(config_.seed);
  salts_.reserve(config_.tenants);
  for (std::uint32_t t = 0; t < config_.tenants; ++t)
    salts_.push_back(CacheSalt::from_string(tenant_name(t)));
  sessions_.resize(config_.sessions);
  for (Session& s : sessions_) start_session(s);
}

std::string ChatWorkload::tenant_name(std::uint32_t tenant) {
  return fmt::format("tenant-{}", tenant);
}

std::uint32_t ChatWorkload::uniform(std::uint32_t low, std::uint32_t high) {
  return std::uniform_int_distribution<std::uint32_t>(low, high)(rng_);
}

void ChatWorkload::start_session(Session& session) {
  session.stream = next_stream_++;
  session.tenant = uniform(0, config_.tenants - 1);
  session.system_prompt =
      uniform(0, static_cast<std::uint32_t>(config_.system_prompt_tokens.size()) - 1);
  session.length = config_.system_prompt_tokens[session.system_prompt];
  session.turns = 0;
}

ChatPrompt ChatWorkload::one_off(ChatPromptKind kind, std::uint32_t length) {
  ChatPrompt p;
  p.index = next_index_++;
  p.stream = next_stream_++;
  p.tenant = uniform(0, config_.tenants - 1);
  p.prompt_tokens = length;
  p.answer_tokens = uniform(config_.answer_tokens_min, config_.answer_tokens_max);
  p.kind = kind;
  return p;
}

ChatPrompt ChatWorkload::next_turn(Session& session) {
  const std::uint32_t turn = uniform(config_.turn_tokens_min, config_.turn_tokens_max);
  if (session.length + turn > config_.max_history_tokens) start_session(session);
  ChatPrompt p;
  p.index = next_index_++;
  p.stream = session.stream;
  p.tenant = session.tenant;
  p.system_prompt = session.system_prompt;
  p.system_tokens = config_.system_prompt_tokens[session.system_prompt];
  p.prompt_tokens = session.length + turn;
  p.answer_tokens = uniform(config_.answer_tokens_min, config_.answer_tokens_max);
  p.turn = session.turns++;
  session.length = p.prompt_tokens + p.answer_tokens;  // the answer joins the history
  return p;
}

ChatPrompt ChatWorkload::next() {
  const double dice = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  if (dice < config_.short_share)
    return one_off(ChatPromptKind::short_prompt, uniform(1, config_.short_tokens - 1));
  if (dice < config_.short_share + config_.unique_share)
    return one_off(ChatPromptKind::unique,
                   uniform(config_.unique_tokens_min, config_.unique_tokens_max));
  return next_turn(sessions_[uniform(0, config_.sessions - 1)]);
}

void ChatWorkload::tokens(const ChatPrompt& prompt, std::vector<TokenId>& out) const {
  out.resize(prompt.conversation_tokens());
  const std::uint32_t system = std::min(prompt.system_tokens, prompt.conversation_tokens());
  const std::span<TokenId> all(out);
  write_stream(stream_key(config_.seed, kSystemPromptStream, prompt.system_prompt), 0,
               all.first(system));
  // The conversation's own tokens continue the positions after the system
  // prompt, so a turn's prompt is a prefix of the next turn's.
  write_stream(stream_key(config_.seed, kConversationStream, prompt.stream), system,
               all.subspan(system));
}

}  // namespace kvscope
