package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Binary is the QEMU system emulator keel runs for x86_64 guests.
const Binary = "qemu-system-x86_64"

// UBootARM64 is U-Boot for QEMU's arm64 virt machine, from Debian's
// u-boot-qemu package: what Config.BIOS boots an aarch64 guest with.
const UBootARM64 = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// machine is how QEMU runs a guest architecture: its binary, machine and
// CPU, its UEFI firmware, and the Debian packages that install them.
type machine struct {
	binary, machine, cpu string
	// firmware are the code and variable-store pairs, best first, of
	// fwName (OVMF, AAVMF).
	firmware [][2]string
	fwName   string
	install  string
	// bios is the firmware Config.BIOS runs instead of UEFI: "" for
	// QEMU's own (SeaBIOS on q35), else a file, with the package that
	// installs it.
	bios, biosPackage string
	// goarch is the host (GOARCH) on which KVM can run the guest.
	goarch string
}

// machines are the guest architectures, by profile arch. aarch64 runs on
// the virt machine with AAVMF (EDK2 for arm, both pflash images 64 MiB);
// under TCG a cortex-a57 is cheaper to emulate than "max" (no pointer
// authentication, no SVE) and runs Debian's arm64 kernel.
var machines = map[string]*machine{
	"x86_64": {binary: Binary, machine: "q35", cpu: "max", firmware: ovmfPairs, fwName: "OVMF",
		install: "qemu-system-x86 ovmf", goarch: "amd64"},
	"aarch64": {binary: "qemu-system-aarch64", machine: "virt", cpu: "cortex-a57", firmware: aavmfPairs, fwName: "AAVMF",
		install: "qemu-system-arm qemu-efi-aarch64", goarch: "arm64",
		bios: UBootARM64, biosPackage: "u-boot-qemu"},
}

// machineFor returns the machine of a Config.Arch.
func machineFor(arch string) (*machine, error) {
	if arch == "" {
		arch = "x86_64"
	}
	m, ok := machines[arch]
	if !ok {
		return nil, fmt.Errorf("unknown architecture %q (want x86_64 or aarch64)", arch)
	}
	return m, nil
}

// Sentinel errors. Callers branch on them with errors.Is; tests turn
// ErrNotInstalled into a skip.
var (
	// ErrNotInstalled: QEMU or its UEFI firmware is missing on the host.
	ErrNotInstalled = errors.New("not installed")
	// ErrTimeout: Expect's timeout or Config.Timeout ran out.
	ErrTimeout = errors.New("timed out")
	// ErrExited: QEMU exited (or closed the console) while Expect waited.
	ErrExited = errors.New("qemu exited")
	// ErrKilled: the VM was stopped with Kill.
	ErrKilled = errors.New("killed")
)

// Config describes one VM. The zero value (with Disk set) is a working
// configuration.
type Config struct {
	// Arch is the guest's architecture: "x86_64" (the default when empty;
	// q35 with OVMF) or "aarch64" (virt with AAVMF, always TCG on a host
	// of another architecture).
	Arch string
	// Disk is the disk image to boot, the first virtio disk. Empty
	// means no disk: the firmware boots into its shell.
	Disk string
	// DiskFormat is Disk's image format as QEMU names it: "raw" (the
	// default when empty), "qcow2", "vmdk" or "vhdx", the formats keel
	// build writes. It is never guessed from the file: QEMU's probe would
	// let a guest that writes a qcow2 header into its raw disk name a
	// host file as its backing file at the next boot.
	DiskFormat string
	// ExtraDisks are further raw images, attached as virtio disks after
	// Disk, in order.
	ExtraDisks []string
	// MemoryMiB is the guest's memory; 0 means 1024.
	MemoryMiB int
	// CPUs is the number of virtual CPUs; 0 means 1.
	CPUs int
	// Accel is "tcg", "kvm", or "auto" (the default when empty): see the
	// package documentation and ResolveAccel.
	Accel string
	// Timeout, if positive, bounds the VM's whole life: when it runs out,
	// QEMU is stopped and Wait reports ErrTimeout.
	Timeout time.Duration
	// Console, if not nil, receives every byte of the serial console as it
	// arrives. A failing Console stops the copy but never the VM.
	Console io.Writer
	// Stdin, if not nil, is the serial console's input. Nil means no
	// input (the console reads end of file).
	Stdin io.Reader
	// OVMFCode and OVMFVars are the firmware and the template of its
	// variable store. Empty means the Debian ovmf package's files:
	// OVMF_CODE_4M.fd with OVMF_VARS_4M.fd, else the 2 MiB pair; for
	// aarch64 the qemu-efi-aarch64 package's AAVMF_CODE.fd and
	// AAVMF_VARS.fd.
	OVMFCode, OVMFVars string
	// VarsCopy is the VM's own, writable copy of the variable store. If the
	// file exists it is used as it is, so variables persist across runs as
	// on a real machine; otherwise it is created from OVMFVars. Empty means
	// a fresh copy in a temporary directory, removed when QEMU exits.
	VarsCopy string
	// FwCfg maps fw_cfg names to files handed to the guest (-fw_cfg
	// name=opt/<name>,file=<file>); the "opt/" prefix is added if missing.
	FwCfg map[string]string
	// Network gives the guest one virtio NIC on QEMU's user network with
	// restrict=on: the guest gets an address by DHCP, but no packet of it
	// leaves the machine; only Forwards reach it, from loopback. False:
	// no NIC at all.
	Network bool
	// Forwards are host loopback TCP ports forwarded to guest ports (with
	// Network).
	Forwards []Forward
	// GuestForwards let the guest reach host loopback ports (with
	// Network): a connection to Addr in the guest (an address of QEMU's
	// user network, e.g. 10.0.2.100:5000) goes to 127.0.0.1:HostPort. The
	// only way out of the restricted network, one port at a time. Each
	// connection runs nc (netcat-openbsd) on the host.
	GuestForwards []GuestForward
	// SecureBoot runs the firmware the way OVMF's Secure Boot build needs:
	// with SMM and its variable store writable only from SMM, so that no
	// guest OS code can change the keys. Set OVMFCode to SecureBootCode
	// and OVMFVars to a store with keys (SnakeoilVars) or without
	// (SetupModeVars: systemd-boot may enroll the image's own).
	SecureBoot bool
	// BIOS boots with the machine's firmware other than UEFI: SeaBIOS
	// (QEMU's own) on x86_64, U-Boot (UBootARM64) on aarch64. No
	// variable store (OVMFCode, OVMFVars, VarsCopy and SecureBoot are
	// unused).
	BIOS bool
	// ExtraArgs are appended to QEMU's command line as they are.
	ExtraArgs []string
}

// Debian's ovmf package's Secure Boot firmware, and two variable stores
// for it: one enforcing its snakeoil keys (PK, KEK and db are all
// /usr/share/ovmf/PkKek-1-snakeoil.pem, whose key ships beside it), and
// one with no keys at all, in setup mode.
const (
	SecureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	SnakeoilVars   = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	SnakeoilKey    = "/usr/share/ovmf/PkKek-1-snakeoil.key"
	SnakeoilCert   = "/usr/share/ovmf/PkKek-1-snakeoil.pem"
	SetupModeVars  = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Forward forwards 127.0.0.1:HostPort on the host to GuestPort in the guest.
type Forward struct {
	HostPort, GuestPort int
}

// GuestForward forwards the guest's connections to Addr (IP:PORT on QEMU's
// user network, 10.0.2.0/24 by default) to 127.0.0.1:HostPort on the host.
type GuestForward struct {
	Addr     string
	HostPort int
}

// ovmfPairs are the firmware files of Debian's ovmf package, best first.
// The code and the variable store must come from the same pair: a 4 MiB
// code image does not run with a 2 MiB variable store.
var ovmfPairs = [][2]string{
	{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"},
	{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"},
}

// aavmfPairs are the firmware files of Debian's qemu-efi-aarch64 package.
var aavmfPairs = [][2]string{
	{"/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"},
}

// Available reports whether QEMU and the OVMF firmware are installed for
// x86_64 guests, with an error wrapping ErrNotInstalled that says what to
// install if not.
func Available() error { return AvailableFor("x86_64") }

// AvailableFor is Available for guests of arch (see Config.Arch).
func AvailableFor(arch string) error {
	m, err := machineFor(arch)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath(m.binary); err != nil {
		return fmt.Errorf("%s %w: apt-get install %s", m.binary, ErrNotInstalled, m.install)
	}
	if _, _, err := firmware(m, "", ""); err != nil {
		return err
	}
	return nil
}

// firmware returns the UEFI code and variable-store template to use for m.
func firmware(m *machine, code, vars string) (string, string, error) {
	if code == "" && vars == "" {
		for _, p := range m.firmware {
			if exists(p[0]) && exists(p[1]) {
				return p[0], p[1], nil
			}
		}
		return "", "", fmt.Errorf("%s firmware (%s) %w: apt-get install %s", m.fwName, m.firmware[0][0], ErrNotInstalled, m.install)
	}
	if code == "" {
		return "", "", errors.New("OVMFVars is set but OVMFCode is not")
	}
	if vars == "" {
		// The ovmf and qemu-efi-aarch64 packages name the pair
		// *_CODE*.fd / *_VARS*.fd.
		vars = filepath.Join(filepath.Dir(code), strings.Replace(filepath.Base(code), "CODE", "VARS", 1))
		if vars == code {
			return "", "", fmt.Errorf("OVMFVars not set and not derivable from %s", code)
		}
	}
	for _, f := range []string{code, vars} {
		if !exists(f) {
			return "", "", fmt.Errorf("%s firmware file %s %w", m.fwName, f, ErrNotInstalled)
		}
	}
	return code, vars, nil
}

func exists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// copyFile copies src to a new file dst (mode 0644).
func copyFile(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
