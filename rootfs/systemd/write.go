package systemd

import (
	"fmt"
	"path"
	"strings"

	"keel/rootfs"
)

// WriteUnit writes a unit file of keel's own into /etc/systemd/system
// (0644, root-owned, mtime epoch), replacing a file of that name.
func WriteUnit(t *rootfs.Tree, unit string, content []byte, epoch int64) error {
	if !ValidName(unit) {
		return fmt.Errorf("writing unit %q: %w", unit, ErrInvalidName)
	}
	return writeFile(t, path.Join(ConfigDir, unit), content, epoch)
}

// WriteDropIn writes /etc/systemd/system/UNIT.d/NAME.conf, a drop-in that
// systemd reads after the unit's own file. name may be given with or
// without ".conf"; unit may be a template, whose drop-ins apply to every
// instance.
func WriteDropIn(t *rootfs.Tree, unit, name string, content []byte, epoch int64) error {
	if !ValidName(unit) {
		return fmt.Errorf("writing drop-in for %q: %w", unit, ErrInvalidName)
	}
	name = strings.TrimSuffix(name, ".conf")
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return fmt.Errorf("writing drop-in for %s: bad name %q", unit, name)
	}
	return writeFile(t, path.Join(ConfigDir, unit+".d", name+".conf"), content, epoch)
}

func writeFile(t *rootfs.Tree, p string, content []byte, epoch int64) error {
	dir, err := t.MkdirAllTime(path.Dir(p), 0o755, epoch)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	real := path.Join(dir, path.Base(p))
	if e, ok := t.Get(real); ok && e.Type == rootfs.TypeDir {
		return fmt.Errorf("writing %s: is a directory", p)
	}
	b := append([]byte(nil), content...)
	f := rootfs.NewFile(0o644, b)
	f.Mtime = epoch
	if err := t.Add(real, f); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}
