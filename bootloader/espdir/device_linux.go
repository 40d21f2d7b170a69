package espdir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// MountPoint is where keelctl and keel-init mount the ESP.
const MountPoint = "/run/keel/esp"

// ESPLabel is the ESP's GPT partition label (image/disk.LabelESP).
const ESPLabel = "esp"

// Device is the running system's disk and its ESP, as /dev paths.
type Device struct {
	Disk string // e.g. /dev/vda
	ESP  string // e.g. /dev/vda1
	Root string // the partition mounted at /, e.g. /dev/vda2
}

// ErrNotFound is returned when the disk or its ESP cannot be found.
var ErrNotFound = errors.New("not found")

// FindDevice finds the disk that holds the filesystem mounted at root (the
// running slot) and the partition labelled "esp" on the same disk, from
// sysfs (sys is normally /sys): no udev is needed, and an ESP on another
// disk (an old image attached beside) is never picked.
func FindDevice(sys, root string) (Device, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return Device{}, fmt.Errorf("stat %s: %w", root, err)
	}
	return findDevice(sys, root, unix.Major(st.Dev), unix.Minor(st.Dev))
}

func findDevice(sys, root string, major, minor uint32) (Device, error) {
	link := filepath.Join(sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor))
	part, err := filepath.EvalSymlinks(link)
	if err != nil {
		return Device{}, fmt.Errorf("the device of %s (%s): %w", root, link, ErrNotFound)
	}
	if _, err := os.Stat(filepath.Join(part, "partition")); err != nil {
		// A dm-verity root (dm-N) stands on one partition, the slot:
		// its only slave.
		slaves, _ := os.ReadDir(filepath.Join(part, "slaves"))
		if len(slaves) != 1 {
			return Device{}, fmt.Errorf("%s is on %s, which is not a disk partition nor a device-mapper device over one: %w", root, filepath.Base(part), ErrNotFound)
		}
		under, err := filepath.EvalSymlinks(filepath.Join(part, "slaves", slaves[0].Name()))
		if err != nil {
			return Device{}, fmt.Errorf("the device under %s: %w", filepath.Base(part), ErrNotFound)
		}
		if _, err := os.Stat(filepath.Join(under, "partition")); err != nil {
			return Device{}, fmt.Errorf("%s is on %s over %s, which is not a disk partition: %w", root, filepath.Base(part), filepath.Base(under), ErrNotFound)
		}
		part = under
	}
	diskDir := filepath.Dir(part)
	d := Device{Disk: "/dev/" + devName(diskDir), Root: "/dev/" + devName(part)}
	ents, err := os.ReadDir(diskDir)
	if err != nil {
		return Device{}, fmt.Errorf("list partitions of %s: %w", d.Disk, err)
	}
	for _, e := range ents {
		p := filepath.Join(diskDir, e.Name())
		if _, err := os.Stat(filepath.Join(p, "partition")); err != nil {
			continue
		}
		if uevent(p)["PARTNAME"] == ESPLabel {
			d.ESP = "/dev/" + devName(p)
			return d, nil
		}
	}
	return Device{}, fmt.Errorf("no partition labelled %q on %s: %w", ESPLabel, d.Disk, ErrNotFound)
}

// devName is a sysfs block device's DEVNAME, or its directory's name.
func devName(dir string) string {
	if n := uevent(dir)["DEVNAME"]; n != "" {
		return n
	}
	return filepath.Base(dir)
}

func uevent(dir string) map[string]string {
	m := map[string]string{}
	f, err := os.Open(filepath.Join(dir, "uevent"))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

// Mount mounts the vfat ESP dev at dir with dirsync (directory changes are
// written synchronously: DESIGN §4 measured that this keeps renames from
// losing entries), unless something is mounted there already.
//
// It also mounts with errors=continue. Linux's fsync of a vfat file writes
// its directory entry (size, first cluster) before its FAT chain, so a
// power cut there leaves a file whose size runs past its chain (seen in
// qemu-tests' TestKill: /keel/b/vmlinuz.tmp, cut at 8 MB written, chain
// 2.6 MB). Reading it is an I/O error, and with the default
// errors=remount-ro the whole ESP turns read-only for the boot: the
// leftover cannot be removed, no install can run and no trial can be
// blessed, boot after boot. With errors=continue the read fails alone and
// the file can be removed (Cleanup does, at the next boot).
func Mount(dev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mount ESP: %w", err)
	}
	if isMountpoint(dir) {
		return nil
	}
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_DIRSYNC)
	if err := unix.Mount(dev, dir, "vfat", flags, "errors=continue"); err != nil {
		return fmt.Errorf("mount ESP %s on %s (vfat, dirsync, errors=continue): %w", dev, dir, err)
	}
	return nil
}

// isMountpoint reports whether dir is on another device than its parent.
func isMountpoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(dir, &st) != nil || unix.Lstat(filepath.Join(dir, ".."), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev || st.Ino == parent.Ino
}
