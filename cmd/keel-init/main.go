// Command keel-init is the first process of a keel image, in two roles:
//
//   - /init in the initrd: load the kernel modules the image needs, find
//     and mount the slot's read-only squashfs root and the data partition
//     (at /var), and switch_root into the rootfs's init.
//   - /sbin/init in the rootfs, when the image has no other init: supervise
//     the services in /etc/keel/services, reap orphans, print
//     "keel: ready <name> <version> slot=<a|b>" once all are up, and power
//     off or reboot cleanly on request.
//
// The role is chosen by the root filesystem: ramfs or tmpfs is an initramfs.
// Everything it reports goes to the console, prefixed "keel-init: ".
package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
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
	var err error
	if inInitramfs() {
		err = initrdMain(con)
	} else {
		err = pid1Main(con)
	}
	fatal(con, err)
}

// inInitramfs reports whether / is the kernel's initramfs (ramfs, or tmpfs
// with CONFIG_TMPFS and rootfstype=tmpfs). A keel rootfs is a squashfs.
func inInitramfs() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return false
	}
	return st.Type == unix.RAMFS_MAGIC || st.Type == unix.TMPFS_MAGIC
}

// fatal is the end of a boot that cannot go on. PID 1 must not exit (the
// kernel would panic, and with panic=-1 reboot in a loop, the message
// scrolled away): print, leave time to read it, and power off.
func fatal(con *console, err error) {
	con.logf("FATAL: %v", err)
	con.logf("powering off in 10 seconds")
	time.Sleep(10 * time.Second)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		con.logf("power off: %v", err)
	}
	for {
		time.Sleep(time.Hour)
	}
}
