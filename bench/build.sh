#!/usr/bin/env bash
# Whole-build benchmark: `keel build` against the same image assembled with
# the C tools (cp, mksquashfs, cpio + xz, mkfs.vfat + mcopy, mkfs.ext4,
# sgdisk, dd) by this script, same compressor settings, same cores, one run.
#
#   bench/build.sh            # busybox example + a few hundred MB of /usr
#   BENCH_DIRS=/usr/share/doc bench/build.sh
#   PARTS=cache bench/build.sh                # only the build cache's table
#   PARTS=cache ROOTS="minimal 300M" bench/build.sh   # without the 3 GiB root
#
# The second part (PARTS=cache) times keel alone, on the built-in minimal
# profile and on ~300 MiB and ~3 GiB roots (minimal plus dir sources: host
# trees, and for 3 GiB /usr/share plus 2 GiB of random files made here):
# a cold build (--no-build-cache, packages already in $KEEL_CACHE), a no-op
# rebuild (nothing changed: the cached image), and a rebuild after one
# source file changed, with peak RSS of each, and checks that each output
# equals a build without the cache.
#
# Both pipelines start from their inputs already at hand: keel's cache is
# warmed by one build first, and the C pipeline's kernel and busybox are
# fetched with the host's apt (apt-get download) and unpacked with dpkg-deb.
# Needs squashfs-tools dosfstools mtools gdisk e2fsprogs cpio xz-utils kmod
# time.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=${PARTS:-"compare cache"}
ROOTS=${ROOTS:-"minimal 300M 3G"}

KEEL=${KEEL:-bin/keel}
LEVEL=${LEVEL:-3}
BENCH_DIRS=${BENCH_DIRS:-"/usr/share/doc /usr/share/locale /usr/share/man /usr/share/perl /usr/lib/python3.11"}
export KEEL_CACHE=${KEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keel}
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/keel-bench-build.XXXXXX")}
trap 'rm -rf "$WORK"' EXIT
[ -x "$KEEL" ] || make keel >/dev/null

t() { /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >/dev/null; read -r w u s m <"$WORK/time"; echo "$w $(awk "BEGIN{printf \"%.2f\", $u+$s}") $((m / 1024))"; }

compare_part() {
# The C pipeline's inputs: the kernel linux-image-amd64 points at, and
# busybox-static with a link per applet, unpacked once.
in=$WORK/inputs; mkdir -p "$in/debs" "$in/kernel" "$in/busybox"
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
(cd "$in/debs" && apt-get download -q busybox-static "$kpkg" >/dev/null 2>&1)
dpkg-deb -x "$in"/debs/linux-image-[0-9]*.deb "$in/kernel"
dpkg-deb -x "$in"/debs/busybox-static_*.deb "$in/busybox"
kernel=$(ls "$in"/kernel/boot/vmlinuz-*)
release=${kernel##*/vmlinuz-}
moddir=$in/kernel/lib/modules/$release
depmod -b "$in/kernel" "$release"
for a in $("$in/busybox/bin/busybox" --list-full); do
  [ "$a" = bin/busybox ] && continue
  mkdir -p "$in/busybox/$(dirname "$a")"; ln -sf /bin/busybox "$in/busybox/$a"
done

# The extra content, staged once so both pipelines read it from the page cache.
mkdir -p "$WORK/extra"
for d in $BENCH_DIRS; do
  [ -d "$d" ] || continue
  mkdir -p "$WORK/extra$(dirname "$d")"
  cp -a "$d" "$WORK/extra$(dirname "$d")/"
done
content=$(du -sb --apparent-size "$WORK/extra" | cut -f1)

cat >"$WORK/bench.yaml" <<YAML
include: [$(pwd)/profiles/examples/busybox.yaml]
name: bench
sources:
  - dir: $WORK/extra
disk:
  slot: 1GiB
  squashfs: {compression: zstd, level: $LEVEL}
YAML
# keel's inputs: a lock (as a pipeline that wants reproducible builds
# keeps one: the build then reads no package index) and one build that
# fills the cache (packages downloaded and unpacked); both pipelines then
# read from the page cache.
"$KEEL" lock "$WORK/bench.yaml" >/dev/null
"$KEEL" build "$WORK/bench.yaml" -o "$WORK/keel.img" >/dev/null
tar -cf /dev/null -C "$WORK/extra" . "$in" 2>/dev/null || true

# The same image with the C tools: tree staging, squashfs, initrd, ESP,
# data, GPT, and dd into place.
c_pipeline() {
  set -e -o pipefail
  local w=$WORK/c; rm -rf "$w"; mkdir -p "$w/root" "$w/initrd/etc/keel"
  cp -a "$in/busybox/." "$w/root/"
  cp -a "$WORK/extra/." "$w/root/"
  mkdir -p "$w/root/etc" "$w/root/usr/lib/keel" "$w/root/proc" "$w/root/sys" "$w/root/dev" "$w/root/var"
  echo keel-busybox >"$w/root/etc/hostname"
  printf 'IMAGE_ID=bench\nIMAGE_VERSION=1.0.0\n' >"$w/root/etc/os-release"
  printf 'root:x:0:0:root:/root:/bin/sh\nkeel:x:1000:1000::/var/home/keel:/bin/sh\n' >"$w/root/etc/passwd"
  cp bin/keel-init "$w/root/usr/lib/keel/keel-init"
  mksquashfs "$w/root" "$w/root.sqfs" -comp zstd -Xcompression-level "$LEVEL" -all-root -mkfs-time 0 -all-time 0 -no-progress -quiet >/dev/null
  # initrd: keel-init and the same modules (with dependencies, by modprobe).
  cp bin/keel-init "$w/initrd/init"
  for m in virtio_blk virtio_pci squashfs ext4 crc32c_generic vfat nls_cp437 nls_ascii efivarfs; do
    modprobe -d "$in/kernel" -S "$release" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print $2}'
  done | sort -u | while read -r ko; do mkdir -p "$w/initrd/$(dirname "${ko#"$in"/kernel/}")"; cp "$ko" "$w/initrd/${ko#"$in"/kernel/}"; done
  (cd "$w/initrd" && find . | sort | cpio -o -H newc --quiet | xz -T1 --check=crc32 -6 >"$w/initrd.xz")
  # ESP.
  truncate -s 64M "$w/esp.img"; mkfs.vfat -F 32 -n ESP "$w/esp.img" >/dev/null
  mmd -i "$w/esp.img" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/keel ::/keel/a
  mcopy -i "$w/esp.img" /usr/lib/systemd/boot/efi/systemd-bootx64.efi ::/EFI/BOOT/BOOTX64.EFI
  mcopy -i "$w/esp.img" "$kernel" ::/keel/a/vmlinuz
  mcopy -i "$w/esp.img" "$w/initrd.xz" ::/keel/a/initrd
  printf 'timeout 0\ndefault keel-*\n' | mcopy -i "$w/esp.img" - ::/loader/loader.conf
  printf 'title bench\nversion 1\nlinux /keel/a/vmlinuz\ninitrd /keel/a/initrd\noptions keel.slot=a\n' | mcopy -i "$w/esp.img" - ::/loader/entries/keel-a.conf
  # Data.
  truncate -s 64M "$w/data.img"; mkfs.ext4 -q -F -L data "$w/data.img"
  # Disk.
  truncate -s 2434M "$w/disk.img"
  sgdisk -a 2048 -n1:1M:+64M -t1:ef00 -c1:esp -n2:0:+1G -t2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 -c2:root-a \
    -n3:0:+1G -t3:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 -c3:root-b -n4:0:+64M -t4:8300 -c4:data "$w/disk.img" >/dev/null
  dd if="$w/esp.img" of="$w/disk.img" bs=1M seek=1 conv=notrunc,sparse status=none
  dd if="$w/root.sqfs" of="$w/disk.img" bs=1M seek=65 conv=notrunc,sparse status=none
  dd if="$w/data.img" of="$w/disk.img" bs=1M seek=2113 conv=notrunc,sparse status=none
  sync -f "$w/disk.img"
}

keel_build() {
  # A build, not a copy of the cached image: that is the cache part's.
  "$KEEL" build "$WORK/bench.yaml" --no-build-cache -o "$WORK/keel.img" >/dev/null
  sync -f "$WORK/keel.img"
}

export -f c_pipeline keel_build
export WORK KEEL KEEL_CACHE LEVEL kernel release moddir in

read -r cw cc cm < <(t bash -c c_pipeline)
read -r kw kc km < <(t bash -c keel_build)
echo "content: $((content / 1048576)) MiB extra + busybox; zstd-$LEVEL; cores: $(nproc)"
echo
echo "| pipeline | wall s | cpu s | peak MiB |"
echo "|---|---:|---:|---:|"
echo "| C tools (cp, mksquashfs, cpio+xz, mkfs.vfat+mcopy, mkfs.ext4, sgdisk, dd) | $cw | $cc | $cm |"
echo "| keel build | $kw | $kc | $km |"
echo "| **ratio keel / C** | **$(awk "BEGIN{printf \"%.2f\", $kw/$cw}")×** | $(awk "BEGIN{printf \"%.2f\", $kc/$cc}")× | |"
}

# The build cache: cold, no-op and one-file-change builds of one profile.
# Prints one table row.
cache_row() {
  local label=$1 profile=$2 changed=$3 out=$WORK/cache.img ref=$WORK/cache-ref.img
  local cw cc cm pw pc pm nw nc nm ow oc om same=yes
  read -r cw cc cm < <(t "$KEEL" build "$profile" --no-build-cache -o "$ref")
  read -r pw pc pm < <(t "$KEEL" build "$profile" -o "$out") # fills the cache
  read -r nw nc nm < <(t "$KEEL" build "$profile" -o "$out")
  cmp -s "$out" "$ref" || same=no
  echo "changed $(date +%s%N)" >"$changed"
  read -r ow oc om < <(t "$KEEL" build "$profile" -o "$out")
  "$KEEL" build "$profile" --no-build-cache -o "$ref" >/dev/null
  cmp -s "$out" "$ref" || same=no
  local content
  content=$("$KEEL" build "$profile" -o "$out" | awk '/root-a/ {for (i=1; i<=NF; i++) if ($i == "of") {print $(i+1), $(i+2); exit}}')
  rm -f "$out" "$ref"
  echo "| $label | ${content%,} | $cw | $cm | $nw | $nm | $ow | $(awk "BEGIN{printf \"%.2f\", $ow/$cw}")× | $om | $same |"
}

cache_part() {
  local app=$WORK/app
  mkdir -p "$app"
  echo "changed 0" >"$app/app.conf"
  mkcache_profile() { # name, then dir sources
    local name=$1; shift
    {
      echo "include: [$(pwd)/profiles/builtin/minimal.yaml]"
      echo "name: $name"
      echo "sources:"
      echo "  - {dir: $app, to: /srv/app}"
      for d in "$@"; do echo "  - {dir: $d, to: /srv$d}"; done
      [ "$name" = minimal-app ] || printf 'disk:\n  slot: 4GiB\n  squashfs: {compression: zstd, level: 3}\n'
    } >"$WORK/$name.yaml"
    echo "$WORK/$name.yaml"
  }
  "$KEEL" build minimal -o "$WORK/warm.img" >/dev/null # packages and index in the cache
  rm -f "$WORK/warm.img"
  echo "cores: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg); cold = --no-build-cache (packages cached)"
  echo
  echo "| root | content | cold s | cold MiB | no-op s | no-op MiB | one file changed s | / cold | one file MiB | identical to a cold build |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  for r in $ROOTS; do
    case $r in
    minimal) cache_row minimal "$(mkcache_profile minimal-app)" "$app/app.conf" ;;
    300M) cache_row "~300 MiB" "$(mkcache_profile r300 /usr/share/doc /usr/lib/gcc /usr/libexec)" "$app/app.conf" ;;
    3G)
      mkdir -p "$WORK/big"
      for i in 1 2 3 4; do head -c 512M /dev/urandom >"$WORK/big/f$i"; done
      cache_row "~3 GiB" "$(mkcache_profile r3g /usr/share "$WORK/big")" "$app/app.conf"
      rm -rf "$WORK/big" ;;
    esac
  done
}

for part in $PARTS; do
  case $part in
  compare) compare_part ;;
  cache) cache_part ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
  esac
  echo
done
