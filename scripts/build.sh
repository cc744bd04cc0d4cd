#!/usr/bin/env bash
# Usage: scripts/build.sh PRESET [targets...]
# Installs missing packages, configures the CMake preset (once) and builds it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
preset=${1:?usage: scripts/build.sh PRESET [targets...]}
shift
bash "$here/ensure-deps.sh"
cd "$root"
if [[ ! -f "build/$preset/CMakeCache.txt" ]]; then
  cmake --preset "$preset"
fi
jobs=$(nproc 2>/dev/null || echo 2)
if (($#)); then
  cmake --build --preset "$preset" --parallel "$jobs" --target "$@"
else
  cmake --build --preset "$preset" --parallel "$jobs"
fi
