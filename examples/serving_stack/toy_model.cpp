#include "toy_model.hpp"

#include <algorithm>
#include <array>

namespace serving_stack {
namespace {

constexpr std::uint32_t kVocabulary = 50'000;

constexpr bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

constexpr kvscope::TokenId word_token(std::string_view word) {
  std::uint32_t hash = 2166136261u;  // FNV-1a offset basis
  for (const char c : word) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  return 1 + hash % kVocabulary;
}

// The words the model speaks, each with its leading space (a token's text).
constexpr std::array<std::string_view, 64> kWords{
    " the",    " cache",   " block", " prefix", " token", " hit",    " miss",    " shard",
    " memory", " request", " reuse", " window", " layer", " model",  " answer",  " prompt",
    " keeps",  " serves",  " frees", " stores", " finds", " evicts", " shares",  " counts",
    " every",  " some",    " each",  " one",    " two",   " many",   " few",     " no",
    " fast",   " warm",    " cold",  " small",  " large", " full",   " empty",   " old",
    " new",    " and",     " or",    " but",    " so",    " then",   " when",    " while",
    " of",     " in",      " on",    " for",    " with",  " from",   " to",      " by",
    " again",  " later",   " now",   " here",   " there", " today",  " always.", " often."};

struct VocabularyEntry {
  kvscope::TokenId token;
  std::string_view text;
};

/// The words' tokens, sorted for lookup by token id.
std::array<VocabularyEntry, kWords.size()> make_vocabulary() {
  std::array<VocabularyEntry, kWords.size()> entries{};
  for (std::size_t i = 0; i < kWords.size(); ++i)
    entries[i] = {word_token(kWords[i].substr(1)), kWords[i]};
  std::sort(entries.begin(), entries.end(),
            [](const VocabularyEntry& a, const VocabularyEntry& b) { return a.token < b.token; });
  return entries;
}

const std::array<VocabularyEntry, kWords.size()>& vocabulary() {
  static const auto entries = make_vocabulary();
  return entries;
}

}  // namespace

std::vector<kvscope::TokenId> tokenize(std::string_view text) {
  std::vector<kvscope::TokenId> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t begin = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > begin) tokens.push_back(word_token(text.substr(begin, i - begin)));
  }
  return tokens;
}

std::string render_chat(std::span<const ChatMessage> messages) {
  std::string text;
  for (const ChatMessage& message : messages) {
    text += "<|" + message.role + "|>\n";
    text += message.content;
    text += '\n';
  }
  text += "<|assistant|>\n";
  return text;
}

kvscope::TokenId next_token(kvscope::TokenId previous, std::uint32_t step) {
  const std::uint32_t mix = previous * 2654435761u + step * 40503u;
  return word_token(kWords[(mix >> 16) % kWords.size()].substr(1));
}

std::string_view token_text(kvscope::TokenId token) {
  const auto& entries = vocabulary();
  const auto* found = std::lower_bound(
      entries.begin(), entries.end(), token,
      [](const VocabularyEntry& entry, kvscope::TokenId id) { return entry.token < id; });
  if (found == entries.end() || found->token != token) return " <unk>";
  return found->text;
}

std::string detokenize(std::span<const kvscope::TokenId> tokens) {
  std::string text;
  for (const kvscope::TokenId token : tokens) text += token_text(token);
  return text;
}

}  // namespace serving_stack
