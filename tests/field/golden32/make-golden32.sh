#!/usr/bin/env bash
# Rebuilds tests/field/data/golden32.fyc (+ .expected.jsonl, .info) with a
# 32-bit (i386) build of ferry's format layer, libferry and ferry-journal's
# export, on an amd64 Debian 12 machine. Needs gcc-multilib; the i386
# libraries are fetched with `apt-get download` and only unpacked (dpkg -x)
# into a scratch sysroot, so nothing of the machine's own amd64 set changes.
# Where the kernel has no IA-32 emulation, qemu-user runs the 32-bit program.
# Run from anywhere: tests/field/golden32/make-golden32.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=$ROOT/tests/field/data
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if ! dpkg --print-foreign-architectures | grep -qx i386; then
    echo "make-golden32: run 'dpkg --add-architecture i386 && apt-get update' first" >&2
    exit 1
fi
mkdir -p "$WORK/deb" "$WORK/root"
(cd "$WORK/deb" && apt-get download liblmdb0:i386 liblmdb-dev:i386 libmsgpackc2:i386 libjansson4:i386 \
    libjansson-dev:i386 zlib1g:i386 zlib1g-dev:i386 libssl3:i386 libssl-dev:i386 >/dev/null)
for d in "$WORK"/deb/*.deb; do dpkg -x "$d" "$WORK/root"; done
LIB=$WORK/root/usr/lib/i386-linux-gnu
# msgpack-c's headers are the same on every architecture: the machine's own.
SRC=(format/error.c format/buf.c format/record.c format/jsonout.c format/journal.c format/delivery.c
     format/cli.c format/capture.c recorder/recorder.c tools/fj_util.c tools/snapshot.c tools/export.c
     tools/verify.c tools/import.c tools/copyjournal.c tools/purge.c tools/tail.c)
VERSION=$(sed -n 's/^#define FERRY_VERSION "\(.*\)"/\1/p' "$ROOT/recorder/ferry.h")
(cd "$ROOT" && gcc -m32 -std=c11 -O1 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
    -DFERRY_VERSION_STRING="\"$VERSION\"" -I"$WORK/root/usr/include" -I"$WORK/root/usr/include/i386-linux-gnu" \
    -Iformat -Irecorder -Itools "${SRC[@]}" tests/field/golden32/gen32.c -o "$WORK/gen32" \
    "$LIB/liblmdb.so.0" "$LIB/libmsgpackc.so.2" "$LIB/libjansson.so.4" "$WORK/root/lib/i386-linux-gnu/libz.so.1" "$LIB/libcrypto.so.3" \
    -lpthread -lm -Wl,-rpath,"$LIB:$WORK/root/lib/i386-linux-gnu")
rm -f "$OUT/golden32.fyc"
# Kernels built without (or booted without) IA-32 emulation cannot run it
# directly: then qemu-i386 (Debian's qemu-user) runs the same binary.
RUN=()
"$WORK/gen32" 2>/dev/null || [ $? -ne 126 ] || RUN=(qemu-i386)
"${RUN[@]}" "$WORK/gen32" "$WORK/journal" "$OUT/golden32.fyc" "$OUT/golden32.expected.jsonl" \
    "$ROOT/data/demo-release-update.jsonl" "$HERE/device-b.jsonl" > "$WORK/sha"
{
    echo "golden32.fyc: made by tests/field/golden32/make-golden32.sh on $(date -u +%Y-%m-%d)"
    echo "program: $(file -b "$WORK/gen32" | cut -d, -f1-2)${RUN:+, run under ${RUN[0]}}"
    echo "sizeof(void *) = 4, sizeof(size_t) = 4, sizeof(long) = 4 in this build"
    echo "sha256: $(cut -d' ' -f1 "$WORK/sha")"
} > "$OUT/golden32.info"
cat "$OUT/golden32.info"
