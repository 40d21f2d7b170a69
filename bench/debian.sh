#!/usr/bin/env bash
# Debian build benchmark: `keel build server` (the built-in profile: the
# Priority: required set plus systemd, udev, dbus, networkd, resolved,
# OpenSSH) against the same package set made into a root filesystem by
# mmdebstrap and mksquashfs, cold (empty caches) and warm (packages cached),
# same machine, one run. Reports wall time, peak memory, the root squashfs's
# size and the download volume, and the ratios.
#
#   bench/debian.sh
#   REPS=3 bench/debian.sh
#
# Needs mmdebstrap, squashfs-tools and time (apt-get install mmdebstrap
# squashfs-tools time), root for mmdebstrap's default mode, and a Debian
# mirror in the host's apt sources (or MIRROR=URL). The mirror's URL is
# read at run time, never written here.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=${KEEL:-bin/keel}
SUITE=${SUITE:-bookworm}
REPS=${REPS:-1}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-debian.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
[ -x "$KEEL" ] || make keel >/dev/null
for tool in mmdebstrap mksquashfs /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/debian.sh: $tool not installed" >&2; exit 2; }
done

# The mirror of the host's apt sources for SUITE (deb822 first, then one-line).
if [ -z "${MIRROR:-}" ]; then
  MIRROR=$(awk -v s="$SUITE" '
    /^URIs:/ {u=$2} /^Suites:/ {for (i=2; i<=NF; i++) if ($i==s) {print u; exit}}
  ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk -v s="$SUITE" '$1=="deb" && $3==s {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$MIRROR" ] || { echo "bench/debian.sh: no apt source for $SUITE; set MIRROR" >&2; exit 2; }

# The same packages as the built-in server profile, and its squashfs settings.
profile=$("$KEEL" profiles show server)
pkgs=$(printf '%s\n' "$profile" | awk '/^packages:/ {p=1; next} p && /^  - / {print $2; next} p {exit}' | paste -sd, -)
level=$(printf '%s\n' "$profile" | sed -n 's/.*compression: zstd, level: \([0-9]*\).*/\1/p')
echo "packages: required + $pkgs; root squashfs zstd-$level; mirror from the host's apt sources"

measure() { # name, then a function and its arguments: prints "wall_s peak_MiB"
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/$name.time" bash -c '"$@"' _ "$@" >"$WORK/$name.log" 2>&1 || { cat "$WORK/$name.log" >&2; exit 1; }
  awk '{printf "%.2f %.0f\n", $1, $2/1024}' "$WORK/$name.time"
}

keel_build() { # cache dir, output
  KEEL_CACHE=$1 SOURCE_DATE_EPOCH=1700000000 "$KEEL" build server -o "$2" --index-max-age 6h
}

mm_build() { # apt archive cache (or "" for none), output squashfs
  local cache=$1 out=$2 dir=$WORK/mm-root
  rm -rf "$dir"
  local hooks=()
  if [ -n "$cache" ]; then
    mkdir -p "$cache"
    hooks=(--setup-hook="mkdir -p \"\$1\"/var/cache/apt/archives/" --setup-hook="sync-in $cache /var/cache/apt/archives/"
      --customize-hook="sync-out /var/cache/apt/archives $cache")
  fi
  SOURCE_DATE_EPOCH=1700000000 mmdebstrap --quiet --variant=required --include="$pkgs" "${hooks[@]}" \
    --format=directory "$SUITE" "$dir" "$MIRROR"
  rm -f "$out"
  mksquashfs "$dir" "$out" -comp zstd -Xcompression-level "$level" -no-progress -quiet
}

export -f keel_build mm_build
export KEEL WORK SUITE MIRROR pkgs level

printf '\n%-28s %8s %9s %10s\n' "run" "wall s" "peak MiB" "root MiB"
row() { printf '%-28s %8s %9s %10s\n' "$@"; }

for rep in $(seq "$REPS"); do
  # Cold: empty caches on both sides (mmdebstrap's own cache is per run).
  rm -rf "$WORK/keel-cache" "$WORK/apt-cache"
  read -r kc_s kc_m < <(measure keel-cold keel_build "$WORK/keel-cache" "$WORK/keel.img")
  keel_root=$(sed -n 's/.*root-a.*squashfs \([0-9.]*\) MiB.*/\1/p' "$WORK/keel-cold.log")
  downloaded=$(sed -n 's/.*Debian packages from [a-z]*, \(.*\) downloaded.*/\1/p' "$WORK/keel-cold.log")
  read -r kw_s kw_m < <(measure keel-warm keel_build "$WORK/keel-cache" "$WORK/keel.img")
  read -r mc_s mc_m < <(measure mm-cold mm_build "$WORK/apt-cache" "$WORK/mm.sqfs")
  read -r mw_s mw_m < <(measure mm-warm mm_build "$WORK/apt-cache" "$WORK/mm.sqfs")
  mm_root=$(awk -v b="$(stat -c %s "$WORK/mm.sqfs")" 'BEGIN {printf "%.1f", b/1048576}')
  row "keel build server, cold" "$kc_s" "$kc_m" "$keel_root"
  row "keel build server, warm" "$kw_s" "$kw_m" "$keel_root"
  row "mmdebstrap+mksquashfs, cold" "$mc_s" "$mc_m" "$mm_root"
  row "mmdebstrap+mksquashfs, warm" "$mw_s" "$mw_m" "$mm_root"
  awk -v kc="$kc_s" -v kw="$kw_s" -v mc="$mc_s" -v mw="$mw_s" -v kr="$keel_root" -v mr="$mm_root" -v dl="$downloaded" 'BEGIN {
    printf "ratios (keel / mmdebstrap+mksquashfs): cold %.2fx, warm %.2fx, root size %+.1f%%; keel cold download %s\n",
      kc/mc, kw/mw, 100*(kr-mr)/mr, dl }'
done
