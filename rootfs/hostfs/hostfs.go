// Package hostfs reads a directory of the build host into a rootfs.Tree,
// keeping what the host says of each entry: ownership, modes, xattrs, device
// numbers and hard links. File content is not read here; entries get Openers
// that read the host file when a writer needs it.
package hostfs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"keel/rootfs"
)

// Options control Load.
type Options struct {
	// AllRoot makes every entry owned by uid 0, gid 0.
	AllRoot bool
	// NoXattrs skips extended attributes.
	NoXattrs bool
	// Logger receives warnings (skipped attributes); nil discards them.
	Logger *slog.Logger
}

// Load reads the directory src into a new tree whose root takes src's own
// metadata.
func Load(ctx context.Context, src string, o Options) (*rootfs.Tree, error) {
	t := rootfs.New()
	if err := Add(ctx, t, src, "/", o); err != nil {
		return nil, err
	}
	return t, nil
}

type inodeKey struct{ dev, ino uint64 }

// Add copies the host directory src into t at dst (which is created if
// missing). Hard links are kept only among files inside src.
func Add(ctx context.Context, t *rootfs.Tree, src, dst string, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("read %s: not a directory", src)
	}
	links := map[inodeKey]*rootfs.Entry{}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := rootfs.Clean(path.Join(dst, filepath.ToSlash(rel)))
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		key := inodeKey{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if e, ok := links[key]; ok {
				return t.Add(target, e)
			}
		}
		e, err := entryOf(p, &st, o)
		if err != nil {
			return err
		}
		if st.Nlink > 1 && e.Type != rootfs.TypeDir {
			links[key] = e
		}
		if target == "/" || e.Type != rootfs.TypeDir {
			return t.Add(target, e)
		}
		if err := t.MkdirAll(path.Dir(target), 0o755); err != nil {
			return err
		}
		return t.Add(target, e)
	})
}

func entryOf(p string, st *unix.Stat_t, o Options) (*rootfs.Entry, error) {
	e := &rootfs.Entry{
		Mode:  st.Mode & rootfs.ModePerm,
		UID:   st.Uid,
		GID:   st.Gid,
		Mtime: st.Mtim.Sec,
	}
	if o.AllRoot {
		e.UID, e.GID = 0, 0
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = rootfs.TypeDir
	case unix.S_IFREG:
		e.Type = rootfs.TypeFile
		e.Size = st.Size
		if e.Size > 0 {
			e.Content = rootfs.HostFile(p)
		}
	case unix.S_IFLNK:
		e.Type = rootfs.TypeSymlink
		t, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		e.Target = t
	case unix.S_IFCHR:
		e.Type = rootfs.TypeCharDev
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFBLK:
		e.Type = rootfs.TypeBlockDev
		e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		e.Type = rootfs.TypeFifo
	case unix.S_IFSOCK:
		e.Type = rootfs.TypeSocket
	default:
		return nil, fmt.Errorf("read %s: unknown file type %#o", p, st.Mode&unix.S_IFMT)
	}
	if !o.NoXattrs {
		x, err := xattrs(p, o.Logger)
		if err != nil {
			return nil, err
		}
		e.Xattrs = x
	}
	return e, nil
}

// xattrs reads the attributes squashfs and the other image formats can
// store; system.* (POSIX ACLs) is skipped with a warning, as mksquashfs does.
func xattrs(p string, log *slog.Logger) (map[string][]byte, error) {
	size, err := unix.Llistxattr(p, nil)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	var m map[string][]byte
	for _, name := range strings.Split(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "trusted.") && !strings.HasPrefix(name, "security.") {
			log.Warn("skipping extended attribute", "path", p, "name", name)
			continue
		}
		v, err := getxattr(p, name)
		if err != nil {
			return nil, fmt.Errorf("read xattr %s of %s: %w", name, p, err)
		}
		if m == nil {
			m = map[string][]byte{}
		}
		m[name] = v
	}
	return m, nil
}

func getxattr(p, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		m, err := unix.Lgetxattr(p, name, v)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		return v[:m], nil
	}
}
