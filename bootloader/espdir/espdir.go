// Package espdir is bootloader.DirESP over a mounted ESP, for a running
// device (keelctl, keel-init). vfat is not crash-atomic (DESIGN §4), so
// every change is made durable before it returns: file data and the
// directory are fsynced, and the ESP should be mounted with dirsync (Mount).
package espdir

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"keel/bootloader"
)

// Dir is the ESP mounted at a directory.
type Dir struct{ Root string }

var _ bootloader.DirESP = Dir{}

func (d Dir) path(p string) string {
	return filepath.Join(d.Root, filepath.FromSlash(path.Clean("/"+p)))
}

// Mkdir creates p and missing parents; existing directories are fine.
func (d Dir) Mkdir(p string) error {
	if err := os.MkdirAll(d.path(p), 0o755); err != nil {
		return err
	}
	return syncDir(filepath.Dir(d.path(p)))
}

// WriteFile writes exactly size bytes from r to p and syncs the file and its
// directory. It replaces p in place: callers that need the old content to
// survive a cut write a temporary name and Rename it, as the bootloader
// package does.
func (d Dir) WriteFile(p string, r io.Reader, size int64) (err error) {
	f, err := os.OpenFile(d.path(p), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.CopyN(f, r, size)
	if err != nil {
		return fmt.Errorf("write %s: %d of %d bytes: %w", p, n, size, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return syncDir(filepath.Dir(d.path(p)))
}

// ReadFile returns the content of p.
func (d Dir) ReadFile(p string) ([]byte, error) { return os.ReadFile(d.path(p)) }

// Rename renames and syncs the directories involved.
func (d Dir) Rename(oldp, newp string) error {
	if err := os.Rename(d.path(oldp), d.path(newp)); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(d.path(newp))); err != nil {
		return err
	}
	if filepath.Dir(d.path(oldp)) != filepath.Dir(d.path(newp)) {
		return syncDir(filepath.Dir(d.path(oldp)))
	}
	return nil
}

// Remove removes p and syncs its directory.
func (d Dir) Remove(p string) error {
	if err := os.Remove(d.path(p)); err != nil {
		return err
	}
	return syncDir(filepath.Dir(d.path(p)))
}

// ReadDir lists the names in p, sorted.
func (d Dir) ReadDir(p string) ([]string, error) {
	ents, err := os.ReadDir(d.path(p))
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

// Sync flushes the whole filesystem (syncfs), FAT and FSInfo included.
func (d Dir) Sync() error {
	f, err := os.Open(d.Root)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", d.Root, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	// Some filesystems refuse fsync on a directory; vfat does not.
	if err := f.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
