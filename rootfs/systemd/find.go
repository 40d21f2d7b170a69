package systemd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	"keel/rootfs"
)

// UnitPath is the system unit search path of Debian 12's systemd without
// its runtime directories (/run/systemd/..., which an image does not
// carry), in systemctl's order. The directory a unit is found in is also
// the directory its enablement links point into.
var UnitPath = []string{
	"/etc/systemd/system",
	"/usr/local/lib/systemd/system",
	"/lib/systemd/system",
	"/usr/lib/systemd/system",
}

// ConfigDir is where enablement links and keel's own units are written.
const ConfigDir = "/etc/systemd/system"

var (
	// ErrNotFound is returned for a unit that is in no directory of UnitPath.
	ErrNotFound = errors.New("unit not found")
	// ErrMasked is returned for a unit linked to /dev/null.
	ErrMasked = errors.New("unit is masked")
	// ErrExists is returned when a link systemctl would write already
	// exists and points elsewhere (systemctl's "File exists").
	ErrExists = errors.New("a different file already exists")
)

// maxUnitSize bounds what is read of a unit file: units are a few KiB,
// and a package is not trusted to keep them so.
const maxUnitSize = 1 << 20

// Unit is a unit file found in a tree.
type Unit struct {
	// Name is the name the unit was asked for by, after following an alias
	// link: "getty@tty1.service" for an instance of getty@.service.
	Name string
	// Path is the file's path as systemctl names it: the search-path
	// directory it was found in joined with the file's name
	// ("/lib/systemd/system/getty@.service"), not the path after the
	// tree's own symlinks are followed.
	Path    string
	Install Install
}

// Find looks a unit up as systemctl does: each directory of UnitPath in
// turn, then, for an instance, the same for its template. A link in a
// unit directory to another name is an alias and is followed to the unit
// it names; a link to /dev/null means the unit is masked.
func Find(t *rootfs.Tree, unit string) (*Unit, error) {
	return find(t, unit, 0)
}

func find(t *rootfs.Tree, unit string, depth int) (*Unit, error) {
	n, err := parseName(unit)
	if err != nil {
		return nil, err
	}
	if depth > 8 {
		return nil, fmt.Errorf("%s: too many levels of aliases", unit)
	}
	candidates := []string{unit}
	if n.isInstance() {
		candidates = append(candidates, n.templateName())
	}
	for _, file := range candidates {
		for _, dir := range UnitPath {
			p := path.Join(dir, file)
			real, err := t.ResolveParent(p)
			if err != nil {
				continue
			}
			e, ok := t.Get(real)
			if !ok {
				continue
			}
			if e.Type == rootfs.TypeSymlink {
				target := e.Target
				if !path.IsAbs(target) {
					target = path.Join(dir, target)
				}
				if rootfs.Clean(target) == "/dev/null" {
					return nil, fmt.Errorf("%s: %w", unit, ErrMasked)
				}
				if path.Base(target) != file {
					// An alias: the unit is the one the link names.
					aliased := path.Base(target)
					if n.isInstance() && file != unit {
						an, err := parseName(aliased)
						if err != nil || !an.isTemplate() {
							return nil, fmt.Errorf("%s: template %s is an alias of %s, not of a template", unit, p, aliased)
						}
						aliased = an.withInstance(n.instance)
					}
					return find(t, aliased, depth+1)
				}
			}
			_, fe, err := t.Resolve(p)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", unit, p, err)
			}
			if fe.Type != rootfs.TypeFile {
				return nil, fmt.Errorf("%s: %s is a %s, not a unit file", unit, p, fe.Type)
			}
			b, err := readEntry(fe)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %s: %w", unit, p, err)
			}
			in, err := ParseInstall(bytes.NewReader(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", unit, p, err)
			}
			return &Unit{Name: unit, Path: p, Install: in}, nil
		}
	}
	return nil, fmt.Errorf("%s: %w", unit, ErrNotFound)
}

func readEntry(e *rootfs.Entry) ([]byte, error) {
	if e.Size > maxUnitSize {
		return nil, fmt.Errorf("%d bytes, more than a unit file can be", e.Size)
	}
	if e.Content == nil {
		return nil, nil
	}
	r, err := e.Content()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, maxUnitSize))
}
