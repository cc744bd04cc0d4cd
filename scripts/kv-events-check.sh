#!/usr/bin/env bash
# Usage: scripts/kv-events-check.sh [REQUESTS]   (default 20,000)
# Checks kvscope's KV event stream against an independent decoder
# (tests/kv_events/check_wire.py: Debian's python3-zmq and python3-msgpack
# plus a byte-level msgpack walker): `kvscope bench --kv-events` publishes on
# a loopback port while the checker subscribes, once per event format. The
# checker binds and kvscope's PUB connects (an endpoint without a wildcard
# connects, as in vLLM), so nothing listens beyond loopback.
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
