#!/usr/bin/env bash
# Boot time to "keel: ready" under QEMU (TCG unless KEEL_ACCEL says
# otherwise), for the busybox example as it is, with disk.verity (a unified
# kernel image with the root hash, the root through dm-verity), and with
# verity signed for Secure Boot and booted by OVMF enforcing its snakeoil
# keys, and with GRUB (boot.loader: grub) booted by OVMF and by SeaBIOS.
# Same machine, same run, REPS boots each (default 3), one at a time.
#
#   bench/boot.sh
#   REPS=5 bench/boot.sh
#
# Needs qemu-system-x86, ovmf and openssl (to decrypt the snakeoil key).
set -euo pipefail
cd "$(dirname "$0")/.."

KEEL=${KEEL:-bin/keel}
REPS=${REPS:-3}
export KEEL_CACHE=${KEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keel}
export KEEL_ACCEL=${KEEL_ACCEL:-tcg}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-boot.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
[ -x "$KEEL" ] || make keel >/dev/null

example=$(realpath profiles/examples/busybox.yaml)
printf 'include: [%s]\ndisk: {verity: true}\n' "$example" >"$WORK/verity.yaml"
printf 'include: [%s]\nboot: {loader: grub}\n' "$example" >"$WORK/grub.yaml"
openssl pkey -in /usr/share/ovmf/PkKek-1-snakeoil.key -passin pass:snakeoil -out "$WORK/snakeoil.key"

"$KEEL" build "$example" -o "$WORK/plain.img" >/dev/null
"$KEEL" build "$WORK/verity.yaml" -o "$WORK/verity.img" >/dev/null
"$KEEL" build "$WORK/verity.yaml" -o "$WORK/signed.img" \
  --sb-key "$WORK/snakeoil.key" --sb-cert /usr/share/ovmf/PkKek-1-snakeoil.pem >/dev/null
"$KEEL" build "$WORK/grub.yaml" -o "$WORK/grub.img" >/dev/null

# boot IMG FIRMWARE: seconds from starting keel run to the ready line;
# FIRMWARE is a --secure-boot value, or bios for SeaBIOS.
boot() {
  local log=$WORK/console.log start now pid fw=(--secure-boot "$2")
  [ "$2" = bios ] && fw=(--bios)
  : >"$log"
  start=$(date +%s.%N)
  "$KEEL" run --timeout 300s "${fw[@]}" "$1" >"$log" 2>&1 &
  pid=$!
  while ! grep -q 'keel: ready' "$log"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "boot of $1 ended before the ready line:" >&2
      tail -20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  now=$(date +%s.%N)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$now - $start" | bc
}

printf '%-34s %s\n' "image ($KEEL_ACCEL, $REPS boots each)" "seconds to keel: ready (each; median)"
for v in "plain:off:busybox example" "verity:off:disk.verity (UKI, dm-verity)" "signed:snakeoil:disk.verity, Secure Boot enforced" \
  "grub:off:GRUB, UEFI (OVMF)" "grub:bios:GRUB, BIOS (SeaBIOS)"; do
  IFS=: read -r img sb label <<<"$v"
  times=()
  for _ in $(seq "$REPS"); do
    times+=("$(boot "$WORK/$img.img" "$sb")")
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%-34s %s; %.2f\n' "$label" "$(printf '%.2f ' "${times[@]}")" "$median"
done
