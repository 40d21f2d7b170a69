package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/bootloader/systemdboot"
	"keel/image/install"
)

type globals struct {
	disk string // a disk image file instead of the running system
}

// system is what keelctl works on: the running device, or a disk image.
type system struct {
	install.Target
	close func() error
}

// openSystem finds the ESP and the booted slot. The disk itself is opened
// for writing only when withDisk is set (install).
func openSystem(g *globals, withDisk bool) (*system, error) {
	if g.disk != "" {
		d, err := install.OpenFile(g.disk, time.Now().UTC())
		if err != nil {
			return nil, err
		}
		return &system{Target: d.Target, close: d.Close}, nil
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	booted := slotFromCmdline(string(cmdline))
	if booted == "" {
		return nil, fmt.Errorf("not booted from a keel slot: no keel.slot= on the kernel command line")
	}
	unlock, err := lock(lockPath)
	if err != nil {
		return nil, err
	}
	dev, err := espdir.FindDevice("/sys", "/")
	if err != nil {
		unlock()
		return nil, fmt.Errorf("finding the ESP: %w", err)
	}
	if err := espdir.Mount(dev.ESP, espdir.MountPoint); err != nil {
		unlock()
		return nil, err
	}
	s := &system{close: unlock}
	s.ESP, s.Loader, s.Booted = espdir.Dir{Root: espdir.MountPoint}, systemdboot.Entries{}, booted
	if withDisk {
		f, err := os.OpenFile(dev.Disk, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return nil, err
		}
		if s.Layout, err = install.ReadLayout(f, size); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", dev.Disk, err)
		}
		s.Disk, s.close = f, func() error { f.Close(); return unlock() }
		es, err := s.Loader.Entries(s.ESP)
		if err != nil {
			f.Close()
			return nil, err
		}
		e := bootedEntry(es, booted)
		if s.Running, err = install.ReadImage(s.ESP, booted, e); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

func bootedEntry(es []bootloader.EntryState, slot string) bootloader.EntryState {
	for _, e := range es {
		if e.Slot == slot {
			return e
		}
	}
	return bootloader.EntryState{}
}

// slotFromCmdline returns keel.slot's value, "" if absent.
func slotFromCmdline(s string) string {
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "keel.slot="); ok {
			return v
		}
	}
	return ""
}

// lockPath serialises keelctl commands on a device: two installs, or an
// install and a rollback, must not interleave their steps.
const lockPath = "/run/keel/keelctl.lock"

func lock(p string) (unlock func() error, err error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another keelctl is running (%s is locked)", p)
	}
	return f.Close, nil
}
