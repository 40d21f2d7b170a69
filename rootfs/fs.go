package rootfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// FS returns a read-only io/fs view of the tree, for code that reads files
// the same way from a host directory (os.DirFS) and from a tree assembled in
// memory: kernel modules from a package, for one. Symlinks are followed
// within the tree (absolute targets from the tree's root, up to 40 hops, as
// the kernel allows); ReadDir reports them as symlinks, as os.DirFS does.
// Files whose content supports it (host files) are io.ReaderAt.
func (t *Tree) FS() fs.FS { return treeFS{t} }

type treeFS struct{ t *Tree }

func (f treeFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	p, e, err := f.t.resolve("/"+name, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	fi := fileInfo{name: path.Base(p), e: e}
	if p == "/" {
		fi.name = "."
	}
	if e.Type == TypeDir {
		return &treeDir{t: f.t, p: p, fi: fi}, nil
	}
	file := &treeFile{fi: fi}
	if e.Type == TypeFile && e.Content != nil {
		r, err := e.Content()
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		file.r = r
	}
	return file, nil
}

// resolve follows symlinks in every component of p.
func (t *Tree) resolve(p string, hops int) (string, *Entry, error) {
	cur := "/"
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for i, c := range parts {
		if c == "" {
			continue
		}
		next := path.Join(cur, c)
		e, ok := t.Get(next)
		if !ok {
			return "", nil, fs.ErrNotExist
		}
		if e.Type == TypeSymlink {
			if hops >= 40 {
				return "", nil, errors.New("too many levels of symbolic links")
			}
			target := e.Target
			if !path.IsAbs(target) {
				target = path.Join(cur, target)
			}
			rest := strings.Join(parts[i+1:], "/")
			return t.resolve(path.Join(target, rest), hops+1)
		}
		if i < len(parts)-1 && e.Type != TypeDir {
			return "", nil, fs.ErrNotExist
		}
		cur = next
	}
	e, _ := t.Get(cur)
	return cur, e, nil
}

type fileInfo struct {
	name string
	e    *Entry
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return fi.e.Size }
func (fi fileInfo) ModTime() time.Time { return time.Unix(fi.e.Mtime, 0) }
func (fi fileInfo) IsDir() bool        { return fi.e.Type == TypeDir }
func (fi fileInfo) Sys() any           { return fi.e }
func (fi fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.e.Mode & 0o777)
	if fi.e.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if fi.e.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if fi.e.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch fi.e.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

type treeFile struct {
	fi fileInfo
	r  io.ReadCloser // nil: empty content
}

func (f *treeFile) Stat() (fs.FileInfo, error) { return f.fi, nil }

func (f *treeFile) Read(b []byte) (int, error) {
	if f.r == nil {
		return 0, io.EOF
	}
	return f.r.Read(b)
}

func (f *treeFile) ReadAt(b []byte, off int64) (int, error) {
	if ra, ok := f.r.(io.ReaderAt); ok {
		return ra.ReadAt(b, off)
	}
	if f.r == nil {
		return 0, io.EOF
	}
	return 0, errors.New("content does not support ReadAt")
}

func (f *treeFile) Close() error {
	if f.r == nil {
		return nil
	}
	return f.r.Close()
}

type treeDir struct {
	t     *Tree
	p     string
	fi    fileInfo
	names []string
	read  bool
}

func (d *treeDir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *treeDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.p, Err: errors.New("is a directory")}
}
func (d *treeDir) Close() error { return nil }

func (d *treeDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		d.names, d.read = d.t.Children(d.p), true
	}
	var out []fs.DirEntry
	for len(d.names) > 0 && (n <= 0 || len(out) < n) {
		name := d.names[0]
		d.names = d.names[1:]
		e, _ := d.t.Get(path.Join(d.p, name))
		out = append(out, fs.FileInfoToDirEntry(fileInfo{name: name, e: e}))
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// ReadLink and Lstat make the view an fs.ReadLinkFS: symlinks can be told
// from what they point to, as on a host directory.
func (f treeFS) ReadLink(name string) (string, error) {
	p, e, err := f.lstat(name)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	if e.Type != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: fs.ErrInvalid}
	}
	return e.Target, nil
}

func (f treeFS) Lstat(name string) (fs.FileInfo, error) {
	p, e, err := f.lstat(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	if p == "/" {
		return fileInfo{name: ".", e: e}, nil
	}
	return fileInfo{name: path.Base(p), e: e}, nil
}

// lstat resolves symlinks in name's directory, not in its last element.
func (f treeFS) lstat(name string) (string, *Entry, error) {
	if !fs.ValidPath(name) {
		return "", nil, fs.ErrInvalid
	}
	if name == "." {
		return "/", f.t.Root(), nil
	}
	dir, base := path.Split("/" + name)
	d, de, err := f.t.resolve(dir, 0)
	if err != nil {
		return "", nil, err
	}
	if de.Type != TypeDir {
		return "", nil, fs.ErrNotExist
	}
	p := path.Join(d, base)
	e, ok := f.t.Get(p)
	if !ok {
		return "", nil, fs.ErrNotExist
	}
	return p, e, nil
}
