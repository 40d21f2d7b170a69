package tarfs

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"keel/rootfs"
)

// entryPath turns a tar entry name (or a hard link's target) into a tree
// path, refusing any name that could land outside the root. See the package
// comment for why ".." and absolute names are refused rather than cleaned.
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

// under reports whether p is root or below it.
func under(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+"/")
}

// alias is one entry of Options.Aliases.
type alias struct{ from, to string }

// checkAliases validates Options.Aliases and returns them sorted.
func checkAliases(m map[string]string) ([]alias, error) {
	var out []alias
	for from, to := range m {
		for _, p := range []string{from, to} {
			if !strings.HasPrefix(p, "/") || p == "/" || rootfs.Clean(p) != p {
				return nil, fmt.Errorf("tarfs: alias %q → %q: %q is not a clean absolute path below /", from, to, p)
			}
		}
		if under(to, from) || under(from, to) {
			return nil, fmt.Errorf("tarfs: alias %q → %q: one holds the other", from, to)
		}
		out = append(out, alias{from, to})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].from < out[j].from })
	for i := 1; i < len(out); i++ {
		if under(out[i].from, out[i-1].from) {
			return nil, fmt.Errorf("tarfs: aliases %q and %q nest", out[i-1].from, out[i].from)
		}
	}
	return out, nil
}

// resolve maps a tree path through the aliases: below an alias, to the same
// place below its canonical directory. The alias itself is returned as it
// is, with the alias.
func (a *applier) resolve(p string) (string, *alias) {
	for i := range a.aliases {
		al := &a.aliases[i]
		if p == al.from {
			return p, al
		}
		if strings.HasPrefix(p, al.from+"/") {
			return al.to + p[len(al.from):], nil
		}
	}
	return p, nil
}

// checkParents refuses p when one of its existing ancestors (the root
// excluded) is not a directory: a symlink, because writing below it would
// mean following it, or anything else, which an archive cannot write below.
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

// checkProtected refuses an entry at p that would write below a protected
// path, or replace one of its parents with something other than a
// directory.
func (a *applier) checkProtected(p string, isDir bool) error {
	for _, prot := range a.protected {
		if under(p, prot) {
			return &protectedError{prefix: prot, kind: a.kind}
		}
		if !isDir && under(prot, p) {
			return &protectedError{prefix: prot, kind: a.kind, parent: p}
		}
	}
	return nil
}

// checkRemoval refuses a whiteout removing what is at or below target when
// that includes a protected path the tree holds, and any whiteout within a
// protected path.
func (a *applier) checkRemoval(target string) error {
	for _, prot := range a.protected {
		if under(target, prot) {
			return &protectedError{prefix: prot, kind: a.kind}
		}
		if under(prot, target) {
			if _, ok := a.t.Get(prot); ok {
				return &protectedError{prefix: prot, kind: a.kind, removes: target}
			}
		}
	}
	return nil
}
