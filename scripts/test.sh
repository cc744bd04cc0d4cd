#!/usr/bin/env bash
# Usage: scripts/test.sh [PRESET]   (default: release)
# Installs missing packages, builds the preset and runs the test suite.
#  - release, debug: every test through ctest (unit tests, and the
#    "integration" label, which skips where Debian's prometheus is absent).
#  - asan, tsan: the unit tests under the sanitizer, one process per core
#    (GoogleTest sharding) rather than one per test: sanitizer start-up costs
#    ~0.3 s a process, which for 600 tests was most of the run.
#    KVSCOPE_GTEST_FILTER narrows the run (a --gtest_filter pattern).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
preset=${1:-release}
cd "$here/.."

if [[ "$preset" != asan && "$preset" != tsan ]]; then
  bash "$here/build.sh" "$preset"
  exec ctest --preset "$preset"
fi

bash "$here/build.sh" "$preset" kvscope_tests
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=1 ${TSAN_OPTIONS:-}"
shards=$(nproc 2>/dev/null || echo 2)
binary="build/$preset/tests/kvscope_tests"
pids=()
for ((i = 0; i < shards; i++)); do
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i \
    "$binary" --gtest_brief=1 --gtest_filter="${KVSCOPE_GTEST_FILTER:-*}" \
    > "build/$preset/test-shard-$i.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < shards; i++)); do
  if wait "${pids[i]}"; then
    tail -n 2 "build/$preset/test-shard-$i.log"
  else
    status=1
    echo "--- $preset shard $i failed:"
    cat "build/$preset/test-shard-$i.log"
  fi
done
exit $status
