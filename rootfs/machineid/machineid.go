// Package machineid gives each keel disk its own machine id: made once, at
// the first boot, on the data partition, and bind-mounted over the
// read-only root's empty /etc/machine-id at every boot. Two disks built
// from the same profile get different ids; one disk keeps its id across
// boots and updates.
//
// The format is machine-id(5)'s: 32 lowercase hexadecimal characters and a
// newline, not all zeros.
package machineid

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File is where the id lives, relative to /var (the data partition).
const File = "lib/keel/machine-id"

// Target is the file the id is mounted over, relative to the root; the
// image carries it empty.
const Target = "/etc/machine-id"

// ErrNoTarget is returned by Mount when the rootfs has no file to mount
// the id over.
var ErrNoTarget = errors.New("no mount target")

// Valid reports whether b is the content of a machine-id file.
func Valid(b []byte) bool {
	if len(b) != 33 || b[32] != '\n' {
		return false
	}
	zero := true
	for _, c := range b[:32] {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		default:
			return false
		}
		zero = zero && c == '0'
	}
	return !zero
}

// New returns a new random id, as a machine-id file holds it. It is
// formatted as a version 4 UUID, as systemd makes them.
func New() ([]byte, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return []byte(hex.EncodeToString(b[:]) + "\n"), nil
}

// Ensure makes sure varDir/File holds a valid id: it keeps one that does,
// and writes a new one (through a temporary file, synced, renamed) where
// the file is missing or invalid. created says a new id was written;
// logf hears why an existing file was replaced. No symlink on varDir is
// followed: the directories on the way are entered with O_NOFOLLOW, and
// made (0755) where missing.
func Ensure(varDir string, logf func(string, ...any)) (created bool, err error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dirfd, err := openDirs(varDir, filepath.Dir(File), true)
	if err != nil {
		return false, err
	}
	defer unix.Close(dirfd)
	name := filepath.Base(File)
	path := filepath.Join(varDir, File)
	old, err := readFile(dirfd, name)
	switch {
	case err == nil && Valid(old):
		return false, nil
	case err == nil:
		logf("%s: not a machine id (%s): replacing it", path, describe(old))
	case !errors.Is(err, unix.ENOENT):
		logf("%s: %v: replacing it", path, err)
	}
	id, err := New()
	if err != nil {
		return false, err
	}
	if err := writeFile(dirfd, name, id); err != nil {
		return false, fmt.Errorf("writing %s: %w", path, err)
	}
	return true, nil
}

// Mount bind-mounts varDir/File over target, read-only. It opens the file
// without following a symlink and mounts that very file (through
// /proc/self/fd), so nothing on varDir can redirect the mount. A missing
// target is ErrNoTarget.
func Mount(varDir, target string) error {
	var st unix.Stat_t
	if err := unix.Lstat(target, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		if err == nil {
			err = errors.New("not a regular file")
		}
		return fmt.Errorf("%s: %w (%v)", target, ErrNoTarget, err)
	}
	dirfd, err := openDirs(varDir, filepath.Dir(File), false)
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	fd, err := unix.Openat(dirfd, filepath.Base(File), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", filepath.Join(varDir, File), err)
	}
	defer unix.Close(fd)
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", filepath.Join(varDir, File), target, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return fmt.Errorf("making %s read-only: %w", target, err)
	}
	return nil
}

// openDirs opens rel below base one component at a time, never through a
// symlink, making missing directories (0755) when create is set.
func openDirs(base, rel string, create bool) (int, error) {
	fd, err := unix.Open(base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening %s: %w", base, err)
	}
	at := base
	for _, name := range strings.Split(rel, "/") {
		at = filepath.Join(at, name)
		if create {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
				unix.Close(fd)
				return -1, fmt.Errorf("creating %s: %w", at, err)
			}
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = errors.New("a symlink: not followed")
			}
			unix.Close(fd)
			return -1, fmt.Errorf("opening %s: %w", at, err)
		}
		unix.Close(fd)
		fd = next
	}
	return fd, nil
}

// readFile reads a small file in dirfd, refusing a symlink (ELOOP) and
// anything larger than a machine id needs to be told apart from one.
func readFile(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b := make([]byte, 64)
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return b[:n], nil
}

// writeFile replaces name in dirfd with b (mode 0444) through a temporary
// name, synced before the rename and the directory after it, so a cut
// leaves the old file or the new one.
func writeFile(dirfd int, name string, b []byte) error {
	tmp := name + ".tmp"
	if err := unix.Unlinkat(dirfd, tmp, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing the leftover %s: %w", tmp, err)
	}
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o444)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dirfd, tmp, dirfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return err
	}
	return unix.Fsync(dirfd)
}

// describe says what is wrong with an invalid id, for the log.
func describe(b []byte) string {
	switch {
	case len(b) == 0:
		return "empty"
	case len(b) != 33:
		return fmt.Sprintf("%d bytes, want 33", len(b))
	case b[32] != '\n':
		return "no newline at the end"
	}
	return "not 32 lowercase hex digits, or all zeros"
}
