#!/usr/bin/env bash
# Usage: scripts/openai-sdk.sh [DIR]   (default: build/node)
# Installs the official OpenAI SDK for Node (npm package "openai") into
# DIR/node_modules for the integration test tests/integration/openai_sdk_test.cpp,
# and node + npm from Debian when they are missing. Safe to run repeatedly.
#
# The SDK version follows node: openai 6 needs Node.js 20 or later; on
# Debian 12's Node.js 18 the last release line that supports it, openai 4.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=${1:-"$(cd "$here/.." && pwd)/build/node"}

if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  packages=()
  command -v node > /dev/null || packages+=(nodejs)
  command -v npm > /dev/null || packages+=(npm)
  KVSCOPE_EXTRA_PACKAGES="${packages[*]}" bash "$here/ensure-deps.sh"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major >= 20)); then
  version=6.49.0
else
  version=4.104.0
fi

mkdir -p "$dir"
installed=$(node -p "try { require('$dir/node_modules/openai/package.json').version } catch { '' }")
if [[ "$installed" != "$version" ]]; then
  echo "kvscope: installing the OpenAI SDK for Node (openai@$version, node $(node --version)) into $dir"
  npm install --prefix "$dir" --no-audit --no-fund --no-save --silent "openai@$version"
fi
echo "kvscope: openai@$version for node $(node --version) in $dir"
