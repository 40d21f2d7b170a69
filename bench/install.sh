#!/usr/bin/env bash
# Install throughput: keel writing a slot against dd writing the same bytes
# to the same target, in one run, alternating, best of REPS each.
#
#   file:  keel update DISK.img BUNDLE        vs  dd of=DISK.img seek=<slot b> conv=notrunc,fsync
#   block: keelctl --disk /dev/loopN install  vs  dd of=/dev/loopNp3 (slot b) conv=fsync
#
# The bundle's root is a squashfs of one SIZE_MIB (default 200) MiB file of
# random bytes, so the slot payload is about that size and squashfs stores
# it as it is. dd writes through the page cache with bs=4M and an fsync at
# the end (conv=fsync); keel writes through the page cache too (1 MiB
# writes, background syncs every 64 MiB, one at the end): like with like,
# neither uses O_DIRECT. keel's time is its
# whole command (signature check, all four install steps of DESIGN §4 and
# their syncs); dd's is the payload alone. MB/s is payload bytes / wall
# time. The block case needs root (losetup, partx; the loop device reads
# its backing file with direct I/O, as a disk would); without it, or with
# BLOCK=0, only the file case runs. Needs jq.
#
#   bench/install.sh
#   REPS=5 SIZE_MIB=400 bench/install.sh
#   KEEL=/tmp/keel KEELCTL=/tmp/keelctl bench/install.sh   # other binaries
#   BASE_KEEL=/tmp/old/keel BASE_KEELCTL=/tmp/old/keelctl bench/install.sh
#
# With BASE_KEEL and BASE_KEELCTL, a second pair of binaries (say, of the
# commit before a change) runs in the same alternation: before and after
# under the same load, which on a shared machine moves more than a change.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=$(realpath "${KEEL:-bin/keel}")
KEELCTL=$(realpath "${KEELCTL:-bin/keelctl}")
REPS=${REPS:-3}
BASE_KEEL=${BASE_KEEL:+$(realpath "$BASE_KEEL")}
BASE_KEELCTL=${BASE_KEELCTL:+$(realpath "$BASE_KEELCTL")}
SIZE_MIB=${SIZE_MIB:-200}
BLOCK=${BLOCK:-1}
export KEEL_CACHE=${KEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keel}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-install.XXXXXX")}
LOOP=
cleanup() {
  if [ -n "$LOOP" ]; then
    partx -d "$LOOP" 2>/dev/null || true
    losetup -d "$LOOP" || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$KEEL" ] && [ -x "$KEELCTL" ] || make keel >/dev/null

cd "$WORK"
"$KEEL" key generate --dir . release >/dev/null
mkdir root
head -c "${SIZE_MIB}M" /dev/urandom >root/blob
echo "not a kernel" >vmlinuz
slot=$(( (SIZE_MIB + 56) / 8 * 8 ))MiB
for v in 1.0.0 2.0.0; do
  printf 'name: t\nversion: %s\nkernel: {file: vmlinuz}\nsources: [{dir: root}]\nupdate: {keys: [release.pub]}\ndisk: {esp: 34MiB, slot: %s, data: 16MiB}\n' \
    "$v" "$slot" >"$v.yaml"
done
"$KEEL" build 1.0.0.yaml -o v1.img >/dev/null
"$KEEL" build 2.0.0.yaml -o v2.img --sign-key release.key >/dev/null
bundle=t-2.0.0.keel

# The payload dd writes: the bundle's rootfs, which keel build also wrote
# into v2.img's slot a.
size=$("$KEEL" bundle inspect "$bundle" --json | jq '.manifest.artifacts[] | select(.name == "rootfs") | .size')
part() { "$KEEL" inspect "$1" --json | jq ".partitions[] | select(.label == \"$2\") | .$3"; }
dd if=v2.img of=payload bs=4M iflag=skip_bytes,count_bytes skip="$(part v2.img root-a start)" count="$size" status=none
slotb=$(part v1.img root-b start)
slotbnum=$(part v1.img root-b number)
cat payload "$bundle" >/dev/null # both sources start in the page cache

now() { date +%s%N; }
# best NAME CMD...: runs CMD, keeps the shortest time (ns) in best_NAME.
declare -A best
timed() {
  local name=$1 t0 t1
  shift
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  local d=$((t1 - t0))
  printf '  %-6s %-5s %6.3f s\n' "$case" "$name" "$(awk "BEGIN{print $d/1e9}")"
  if [ -z "${best[$case.$name]:-}" ] || [ "$d" -lt "${best[$case.$name]}" ]; then best[$case.$name]=$d; fi
}
mbps() { awk "BEGIN{printf \"%.0f\", $size / ($1 / 1e9) / 1e6}"; }

echo "payload $size bytes; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
cp v1.img file.img
case=file
for _ in $(seq "$REPS"); do
  timed dd dd if=payload of=file.img bs=4M seek="$slotb" oflag=seek_bytes conv=notrunc,fsync status=none
  timed keel "$KEEL" update file.img "$bundle" --key release.pub
  if [ -n "$BASE_KEEL" ]; then timed base "$BASE_KEEL" update file.img "$bundle" --key release.pub; fi
done
cases=(file)

if [ "$BLOCK" = 1 ] && [ "$(id -u)" = 0 ]; then
  cp v1.img block.img
  LOOP=$(losetup -f --show --direct-io=on block.img)
  partx -a "$LOOP"
  case=block
  for _ in $(seq "$REPS"); do
    timed dd dd if=payload of="${LOOP}p$slotbnum" bs=4M conv=fsync status=none
    timed keel "$KEELCTL" --disk "$LOOP" install "$bundle" --key release.pub
    if [ -n "$BASE_KEELCTL" ]; then timed base "$BASE_KEELCTL" --disk "$LOOP" install "$bundle" --key release.pub; fi
  done
  cases+=(block)
fi

echo "best of $REPS; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %8s %10s %8s' target dd-MB/s keel-MB/s keel/dd
[ -n "$BASE_KEEL" ] && printf ' %10s %8s' base-MB/s base/dd
echo
for c in "${cases[@]}"; do
  d=$(mbps "${best[$c.dd]}") k=$(mbps "${best[$c.keel]}")
  printf '%-6s %8s %10s %8s' "$c" "$d" "$k" "$(awk "BEGIN{printf \"%.2f\", $k/$d}")"
  if [ -n "${best[$c.base]:-}" ]; then
    b=$(mbps "${best[$c.base]}")
    printf ' %10s %8s' "$b" "$(awk "BEGIN{printf \"%.2f\", $b/$d}")"
  fi
  echo
done
