package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"keel/image/mountinfo"
)

// apiMount is a kernel API filesystem PID 1 provides.
type apiMount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
	mkdir                  bool // create the target (only on a writable parent: /dev)
}

const nosuidNodevNoexec = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

var (
	mountProc     = apiMount{"proc", "/proc", "proc", nosuidNodevNoexec, "", false}
	mountSys      = apiMount{"sysfs", "/sys", "sysfs", nosuidNodevNoexec, "", false}
	mountDev      = apiMount{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755", false}
	mountDevPts   = apiMount{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666", true}
	mountDevShm   = apiMount{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", true}
	mountRun      = apiMount{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755", false}
	mountEFIVars  = apiMount{"efivarfs", efivarsDir, "efivarfs", nosuidNodevNoexec, "", false}
	mountTmp      = apiMount{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777", false}
	rootfsMounts  = []apiMount{mountProc, mountSys, mountDev, mountDevPts, mountDevShm, mountRun, mountTmp}
	initrdMounts  = []apiMount{mountProc, mountSys, mountDev}
	initrdToMove  = []string{"/dev", "/proc", "/sys"}
	errNoMountDir = errors.New("mount point missing")
)

// mountAPI mounts m unless something is mounted there already (a
// switch_root moved it in, or a second run). A missing target on a
// read-only root cannot be created: that is errNoMountDir.
func mountAPI(m apiMount) (mounted bool, err error) {
	if m.mkdir {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return false, fmt.Errorf("creating %s: %w", m.target, err)
		}
	}
	if fi, err := os.Stat(m.target); err != nil || !fi.IsDir() {
		return false, fmt.Errorf("%s: %w", m.target, errNoMountDir)
	}
	if isMountpoint(m.target) {
		return false, nil
	}
	if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
		return false, fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
	}
	return true, nil
}

// isMountpoint reports whether dir is on another device than its parent,
// as mountpoint(1) does; it needs no /proc, which may not be mounted yet.
func isMountpoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Join(dir, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino // "/" is its own parent
}

// pseudoFS are filesystems with nothing to flush at shutdown.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true,
	"ramfs": true, "rootfs": true, "cgroup": true, "cgroup2": true, "mqueue": true,
	"securityfs": true, "debugfs": true, "tracefs": true, "pstore": true, "bpf": true,
	"configfs": true, "fusectl": true, "hugetlbfs": true, "efivarfs": true,
	"binfmt_misc": true, "autofs": true, "squashfs": true,
}

// toUnmount lists, deepest-last-mounted first, the mounts whose data must
// reach the disk before power goes: everything but the root and the
// pseudo filesystems. The root is a read-only squashfs.
func toUnmount(ms []mountinfo.Entry) []string {
	var out []string
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; m.Target != "/" && !pseudoFS[m.FSType] {
			out = append(out, m.Target)
		}
	}
	return out
}
