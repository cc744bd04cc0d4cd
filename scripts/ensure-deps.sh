#!/usr/bin/env bash
# Installs the Debian packages kvscope builds with, if any is missing.
# Sourced or run by scripts/run.sh and scripts/test.sh; safe to run repeatedly.
set -euo pipefail

KVSCOPE_PACKAGES=(
  g++ cmake ninja-build pkg-config
  libasio-dev libxxhash-dev libconcurrentqueue-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev libcli11-dev libhttp-parser-dev
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Tools some scripts need on top (e.g. .ci/run: prometheus; wrk-load.sh: wrk curl).
read -r -a extra <<< "${KVSCOPE_EXTRA_PACKAGES:-}"
KVSCOPE_PACKAGES+=("${extra[@]}")

missing=()
for pkg in "${KVSCOPE_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
  echo "kvscope: installing missing Debian packages: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
