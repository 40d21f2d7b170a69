package tarfs

import (
	"path"
	"strings"

	"keel/rootfs"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta starts the names aufs kept for itself, of which only the
	// opaque marker means anything to an image.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// isAufsMeta reports an entry that is aufs bookkeeping (.wh..wh.plnk and the
// like, or something inside such a directory), which old Docker versions left
// in layers and which Docker and containerd skip.
func isAufsMeta(name string) bool {
	for _, c := range strings.Split(name, "/") {
		if strings.HasPrefix(c, whiteoutMeta) && c != whiteoutOpaque {
			return true
		}
	}
	return false
}

// whiteout applies the whiteout entry at p (already checked by entryPath): an
// opaque marker hides every lower entry of its directory, ".wh.NAME" hides
// NAME.
func (a *applier) whiteout(p string) error {
	dir, base := path.Split(p)
	dir, al := a.resolve(rootfs.Clean(dir))
	if al != nil {
		dir = al.to
	}
	if base == whiteoutOpaque {
		if err := a.checkParents(path.Join(dir, base)); err != nil {
			return err
		}
		if err := a.checkRemoval(dir); err != nil {
			return err
		}
		if e, ok := a.t.Get(dir); !ok || e.Type != rootfs.TypeDir {
			// Nothing below it from lower layers; this layer's own entry for
			// the directory will replace whatever is there.
			return nil
		}
		for _, name := range a.t.Children(dir) {
			a.removeLower(path.Join(dir, name))
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return unsafe("whiteout of %q", name)
	}
	target, al := a.resolve(path.Join(dir, name))
	if al != nil {
		return unsafe("whiteout of %s, the alias of %s", target, al.to)
	}
	if err := a.checkParents(target); err != nil {
		return err
	}
	if err := a.checkRemoval(target); err != nil {
		return err
	}
	a.removeLower(target)
	return nil
}

// removeLower removes what lower layers put at p and below, keeping what this
// layer added (and the directories holding it). It reports whether anything
// was kept at p.
func (a *applier) removeLower(p string) bool {
	e, ok := a.t.Get(p)
	if !ok {
		return false
	}
	keep := a.added[p]
	if e.Type == rootfs.TypeDir {
		for _, name := range a.t.Children(p) {
			if a.removeLower(path.Join(p, name)) {
				keep = true
			}
		}
	}
	if !keep {
		// p is never "/" here: whiteout targets have a name, and opaque
		// markers only reach children.
		_ = a.t.Remove(p)
	}
	return keep
}
