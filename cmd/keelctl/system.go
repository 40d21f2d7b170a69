package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"keel/bootloader"
	"keel/bootloader/espdir"
	"keel/image/install"
)

type globals struct {
	disk string // a disk image file instead of the running system
	// efivars is where efivarfs is mounted (bootloader.EFIVarsDir; a
	// test's directory).
	efivars string
}

// efivarsDir is g.efivars or the system's.
func (g *globals) efivarsDir() string {
	if g.efivars != "" {
		return g.efivars
	}
	return bootloader.EFIVarsDir
}

// system is what keelctl works on: the running device, or a disk image.
type system struct {
	install.Target
	// Boot is what the loader said of the running boot (not for a disk
	// image file).
	Boot  bootloader.Boot
	close func() error
}

// openSystem finds the ESP and the booted slot. The disk itself is opened
// for writing only when withDisk is set (install). Whatever it returns
// holds a lock (the device's lock file, or the disk image file's flock),
// released by close; on an error nothing stays locked or open.
func openSystem(g *globals, withDisk bool) (_ *system, err error) {
	if g.disk != "" {
		when, err := install.FileTime(os.Getenv)
		if err != nil {
			return nil, usageError{err}
		}
		d, err := install.OpenFile(g.disk, when)
		if err != nil {
			return nil, err
		}
		return &system{Target: d.Target, close: d.Close}, nil
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	unlock, err := lock(lockPath)
	if err != nil {
		return nil, err
	}
	closers := []func() error{unlock}
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	dev, err := espdir.FindDevice("/sys", "/")
	if err != nil {
		return nil, fmt.Errorf("finding the ESP: %w", err)
	}
	if err := espdir.Mount(dev.ESP, espdir.MountPoint); err != nil {
		return nil, err
	}
	esp := espdir.Dir{Root: espdir.MountPoint}
	loader, err := bootloader.ManagerOn(esp)
	if err != nil {
		return nil, err
	}
	boot, err := bootedSlot(loader, string(cmdline), g.efivarsDir())
	if err != nil {
		return nil, err
	}
	s := &system{close: closeAll, Boot: boot}
	s.ESP, s.Loader, s.Booted = esp, loader, boot.Slot
	if withDisk {
		f, err := os.OpenFile(dev.Disk, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		closers = append(closers, f.Close)
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, err
		}
		if s.Layout, err = install.ReadLayout(f, size); err != nil {
			return nil, fmt.Errorf("%s: %w", dev.Disk, err)
		}
		s.Disk = f
		es, err := s.Loader.Entries(s.ESP)
		if err != nil {
			return nil, err
		}
		e := bootedEntry(es, boot.Slot)
		if s.Running, err = install.ReadImage(s.ESP, boot.Slot, e); err != nil {
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

// bootedSlot is the running slot, as the boot loader told it (keel.slot=
// on the kernel command line, or for systemd-boot the entry it booted, as
// a unified kernel image serves either slot).
func bootedSlot(loader bootloader.Manager, cmdline, efivars string) (bootloader.Boot, error) {
	b, err := loader.Booted(bootloader.BootEnv{Cmdline: cmdline, EFIVars: efivars})
	if b.Slot != "" {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("not booted from a keel slot: %w", err)
	}
	return b, fmt.Errorf("not booted from a keel slot: the boot loader names none (no keel.slot= on the kernel command line, no LoaderEntrySelected EFI variable in %s)", efivars)
}

// secureBootVar is the firmware's SecureBoot variable (EFI global
// variable GUID): one byte, 1 when Secure Boot is enforced.
const secureBootVar = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"

// secureBoot says whether the firmware enforces Secure Boot: "on", "off",
// or "unknown" when efivarfs does not show the variable (not mounted, not
// booted by UEFI, or firmware without Secure Boot) or its value is not 0
// or 1.
func secureBoot(efivars string) string {
	b, err := os.ReadFile(filepath.Join(efivars, secureBootVar))
	if err != nil || len(b) != 5 { // 4 bytes of attributes, then the value
		return "unknown"
	}
	switch b[4] {
	case 1:
		return "on"
	case 0:
		return "off"
	}
	return "unknown"
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
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, install.Refuse(fmt.Errorf("%w: another keelctl is running (%s is locked)", install.ErrBusy, p))
		}
		return nil, fmt.Errorf("lock %s: %w", p, err)
	}
	return f.Close, nil
}
