// serving_stack/toy_model.hpp - the example's stand-ins for what a real
// engine brings itself: a tokenizer, a chat template and a "model" that
// decodes deterministic text. They exist so the HTTP endpoints have tokens to
// cache; a real engine uses its model's own tokenizer and chat template.
//
// Tokenizer: text is split on ASCII whitespace; each word becomes one token,
// the FNV-1a hash of its bytes mapped into [1, 50,000]. Equal text gives
// equal tokens, so repeated prompts (and a conversation's earlier turns)
// share cached blocks. Punctuation stays part of its word ("Hi," != "Hi").
//
// Chat template: each message renders as "<|ROLE|>\nCONTENT\n", and the
// prompt ends with "<|assistant|>\n", the generation prompt. Because the
// tokenizer splits on whitespace, "<|user|>" is one token, and a follow-up
// turn that repeats the earlier messages (with the assistant's answer as
// decoded) starts with exactly the earlier turn's tokens.
//
// Model: each generated token is one of 64 fixed words, picked by a hash of
// the previous token and the step, so equal prompts decode equal answers.
// A token's text is " word" (leading space), and re-tokenizing decoded text
// gives back the decoded tokens.
//
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvscope/types.hpp"

namespace serving_stack {

/// Text to tokens (see above). Cost: linear in the text.
std::vector<kvscope::TokenId> tokenize(std::string_view text);

struct ChatMessage {
  std::string role;  ///< "system", "developer", "user" or "assistant"
  std::string content;
};

/// The prompt text for `messages`, ending in the assistant's generation prompt.
std::string render_chat(std::span<const ChatMessage> messages);

/// The token the model decodes after `previous` at decode step `step`
/// (0 for the first generated token).
kvscope::TokenId next_token(kvscope::TokenId previous, std::uint32_t step);

/// The text of a token next_token() produced: " word". Any other token id
/// (the model never produces it) has the text " <unk>".
std::string_view token_text(kvscope::TokenId token);

/// The concatenated text of generated tokens.
std::string detokenize(std::span<const kvscope::TokenId> tokens);

}  // namespace serving_stack
