#!/usr/bin/env bash
# The demo behind `./run demo`: a device records a release update while
# offline, then we look at its journal. Usage: tools/demo.sh BUILD_DIR
set -euo pipefail
BUILD=${1:?usage: demo.sh BUILD_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RECORD=$BUILD/recorder/ferry-record
JOURNAL_TOOL=$BUILD/tools/ferry-journal
export FERRY_JOURNAL
FERRY_JOURNAL=$(mktemp -d /tmp/ferry-demo.XXXXXX)/journal
DEVICE=7f3c2a9e41b84d6f9a0c5e1d2b3f4a5c

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "A device updates its release (3 services): 36 supervisor events, recorded as they happen"
show "$RECORD" --jsonl "$ROOT/data/demo-release-update.jsonl" -v

step "One more event from the shell, with typed properties"
show "$RECORD" --type "Service exit" --device-id "$DEVICE" \
    --prop 'service:={"appId":1873312,"serviceName":"frontend","releaseId":2411876}' \
    --field app_version=14.1.3 --field os_name=balenaOS -v

step "Bad input is reported by line and skipped; good lines are kept (exit 65)"
printf '%s\n' \
    '{"event_type":"Service start","device_id":"'$DEVICE'"}' \
    '{"event_type":"Service start","device_id":"'$DEVICE'"' \
    '{"event_type":42,"device_id":"'$DEVICE'"}' \
    '{"event_type":"Service started","device_id":"'$DEVICE'","time":"yesterday"}' \
    '{"event_type":"Service started","device_id":"'$DEVICE'"}' > "${FERRY_JOURNAL%/journal}/input.jsonl"
set +e
show "$RECORD" --jsonl "${FERRY_JOURNAL%/journal}/input.jsonl" -v
echo "exit code $?"
set -e

step "The journal: every event durable, none sent yet (the replayer comes later)"
show "$JOURNAL_TOOL" stat

step "Its records, in sequence order, each with its insert_id (first 3 and last one)"
"$JOURNAL_TOOL" dump > "${FERRY_JOURNAL%/journal}/dump.jsonl"
head -n 3 "${FERRY_JOURNAL%/journal}/dump.jsonl"
echo "..."
tail -n 1 "${FERRY_JOURNAL%/journal}/dump.jsonl"

step "Opting out records nothing and creates nothing"
show env FERRY_OPT_OUT=1 FERRY_JOURNAL=/tmp/ferry-demo-opt-out "$RECORD" --type "Device blink" --device-id "$DEVICE"
[ -e /tmp/ferry-demo-opt-out ] && echo "unexpected: /tmp/ferry-demo-opt-out exists" || echo "(no /tmp/ferry-demo-opt-out: nothing written)"

printf '\nThe journal is in %s; inspect it with:\n  FERRY_JOURNAL=%s %s stat\n' \
    "$FERRY_JOURNAL" "$FERRY_JOURNAL" "$JOURNAL_TOOL"
