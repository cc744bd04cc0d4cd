#!/usr/bin/env bash
# Usage: tests/events_interrupt_test.sh KVSCOPE_BINARY
# `kvscope events` with no --duration and no --idle watches until stopped:
# SIGINT (Ctrl-C) and SIGTERM must end it with exit status 0, the final
# report on stdout and the --json report written.
set -euo pipefail
kvscope=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for signal in INT TERM; do
  "$kvscope" events --connect "tcp://127.0.0.1:$((30000 + $$ % 20000))" --quiet \
    --json "$work/$signal.json" > "$work/$signal.out" 2>&1 &
  pid=$!
  sleep 1
  kill "-$signal" "$pid"
  status=0
  wait "$pid" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "SIG$signal: exit status $status"; cat "$work/$signal.out"; exit 1
  fi
  grep -q '^consistency: ' "$work/$signal.out" || { echo "SIG$signal: no report"; cat "$work/$signal.out"; exit 1; }
  grep -q '"batches"' "$work/$signal.json" || { echo "SIG$signal: no JSON report"; exit 1; }
done
echo "events-interrupt: SIGINT and SIGTERM end the watch with its report"
