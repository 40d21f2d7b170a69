// Package rootfs holds the tree model that every keel source adds to and every
// filesystem writer reads: an in-memory map from absolute path to entry.
//
// An *Entry is an inode. Hard links are several paths holding the same *Entry,
// so changing the entry through one path changes it for all of them, exactly as
// on a real filesystem, and a writer finds link groups by pointer identity.
package rootfs

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// Type is the kind of a filesystem entry.
type Type uint8

const (
	TypeDir Type = iota + 1
	TypeFile
	TypeSymlink
	TypeCharDev
	TypeBlockDev
	TypeFifo
	TypeSocket
)

func (t Type) String() string {
	switch t {
	case TypeDir:
		return "directory"
	case TypeFile:
		return "file"
	case TypeSymlink:
		return "symlink"
	case TypeCharDev:
		return "char device"
	case TypeBlockDev:
		return "block device"
	case TypeFifo:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Permission bits an entry may carry: rwx for all three classes plus setuid,
// setgid and sticky.
const ModePerm = 0o7777

// Opener returns a fresh stream of a file's content. It is called once per
// read, so content can live anywhere (a host file, a spooled tar member,
// memory) and is only pulled in when a writer needs it.
type Opener func() (io.ReadCloser, error)

// Entry is one inode of the tree.
type Entry struct {
	Type  Type
	Mode  uint32 // permission bits only (ModePerm)
	UID   uint32
	GID   uint32
	Mtime int64 // seconds since the Unix epoch

	// Xattrs maps full attribute names ("user.foo", "security.capability")
	// to values. Writers sort the names; map order never reaches output.
	Xattrs map[string][]byte

	Target string // symlink target

	Major, Minor uint32 // device numbers for TypeCharDev and TypeBlockDev

	Size    int64  // content length for TypeFile
	Content Opener // content for TypeFile; nil means Size zero bytes
}

// Tree is a filesystem tree in memory. The zero value is not usable; call New.
type Tree struct {
	nodes map[string]*node
}

type node struct {
	entry    *Entry
	children map[string]struct{} // names, for directories
}

// New returns a tree holding only the root directory (0755, root:root).
func New() *Tree {
	return &Tree{nodes: map[string]*node{
		"/": {entry: &Entry{Type: TypeDir, Mode: 0o755}, children: map[string]struct{}{}},
	}}
}

// ErrNotExist is returned for a path that is not in the tree.
var ErrNotExist = errors.New("no such entry")

// Clean turns any slash-separated path into the tree's key form: absolute,
// no trailing slash, no "." or ".." elements. ".." never climbs above "/".
func Clean(p string) string {
	return path.Clean("/" + p)
}

// Root returns the root directory entry.
func (t *Tree) Root() *Entry { return t.nodes["/"].entry }

// Get returns the entry at p.
func (t *Tree) Get(p string) (*Entry, bool) {
	n, ok := t.nodes[Clean(p)]
	if !ok {
		return nil, false
	}
	return n.entry, true
}

// Len is the number of paths in the tree, the root included.
func (t *Tree) Len() int { return len(t.nodes) }

// Add puts e at p. The parent must exist and be a directory. An existing
// non-directory at p is replaced; an existing directory is replaced only by a
// directory, whose metadata then wins while the children stay (as when a
// later layer or source restates a directory).
func (t *Tree) Add(p string, e *Entry) error {
	p = Clean(p)
	if err := validate(e); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if p == "/" {
		if e.Type != TypeDir {
			return fmt.Errorf("/: root must be a directory, not a %s", e.Type)
		}
		t.nodes["/"].entry = e
		return nil
	}
	dir, name := path.Split(p)
	dir = Clean(dir)
	parent, ok := t.nodes[dir]
	if !ok {
		return fmt.Errorf("%s: parent %s: %w", p, dir, ErrNotExist)
	}
	if parent.entry.Type != TypeDir {
		return fmt.Errorf("%s: parent %s is a %s, not a directory", p, dir, parent.entry.Type)
	}
	if old, ok := t.nodes[p]; ok {
		if old.entry.Type == TypeDir {
			if e.Type != TypeDir {
				return fmt.Errorf("%s: cannot replace a directory with a %s", p, e.Type)
			}
			old.entry = e
			return nil
		}
	}
	n := &node{entry: e}
	if e.Type == TypeDir {
		n.children = map[string]struct{}{}
	}
	t.nodes[p] = n
	parent.children[name] = struct{}{}
	return nil
}

// MkdirAll creates p and any missing parents as directories with the given
// mode, owned by root. Existing directories are left as they are.
func (t *Tree) MkdirAll(p string, mode uint32) error {
	p = Clean(p)
	if n, ok := t.nodes[p]; ok {
		if n.entry.Type != TypeDir {
			return fmt.Errorf("%s: is a %s, not a directory", p, n.entry.Type)
		}
		return nil
	}
	if err := t.MkdirAll(path.Dir(p), mode); err != nil {
		return err
	}
	return t.Add(p, &Entry{Type: TypeDir, Mode: mode})
}

// Link makes newPath another name for the entry at oldPath (a hard link).
func (t *Tree) Link(newPath, oldPath string) error {
	e, ok := t.Get(oldPath)
	if !ok {
		return fmt.Errorf("link %s to %s: %w", newPath, oldPath, ErrNotExist)
	}
	if e.Type == TypeDir {
		return fmt.Errorf("link %s to %s: cannot hard-link a directory", newPath, oldPath)
	}
	if Clean(newPath) == Clean(oldPath) {
		return nil
	}
	return t.Add(newPath, e)
}

// Remove deletes p and, for a directory, everything below it. Removing a
// missing path is not an error; removing the root is.
func (t *Tree) Remove(p string) error {
	p = Clean(p)
	if p == "/" {
		return errors.New("cannot remove the root directory")
	}
	n, ok := t.nodes[p]
	if !ok {
		return nil
	}
	t.removeNode(p, n)
	dir, name := path.Split(p)
	delete(t.nodes[Clean(dir)].children, name)
	return nil
}

func (t *Tree) removeNode(p string, n *node) {
	for name := range n.children {
		cp := path.Join(p, name)
		t.removeNode(cp, t.nodes[cp])
	}
	delete(t.nodes, p)
}

// Children returns the names in directory p, sorted bytewise (the order
// squashfs and most on-disk formats require).
func (t *Tree) Children(p string) []string {
	n, ok := t.nodes[Clean(p)]
	if !ok || n.children == nil {
		return nil
	}
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// WalkFunc is called for each path of the tree.
type WalkFunc func(p string, e *Entry) error

// Walk visits every path in depth-first order, a directory before its
// children, children in bytewise name order. The order is fully determined by
// the tree's content.
func (t *Tree) Walk(fn WalkFunc) error {
	return t.walk("/", fn)
}

func (t *Tree) walk(p string, fn WalkFunc) error {
	n := t.nodes[p]
	if err := fn(p, n.entry); err != nil {
		return err
	}
	for _, name := range t.Children(p) {
		if err := t.walk(path.Join(p, name), fn); err != nil {
			return err
		}
	}
	return nil
}

func validate(e *Entry) error {
	if e == nil {
		return errors.New("nil entry")
	}
	if e.Type < TypeDir || e.Type > TypeSocket {
		return fmt.Errorf("unknown entry type %d", e.Type)
	}
	if e.Mode&^ModePerm != 0 {
		return fmt.Errorf("mode %#o has bits beyond permissions", e.Mode)
	}
	if e.Type == TypeSymlink && e.Target == "" {
		return errors.New("symlink with empty target")
	}
	if e.Size < 0 {
		return fmt.Errorf("negative size %d", e.Size)
	}
	if e.Type != TypeFile && (e.Size != 0 || e.Content != nil) {
		return fmt.Errorf("a %s cannot have content", e.Type)
	}
	for name := range e.Xattrs {
		if name == "" || strings.IndexByte(name, 0) >= 0 {
			return fmt.Errorf("bad xattr name %q", name)
		}
	}
	return nil
}
