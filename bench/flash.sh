#!/usr/bin/env bash
# Time keel flash against dd on the same image and device: a 400 MiB raw
# image holding 100 MiB of random data (25 runs of 4 MiB, one every
# 16 MiB; the rest holes), written onto a loop device over a 512 MiB file
# of 0xFF bytes (made afresh before each run, caches dropped), with
#
#   keel flash --yes IMG /dev/loopN               (write + verify)
#   keel flash --yes --no-verify IMG /dev/loopN   (write only)
#   dd if=IMG of=/dev/loopN bs=4M conv=fsync      (write only, every byte)
#
# and checks that each left the device's first 400 MiB equal to the image.
# Needs root (losetup). Prints a markdown table.
#
#   make keel && sudo bench/flash.sh
#   KEEL=/tmp/keel RUNS=3 bench/flash.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=${KEEL:-bin/keel}
RUNS=${RUNS:-3}
[ -x "$KEEL" ] || { echo "flash: $KEEL not built (make keel)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "flash: needs root for loop devices" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-flash.XXXXXX")
LOOP=
cleanup() {
  [ -z "$LOOP" ] || losetup -d "$LOOP" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

img=$WORK/disk.img
truncate -s 400M "$img"
for i in $(seq 0 24); do
  head -c 4M /dev/urandom | dd of="$img" bs=4M seek=$((i * 4)) conv=notrunc,sparse status=none
done

# fresh: a new 0xFF device file on a new loop device, caches dropped.
fresh() {
  [ -z "$LOOP" ] || losetup -d "$LOOP"
  head -c 512M /dev/zero | tr '\0' '\377' >"$WORK/device"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  LOOP=$(losetup -f --show "$WORK/device")
}

# timed CMD...: runs CMD on a fresh device (an argument ending in DEV has
# that replaced by the device) and leaves the seconds it took in $secs.
timed() {
  fresh
  local args=() a t0 t1
  for a in "$@"; do args+=("${a/%DEV/$LOOP}"); done
  t0=$(date +%s.%N)
  "${args[@]}" >"$WORK/out" 2>&1 || { cat "$WORK/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  cmp -n $((400 << 20)) "$img" "$LOOP" || { echo "flash: device differs from the image after: $*" >&2; exit 1; }
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
}

echo "400 MiB image, 100 MiB of data; loop device over a file on $(df --output=fstype "$WORK" | tail -1); $(nproc) cores; $RUNS runs each"
echo
echo "| run | keel flash (verify) | keel flash --no-verify | dd bs=4M conv=fsync |"
echo "|---|---:|---:|---:|"
for r in $(seq 1 "$RUNS"); do
  timed "$KEEL" flash --yes "$img" DEV
  k=$secs kline=$(cat "$WORK/out")
  timed "$KEEL" flash --yes --no-verify "$img" DEV
  n=$secs
  timed dd if="$img" of=DEV bs=4M conv=fsync status=none
  d=$secs
  echo "| $r | ${k}s | ${n}s | ${d}s |"
done
echo
echo "last keel flash: $kline"
