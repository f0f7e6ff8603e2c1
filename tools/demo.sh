#!/usr/bin/env bash
# The demo behind `./run demo`: a device records a release update and a crash
# loop while offline; then the link returns and ferry-replay delivers every
# event exactly once to ferry-sink (a local Amplitude-compatible receiver that
# misbehaves on purpose). Usage: tools/demo.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: demo.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORD=$BUILD/recorder/ferry-record
JOURNAL_TOOL=$BUILD/tools/ferry-journal
REPLAY=$BUILD/replayer/ferry-replay
SINK=$BUILD/tools/ferry-sink
WORK=$(mktemp -d /tmp/ferry-demo.XXXXXX)
export FERRY_JOURNAL=$WORK/journal
export FERRY_API_KEY=demo-api-key-0123456789
DEVICE=7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c
SINK_PID=
trap '[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null; true' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "Offline, the device updates its release (3 services): 36 supervisor events"
show "$RECORD" --jsonl "$ROOT/data/demo-release-update.jsonl" -v

step "Then the new backend crash-loops for an hour: 2 events every 30 s"
base=1795939300000
for i in $(seq 0 59); do
    t=$((base + i * 30000))
    for ev in "Service exit" "Service restart"; do
        printf '{"event_type":"%s","device_id":"%s","time":%d,"app_version":"14.1.3","os_name":"balenaOS","event_properties":{"service":{"appId":1873312,"serviceName":"backend","releaseId":2411876}}}\n' \
            "$ev" "$DEVICE" "$t"
    done
done > "$WORK/crash-loop.jsonl"
show "$RECORD" --jsonl "$WORK/crash-loop.jsonl" -v

step "A buggy component records an event Amplitude will refuse (device_id \"unknown\")"
show "$RECORD" --type "Device blink" --device-id unknown -v

step "Still offline: the replayer gives up after --retry-for, losing nothing (exit 75)"
set +e
show "$REPLAY" --once --endpoint http://127.0.0.1:9 --retry-for 3
echo "exit code $?"
set -e

step "The link returns. The receiver drops connections and fails 20% of requests after accepting them"
"$SINK" --listen 127.0.0.1:0 --port-file "$WORK/port" --out "$WORK/received.jsonl" \
    --api-key "$FERRY_API_KEY" --seed 42 --fail-after 0.2:500,503 --drop-after 0.1 > "$WORK/sink.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")
echo "ferry-sink listening on 127.0.0.1:$PORT"
echo "\$ $REPLAY --once --endpoint http://127.0.0.1:$PORT --max-events 20 --max-retry-delay 1 --json"
"$REPLAY" --once --endpoint "http://127.0.0.1:$PORT" --max-events 20 --max-retry-delay 1 --json \
    > "$WORK/summary.json" 2> "$WORK/replay.log"
head -n 4 "$WORK/replay.log"
echo "... $(grep -c 'will retry' "$WORK/replay.log") retries in all (the full log is $WORK/replay.log)"
cat "$WORK/summary.json"

step "What arrived"
python3 - "$WORK/received.jsonl" "http://127.0.0.1:$PORT/stats" "$WORK/summary.json" <<'PY'
import json, sys, urllib.request
rows = [json.loads(l) for l in open(sys.argv[1])]
stats = json.loads(urllib.request.urlopen(sys.argv[2]).read())
summary = json.loads(open(sys.argv[3]).read())
ids = [r["insert_id"] for r in rows]
print("recorded                      %d" % (len(ids) + summary["dead"] + summary["pending"]))
print("delivered (stored by the sink) %d, distinct insert_ids %d" % (len(ids), len(set(ids))))
print("resent by ferry-replay         %d (after failures that may have delivered them)" % summary["resent"])
print("duplicates at the sink         %d, all dropped by insert_id: counted once" % stats["duplicates"])
print("dead (refused for good)        %d" % summary["dead"])
print("still pending                  %d" % summary["pending"])
PY

step "The dead letter, with Amplitude's reason (ferry-journal requeue can put it back)"
show "$JOURNAL_TOOL" dead

step "The journal afterwards"
show "$JOURNAL_TOOL" stat

printf '\nEverything is in %s (journal, received.jsonl, sink.log).\n' "$WORK"
