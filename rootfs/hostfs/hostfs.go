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
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"
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
	// Listing directories is cheap; the lstat, xattr and readlink calls
	// for each entry are most of the time, so they run on several
	// goroutines, and the results are added to the tree in walk order.
	var paths []string
	err = filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		paths = append(paths, p)
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	type result struct {
		st  unix.Stat_t
		e   *rootfs.Entry
		err error
	}
	results := make([]result, len(paths))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2 * runtime.GOMAXPROCS(0)) // syscalls block; keep the cores busy
	for i, p := range paths {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			r := &results[i]
			if err := unix.Lstat(p, &r.st); err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			r.e, r.err = entryOf(p, &r.st, o)
			return r.err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	links := map[inodeKey]*rootfs.Entry{}
	for i, p := range paths {
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := rootfs.Clean(path.Join(dst, filepath.ToSlash(rel)))
		st, e := &results[i].st, results[i].e
		if st.Nlink > 1 && e.Type != rootfs.TypeDir {
			key := inodeKey{uint64(st.Dev), st.Ino}
			if first, ok := links[key]; ok {
				e = first // a hard link: the same entry, not a copy
			} else {
				links[key] = e
			}
		}
		if e.Type == rootfs.TypeDir && target != "/" {
			if err := t.MkdirAll(path.Dir(target), 0o755); err != nil {
				return err
			}
		}
		if err := t.Add(target, e); err != nil {
			return err
		}
	}
	return nil
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
