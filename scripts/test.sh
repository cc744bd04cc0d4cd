#!/usr/bin/env bash
# Usage: scripts/test.sh [PRESET]   (default: release)
# Installs missing packages, builds the preset and runs the whole ctest suite.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
preset=${1:-release}
bash "$here/build.sh" "$preset"
cd "$here/.."
ctest --preset "$preset"
