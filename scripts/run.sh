#!/usr/bin/env bash
# The main job: installs missing packages, builds the release preset and runs
# `kvscope bench` (a load run of the sharded runtime on the embedded
# multi-tenant chat workload). Extra arguments go to kvscope bench, e.g.
#   bash scripts/run.sh --shards 2 --threads 2 --json report.json
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/build.sh" release kvscope_tool
exec "$here/../build/release/kvscope" bench "$@"
