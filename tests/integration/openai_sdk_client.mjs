// Drives the serving_stack example with the official OpenAI SDK for Node
// (npm "openai", installed by scripts/openai-sdk.sh): models, completions and
// chat, streamed and not, a shared prefix whose second request reports
// cached tokens, a follow-up turn, tenancy and the SDK's typed errors.
// Every check is an assertion; on success it prints one JSON line with the
// prompt and cached tokens of every request it sent, which
// openai_sdk_test.cpp compares with the server's /metrics.
//
// Usage: node openai_sdk_client.mjs BASE_URL MODEL   (BASE_URL ends in /v1)
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const [baseURL, model] = process.argv.slice(2);
assert.ok(baseURL && model, 'usage: node openai_sdk_client.mjs BASE_URL MODEL');
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });

const totals = { requests: 0, prompt_tokens: 0, cached_tokens: 0 };
function count(usage) {
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  totals.requests += 1;
  totals.prompt_tokens += usage.prompt_tokens;
  totals.cached_tokens += usage.prompt_tokens_details.cached_tokens;
  return usage.prompt_tokens_details.cached_tokens;
}

/// Streams a request; returns the text, the usage chunk and the chunk count.
async function streamed(create, params, textOf) {
  const stream = await create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) text += textOf(choice) ?? '';
  }
  assert.ok(usage, 'the last chunk carries the usage');
  return { text, usage, chunks };
}

// 48 words: three full blocks of 16 tokens under the example's tokenizer.
const system = Array.from({ length: 48 }, (_, i) => `rule${i}`).join(' ');

// GET /v1/models
const ids = [];
for await (const entry of client.models.list()) ids.push(entry.id);
assert.deepEqual(ids, [model]);

// Completions: the second prompt shares the first one's 48-token prefix.
const first = await client.completions.create({ model, prompt: `${system} question one`, max_tokens: 8 });
assert.equal(first.object, 'text_completion');
assert.equal(first.choices[0].finish_reason, 'length');
assert.equal(first.usage.completion_tokens, 8);
assert.equal(count(first.usage), 0);
const second = await client.completions.create({ model, prompt: `${system} question two`, max_tokens: 8 });
assert.equal(count(second.usage), 48);

// The same completion streamed: the same text, the same hit.
const streamedCompletion = await streamed(
  (p) => client.completions.create(p),
  { model, prompt: `${system} question two`, max_tokens: 8 },
  (choice) => choice.text,
);
assert.equal(streamedCompletion.text, second.choices[0].text);
assert.equal(count(streamedCompletion.usage), 48);

// Chat, not streamed and streamed: equal answers (the example's model is deterministic).
const messages = [
  { role: 'system', content: system },
  { role: 'user', content: 'What does the cache keep?' },
];
const chat = await client.chat.completions.create({ model, messages, max_tokens: 24 });
assert.equal(chat.object, 'chat.completion');
assert.equal(chat.choices[0].message.role, 'assistant');
assert.ok(chat.choices[0].message.content.length > 0);
count(chat.usage);
const streamedChat = await streamed(
  (p) => client.chat.completions.create(p),
  { model, messages, max_tokens: 24 },
  (choice) => choice.delta?.content,
);
assert.equal(streamedChat.text, chat.choices[0].message.content);
assert.equal(streamedChat.usage.completion_tokens, 24);
assert.ok(streamedChat.chunks >= 3, 'several chunks: role, decode steps, close, usage');
assert.ok(count(streamedChat.usage) > 0);

// A follow-up turn hits the earlier turn and its decoded answer.
const followUp = await client.chat.completions.create({
  model,
  messages: [...messages, chat.choices[0].message, { role: 'user', content: 'And then?' }],
  max_tokens: 4,
});
const turnTokens = chat.usage.total_tokens;
assert.equal(count(followUp.usage), Math.floor(turnTokens / 16) * 16);

// Tenancy: another cache_salt shares nothing with the default tenant.
const salted = await client.completions.create({
  model,
  prompt: `${system} question two`,
  max_tokens: 2,
  cache_salt: 'tenant-b',
});
assert.equal(count(salted.usage), 0);

// Errors arrive as the SDK's typed errors, with OpenAI's fields.
await assert.rejects(client.completions.create({ model: 'no-such-model', prompt: 'x' }), (error) => {
  assert.ok(error instanceof OpenAI.NotFoundError, String(error));
  assert.equal(error.status, 404);
  assert.equal(error.code, 'model_not_found');
  assert.equal(error.param, 'model');
  return true;
});
await assert.rejects(client.completions.create({ model, prompt: 'x', max_tokens: -1 }), (error) => {
  assert.ok(error instanceof OpenAI.BadRequestError, String(error));
  assert.equal(error.param, 'max_tokens');
  assert.equal(error.type, 'invalid_request_error');
  return true;
});

console.log(JSON.stringify(totals));
