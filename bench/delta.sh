#!/usr/bin/env bash
# Delta updates (image/delta) against casync, side by side in one run, on
# two realistic updates of one image:
#
#   v1   a root of BASE_DIRS (default /usr/share/doc and /usr/lib/python3.11)
#        plus a 5 MiB library, /usr/lib/bench/libbig.so (the first 5 MiB of
#        CHANGED_FROM)
#   v2   v1 with that library changed (the first 5 MiB of CHANGED_TO: a new
#        build of a library differs all through)
#   v2p  v1 with a package added: ADDED_DIR copied to the same path
#
# All three are built by keel (bench/delta: the library, as keel build does)
# with the same kernel, keel-init and keelctl, zstd level 3. For v1 → v2 and
# v1 → v2p the table gives the bytes a device running v1 fetches with
# `InstallDelta` (counted by the HTTP server) as a share of the bundle, and
# then what casync fetches for the same pair: `casync make` of the v1 bundle
# into a store, then of the v2 bundle, with the same chunk sizes
# (CHUNK=16384:65536:262144 bytes), counting the bytes of the chunk files the
# second run added (compressed, as casync stores and serves them) and the
# v2 .caibx index.
#
#   bench/delta.sh
#   BASE_DIRS="/usr/share/doc" ADDED_DIR=/usr/share/i18n/charmaps bench/delta.sh
#
# KERNEL is the kernel every build gets (default: a Debian vmlinuz from keel's
# unpack cache, else 8 MiB of random bytes).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
BASE_DIRS=${BASE_DIRS:-"/usr/share/doc /usr/lib/python3.11"}
CHANGED_FROM=${CHANGED_FROM:-/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1}
CHANGED_TO=${CHANGED_TO:-/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1}
ADDED_DIR=${ADDED_DIR:-/usr/lib/python3/dist-packages/cryptography}
CHUNK=${CHUNK:-16384:65536:262144}
PARAMS=${PARAMS:-"4:16:64,8:32:128,16:64:256,32:128:512,64:256:1024"}
KEEL_CACHE=${KEEL_CACHE:-$HOME/.cache/keel}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT

command -v casync >/dev/null || { echo "bench: casync not found (apt-get install casync)" >&2; exit 1; }
for f in "$CHANGED_FROM" "$CHANGED_TO"; do
  [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -ge $((5 << 20)) ] || { echo "bench: $f: need a file of 5 MiB or more (CHANGED_FROM, CHANGED_TO)" >&2; exit 1; }
done
[ -d "$ADDED_DIR" ] || { echo "bench: $ADDED_DIR: no such directory (ADDED_DIR)" >&2; exit 1; }
[ -x bin/keel-init ] && [ -x bin/keelctl ] || make keel-init keelctl >/dev/null

KERNEL=${KERNEL:-$(ls "$KEEL_CACHE"/unpacked/linux-image-*/boot/vmlinuz-* 2>/dev/null | head -1 || true)}
if [ -z "$KERNEL" ]; then
  KERNEL=$WORK/vmlinuz
  head -c $((8 << 20)) /dev/urandom >"$KERNEL"
fi

copy_tree() { # DIR... into $1
  local to=$1; shift
  for d in "$@"; do
    [ -d "$d" ] || continue
    mkdir -p "$to$(dirname "$d")"
    cp -a "$d" "$to$(dirname "$d")/"
  done
}
copy_tree "$WORK/v1" $BASE_DIRS
mkdir -p "$WORK/v1/usr/lib/bench"
head -c $((5 << 20)) "$CHANGED_FROM" >"$WORK/v1/usr/lib/bench/libbig.so"
cp -a "$WORK/v1" "$WORK/v2"
head -c $((5 << 20)) "$CHANGED_TO" >"$WORK/v2/usr/lib/bench/libbig.so"
cp -a "$WORK/v1" "$WORK/v2p"
copy_tree "$WORK/v2p" "$ADDED_DIR"
content=$(du -sb --apparent-size "$WORK/v1" | cut -f1)
added=$(du -sb --apparent-size "$ADDED_DIR" | cut -f1)
files=$(find "$WORK/v1" | wc -l)
echo "tree: $files entries, $((content >> 20)) MiB ($BASE_DIRS + libbig.so); added: $ADDED_DIR, $((added >> 10)) KiB; kernel: $KERNEL" >&2

$GO build -trimpath -o "$WORK/keel-delta" ./bench/delta
"$WORK/keel-delta" -work "$WORK" -kernel "$KERNEL" -keel-init bin/keel-init -keelctl bin/keelctl -params "$PARAMS" \
  v1="$WORK/v1" v2="$WORK/v2" v2p="$WORK/v2p"

# casync: the chunk files a store gains from the new bundle, beside the old.
echo
echo "casync on the same bundles (\`casync make --chunk-size=$CHUNK\`, $(casync --version 2>/dev/null | head -1)):"
echo
echo "| update | bundle MiB | new chunks MiB | index KiB | fetched | chunks |"
echo "|---|---:|---:|---:|---:|---:|"
for v in v2 v2p; do
  store=$WORK/castr-$v
  casync make --chunk-size="$CHUNK" --store="$store" "$WORK/v1.caibx" "$WORK/v1.keel" >/dev/null
  find "$store" -name '*.cacnk' -printf '%P %s\n' | sort >"$WORK/before"
  casync make --chunk-size="$CHUNK" --store="$store" "$WORK/$v.caibx" "$WORK/$v.keel" >/dev/null
  find "$store" -name '*.cacnk' -printf '%P %s\n' | sort >"$WORK/after"
  new=$(comm -13 "$WORK/before" "$WORK/after" | awk '{s += $2} END {print s + 0}')
  count=$(comm -13 "$WORK/before" "$WORK/after" | wc -l)
  idx=$(stat -c %s "$WORK/$v.caibx")
  size=$(stat -c %s "$WORK/$v.keel")
  awk -v v="$v" -v size="$size" -v new="$new" -v idx="$idx" -v count="$count" 'BEGIN {
    printf "| v1 → %s | %.1f | %.2f | %.0f | **%.1f%%** | %d |\n", v, size / 1048576, new / 1048576, idx / 1024, 100 * (new + idx) / size, count }'
  rm -rf "$store"
done
