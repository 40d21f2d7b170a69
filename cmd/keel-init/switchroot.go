package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// checkInit makes sure init is an executable file inside newRoot before
// the initramfs is deleted: after that there is no way back. Symlinks are
// resolved as they will be after the chroot (openat2 RESOLVE_IN_ROOT), so
// /sbin/init -> /usr/bin/keel-init is looked up in the rootfs, not here.
func checkInit(newRoot, init string) error {
	dir, err := unix.Open(newRoot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", newRoot, err)
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, init, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT,
	})
	if err != nil {
		return fmt.Errorf("init %s in the rootfs: %w", init, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("init %s in the rootfs: %w", init, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o111 == 0 {
		return fmt.Errorf("init %s in the rootfs is not an executable file (mode %#o)", init, st.Mode)
	}
	return nil
}

// switchRoot does what busybox switch_root does: free the initramfs's
// memory by deleting its files, make newRoot the root, and exec init as
// PID 1. It returns only on failure.
func switchRoot(newRoot, init string, argv, env []string) error {
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	// Errors are not fatal: what is left only costs memory.
	_ = removeSameDevice("/", st.Dev)
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch_root: moving %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if err := unix.Exec(init, argv, env); err != nil {
		return fmt.Errorf("switch_root: exec %s: %w", init, err)
	}
	return nil
}

// removeSameDevice deletes everything below dir that is on device dev,
// without following symlinks or crossing into other mounts (the new root,
// anything still mounted). dir itself stays. The first error is returned
// after trying everything.
func removeSameDevice(dir string, dev uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			keep(err)
			continue
		}
		if st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			keep(removeSameDevice(p, dev))
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOTEMPTY) {
				keep(err)
			}
			continue
		}
		keep(unix.Unlink(p))
	}
	return first
}
