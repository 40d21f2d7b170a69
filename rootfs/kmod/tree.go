package kmod

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"keel/rootfs"
)

// LoadOrderPath is the file in the initrd that lists the modules keel-init
// loads, one absolute path per line, in load order. Lines that are empty or
// start with '#' are comments. ParseLoadOrder reads it.
const LoadOrderPath = "/etc/keel/modules"

// AddToTree puts the modules of s into tree at /lib/modules/<Version>/<Path>,
// their content read from s.Dir when the tree is written, and writes
// LoadOrderPath (also when there is nothing to load, so the loader always
// finds it). Files are 0644 and directories it creates 0755, all owned by
// root with the given mtime, so the result depends only on its inputs.
func (s *Set) AddToTree(tree *rootfs.Tree, mtime int64) error {
	if s.Version == "" || s.Version == "." || s.Version == ".." || strings.ContainsAny(s.Version, "/\x00") {
		return fmt.Errorf("adding kernel modules: bad kernel version %q", s.Version)
	}
	base := path.Join("/lib/modules", s.Version)
	var order strings.Builder
	order.WriteString("# kernel modules keel-init loads, in this order\n")
	fsys, dir := s.FS, s.Dir
	if fsys == nil {
		fsys = hostFS{}
	}
	for _, m := range s.Load {
		name := path.Join(dir, m.Path)
		st, err := fs.Stat(fsys, name)
		if err != nil {
			return fmt.Errorf("adding kernel module %s: %w", m.Name, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("adding kernel module %s: %s is not a regular file", m.Name, name)
		}
		dst := path.Join(base, m.Path)
		if err := mkdirAll(tree, path.Dir(dst), mtime); err != nil {
			return fmt.Errorf("adding kernel module %s: %w", m.Name, err)
		}
		e := &rootfs.Entry{Type: rootfs.TypeFile, Mode: 0o644, Mtime: mtime, Size: st.Size(),
			Content: func() (io.ReadCloser, error) { return fsys.Open(name) }}
		if err := tree.Add(dst, e); err != nil {
			return fmt.Errorf("adding kernel module %s: %w", m.Name, err)
		}
		order.WriteString(dst)
		order.WriteByte('\n')
	}
	if err := mkdirAll(tree, path.Dir(LoadOrderPath), mtime); err != nil {
		return fmt.Errorf("adding %s: %w", LoadOrderPath, err)
	}
	e := rootfs.NewFile(0o644, []byte(order.String()))
	e.Mtime = mtime
	if err := tree.Add(LoadOrderPath, e); err != nil {
		return fmt.Errorf("adding %s: %w", LoadOrderPath, err)
	}
	return nil
}

// mkdirAll is rootfs.Tree.MkdirAll with an mtime for the directories it
// creates; those that exist are left alone.
func mkdirAll(tree *rootfs.Tree, p string, mtime int64) error {
	if e, ok := tree.Get(p); ok {
		if e.Type != rootfs.TypeDir {
			return fmt.Errorf("%s: is a %s, not a directory", p, e.Type)
		}
		return nil
	}
	if err := mkdirAll(tree, path.Dir(p), mtime); err != nil {
		return err
	}
	return tree.Add(p, &rootfs.Entry{Type: rootfs.TypeDir, Mode: 0o755, Mtime: mtime})
}

// ParseLoadOrder reads a LoadOrderPath file and returns the module paths in
// load order. Each must be an absolute, clean path to a module file.
func ParseLoadOrder(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if !path.IsAbs(line) || path.Clean(line) != line || !isModuleFile(line) {
			return nil, fmt.Errorf("%s line %d: %q is not an absolute path to a module file", LoadOrderPath, n, line)
		}
		paths = append(paths, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", LoadOrderPath, err)
	}
	return paths, nil
}
