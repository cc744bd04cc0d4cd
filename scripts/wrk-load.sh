#!/usr/bin/env bash
# A bounded wrk load test of the serving_stack example on loopback.
#   bash scripts/wrk-load.sh                 # 16, 64, 256 connections, 10 s each
#   DURATION=5 CONNECTIONS="8 32" bash scripts/wrk-load.sh
#   KVSCOPE_WRK_ENDPOINT=completions bash scripts/wrk-load.sh   # the OpenAI endpoint
# Installs missing packages (wrk too), builds the release example, starts it
# on a free port, runs wrk with bench/wrk/generate.lua once per connection
# count, prints one line per run and the server's hit ratio, then stops the
# server with SIGINT (graceful drain).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
duration=${DURATION:-10}
connections=${CONNECTIONS:-16 64 256}
threads=${WRK_THREADS:-2}
KVSCOPE_EXTRA_PACKAGES="wrk curl" bash "$here/ensure-deps.sh"
bash "$here/build.sh" release serving_stack
server="$root/build/release/examples/serving_stack/serving_stack"

log=$(mktemp)
"$server" --port 0 "${@}" > "$log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$log" && break
  sleep 0.1
done
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1)
[[ -n "$url" ]] || { cat "$log"; echo "serving_stack did not start" >&2; exit 1; }
echo "serving_stack at $url; wrk: $threads threads, ${duration}s per run"

for c in $connections; do
  line=$(wrk -t"$threads" -c"$c" -d"${duration}s" --latency -s "$root/bench/wrk/generate.lua" "$url" |
    grep '^kvscope-wrk:')
  echo "connections=$c ${line#kvscope-wrk: }"
done
# The server's own view: token hit ratio over the whole run.
curl -s "$url/metrics" | awk '
  /^kvscope_prefix_cache_hits_total/ { hits += $2 }
  /^kvscope_prefix_cache_queries_total/ { queries += $2 }
  END { if (queries > 0) printf "server: %d prompt tokens, token hit ratio %.4f\n", queries, hits / queries }'
