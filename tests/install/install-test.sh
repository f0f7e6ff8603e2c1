#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds the README's C
# example with nothing but `pkg-config ferry` and runs it: proves that
# `cmake --install` ships the library, its headers, the pkg-config file and
# the programs. Usage: install-test.sh BUILD_DIR EXAMPLE_C [EXTRA_CFLAGS]
set -euo pipefail
BUILD=$1 EXAMPLE=$2 EXTRA=${3:-}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
for f in bin/ferry-record bin/ferry-journal include/ferry.h include/ferry_error.h; do
    [ -e "$TMP/prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
PC=$(find "$TMP/prefix" -name ferry.pc)
[ -n "$PC" ] || { echo "missing after install: ferry.pc"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$PC")
# shellcheck disable=SC2086,SC2046
cc -std=c11 -Wall -Wextra -Werror $EXTRA $(pkg-config --cflags ferry) "$EXAMPLE" \
    -o "$TMP/example" $(pkg-config --libs ferry)
LIBDIR=$(pkg-config --variable=libdir ferry)
LD_LIBRARY_PATH=$LIBDIR "$TMP/example" "$TMP/journal"
COUNT=$("$TMP/prefix/bin/ferry-journal" -j "$TMP/journal" dump | wc -l)
[ "$COUNT" -eq 3 ] || { echo "expected 3 events in the journal, found $COUNT"; exit 1; }
# Only ferry.h's functions are exported from the shared library.
if nm -D --defined-only "$LIBDIR"/libferry.so | awk '{print $3}' | grep -v '^ferry_' | grep -v '^_' | grep -q .; then
    echo "libferry exports internal symbols:"
    nm -D --defined-only "$LIBDIR"/libferry.so | awk '{print $3}' | grep -v '^ferry_' | grep -v '^_'
    exit 1
fi
echo "install test: ok (3 events recorded through the installed library)"
