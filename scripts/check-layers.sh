#!/usr/bin/env bash
# Usage: scripts/check-layers.sh [ROOT]   (default: the repository root)
#
# Keeps kvscope's floors one-way (docs/architecture.md, "Floors"): a file may
# include its own floor and the floors below it, never one above. Reads every
# `#include "..."` in ROOT/include/kvscope and ROOT/src - the public
# "kvscope/..." headers and the private ones named relative to src/ - and
# prints one line per upward include, `file:line: floor A includes floor B`.
# Exit 0 when there is none, 1 otherwise, 2 on a usage error.
#
# Floors, bottom to top (a path is matched relative to include/kvscope/ or
# src/, first rule wins):
#   1 ground     types, result, clock, detail/
#   2 core       block_hasher, kv_cache_groups, prefix_cache, prefix_cache_stats, cache_events, eviction_policy, eviction/
#   3 metrics    metrics/, events/ (what a shard collects, and what it tells routers)
#   4 analytics  analytics/
#   5 runtime    runtime/
#   6 export     export/
#   7 top        trace/, workload/, cli/
# One rule inside a floor: the eviction policies never include prefix_cache.hpp
# (they take the few parameters they need, so the cache can own them).
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
if [[ ! -d "$root/include/kvscope" || ! -d "$root/src" ]]; then
  echo "check-layers: $root has no include/kvscope and src" >&2
  exit 2
fi

floor_names=(unknown ground core metrics analytics runtime export top)

# Prints the floor number of a path relative to include/kvscope/ or src/;
# 0 when no rule names it (the caller reports that too: every file has a floor).
floor_of() {
  case "$1" in
    types.* | result.* | clock.* | detail/*) echo 1 ;;
    block_hasher.* | kv_cache_groups.* | prefix_cache.* | prefix_cache_blocks.* | prefix_cache_hybrid.* | prefix_cache_stats.* | cache_events.* | eviction_policy.* | eviction/*) echo 2 ;;
    metrics/* | events/*) echo 3 ;;
    analytics/*) echo 4 ;;
    runtime/*) echo 5 ;;
    export/*) echo 6 ;;
    trace/* | workload/* | cli/*) echo 7 ;;
    CMakeLists.txt) echo 7 ;;
    *) echo 0 ;;
  esac
}

# The path of an included name relative to include/kvscope/ or src/.
included_path() {
  local name=$1
  if [[ "$name" == kvscope/* ]]; then
    echo "${name#kvscope/}"
  elif [[ -e "$root/src/$name" ]]; then
    echo "$name"
  else
    echo ""  # a system or third-party header spelled with quotes: not ours
  fi
}

violations=0
report() {
  echo "$1"
  violations=$((violations + 1))
}

while IFS= read -r -d '' file; do
  rel=${file#"$root"/}
  case "$rel" in
    include/kvscope/*) own=${rel#include/kvscope/} ;;
    src/*) own=${rel#src/} ;;
  esac
  own_floor=$(floor_of "$own")
  if ((own_floor == 0)); then
    report "$rel:1: no floor: add the file's folder to scripts/check-layers.sh and docs/architecture.md"
    continue
  fi
  while IFS= read -r match; do
    line=${match%%:*}
    name=$(sed -E 's/^[0-9]+:[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<< "$match")
    target=$(included_path "$name")
    [[ -n "$target" ]] || continue
    target_floor=$(floor_of "$target")
    if ((target_floor == 0)); then
      report "$rel:$line: includes \"$name\", which has no floor"
    elif ((target_floor > own_floor)); then
      report "$rel:$line: floor ${floor_names[own_floor]} includes \"$name\" of floor ${floor_names[target_floor]} (upward)"
    elif [[ "$own" == eviction/* && "$target" == prefix_cache.hpp ]]; then
      report "$rel:$line: an eviction policy includes \"$name\" (policies take their parameters, not the cache)"
    fi
  done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
done < <(find "$root/include/kvscope" "$root/src" -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' \) -print0 | sort -z)

if ((violations)); then
  echo "check-layers: $violations include(s) break the floors (docs/architecture.md)" >&2
  exit 1
fi
echo "check-layers: every include looks down or sideways"
