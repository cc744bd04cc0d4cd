#!/usr/bin/env bash
# Installs the release build into a temporary prefix and builds the consumer
# project (tests/consumer) against it twice: with find_package(kvscope CONFIG)
# and with pkg-config. Both programs must run and print "consumer ok".
# Precondition: build/release is built (scripts/test.sh does it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT

cmake --install build/release --prefix "$prefix" > /dev/null
echo "installed into $prefix: $(find "$prefix" -type f | wc -l) files"

cmake -S tests/consumer -B "$prefix/build-cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror" > /dev/null
cmake --build "$prefix/build-cmake" > /dev/null
echo "find_package(kvscope CONFIG): $("$prefix/build-cmake/kvscope_consumer")"

read -r -a flags <<< "$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --cflags --libs kvscope)"
g++ -std=c++20 -O2 -Wall -Wextra -Werror tests/consumer/main.cpp -o "$prefix/consumer-pc" "${flags[@]}"
echo "pkg-config kvscope: $("$prefix/consumer-pc")"
