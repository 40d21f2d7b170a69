#!/usr/bin/env bash
# Benchmark keel's dm-verity writer (rootfs/verity, driven by bench/verity)
# against `veritysetup format`, side by side in one run: the same data, salt,
# UUID and layout (data and hash area in one file, the superblock right after
# the data, as on a keel slot), each tool syncing the file at its end. Prints
# a markdown table of wall and CPU time, best of REPS, with the keel/
# veritysetup ratio, and checks that both wrote the same bytes. The tools
# take turns, REPS runs each.
#
#   bench/verity.sh                        # 400 MiB: 3 MiB random, 1 MiB zeros, ...
#   SIZE_MIB=1024 REPS=5 bench/verity.sh
#   INPUT=root.sqfs bench/verity.sh        # an existing image (a keel root squashfs)
#
# SHA-256 costs the same whatever the bytes, so the default data is random
# with a quarter of zeros written out (not holes, which read faster); INPUT
# gives the real thing. Both tools read it from the page cache: it is synced
# and read once first.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
SIZE_MIB=${SIZE_MIB:-400}
REPS=${REPS:-3}
WORKERS=${WORKERS:-$(nproc)}
INPUT=${INPUT:-}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT

VERITYSETUP=$(command -v veritysetup || true)
[ -n "$VERITYSETUP" ] || for p in /usr/sbin/veritysetup /sbin/veritysetup; do [ -x "$p" ] && VERITYSETUP=$p && break; done
[ -n "$VERITYSETUP" ] || { echo "bench: veritysetup not found (apt-get install cryptsetup-bin)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }

$GO build -trimpath -o "$WORK/keel-verity" ./bench/verity

if [ -n "$INPUT" ]; then
  cp "$INPUT" "$WORK/data"
  size=$(stat -c %s "$WORK/data")
  truncate -s $(((size + 4095) / 4096 * 4096)) "$WORK/data" # callers pad to a block
else
  for i in $(seq 0 $((SIZE_MIB - 1))); do
    if ((i % 4 == 3)); then head -c 1048576 /dev/zero; else head -c 1048576 /dev/urandom; fi
  done >"$WORK/data"
fi
size=$(stat -c %s "$WORK/data")
blocks=$((size / 4096))
salt=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
uuid=$(cat /proc/sys/kernel/random/uuid)
cp "$WORK/data" "$WORK/v.img"
cp "$WORK/data" "$WORK/k.img"
rm "$WORK/data"

# once IMG CMD... → W (wall s), C (cpu s) and ROOT (the root hash printed)
# of one run. Before it the file is cut back to its data, which is synced
# and in the page cache.
once() {
  local img=$1; shift
  truncate -s "$size" "$img"
  sync "$img"
  cat "$img" >/dev/null
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%U %S" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" "$WORK/out" >&2; exit 1; }
  t1=$(date +%s%N)
  read -r u s <"$WORK/time"
  W=$(awk "BEGIN{printf \"%.3f\", ($t1-$t0)/1e9}")
  C=$(awk "BEGIN{printf \"%.2f\", $u+$s}")
  ROOT=$(sed -nE 's/^Root hash:[[:space:]]*([0-9a-f]+)$/\1/p' "$WORK/out")
}

# The two tools take turns, so that a change in the load of the machine
# falls on both; each keeps its best run.
vw= kw=
for _ in $(seq "$REPS"); do
  once "$WORK/v.img" "$VERITYSETUP" format --data-blocks "$blocks" --hash-offset "$size" --salt "$salt" --uuid "$uuid" "$WORK/v.img" "$WORK/v.img"
  if [ -z "$vw" ] || awk "BEGIN{exit !($W < $vw)}"; then vw=$W vc=$C; fi
  vroot=$ROOT
  once "$WORK/k.img" "$WORK/keel-verity" -data-blocks "$blocks" -hash-offset "$size" -salt "$salt" -uuid "$uuid" -workers "$WORKERS" "$WORK/k.img"
  if [ -z "$kw" ] || awk "BEGIN{exit !($W < $kw)}"; then kw=$W kc=$C; fi
  kroot=$ROOT
done

[ -n "$vroot" ] && [ "$vroot" = "$kroot" ] || { echo "bench: root hashes differ: veritysetup $vroot, keel $kroot" >&2; exit 1; }
cmp "$WORK/v.img" "$WORK/k.img" || { echo "bench: keel and veritysetup wrote different bytes" >&2; exit 1; }

echo "data: $((size / 1048576)) MiB ($blocks blocks${INPUT:+ of $INPUT}); hash area $((($(stat -c %s "$WORK/k.img") - size) / 1024)) KiB, identical; keel workers: $WORKERS; cores: $(nproc); best of $REPS; $(uname -m); $("$VERITYSETUP" --version)"
echo
echo "| tool | wall s | cpu s | wall ratio |"
echo "|---|---:|---:|---:|"
printf "| veritysetup format | %s | %s | |\n" "$vw" "$vc"
printf "| keel verity.Write | %s | %s | **%.2f×** |\n" "$kw" "$kc" "$(awk "BEGIN{print $kw/$vw}")"
