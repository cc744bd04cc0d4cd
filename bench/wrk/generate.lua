-- wrk load script for the serving_stack example: POST /v1/generate (or,
-- with KVSCOPE_WRK_ENDPOINT=completions, the OpenAI-compatible
-- POST /v1/completions with token-id prompts and cache_salt tenants) with
-- shared-prefix prompts from several tenants.
--
--   wrk -t2 -c64 -d10s -s bench/wrk/generate.lua http://127.0.0.1:8080
--   KVSCOPE_WRK_ENDPOINT=completions wrk -t2 -c64 -d10s -s bench/wrk/generate.lua ...
--
-- Each body is a tenant's system prompt (shared by all of that tenant's
-- requests, so it is cached after the first) plus one of 400 questions (some
-- repeat, most do not fit in the cache for long). Bodies are built once per
-- wrk thread, deterministically, so runs are comparable. At the end one line
-- "kvscope-wrk: ..." summarises requests/s and latency percentiles.

local TENANTS = 4
local SYSTEM_TOKENS = { 1024, 512, 256, 128 }  -- per tenant
local QUESTIONS = 400
local QUESTION_TOKENS = 48
local MAX_TOKENS = 16
local BODIES = 1024

local OPENAI = os.getenv("KVSCOPE_WRK_ENDPOINT") == "completions"
local PATH = OPENAI and "/v1/completions" or "/v1/generate"
local FORMAT = OPENAI
  and '{"model":"kvscope-example","cache_salt":"tenant-%d","max_tokens":%d,"prompt":[%s,%s]}'
  or '{"tenant":"tenant-%d","max_tokens":%d,"tokens":[%s,%s]}'

local bodies = {}
local next_body = 0

local function token_list(first, count)
  local parts = {}
  for i = 0, count - 1 do parts[#parts + 1] = tostring(first + i) end
  return table.concat(parts, ",")
end

local function build_bodies(seed)
  -- A small LCG: wrk threads each run their own Lua state, seeded alike.
  local state = seed
  local function rand(n)
    state = (state * 1103515245 + 12345) % 2147483648
    return state % n
  end
  local prompts = {}
  for t = 1, TENANTS do prompts[t] = token_list(t * 100000, SYSTEM_TOKENS[t]) end
  for b = 1, BODIES do
    local tenant = rand(TENANTS) + 1
    local question = rand(QUESTIONS)
    bodies[b] = string.format(FORMAT, tenant, MAX_TOKENS, prompts[tenant], token_list(1000000 + question * 1000, QUESTION_TOKENS))
  end
end

local thread_count = 0
function setup(thread)
  thread_count = thread_count + 1
  thread:set("seed", thread_count)
end

function init(args)
  build_bodies(seed or 1)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_body = next_body % BODIES + 1
  return wrk.format(nil, PATH, nil, bodies[next_body])
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "kvscope-wrk: requests=%d seconds=%.2f rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.status + e.timeout))
end
