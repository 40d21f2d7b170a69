package factory

import (
	"fmt"
	"maps"
	"path"

	"keel/rootfs"
)

// Split moves everything under /var in t to Dir, entry by entry: the same
// entries (so hard links, within /var or to files elsewhere, stay links),
// symlinks as they are (/var/run -> /run moves as a symlink), with their
// modes, owners, mtimes and xattrs. /var stays as an empty directory with
// its own metadata, the mount point of the data partition. A missing /var
// is created (0755, root, mtime epoch); so are the parents of Dir.
//
// A factory copy the tree already has (a source made from a keel image) is
// merged with /var, /var's entries winning.
func Split(t *rootfs.Tree, epoch int64) error {
	v, ok := t.Get(Var)
	if !ok {
		v = &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: epoch}
		if err := t.Add(Var, v); err != nil {
			return fmt.Errorf("factory copy of %s: %w", Var, err)
		}
	}
	if v.Type != rootfs.TypeDir {
		return fmt.Errorf("factory copy of %s: %s is a %s, not a directory: the data partition is mounted there", Var, Var, v.Type)
	}
	if err := mkdirs(t, path.Dir(Dir), epoch); err != nil {
		return fmt.Errorf("factory copy of %s: %w", Var, err)
	}
	root := *v
	root.Xattrs = maps.Clone(v.Xattrs)
	if err := put(t, Dir, &root); err != nil {
		return fmt.Errorf("factory copy of %s: %w", Var, err)
	}
	if err := move(t, Var, Dir); err != nil {
		return fmt.Errorf("factory copy of %s: %w", Var, err)
	}
	for _, name := range t.Children(Var) {
		if err := t.Remove(path.Join(Var, name)); err != nil {
			return fmt.Errorf("factory copy of %s: %w", Var, err)
		}
	}
	return nil
}

// move adds every entry below from at the same place below to, parents
// before children.
func move(t *rootfs.Tree, from, to string) error {
	for _, name := range t.Children(from) {
		src, dst := path.Join(from, name), path.Join(to, name)
		e, _ := t.Get(src)
		if err := put(t, dst, e); err != nil {
			return err
		}
		if e.Type == rootfs.TypeDir {
			if err := move(t, src, dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// put adds e at p, replacing whatever is there; a directory replaced by a
// directory keeps its children, as Tree.Add does.
func put(t *rootfs.Tree, p string, e *rootfs.Entry) error {
	if old, ok := t.Get(p); ok && old.Type == rootfs.TypeDir && e.Type != rootfs.TypeDir {
		if err := t.Remove(p); err != nil {
			return err
		}
	}
	return t.Add(p, e)
}

// mkdirs makes p and its missing parents as directories (0755, root,
// mtime epoch). An existing non-directory on the way is an error.
func mkdirs(t *rootfs.Tree, p string, epoch int64) error {
	if e, ok := t.Get(p); ok {
		if e.Type != rootfs.TypeDir {
			return fmt.Errorf("%s is a %s, not a directory", p, e.Type)
		}
		return nil
	}
	if err := mkdirs(t, path.Dir(p), epoch); err != nil {
		return err
	}
	return t.Add(p, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: epoch})
}
