package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// DirEntry describes a file or directory.
type DirEntry struct {
	Name      string // as written (long name), or the short name if it has none
	ShortName string // 8.3 name, e.g. KEEL-B~1.CON
	Size      int64
	IsDir     bool
	ModTime   time.Time
}

func (e *entry) public() DirEntry {
	return DirEntry{
		Name:      e.name,
		ShortName: e.shortName(),
		Size:      int64(e.size),
		IsDir:     e.isDir(),
		ModTime:   fromDOSTime(e.wdate, e.wtime),
	}
}

// splitPath cleans a slash-separated path (leading slash optional) into
// its names; the root is no names.
func splitPath(p string) []string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// walk returns the directory named by names.
func (fs *FS) walk(names []string) (*dir, error) {
	d, err := fs.loadDir(fs.bs.rootCluster)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		e, ok := d.lookup(n)
		if !ok {
			return nil, fmt.Errorf("/%s: %w", strings.Join(names[:i+1], "/"), ErrNotExist)
		}
		if !e.isDir() {
			return nil, fmt.Errorf("/%s: %w", strings.Join(names[:i+1], "/"), ErrNotDir)
		}
		if e.cluster == 0 {
			return nil, fmt.Errorf("/%s: %w: directory without clusters", strings.Join(names[:i+1], "/"), ErrCorrupt)
		}
		if d, err = fs.loadDir(e.cluster); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// parent returns the directory holding p and p's last name.
func (fs *FS) parent(p string) (*dir, string, error) {
	names := splitPath(p)
	if len(names) == 0 {
		return nil, "", fmt.Errorf("%w: the root directory", ErrInvalidName)
	}
	d, err := fs.walk(names[:len(names)-1])
	return d, names[len(names)-1], err
}

// find returns the directory holding p and p's entry.
func (fs *FS) find(p string) (*dir, entry, error) {
	d, name, err := fs.parent(p)
	if err != nil {
		return nil, entry{}, err
	}
	e, ok := d.lookup(name)
	if !ok {
		return nil, entry{}, ErrNotExist
	}
	return d, e, nil
}

// Stat describes the file or directory at p.
func (fs *FS) Stat(p string) (DirEntry, error) {
	if len(splitPath(p)) == 0 {
		return DirEntry{Name: "/", IsDir: true}, nil
	}
	_, e, err := fs.find(p)
	if err != nil {
		return DirEntry{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return e.public(), nil
}

// ReadDir lists the directory at p in on-disk order, without "." and "..".
func (fs *FS) ReadDir(p string) ([]DirEntry, error) {
	d, err := fs.walk(splitPath(p))
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", p, err)
	}
	es := d.entries()
	out := make([]DirEntry, len(es))
	for i := range es {
		out[i] = es[i].public()
	}
	return out, nil
}

// Mkdir creates the directory p and any missing parents; existing
// directories are fine.
func (fs *FS) Mkdir(p string) error {
	if err := fs.usable(); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	names := splitPath(p)
	d, err := fs.loadDir(fs.bs.rootCluster)
	if err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	for _, n := range names {
		e, ok := d.lookup(n)
		if !ok {
			if d, err = fs.createDir(d, n); err != nil {
				return fmt.Errorf("mkdir %s: %w", p, err)
			}
			continue
		}
		if !e.isDir() {
			return fmt.Errorf("mkdir %s: %s: %w", p, n, ErrNotDir)
		}
		if d, err = fs.loadDir(e.cluster); err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
	}
	return nil
}

// createDir makes a new directory in parent: its cluster with "." and ".."
// written first, then the FAT, then the entry in parent.
func (fs *FS) createDir(parent *dir, name string) (*dir, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	cs, err := fs.fat.alloc(1)
	if err != nil {
		return nil, err
	}
	c := cs[0]
	d := &dir{first: c, clusters: cs, data: make([]byte, fs.clusterSize)}
	dot := fs.newShortEntry([11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}, attrDir, c, 0)
	copy(d.slot(0), dot[:])
	// ".." of a directory in the root points at cluster 0, not at the
	// root's cluster: that is the rule, and fsck.fat checks it.
	up := uint32(0)
	if parent.first != fs.bs.rootCluster {
		up = parent.first
	}
	dotdot := fs.newShortEntry([11]byte{'.', '.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}, attrDir, up, 0)
	copy(d.slot(1), dotdot[:])
	if _, err := fs.dev.WriteAt(d.data, fs.clusterOffset(c)); err != nil {
		fs.fat.release(cs)
		return nil, fmt.Errorf("write directory: %w", err)
	}
	if err := fs.flushFAT(); err != nil {
		return nil, err
	}
	err = fs.addEntry(parent, name, func(s [11]byte) [dirEntrySize]byte {
		return fs.newShortEntry(s, attrDir, c, 0)
	})
	if err != nil {
		return nil, err
	}
	fs.dirs[c] = d
	return d, fs.writeFSInfo()
}

// WriteFile creates p, or replaces its content, with size bytes read from r.
// The parent directory must exist. A replaced file keeps its name and its
// old clusters are freed only after its entry points at the new ones.
func (fs *FS) WriteFile(p string, r io.Reader, size int64) error {
	if err := fs.writeFile(p, r, size); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func (fs *FS) writeFile(p string, r io.Reader, size int64) error {
	if err := fs.usable(); err != nil {
		return err
	}
	if size < 0 || size > 0xFFFFFFFF {
		return fmt.Errorf("size %d out of FAT's range (0..4 GiB-1)", size)
	}
	d, name, err := fs.parent(p)
	if err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	old, exists := d.lookup(name)
	if exists && old.isDir() {
		return ErrIsDir
	}
	oldChain, err := fs.fat.chain(old.cluster)
	if exists && err != nil {
		return err
	}

	// 1. data into free clusters, 2. the FAT chain that owns them.
	n := int((size + fs.clusterSize - 1) / fs.clusterSize)
	cs, err := fs.fat.alloc(n)
	if err != nil {
		return err
	}
	if err := fs.writeData(cs, r, size); err != nil {
		fs.fat.release(cs)
		return err
	}
	if err := fs.flushFAT(); err != nil {
		return err
	}
	first := uint32(0)
	if n > 0 {
		first = cs[0]
	}

	// 3. the entry that references them.
	if exists {
		s := d.slot(old.slot)
		setCluster(s, first)
		binary.LittleEndian.PutUint32(s[28:], uint32(size))
		le := binary.LittleEndian
		le.PutUint16(s[18:], fs.stamp.date)
		le.PutUint16(s[22:], fs.stamp.time)
		le.PutUint16(s[24:], fs.stamp.date)
		s[11] |= attrArchive
		if err := fs.writeSlots(d, old.slot, old.slot+1); err != nil {
			return err
		}
		// 4. the old content, now unreferenced.
		fs.fat.release(oldChain)
		if err := fs.flushFAT(); err != nil {
			return err
		}
	} else {
		err := fs.addEntry(d, name, func(s [11]byte) [dirEntrySize]byte {
			return fs.newShortEntry(s, attrArchive, first, uint32(size))
		})
		if err != nil {
			return err
		}
	}
	// 5. the hint.
	return fs.writeFSInfo()
}

// writeData copies size bytes from r into clusters cs, one WriteAt per run
// of contiguous clusters (up to 1 MiB), zero-filling the last cluster's
// slack so stale bytes never leak into the image.
func (fs *FS) writeData(cs []uint32, r io.Reader, size int64) error {
	const maxRun = 1 << 20
	buf := make([]byte, min(max(fs.clusterSize, maxRun), int64(len(cs))*fs.clusterSize))
	perRun := int(int64(len(buf)) / fs.clusterSize)
	written := int64(0)
	for i := 0; i < len(cs); {
		j := i + 1
		for j < len(cs) && j-i < perRun && cs[j] == cs[j-1]+1 {
			j++
		}
		b := buf[:int64(j-i)*fs.clusterSize]
		want := min(int64(len(b)), size-written)
		if _, err := io.ReadFull(r, b[:want]); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read content at %d of %d bytes: %w", written, size, err)
		}
		clear(b[want:])
		if _, err := fs.dev.WriteAt(b, fs.clusterOffset(cs[i])); err != nil {
			return fmt.Errorf("write data: %w", err)
		}
		written += want
		i = j
	}
	return nil
}

// Remove deletes a file or an empty directory: entry first, clusters after.
func (fs *FS) Remove(p string) error {
	if err := fs.remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

func (fs *FS) remove(p string) error {
	if err := fs.usable(); err != nil {
		return err
	}
	d, e, err := fs.find(p)
	if err != nil {
		return err
	}
	chain, err := fs.fat.chain(e.cluster)
	if err != nil {
		return err
	}
	if e.isDir() {
		sub, err := fs.loadDir(e.cluster)
		if err != nil {
			return err
		}
		if len(sub.entries()) > 0 {
			return ErrNotEmpty
		}
	}
	if err := fs.deleteEntry(d, e); err != nil {
		return err
	}
	delete(fs.dirs, e.cluster)
	fs.fat.release(chain)
	if err := fs.flushFAT(); err != nil {
		return err
	}
	return fs.writeFSInfo()
}

// Rename moves oldp to newp, within a directory or across directories. An
// existing file at newp is replaced and its clusters freed; an existing
// directory at newp is an error. See the package comment for the order of
// writes.
func (fs *FS) Rename(oldp, newp string) error {
	if err := fs.rename(oldp, newp); err != nil {
		return fmt.Errorf("rename %s to %s: %w", oldp, newp, err)
	}
	return nil
}

func (fs *FS) rename(oldp, newp string) error {
	if err := fs.usable(); err != nil {
		return err
	}
	src, e, err := fs.find(oldp)
	if err != nil {
		return err
	}
	dst, name, err := fs.parent(newp)
	if err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	if e.isDir() {
		// A directory cannot move into itself or below itself. Compare
		// clusters, not names: a path can name a directory by its short
		// name too.
		names := splitPath(newp)
		for i := 1; i < len(names); i++ {
			if d, err := fs.walk(names[:i]); err == nil && d.first == e.cluster {
				return fmt.Errorf("%w: %s is inside %s", ErrInvalidName, newp, oldp)
			}
		}
	}
	target, exists := dst.lookup(name)
	if exists && dst == src && target.slot == e.slot {
		exists = false // same file, perhaps another case: a plain rename
	}
	if exists {
		if target.isDir() {
			return fmt.Errorf("%s: %w", newp, ErrExist)
		}
		if e.isDir() {
			return fmt.Errorf("%s: %w", newp, ErrNotDir)
		}
	}
	// The short entry keeps everything but the name: attributes, cluster,
	// size, timestamps.
	var body [dirEntrySize]byte
	copy(body[:], src.slot(e.slot))
	short := func(s [11]byte) [dirEntrySize]byte {
		b := body
		copy(b[:11], s[:])
		b[12] &^= 0x18 // case flags belonged to the old short name
		return b
	}

	switch {
	case exists:
		// Unreference the source, then point the target's entry (one
		// sector write) at the source's clusters, then free the target's.
		oldChain, err := fs.fat.chain(target.cluster)
		if err != nil {
			return err
		}
		if err := fs.deleteEntry(src, e); err != nil {
			return err
		}
		t := dst.slot(target.slot)
		caseFlags := t[12] & 0x18 // they belong to the target's short name, which stays
		copy(t[11:], body[11:])
		t[12] = t[12]&^0x18 | caseFlags
		if err := fs.writeSlots(dst, target.slot, target.slot+1); err != nil {
			return err
		}
		fs.fat.release(oldChain)
		if err := fs.flushFAT(); err != nil {
			return err
		}
	case src == dst:
		slots, err := fs.nameSlots(src, name, e.slot, short)
		if err != nil {
			return err
		}
		if lo, ok := fs.renameWindow(src, e, len(slots)); ok {
			// The new name fits in the old slots and free ones beside
			// them, all in one sector: one write replaces the name.
			if err := fs.replaceSlots(src, e, lo, slots); err != nil {
				return err
			}
			break
		}
		if e.isDir() {
			// A directory cannot be copied, and two entries must never
			// reference it: the old name goes first (see the package
			// comment; keel renames no directory after building).
			if err := fs.deleteEntry(src, e); err != nil {
				return err
			}
			if err := fs.addEntry(dst, name, short); err != nil {
				return err
			}
			break
		}
		if err := fs.renameByCopy(src, e, name, body); err != nil {
			return err
		}
	default:
		if err := fs.deleteEntry(src, e); err != nil {
			return err
		}
		if e.isDir() {
			// The moved directory's ".." must name its new parent. Rewrite
			// it while the directory is referenced by no entry, so no
			// state on disk has a reachable directory with a wrong "..".
			sub, err := fs.loadDir(e.cluster)
			if err != nil {
				return err
			}
			up := uint32(0)
			if dst.first != fs.bs.rootCluster {
				up = dst.first
			}
			if sub.slots() > 1 && string(sub.slot(1)[:2]) == ".." {
				setCluster(sub.slot(1), up)
				if err := fs.writeSlots(sub, 1, 2); err != nil {
					return err
				}
			}
		}
		if err := fs.addEntry(dst, name, short); err != nil {
			return err
		}
	}
	return fs.writeFSInfo()
}

// ReadFile returns the content of the file at p.
func (fs *FS) ReadFile(p string) ([]byte, error) {
	f, err := fs.Open(p)
	if err != nil {
		return nil, err
	}
	b := make([]byte, f.size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// File reads one file's content. It holds the file's cluster chain as it
// was at Open: after the file is replaced, renamed over or removed, open it
// again.
type File struct {
	fs     *FS
	chain  []uint32
	size   int64
	offset int64
}

// Open opens the file at p for reading.
func (fs *FS) Open(p string) (*File, error) {
	_, e, err := fs.find(p)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	if e.isDir() {
		return nil, fmt.Errorf("open %s: %w", p, ErrIsDir)
	}
	chain, err := fs.fat.chain(e.cluster)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	if int64(len(chain))*fs.clusterSize < int64(e.size) {
		return nil, fmt.Errorf("open %s: %w: %d clusters for %d bytes", p, ErrCorrupt, len(chain), e.size)
	}
	return &File{fs: fs, chain: chain, size: int64(e.size)}, nil
}

// Size is the file's length in bytes.
func (f *File) Size() int64 { return f.size }

// Read implements io.Reader.
func (f *File) Read(p []byte) (int, error) {
	n, err := f.ReadAt(p, f.offset)
	f.offset += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt implements io.ReaderAt, reading runs of contiguous clusters at once.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	cs := f.fs.clusterSize
	want := min(int64(len(p)), f.size-off)
	done := int64(0)
	for done < want {
		pos := off + done
		i := pos / cs
		j := i + 1
		for j < int64(len(f.chain)) && f.chain[j] == f.chain[j-1]+1 && (j-i)*cs-pos%cs < want-done {
			j++
		}
		n := min(want-done, (j-i)*cs-pos%cs)
		if err := readFull(f.fs.dev, p[done:done+n], f.fs.clusterOffset(f.chain[i])+pos%cs); err != nil {
			return int(done), err
		}
		done += n
	}
	if want < int64(len(p)) {
		return int(done), io.EOF
	}
	return int(done), nil
}

// renameByCopy renames file e in d when the new name cannot replace the
// old one in a single write: it writes a copy of the content to free
// clusters, chains them, adds the new name for the copy, and only then
// deletes the old name and frees its clusters. Stopped at any write, the
// old name or the new one is there with the whole content, and no two
// entries ever share a cluster (at worst the copy's clusters leak).
func (fs *FS) renameByCopy(d *dir, e entry, name string, body [dirEntrySize]byte) error {
	oldChain, err := fs.fat.chain(e.cluster)
	if err != nil {
		return err
	}
	if int64(len(oldChain))*fs.clusterSize < int64(e.size) {
		return fmt.Errorf("%w: %d clusters for %d bytes", ErrCorrupt, len(oldChain), e.size)
	}
	size := int64(e.size)
	cs, err := fs.fat.alloc(len(oldChain))
	if err != nil {
		return err
	}
	content := &File{fs: fs, chain: oldChain, size: size}
	if err := fs.writeData(cs, content, size); err != nil {
		fs.fat.release(cs)
		return err
	}
	if err := fs.flushFAT(); err != nil {
		return err
	}
	first := uint32(0)
	if len(cs) > 0 {
		first = cs[0]
	}
	err = fs.addEntry(d, name, func(s [11]byte) [dirEntrySize]byte {
		b := body
		copy(b[:11], s[:])
		b[12] &^= 0x18 // case flags belonged to the old short name
		setCluster(b[:], first)
		return b
	})
	if err != nil {
		if fs.broken == nil { // the copy is referenced by nothing: take it back
			fs.fat.release(cs)
			if ferr := fs.flushFAT(); ferr != nil {
				return ferr
			}
		}
		return err
	}
	if err := fs.deleteEntry(d, e); err != nil {
		return err
	}
	fs.fat.release(oldChain)
	return fs.flushFAT()
}
