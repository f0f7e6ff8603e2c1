#!/bin/sh
# run-fuzz.sh [SECONDS]: builds the record-decoder fuzzer with clang (libFuzzer,
# ASan, UBSan) into build-fuzz/ and runs it for SECONDS (default 300) on the
# committed corpus. Inputs that add coverage are merged into
# tests/fuzz/corpus/record (commit them); crashes are written to
# build-fuzz/fuzz-artifacts/ and make the script fail.
#
# Environment: JOBS=N runs N fuzzer processes in parallel (default 1);
# FUZZ_MAX_LEN (default 4096) bounds the input size.
set -eu

secs=${1:-300}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
corpus=$root/tests/fuzz/corpus/record
work=$build/fuzz-work/record
artifacts=$build/fuzz-artifacts
jobs=${JOBS:-1}
max_len=${FUZZ_MAX_LEN:-4096}

CC=${CC:-clang} cmake -S "$root" -B "$build" -DFERRY_FUZZ=ON -DFERRY_SANITIZE=ON >/dev/null
cmake --build "$build" --target fuzz_record -j"$(nproc)"
fuzzer=$build/tests/fuzz/fuzz_record

mkdir -p "$work" "$artifacts" "$corpus"
# -malloc_limit_mb: any single allocation above it is reported as a failure:
# a record is at most 64 KiB, so nothing decoding it may need more.
set -- -dict="$root/tests/fuzz/record.dict" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=64 -artifact_prefix="$artifacts/" -print_final_stats=1
before=$(ls "$corpus" | wc -l)
artifacts_before=$(ls "$artifacts" | wc -l)

rc=0
if [ "$jobs" -gt 1 ]; then
    "$fuzzer" "$@" -max_total_time="$secs" -fork="$jobs" "$work" "$corpus" || rc=$?
else
    "$fuzzer" "$@" -max_total_time="$secs" "$work" "$corpus" || rc=$?
fi

# Keep the committed corpus small: the hand-made seeds (readable names, see
# make_seeds.c) always stay; the fuzzer's finds (SHA-1 names) are re-minimized
# into the smallest set that keeps the edge coverage of everything found.
merged=$build/fuzz-merge/record
rm -rf "$merged"
mkdir -p "$merged"
for f in "$corpus"/*; do
    case ${f##*/} in
        *[!0-9a-f]*) cp "$f" "$merged/" ;;
        ????????????????????????????????????????) ;;
        *) cp "$f" "$merged/" ;;
    esac
done
"$fuzzer" "$@" -use_counters=0 -merge=1 "$merged" "$corpus" "$work" 2>&1 | grep -E "MERGE-OUTER: [0-9]+ new files" || true
for f in "$corpus"/*; do
    case ${f##*/} in
        *[!0-9a-f]*) ;;
        ????????????????????????????????????????) rm -f "$f" ;;
    esac
done
for f in "$merged"/*; do
    [ -e "$corpus/${f##*/}" ] || cp "$f" "$corpus/"
done
after=$(ls "$corpus" | wc -l)
echo "run-fuzz: ${secs}s; corpus $before -> $after files ($corpus)"
if [ "$rc" -ne 0 ] || [ "$(ls "$artifacts" | wc -l)" -ne "$artifacts_before" ]; then
    echo "run-fuzz: the fuzzer failed (exit $rc); artifacts in $artifacts:" >&2
    ls -l "$artifacts" >&2
    exit 1
fi
