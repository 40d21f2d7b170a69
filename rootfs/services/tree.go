package services

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"keel/rootfs"
)

// FileName is the name of s's file inside Dir.
func FileName(name string) string { return name + ".json" }

// Write adds one file per service to t under Dir (creating Dir, 0755,
// root-owned), mode 0644. Names must be unique. Entries get the tree's
// zero mtime; the build clamps times like for every generated file.
func Write(t *rootfs.Tree, svcs []Service) error {
	seen := map[string]bool{}
	for _, s := range svcs {
		if seen[s.Name] {
			return fmt.Errorf("service %s: defined twice", s.Name)
		}
		seen[s.Name] = true
	}
	if err := t.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("writing services: %w", err)
	}
	for _, s := range svcs {
		b, err := Marshal(s)
		if err != nil {
			return fmt.Errorf("writing services: %w", err)
		}
		p := path.Join(Dir, FileName(s.Name))
		if err := t.Add(p, rootfs.NewFile(0o644, b)); err != nil {
			return fmt.Errorf("writing service %s: %w", s.Name, err)
		}
	}
	return nil
}

// Load reads every *.json file of dir in fsys (other files are ignored) and
// returns the services sorted by name, which is the order keel-init starts
// them in. A missing dir means no services. The name inside a file must match
// its file name, so the file a log line points at is the one to fix.
// A leading "/" on dir is dropped, so Load(os.DirFS("/"), Dir) reads the
// running system's services.
func Load(fsys fs.FS, dir string) ([]Service, error) {
	dir = strings.TrimPrefix(path.Clean(dir), "/")
	if dir == "" {
		dir = "."
	}
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading services: %w", err)
	}
	var svcs []Service
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := path.Join(dir, e.Name())
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, fmt.Errorf("reading services: %w", err)
		}
		s, err := Unmarshal(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if FileName(s.Name) != e.Name() {
			return nil, fmt.Errorf("%s: holds service %q, want the file to be named %s", p, s.Name, FileName(s.Name))
		}
		svcs = append(svcs, s)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	return svcs, nil
}
