#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [SECONDS]     (default: $FUZZ_SECONDS or 60 per target)
# Installs clang-14 and libclang-rt-14-dev if missing, builds the libFuzzer
# targets (preset "fuzz": ASan + UBSan) and runs each for SECONDS, at most
# one per core at a time. Each starts from its seed corpus in
# tests/fuzz/corpus/<name>/; inputs it finds go to build/fuzz/corpus/<name>/
# (the repository stays clean) and a failing input to
# build/fuzz/findings/<name>/. Any finding (crash, sanitizer report, leak,
# timeout, out-of-memory) fails the run. Prints executions and executions
# per second per target.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
seconds=${1:-${FUZZ_SECONDS:-60}}
targets=(prefix_cache trace http)

KVSCOPE_EXTRA_PACKAGES="clang-14 libclang-rt-14-dev ${KVSCOPE_EXTRA_PACKAGES:-}" \
  bash "$here/build.sh" fuzz "${targets[@]/#/kvscope_fuzz_}"

# Runs one target; its exit status goes to build/fuzz/fuzz-NAME.rc.
run_target() {
  local name=$1 dir=build/fuzz rc=0
  mkdir -p "$dir/corpus/$name" "$dir/findings/$name"
  "$dir/tests/fuzz/kvscope_fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$dir/findings/$name/" \
    "$dir/corpus/$name" "tests/fuzz/corpus/$name" > "$dir/fuzz-$name.log" 2>&1 || rc=$?
  echo "$rc" > "$dir/fuzz-$name.rc"
}

slots=$(nproc 2>/dev/null || echo 2)
for name in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= slots)); do wait -n; done
  run_target "$name" &
done
wait
# The last value libFuzzer printed for a final stat (-print_final_stats=1).
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n 1; }

status=0
printf '%-14s %12s %10s %8s  %s\n' target executions 'exec/s' 'rss MB' result
for name in "${targets[@]}"; do
  result=ok
  [[ "$(cat "build/fuzz/fuzz-$name.rc")" == 0 ]] || { result=FAILED; status=1; }
  log=build/fuzz/fuzz-$name.log
  printf '%-14s %12s %10s %8s  %s\n' "$name" "$(final_stat "$log" number_of_executed_units)" \
    "$(final_stat "$log" average_exec_per_sec)" "$(final_stat "$log" peak_rss_mb)" "$result"
  if [[ $result != ok ]]; then
    echo "--- $name: last lines of $log"
    tail -n 40 "$log"
  fi
done
exit $status
