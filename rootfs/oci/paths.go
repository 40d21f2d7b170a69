package oci

import (
	"path"
	"strings"

	"keel/rootfs"
)

// entryPath turns a tar entry name (or a hard link's target) into a tree
// path, refusing any name that could land outside the root. See doc.go for
// why ".." and absolute names are refused rather than cleaned.
func entryPath(name string) (string, error) {
	if name == "" {
		return "", unsafe("empty name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", unsafe("NUL byte in name")
	}
	if strings.HasPrefix(name, "/") {
		return "", unsafe("absolute name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", unsafe(`".." component`)
		}
	}
	return rootfs.Clean(name), nil
}

// checkParents refuses p when one of its existing ancestors (the root
// excluded) is not a directory: a symlink, because writing below it would
// mean following it, or anything else, which a layer cannot write below.
// Missing ancestors are fine: they are created as plain directories.
func (a *applier) checkParents(p string) error {
	if p == "/" {
		return nil
	}
	dir := "/"
	for _, c := range strings.Split(path.Dir(p)[1:], "/") {
		if c == "" {
			break
		}
		dir = path.Join(dir, c)
		e, ok := a.t.Get(dir)
		if !ok {
			return nil
		}
		switch e.Type {
		case rootfs.TypeDir:
		case rootfs.TypeSymlink:
			return unsafe("parent %s is a symlink (to %q)", dir, e.Target)
		default:
			return unsafe("parent %s is a %s", dir, e.Type)
		}
	}
	return nil
}
