#!/usr/bin/env bash
# Usage: scripts/soak.sh [SECONDS]     (default: $SOAK_SECONDS or 60)
# A bounded soak of the main job: `kvscope bench` at high concurrency (4,096
# clients on a pool of 2^20 blocks, sized so that no client gives up) on the
# embedded chat workload for SECONDS. It fails unless there were zero
# errors, the clients' counts equal the final snapshot's exactly, and
# resident memory grew less than 5% after a warm-up of SECONDS/3 (at least
# 5 s: the pool's pages, the workload's sessions and the metrics' tables fill
# during the first ~20 s). The JSON report (memory samples included) goes to build/release/soak.json.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
seconds=${1:-${SOAK_SECONDS:-60}}
warmup=$(( seconds / 3 > 5 ? seconds / 3 : 5 ))
bash "$here/build.sh" release kvscope_tool
exec "$here/../build/release/kvscope" bench --quiet --requests 1000000000000 \
  --duration "$seconds" --warmup "$warmup" --concurrency 4096 --blocks 1048576 --max-rss-growth 5 \
  --json "$here/../build/release/soak.json"
