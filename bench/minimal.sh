#!/usr/bin/env bash
# The built-in minimal profile's disk content: the files on its ESP plus
# slot a's root squashfs (issue 13's goal: at most 20 MiB). The disk
# itself is larger: its partitions have room for an update.
#
#   bench/minimal.sh
#
# Needs mtools (mcopy) to read the ESP.
set -euo pipefail
cd "$(dirname "$0")/.."
KEEL=${KEEL:-bin/keel}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-minimal.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
[ -x "$KEEL" ] || make keel >/dev/null
command -v mcopy >/dev/null || { echo "bench: mcopy not found (apt-get install mtools)" >&2; exit 1; }

"$KEEL" build minimal --no-build-cache -o "$WORK/min.img" >/dev/null
"$KEEL" inspect --json "$WORK/min.img" >"$WORK/inspect.json"
# The ESP is partition 1; its start and slot a's squashfs bytes from inspect.
esp_start=$(tr -d ' \n' <"$WORK/inspect.json" | sed -n 's/.*"number":1,"label":"esp","type":"[^"]*","guid":"[^"]*","start":\([0-9]*\).*/\1/p')
root=$(tr -d ' \n' <"$WORK/inspect.json" | sed -n 's/.*"slots":\[{"name":"a","filesystem":"squashfs","bytes":\([0-9]*\).*/\1/p')
mkdir "$WORK/esp"
mcopy -s -n -i "$WORK/min.img@@$esp_start" ::/ "$WORK/esp/"
esp=$(find "$WORK/esp" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
mib() { awk "BEGIN{printf \"%.1f MiB\", $1/1048576}"; }
echo "minimal: ESP files $(mib "$esp") + root squashfs $(mib "$root") = $(mib $((esp + root))) (goal: at most 20 MiB)"
find "$WORK/esp" -type f -printf '  %P %s\n' | sort
