#!/usr/bin/env bash
# Usage: tests/check_layers_test.sh ROOT
# scripts/check-layers.sh passes on ROOT's tree, then fails on a copy with
# one upward include added (core -> runtime), naming the file and the line;
# a sideways include and a policy including the cache are judged too.
set -euo pipefail
root=${1:?usage: check_layers_test.sh ROOT}
check="$root/scripts/check-layers.sh"
fail() { echo "FAIL: $*"; exit 1; }

bash "$check" "$root" > /dev/null || fail "the tree itself breaks the floors"

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
mkdir -p "$copy/include" "$copy/src"
cp -r "$root/include/kvscope" "$copy/include/"
cp -r "$root/src/." "$copy/src/"

# An upward include: the core's prefix_cache.cpp reaching the runtime.
target="$copy/src/prefix_cache.cpp"
line=$(($(wc -l < "$target") + 1))
echo '#include "kvscope/runtime/runtime.hpp"' >> "$target"
if out=$(bash "$check" "$copy" 2>&1); then fail "an upward include passed"; fi
grep -q "src/prefix_cache.cpp:$line: floor core includes \"kvscope/runtime/runtime.hpp\" of floor runtime (upward)" <<< "$out" \
  || fail "the report does not name the file and line: $out"

# A private header named relative to src/ counts too (analytics -> export).
sed -i '$d' "$target"
echo '#include "export/json_values.hpp"' >> "$copy/src/analytics/trend.cpp"
if out=$(bash "$check" "$copy" 2>&1); then fail "an upward private include passed"; fi
grep -q 'src/analytics/trend.cpp:[0-9]*: floor analytics includes "export/json_values.hpp" of floor export' <<< "$out" \
  || fail "private include not reported: $out"
sed -i '$d' "$copy/src/analytics/trend.cpp"

# Sideways and downward includes pass; a policy including the cache does not.
echo '#include "kvscope/metrics/histogram.hpp"' >> "$copy/src/metrics/sliding_window.cpp"
bash "$check" "$copy" > /dev/null || fail "a sideways include was refused"
echo '#include "kvscope/prefix_cache.hpp"' >> "$copy/src/eviction/lru_policy.hpp"
if out=$(bash "$check" "$copy" 2>&1); then fail "a policy including prefix_cache.hpp passed"; fi
grep -q 'src/eviction/lru_policy.hpp:[0-9]*: an eviction policy includes' <<< "$out" \
  || fail "policy rule not reported: $out"
echo "check-layers: 4 cases as expected"
