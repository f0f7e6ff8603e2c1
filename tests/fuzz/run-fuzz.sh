#!/bin/sh
# run-fuzz.sh [--seconds N] [TARGET...]: builds the libFuzzer targets with
# clang (libFuzzer, ASan, UBSan) into build-fuzz/ and runs each TARGET in turn
# for N seconds (default 300) on its committed corpus. Targets: record json
# capture response service (tests/fuzz/CMakeLists.txt); none given: all.
# `run-fuzz.sh 300` (a bare number) is the same as --seconds 300.
#
# Inputs that add coverage are merged into tests/fuzz/corpus/TARGET (commit
# them); crashes are written to build-fuzz/fuzz-artifacts/TARGET/ and make the
# script fail (after the other targets ran). Not run in CI: ctest replays the
# committed corpora (fuzz_corpus_TARGET) in every build instead.
#
# Environment: JOBS=N runs N fuzzer processes per target in parallel
# (default 1); FUZZ_MAX_LEN (default 4096) bounds the input size.
set -eu

secs=300
targets=
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift 2 ;;
        --seconds=*) secs=${1#--seconds=}; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) secs=$1; shift ;;
        record|json|capture|response|service) targets="$targets $1"; shift ;;
        *) echo "run-fuzz: unknown argument $1 (see --help)" >&2; exit 64 ;;
    esac
done
[ -n "$targets" ] || targets="record json capture response service"

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build-fuzz
jobs=${JOBS:-1}
max_len=${FUZZ_MAX_LEN:-4096}

CC=${CC:-clang} cmake -S "$root" -B "$build" -DFERRY_FUZZ=ON -DFERRY_SANITIZE=ON >/dev/null
for t in $targets; do
    cmake --build "$build" --target "fuzz_$t" -j"$(nproc)"
done

# Keep a committed corpus small: the hand-made seeds (readable names, see
# make_seeds.c) always stay; the fuzzer's finds (SHA-1 names) are re-minimized
# into the smallest set that keeps the edge coverage of everything found.
is_sha1() {
    case $1 in
        *[!0-9a-f]*) return 1 ;;
        ????????????????????????????????????????) return 0 ;;
        *) return 1 ;;
    esac
}

failed=
for t in $targets; do
    fuzzer=$build/tests/fuzz/fuzz_$t
    corpus=$root/tests/fuzz/corpus/$t
    work=$build/fuzz-work/$t
    artifacts=$build/fuzz-artifacts/$t
    mkdir -p "$work" "$artifacts" "$corpus"
    case $t in
        record) dict=record.dict ;;
        json|service) dict=json.dict ;;
        *) dict=$t.dict ;;
    esac
    # -malloc_limit_mb: any single allocation above it is reported as a
    # failure: a record is at most 64 KiB, an input at most max_len, so
    # nothing handling one may need more.
    set -- -dict="$root/tests/fuzz/$dict" -max_len="$max_len" -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=64 -artifact_prefix="$artifacts/" -print_final_stats=1
    before=$(ls "$corpus" | wc -l)
    artifacts_before=$(ls "$artifacts" | wc -l)
    echo "run-fuzz: $t for ${secs}s" >&2
    rc=0
    if [ "$jobs" -gt 1 ]; then
        "$fuzzer" "$@" -max_total_time="$secs" -fork="$jobs" "$work" "$corpus" || rc=$?
    else
        "$fuzzer" "$@" -max_total_time="$secs" "$work" "$corpus" || rc=$?
    fi

    merged=$build/fuzz-merge/$t
    rm -rf "$merged"
    mkdir -p "$merged"
    for f in "$corpus"/*; do
        is_sha1 "${f##*/}" || cp "$f" "$merged/"
    done
    "$fuzzer" "$@" -use_counters=0 -merge=1 "$merged" "$corpus" "$work" 2>&1 | grep -E "MERGE-OUTER: [0-9]+ new files" || true
    for f in "$corpus"/*; do
        if is_sha1 "${f##*/}"; then rm -f "$f"; fi
    done
    for f in "$merged"/*; do
        [ -e "$corpus/${f##*/}" ] || cp "$f" "$corpus/"
    done
    after=$(ls "$corpus" | wc -l)
    echo "run-fuzz: $t ${secs}s; corpus $before -> $after files ($corpus)"
    if [ "$rc" -ne 0 ] || [ "$(ls "$artifacts" | wc -l)" -ne "$artifacts_before" ]; then
        echo "run-fuzz: $t failed (exit $rc); artifacts in $artifacts:" >&2
        ls -l "$artifacts" >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "run-fuzz: failed:$failed" >&2
    exit 1
fi
