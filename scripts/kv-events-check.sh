#!/usr/bin/env bash
# Usage: scripts/kv-events-check.sh [REQUESTS]   (default 20,000)
# Checks kvscope's KV event stream against an independent decoder
# (tests/kv_events/check_wire.py: Debian's python3-zmq and python3-msgpack
# plus a byte-level msgpack walker): `kvscope bench --kv-events` publishes on
# a loopback port while the checker subscribes, once per event format. The
# checker binds and kvscope's PUB connects (an endpoint without a wildcard
# connects, as in vLLM), so nothing listens beyond loopback.
#
# Then the consistency check of issue 19's acceptance: `kvscope events`
# (with replay, so it also gets the batches sent before its subscription
# took effect) watches a full default `kvscope bench --kv-events` run and
# must report zero consistency errors, no lost batch and every batch the
# bench says it published.
# Precondition: build/release is built (scripts/test.sh does it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
KVSCOPE_EXTRA_PACKAGES="python3-zmq python3-msgpack" bash scripts/ensure-deps.sh
requests=${1:-20000}
python=/usr/bin/python3  # Debian's, where python3-zmq and python3-msgpack live
port=$((20000 + $$ % 20000))
for format in map array; do
  port=$((port + 1))
  "$python" tests/kv_events/check_wire.py --connect "tcp://127.0.0.1:$port" --topic kvscope-ci \
    --format "$format" --bind --idle 3 --timeout 300 --min-batches 10 &
  checker=$!
  sleep 0.5  # the subscriber connects first; a late join only costs the first batches
  build/release/kvscope bench --quiet --requests "$requests" --kv-events "tcp://127.0.0.1:$port" \
    --kv-events-topic kvscope-ci --kv-events-format "$format" | grep -E 'requests/s|KV events'
  wait "$checker"
done

port=$((port + 1))
replay_port=$((port + 1))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build/release/kvscope events --connect "tcp://127.0.0.1:$port" \
  --replay "tcp://127.0.0.1:$replay_port" --idle 15 --quiet --json "$work/watch.json" \
  > "$work/watch.txt" &
watcher=$!
sleep 0.5
build/release/kvscope bench --quiet --kv-events "tcp://*:$port" \
  --kv-events-replay "tcp://*:$replay_port" > "$work/bench.txt"
grep -E 'requests/s|KV events' "$work/bench.txt"
wait "$watcher"
cat "$work/watch.txt"
published=$(sed -nE 's/^KV events: ([0-9]+) batches.*/\1/p' "$work/bench.txt")
"$python" - "$work/watch.json" "$published" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
published = int(sys.argv[2])
problems = []
if report["consistency_errors"] != 0:
    problems.append(f"{report['consistency_errors']} consistency errors")
if report["batches_lost"] != 0:
    problems.append(f"{report['batches_lost']} batches lost")
if report["batches"] != published:
    problems.append(f"watched {report['batches']} batches, the bench published {published}")
if problems:
    sys.exit("kv-events-check: full run: " + "; ".join(problems))
print(f"kv-events-check: full default run: {published} batches watched, 0 consistency errors")
PY
