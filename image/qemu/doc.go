// Package qemu boots a disk image in QEMU with OVMF (UEFI) firmware and
// reads the guest's serial console, for `keel run` and for the tests that
// boot what keel builds.
//
// The command line is the one DESIGN §3 records as booting keel images on
// these machines: q35, -cpu max, no display, no network, no monitor,
// -no-reboot (so a guest that reboots or powers off makes QEMU exit), the
// OVMF code read-only and a private copy of the OVMF variables as pflash,
// and the disks as virtio drives (raw, but for a boot disk of another
// format, Config.DiskFormat). The serial console is QEMU's stdout:
// every byte is copied to Config.Console as it arrives and split into lines
// that Expect waits on.
//
// Acceleration is TCG unless KVM is proven to work: on these machines
// /dev/kvm may exist and QEMU may start with -accel kvm, yet fail later
// inside the firmware, so "-accel kvm -accel tcg" is no fallback. Accel
// "auto" therefore boots the firmware alone under KVM once per process
// (ProbeKVM) and uses KVM only if the firmware gets as far as starting its
// shell. The environment variable KEEL_ACCEL=tcg|kvm skips the probe.
package qemu
