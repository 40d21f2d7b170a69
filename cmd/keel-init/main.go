// Command keel-init is the first process of a keel image, in two roles:
//
//   - /init in the initrd: load the kernel modules the image needs, find
//     and mount the slot's read-only squashfs root and the data partition
//     (at /var); on a writable /var, make what is missing there of the
//     image's factory copy of /var (/usr/share/factory/var, never changing
//     what exists) and the disk's machine id (/var/lib/keel/machine-id,
//     made at the first boot, bind-mounted read-only over the image's
//     empty /etc/machine-id); then switch_root into the rootfs's init.
//   - /sbin/init in the rootfs, when the image has no other init: supervise
//     the services in /etc/keel/services, reap orphans, print
//     "keel: ready <name> <version> slot=<a|b>" once all are up, and power
//     off or reboot cleanly on request.
//
// The role is the initrd's if /etc/initrd-release exists or the root
// filesystem is ramfs or tmpfs (an initramfs); otherwise it is PID 1's.
// Everything it reports goes to the console, prefixed "keel-init: "; a
// service's output is prefixed "[name] ".
//
// Kernel command line (initrd role; /etc/keel/cmdline in the initrd holds
// defaults that the kernel's own line overrides):
//
//	root=PARTUUID=<uuid>     the slot's partition (or PARTLABEL=<label>, /dev/<name>)
//	keel.slot=a|b            the booted slot, shown on the ready line
//	                         (neither on a unified kernel image's line: the slot
//	                         is then LoaderEntrySelected's, the partition the
//	                         one labelled root-<slot> on the loader's disk)
//	roothash=<sha256 hex>    mount the root through dm-verity with this root
//	keel.verity=<offset>     hash, the tree at this byte offset of the slot
//	keel.data=PARTUUID=<uuid> the data partition (or PARTLABEL=, /dev/<name>);
//	                         default: the partition labelled "data", on the
//	                         root's disk first; "none" for a tmpfs /var
//	keel.grow=yes|no         grow the data partition and its ext4 to the end of
//	                         a disk larger than the image (default yes)
//	keel.rootwait=<seconds>  how long to wait for the root device (default 10)
//	init=<path>              the rootfs's init (default /sbin/init)
//
// In the PID 1 role, keel.test=<port> marks a keel test boot: keel-init
// greets keel test on /dev/<port> (the VM's second serial port) before any
// service starts and then reports to it and runs its commands (package
// testagent). keel test puts it on the boot entries of the copy it boots;
// without it the port is never opened.
//
// Initrd files: /etc/keel/modules (modules to load, in order: one path per
// line, relative to /lib/modules/<release>/ or absolute, optionally followed
// by parameters) and /etc/keel/cmdline.
//
// Rootfs files: /etc/keel/services/*.json and /etc/keel/health.json (package
// keel/rootfs/services), /etc/hostname, /etc/os-release (IMAGE_ID,
// IMAGE_VERSION), /etc/passwd and /etc/group for service users; for the
// initrd role, /usr/share/factory/var (package keel/rootfs/factory) and
// /etc/machine-id (package keel/rootfs/machineid).
//
// Signals to PID 1, as busybox init takes them (so busybox's halt, poweroff
// and reboot work): SIGUSR1 halt, SIGUSR2 power off, SIGTERM reboot,
// SIGINT (ctrl-alt-del) reboot. SIGHUP and SIGQUIT are ignored.
package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	_ "keel/bootloader/all" // the loaders keel.loader= names
	"keel/image/verdict"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	con := newConsole(os.Stdout)
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		con.line("keel-init " + version)
		return
	}
	if os.Getpid() != 1 {
		con.logf("must run as PID 1: the initrd's /init, or /sbin/init in a keel rootfs")
		os.Exit(2)
	}
	initrd := inInitramfs()
	stage := verdict.StageInit
	if initrd {
		stage = verdict.StageInitrd
	}
	// A panic would end PID 1 and with it the kernel: turn it into the
	// usual fatal path, which says what happened on the console.
	defer func() {
		if r := recover(); r != nil {
			fatal(con, stage, fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	var err error
	if initrd {
		err = initrdMain(con)
	} else {
		err = pid1Main(con)
	}
	fatal(con, stage, err)
}

// inInitramfs reports whether keel-init runs as the initrd's /init: the
// initrd says so with /etc/initrd-release (the systemd convention, written
// by keel build), or / is the kernel's initramfs (ramfs, or tmpfs). A keel
// rootfs is a squashfs.
func inInitramfs() bool {
	if _, err := os.Stat("/etc/initrd-release"); err == nil {
		return true
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}

// Delays before the end of a boot that cannot go on, to read why.
const (
	fatalPoweroffDelay = 10 * time.Second
	fatalRebootDelay   = 5 * time.Second
)

// fatal is the end of a boot that cannot go on; stage says where it
// failed (image/verdict). PID 1 must not exit: the kernel would panic and,
// with panic=-1, reboot at once, the message scrolled away.
//
// On a trial boot (the boot loader counts its tries) the verdict is recorded
// on the ESP where it can be, and the machine reboots: the loader's try
// counter then decides, so a new slot that cannot even reach its services
// falls back within update.tries boots, as one that fails its health
// check does. Any other boot prints, leaves time to read it, and powers
// off rather than fail again in a loop.
func fatal(con *console, stage string, err error) {
	con.logf("FATAL: %v", err)
	if loader, boot := bootInfo(con); boot.Trial != nil {
		recordFatal(con, loader, boot, stage, err)
		con.logf("rebooting in %v, a trial boot: %s", fatalRebootDelay, fallbackNote(*boot.Trial))
		time.Sleep(fatalRebootDelay)
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
			con.logf("reboot: %v", err)
		}
	} else {
		con.logf("powering off in %v", fatalPoweroffDelay)
		time.Sleep(fatalPoweroffDelay)
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			con.logf("power off: %v", err)
		}
	}
	for {
		time.Sleep(time.Hour)
	}
}
