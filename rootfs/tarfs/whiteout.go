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

// Stack records, for the layers of one image applied in order, which layer
// put each tree path there. The OCI image spec says a whiteout hides what
// the layers below it in the same image added; the tree an image is applied
// onto may already hold other sources' entries (Debian packages, local
// directories, earlier images), and those are not the image's to remove.
// With a Stack in every layer's Options, a whiteout or opaque marker removes
// only what a lower layer of the same image put in the tree, and leaves the
// rest, naming it through Options.Spared. Without one, a layer's whiteouts
// may remove anything the tree held before it.
//
// A Stack is used by one image at a time, its layers applied lowest first.
type Stack struct {
	// owner maps a tree path to the number (from 1) of the image's layer
	// that last put it there. Paths removed from the tree may linger: no
	// other source writes while the image's layers are applied, so a lingering
	// path is either absent from the tree or put back by a later layer.
	owner  map[string]int
	layers int
}

// NewStack returns an empty stack, for an image about to be applied.
func NewStack() *Stack { return &Stack{owner: map[string]int{}} }

// Spared is a whiteout or opaque marker that left entries in place because
// no lower layer of its image put them there (see Stack).
type Spared struct {
	// Entry is the whiteout's name as the archive writes it:
	// "usr/.wh.bin", ".wh..wh..opq".
	Entry string
	// Paths are the spared tree paths, in tree order, each listed without
	// its spared descendants: an opaque marker at the root of an image
	// applied over Debian packages spares "/bin", "/etc", ...
	Paths []string
}

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
// NAME. entry is the name as the archive writes it, for Spared.
func (a *applier) whiteout(p, entry string) error {
	dir, base := path.Split(p)
	dir, al := a.resolve(rootfs.Clean(dir))
	if al != nil {
		dir = al.to
	}
	var spared []string
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
			a.removeLower(path.Join(dir, name), false, &spared)
		}
	} else {
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
		a.removeLower(target, false, &spared)
	}
	if len(spared) > 0 && a.opts.Spared != nil {
		a.opts.Spared(Spared{Entry: entry, Paths: spared})
	}
	return nil
}

// removeLower removes what lower layers put at p and below, keeping what
// this layer added and what no layer of the image added (listed in spared
// unless inSpared says an ancestor already is), and the directories holding
// either. It reports whether anything was kept at p.
func (a *applier) removeLower(p string, inSpared bool, spared *[]string) bool {
	e, ok := a.t.Get(p)
	if !ok {
		return false
	}
	owner := a.stack.owner[p]
	keep := owner == a.layer
	if !keep && !a.alone && owner == 0 {
		keep = true
		if !inSpared {
			*spared = append(*spared, p)
			inSpared = true
		}
	}
	if e.Type == rootfs.TypeDir {
		for _, name := range a.t.Children(p) {
			if a.removeLower(path.Join(p, name), inSpared, spared) {
				keep = true
			}
		}
	}
	if !keep {
		// p is never "/" here: whiteout targets have a name, and opaque
		// markers only reach children.
		_ = a.t.Remove(p)
		delete(a.stack.owner, p)
	}
	return keep
}
