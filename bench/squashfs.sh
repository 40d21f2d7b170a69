#!/usr/bin/env bash
# Benchmark keel's squashfs writer against mksquashfs on the whole speed/size
# curve, side by side in one run: same tree, same number of cores.
#
# mksquashfs runs at each of MKSQ_CASES, keel at each of KEEL_CASES (every
# setting it accepts, by default). For each mksquashfs setting the script
# prints the fastest keel setting whose image is no larger, and the wall-time
# ratio keel/mksquashfs: what a user feels is time at a given size (the CPU
# time ratio beside it is steadier on a machine others share). A second table
# compares the two tools at the settings both accept. The load average before
# and after is printed: rerun, or raise REPS, if it was above the core count.
#
#   bench/squashfs.sh
#   BENCH_DIRS="/usr/share/doc" MKSQ_CASES="zstd:3" KEEL_CASES="zstd:1 zstd:3" bench/squashfs.sh
#   TREE=server bench/squashfs.sh    # a Debian root: the built-in server profile's
#
# TREE=server builds the server profile with keel (its packages from the
# mirror in the host's apt sources, or $KEEL_CACHE) and unpacks slot a's
# root with unsquashfs as the tree, instead of BENCH_DIRS.
#
# A case is COMP:LEVEL; xz-bcj:6 is xz with the x86 BCJ filter. mksquashfs's
# xz has no level: it uses liblzma's default preset (6). The tree is copied
# into a temporary directory first (so both tools read the same files from
# the page cache), with ownership dropped (--all-root and -all-root) and a
# fixed mtime.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=${KEEL:-bin/keel}
CORES=${CORES:-$(nproc)}
REPS=${REPS:-1}
MKSQ_CASES=${MKSQ_CASES:-"zstd:1 zstd:3 zstd:6 zstd:15 xz:6 gzip:9"}
KEEL_CASES=${KEEL_CASES:-"zstd:1 zstd:3 zstd:7 zstd:11 gzip:1 gzip:2 gzip:3 gzip:4 gzip:5 gzip:6 gzip:7 gzip:8 gzip:9 xz:6 xz-bcj:6"}
BENCH_DIRS=${BENCH_DIRS:-"/usr/lib/gcc /usr/share/doc /usr/libexec"}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT

for t in mksquashfs /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t not found (apt-get install squashfs-tools time)" >&2; exit 1; }
done
[ -x "$KEEL" ] || make keel >/dev/null

mkdir -p "$WORK/tree"
if [ "${TREE:-}" = server ]; then
  "$KEEL" build server -o "$WORK/server.img" >/dev/null
  start=$(tr -d ' \n' < <("$KEEL" inspect --json "$WORK/server.img") | sed -n 's/.*"label":"root-a","type":"[^"]*","guid":"[^"]*","start":\([0-9]*\).*/\1/p')
  unsquashfs -q -n -d "$WORK/tree/root" -o "$start" "$WORK/server.img" >/dev/null
  rm "$WORK/server.img"
  BENCH_DIRS="the server profile's root"
else
  for d in $BENCH_DIRS; do
    [ -d "$d" ] || continue
    mkdir -p "$WORK/tree$(dirname "$d")"
    cp -a "$d" "$WORK/tree$(dirname "$d")/"
  done
fi
tar -cf /dev/null -C "$WORK/tree" . # warm the page cache for both tools
content=$(du -sb --apparent-size "$WORK/tree" | cut -f1)
files=$(find "$WORK/tree" | wc -l)

# measure OUT CMD... → sets W (wall s), C (cpu s), M (peak MiB), S (bytes) for the best of REPS.
measure() {
  local out=$1; shift
  local best=
  for _ in $(seq "$REPS"); do
    rm -f "$out"
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    read -r w u s m <"$WORK/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($w < $best)}"; then
      best=$w; W=$w; C=$(awk "BEGIN{printf \"%.2f\", $u+$s}"); M=$((m / 1024)); S=$(stat -c %s "$out")
    fi
  done
  rm -f "$out"
}

# name COMP:LEVEL → the label used in the tables (xz has no level in mksquashfs).
name() {
  case $1 in
    xz:*) echo xz ;;
    xz-bcj:*) echo xz-bcj ;;
    *) echo "${1/:/-}" ;;
  esac
}

mib() { awk "BEGIN{printf \"%.1f\", $1/1048576}"; }

# run_mksq CASE / run_keel CASE measure one setting and append a line to
# $results: tool case wall cpu peak bytes.
results=$WORK/results
: >"$results"
load0=$(cut -d' ' -f1-3 /proc/loadavg)
run_mksq() {
  local opts=()
  case ${1%%:*} in
    zstd | gzip) opts=(-comp "${1%%:*}" -Xcompression-level "${1#*:}") ;;
    xz) opts=(-comp xz) ;;
    xz-bcj) opts=(-comp xz -Xbcj x86) ;;
  esac
  measure "$WORK/m.sqfs" mksquashfs "$WORK/tree" "$WORK/m.sqfs" -noappend -all-root -mkfs-time 0 -all-time 0 -processors "$CORES" -no-progress -quiet "${opts[@]}"
  echo "mksquashfs $1 $W $C $M $S" >>"$results"
}
run_keel() {
  local opts=(--comp "${1%%:*}" --level "${1#*:}")
  [ "${1%%:*}" = xz-bcj ] && opts=(--comp xz --xz-bcj --level "${1#*:}")
  measure "$WORK/k.sqfs" "$KEEL" mksquashfs --all-root --mtime 0 --workers "$CORES" "${opts[@]}" "$WORK/tree" "$WORK/k.sqfs"
  echo "keel $1 $W $C $M $S" >>"$results"
}
# The two tools' runs alternate, so a change in the machine's load while
# the script runs weighs on both alike.
read -ra mcases <<<"$MKSQ_CASES"
read -ra kcases <<<"$KEEL_CASES"
for ((i = 0; i < ${#mcases[@]} || i < ${#kcases[@]}; i++)); do
  [ $i -lt ${#mcases[@]} ] && run_mksq "${mcases[$i]}"
  [ $i -lt ${#kcases[@]} ] && run_keel "${kcases[$i]}"
done
results_sorted=$WORK/results.sorted
{ grep '^mksquashfs ' "$results"; grep '^keel ' "$results"; } >"$results_sorted" || true
mv "$results_sorted" "$results"

echo "tree: $files entries, $(mib "$content") MiB of content ($BENCH_DIRS); cores: $CORES; $(uname -m); $(mksquashfs -version 2>&1 | head -1); best of $REPS; load average before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| tool | setting | wall s | cpu s | peak MiB | size MiB |"
echo "|---|---|---:|---:|---:|---:|"
while read -r tool c w cpu m s; do
  echo "| $tool | $(name "$c") | $w | $cpu | $m | $(mib "$s") |"
done <"$results"

echo
echo "For each mksquashfs setting, the fastest keel setting whose image is no larger:"
echo
echo "| mksquashfs | keel, fastest setting no larger | time ratio (keel/mksquashfs) | cpu ratio |"
echo "|---|---|---:|---:|"
while read -r tool c w cpu _ s; do
  [ "$tool" = mksquashfs ] || continue
  best=$(awk -v s="$s" '$1 == "keel" && $6 <= s {print $3, $2, $6, $4}' "$results" | sort -g | head -1)
  if [ -n "$best" ]; then
    read -r kw kc ks kcpu <<<"$best"
    echo "| $(name "$c"): $w s, $(mib "$s") MiB | $(name "$kc"): $kw s, $(mib "$ks") MiB | $(awk "BEGIN{printf \"%.2f×\", $kw/$w}") | $(awk "BEGIN{printf \"%.2f×\", $kcpu/$cpu}") |"
  else
    small=$(awk '$1 == "keel" {print $6, $2, $3}' "$results" | sort -g | head -1)
    read -r ks kc kw <<<"$small"
    echo "| $(name "$c"): $w s, $(mib "$s") MiB | none ($(awk "BEGIN{printf \"%+.0f%%\", 100*($ks/$s-1)}")): keel's smallest is $(name "$kc"): $kw s, $(mib "$ks") MiB | — | — |"
  fi
done <"$results"

echo
echo "Same setting in both tools:"
echo
echo "| setting | mksquashfs wall s | keel wall s | wall ratio | mksquashfs MiB | keel MiB | size ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
while read -r tool c w _ _ s; do
  [ "$tool" = mksquashfs ] || continue
  k=$(awk -v c="$c" '$1 == "keel" && $2 == c {print $3, $6}' "$results")
  [ -n "$k" ] || continue
  read -r kw ks <<<"$k"
  echo "| $(name "$c") | $w | $kw | $(awk "BEGIN{printf \"%.2f×\", $kw/$w}") | $(mib "$s") | $(mib "$ks") | $(awk "BEGIN{printf \"%+.1f%%\", 100*($ks/$s-1)}") |"
done <"$results"
