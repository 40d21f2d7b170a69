package rootfs

import (
	"fmt"
	"path"
)

// Resolve returns the real path p names in the tree and its entry,
// following symlinks in every component (absolute targets from the tree's
// root, never the host's), as stat(2) does inside a chroot. A missing path
// or a dangling link is fs.ErrNotExist.
func (t *Tree) Resolve(p string) (string, *Entry, error) {
	return t.resolve(Clean(p), 0)
}

// ResolveParent follows symlinks in p's directory components but not in
// its last one, as lstat(2) does, and returns the real path of p, which
// need not exist. Code that writes an entry at a path a package names
// ("/bin/busybox" when /bin is a link to usr/bin) uses it to find where
// the entry really goes.
func (t *Tree) ResolveParent(p string) (string, error) {
	p = Clean(p)
	if p == "/" {
		return "/", nil
	}
	dir, _, err := t.resolve(path.Dir(p), 0)
	if err != nil {
		return "", err
	}
	if e, _ := t.Get(dir); e.Type != TypeDir {
		return "", fmt.Errorf("%s: parent is a %s, not a directory", p, e.Type)
	}
	return path.Join(dir, path.Base(p)), nil
}

// MkdirAllTime is MkdirAll for generated content: it follows symlinks of
// the components that exist (so /lib/x works when /lib is a link to
// usr/lib), creates the missing ones as root-owned directories with mode
// and mtime, and returns p's real path.
func (t *Tree) MkdirAllTime(p string, mode uint32, mtime int64) (string, error) {
	p = Clean(p)
	if p == "/" {
		return "/", nil
	}
	parent, err := t.MkdirAllTime(path.Dir(p), mode, mtime)
	if err != nil {
		return "", err
	}
	real := path.Join(parent, path.Base(p))
	e, ok := t.Get(real)
	if !ok {
		if err := t.Add(real, &Entry{Type: TypeDir, Mode: mode, Mtime: mtime}); err != nil {
			return "", err
		}
		return real, nil
	}
	if e.Type == TypeSymlink {
		r, re, err := t.resolve(real, 0)
		if err != nil {
			return "", fmt.Errorf("%s: %w", real, err)
		}
		if re.Type != TypeDir {
			return "", fmt.Errorf("%s: is a link to a %s, not a directory", real, re.Type)
		}
		return r, nil
	}
	if e.Type != TypeDir {
		return "", fmt.Errorf("%s: is a %s, not a directory", real, e.Type)
	}
	return real, nil
}
