#!/usr/bin/env bash
# Benchmark keel's squashfs writer against mksquashfs, side by side in one run:
# same tree, same compressor and level, same number of cores. Prints a
# markdown table of wall time, CPU time, peak memory and output size, with
# keel/mksquashfs ratios.
#
#   bench/squashfs.sh                     # default tree, zstd-3, zstd-15, xz
#   BENCH_DIRS="/usr/share/doc" CASES="zstd:3" bench/squashfs.sh
#
# The tree is copied into a temporary directory first (so both tools read the
# same files from the page cache), with ownership dropped (--all-root and
# -all-root) and a fixed mtime.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=${KEEL:-bin/keel}
CORES=${CORES:-$(nproc)}
REPS=${REPS:-1}
CASES=${CASES:-"zstd:3 zstd:15 xz:6"}
BENCH_DIRS=${BENCH_DIRS:-"/usr/share/doc /usr/share/locale /usr/share/man /usr/share/perl /usr/lib/python3.11 /usr/lib/x86_64-linux-gnu/perl-base"}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT

for t in mksquashfs /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench: $t not found (apt-get install squashfs-tools time)" >&2; exit 1; }
done
[ -x "$KEEL" ] || make keel >/dev/null

mkdir -p "$WORK/tree"
for d in $BENCH_DIRS; do
  [ -d "$d" ] || continue
  mkdir -p "$WORK/tree$(dirname "$d")"
  cp -a "$d" "$WORK/tree$(dirname "$d")/"
done
tar -cf /dev/null -C "$WORK/tree" . # warm the page cache for both tools
content=$(du -sb --apparent-size "$WORK/tree" | cut -f1)
files=$(find "$WORK/tree" | wc -l)

# measure NAME CMD... → sets W (wall s), C (cpu s), M (peak MiB), S (bytes) for the best of REPS.
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
}

echo "tree: $files entries, $((content / 1048576)) MiB of content; cores: $CORES; $(uname -m); $(mksquashfs -version 2>&1 | head -1)"
echo
echo "| compressor | tool | wall s | cpu s | peak MiB | size MiB | wall ratio | size ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for c in $CASES; do
  comp=${c%%:*}; level=${c#*:}
  mopts=(-comp "$comp")
  kopts=(--comp "$comp" --level "$level")
  case $comp in
    zstd) mopts+=(-Xcompression-level "$level") ;;
    gzip) mopts+=(-Xcompression-level "$level") ;;
    xz) ;; # mksquashfs uses liblzma's default preset (6)
  esac
  measure "$WORK/m.sqfs" mksquashfs "$WORK/tree" "$WORK/m.sqfs" -noappend -all-root -mkfs-time 0 -all-time 0 -processors "$CORES" -no-progress -quiet "${mopts[@]}"
  mw=$W mc=$C mm=$M ms=$S
  measure "$WORK/k.sqfs" "$KEEL" mksquashfs --all-root --mtime 0 --workers "$CORES" "${kopts[@]}" "$WORK/tree" "$WORK/k.sqfs"
  kw=$W kc=$C km=$M ks=$S
  printf "| %s-%s | mksquashfs | %s | %s | %s | %.1f | | |\n" "$comp" "$level" "$mw" "$mc" "$mm" "$(awk "BEGIN{print $ms/1048576}")"
  printf "| %s-%s | keel | %s | %s | %s | %.1f | **%.2f×** | **%+.1f%%** |\n" "$comp" "$level" "$kw" "$kc" "$km" \
    "$(awk "BEGIN{print $ks/1048576}")" "$(awk "BEGIN{print $kw/$mw}")" "$(awk "BEGIN{print 100*($ks/$ms-1)}")"
done
