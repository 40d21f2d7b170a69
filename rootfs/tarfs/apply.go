package tarfs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"keel/rootfs"
)

// applier holds the state of one archive being applied.
type applier struct {
	t         *rootfs.Tree
	spool     *Spool
	opts      *Options
	kind      string
	aliases   []alias
	protected []string
	// stack records who put each path in the tree: this archive is its
	// layer number layer. Its own whiteouts keep what it added; with a
	// private stack (alone: Options.Stack unset) they remove everything
	// else, with the image's stack only what lower layers of the image
	// added. Nil without Options.Whiteouts or Options.Stack.
	stack *Stack
	layer int
	alone bool
}

func newApplier(t *rootfs.Tree, opts *Options) (*applier, error) {
	if opts.Spool == nil {
		return nil, errors.New("tarfs: no spool")
	}
	aliases, err := checkAliases(opts.Aliases)
	if err != nil {
		return nil, err
	}
	a := &applier{t: t, spool: opts.Spool, opts: opts, kind: opts.Kind, aliases: aliases}
	if a.kind == "" {
		a.kind = "source"
	}
	for _, p := range opts.Protected {
		if !strings.HasPrefix(p, "/") || p == "/" || rootfs.Clean(p) != p {
			return nil, fmt.Errorf("tarfs: protected path %q is not a clean absolute path below /", p)
		}
		a.protected = append(a.protected, p)
	}
	switch {
	case opts.Stack != nil:
		opts.Stack.layers++
		a.stack, a.layer = opts.Stack, opts.Stack.layers
	case opts.Whiteouts:
		a.stack, a.layer, a.alone = NewStack(), 1, true
	}
	return a, nil
}

// member applies one entry; body is the stream of a regular file's content
// when it still has to be spooled (nil when m.Content names it).
func (a *applier) member(m *Member, body io.Reader) error {
	name, err := entryPath(m.Name)
	if err != nil {
		return err
	}
	if a.opts.NoNewlines && strings.ContainsRune(m.Name, '\n') {
		return errors.New("newline in name")
	}
	if a.opts.Whiteouts {
		if isAufsMeta(name) {
			return nil
		}
		if strings.HasPrefix(path.Base(name), whiteoutPrefix) {
			return a.whiteout(name, m.Name)
		}
	}
	p, al := a.resolve(name)
	if al != nil {
		return a.aliasEntry(name, al, m)
	}
	if err := a.checkParents(p); err != nil {
		return err
	}
	if err := a.checkProtected(p, m.Type == tar.TypeDir); err != nil {
		return err
	}
	if m.Type == tar.TypeLink {
		err = a.hardLink(p, m.Linkname)
	} else {
		var e *rootfs.Entry
		if e, err = a.newEntry(m, body); err == nil {
			err = a.put(p, e)
		}
	}
	if err != nil {
		return err
	}
	if a.opts.Added != nil {
		a.opts.Added(Added{Name: name, Path: p})
	}
	return nil
}

// aliasEntry handles an entry for an alias itself: a directory, or a symlink
// to the canonical directory, says what the tree already has and is skipped;
// anything else would replace the alias.
func (a *applier) aliasEntry(name string, al *alias, m *Member) error {
	switch m.Type {
	case tar.TypeDir:
	case tar.TypeSymlink:
		target := m.Linkname
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(name), target)
		}
		if path.Clean(target) != al.to {
			return unsafe("%s is the alias of %s, not a symlink to %q", name, al.to, m.Linkname)
		}
	default:
		return unsafe("%s is the alias of %s: %s cannot replace it", name, al.to, typeName(m.Type))
	}
	if a.opts.Added != nil {
		a.opts.Added(Added{Name: name, Path: name})
	}
	return nil
}

// newEntry turns a member (and body, for a file not yet spooled) into a
// tree entry.
func (a *applier) newEntry(m *Member, body io.Reader) (*rootfs.Entry, error) {
	if m.UID < 0 || m.UID > math.MaxUint32 || m.GID < 0 || m.GID > math.MaxUint32 {
		return nil, fmt.Errorf("owner %d:%d out of range", m.UID, m.GID)
	}
	e := &rootfs.Entry{
		Mode:  uint32(m.Mode) & rootfs.ModePerm,
		UID:   uint32(m.UID),
		GID:   uint32(m.GID),
		Mtime: m.Mtime,
	}
	for k, v := range m.Xattrs {
		if e.Xattrs == nil {
			e.Xattrs = make(map[string][]byte, len(m.Xattrs))
		}
		e.Xattrs[k] = []byte(v)
	}
	switch m.Type {
	case tar.TypeReg:
		e.Type = rootfs.TypeFile
		switch {
		case m.Size < 0:
			return nil, fmt.Errorf("negative size %d", m.Size)
		case m.Size == 0:
		case body != nil:
			name, n, err := a.spool.Put(body)
			if err != nil {
				return nil, err
			}
			e.Size, e.Content = n, rootfs.HostFile(name)
		case m.Content != "":
			name, err := a.spool.Path(m.Content)
			if err != nil {
				return nil, err
			}
			e.Size, e.Content = m.Size, rootfs.HostFile(name)
		default:
			return nil, fmt.Errorf("no content for %d bytes", m.Size)
		}
	case tar.TypeGNUSparse:
		return nil, unsafe("sparse file of %d bytes", m.Size)
	case tar.TypeDir:
		e.Type = rootfs.TypeDir
	case tar.TypeSymlink:
		if m.Linkname == "" {
			return nil, errors.New("symlink with an empty target")
		}
		// Recorded as written, even absolute or climbing: a symlink is only
		// data until followed, and nothing here follows one.
		e.Type, e.Target = rootfs.TypeSymlink, m.Linkname
	case tar.TypeChar, tar.TypeBlock:
		if m.Major < 0 || m.Major > math.MaxUint32 || m.Minor < 0 || m.Minor > math.MaxUint32 {
			return nil, fmt.Errorf("device number %d:%d out of range", m.Major, m.Minor)
		}
		e.Type = rootfs.TypeCharDev
		if m.Type == tar.TypeBlock {
			e.Type = rootfs.TypeBlockDev
		}
		e.Major, e.Minor = uint32(m.Major), uint32(m.Minor)
	case tar.TypeFifo:
		e.Type = rootfs.TypeFifo
	default:
		return nil, fmt.Errorf("unsupported tar entry type %q", m.Type)
	}
	return e, nil
}

// hardLink makes p another name for the entry at the tar link target, which
// an earlier entry of this or a lower archive must have put there.
func (a *applier) hardLink(p, linkname string) error {
	name, err := entryPath(linkname)
	if err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	target, al := a.resolve(name)
	if al != nil {
		return fmt.Errorf("hard link to %q: is the alias of %s", linkname, al.to)
	}
	if err := a.checkParents(target); err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	for _, prot := range a.protected {
		if under(target, prot) {
			return fmt.Errorf("hard link to %q: %w", linkname, &protectedError{prefix: prot, kind: a.kind})
		}
	}
	e, ok := a.t.Get(target)
	if !ok {
		return fmt.Errorf("hard link to %q: %w", linkname, rootfs.ErrNotExist)
	}
	if e.Type == rootfs.TypeDir {
		return fmt.Errorf("hard link to %q: is a directory", linkname)
	}
	if target == p {
		return nil
	}
	// The same *Entry at a second path is a hard link in the tree model.
	return a.put(p, e)
}

// put adds e at p, creating missing parents, and replacing whatever was
// there: a directory over a directory keeps the children and takes the new
// metadata; anything else replaces the old entry whole.
func (a *applier) put(p string, e *rootfs.Entry) error {
	if old, ok := a.t.Get(p); ok && p != "/" && (old.Type != rootfs.TypeDir || e.Type != rootfs.TypeDir) {
		if err := a.t.Remove(p); err != nil {
			return err
		}
	}
	// Parents an archive omits are created as Docker, containerd and dpkg
	// do, root's and 0755, but with mtime 0 rather than the time of the
	// build. They are this archive's, as far as whiteouts are concerned.
	if a.stack != nil {
		for d := path.Dir(p); ; d = path.Dir(d) {
			if _, ok := a.t.Get(d); ok {
				break
			}
			a.stack.owner[d] = a.layer
		}
	}
	if err := a.t.MkdirAll(path.Dir(p), 0o755); err != nil {
		return err
	}
	if err := a.t.Add(p, e); err != nil {
		return err
	}
	if a.stack != nil {
		a.stack.owner[p] = a.layer
	}
	return nil
}

// typeName names a tar entry type for messages.
func typeName(t byte) string {
	switch t {
	case tar.TypeReg:
		return "a file"
	case tar.TypeLink:
		return "a hard link"
	case tar.TypeSymlink:
		return "a symlink"
	case tar.TypeChar, tar.TypeBlock:
		return "a device"
	case tar.TypeDir:
		return "a directory"
	case tar.TypeFifo:
		return "a fifo"
	}
	return fmt.Sprintf("an entry of type %q", t)
}
