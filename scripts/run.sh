#!/usr/bin/env bash
# The main job: installs missing packages, builds the release preset and runs
# the cache demo on its embedded default workload. Extra arguments are passed on.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$here/build.sh" release prefix_cache_demo
exec "$here/../build/release/examples/prefix_cache_demo" "$@"
