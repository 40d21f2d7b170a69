package squashfs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"keel/rootfs"
)

// inode is the per-entry state while writing: one per *rootfs.Entry, shared
// by all the paths that are hard links to it.
type inode struct {
	entry   *rootfs.Entry
	path    string // first path, for errors
	number  uint32
	nlink   uint32
	xattr   uint32
	file    *fileData
	written bool
	ref     uint64 // inode table reference, once written
	uid     uint16
	gid     uint16
}

// builder holds the state of one Write.
type builder struct {
	o      Options
	codec  *codec
	comp   compressor
	tree   *rootfs.Tree
	inodes map[*rootfs.Entry]*inode
	files  []*fileData
	count  uint32 // inodes numbered so far
	ids    []uint32
	idIdx  map[uint32]uint16
	xattrs *xattrTable
	stats  Stats

	inodeTab *metaWriter
	dirTab   *metaWriter
	export   []uint64 // inode ref by number-1
}

// WriteFile writes the image to a temporary file next to name and renames it
// into place only when everything succeeded, so a failed write never leaves a
// half-written image under name.
func WriteFile(ctx context.Context, name string, tree *rootfs.Tree, opts Options) (*Stats, error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	st, err := Write(ctx, &writeback{f: tmp, fd: tmp.Fd()}, tree, opts)
	if err != nil {
		return nil, err
	}
	if err := tmp.Truncate(st.Bytes); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	ok = true
	// The rename is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return st, nil
}

// writebackChunk is how much of the image is written before the kernel is
// asked to start putting it on disk.
const writebackChunk = 8 << 20

// writeback is the image file as WriteFile writes it: each writebackChunk of
// the sequential write is handed to the device as soon as it is complete, so
// the disk works while the CPUs compress and the closing fsync waits for the
// last few MiB rather than the whole image.
type writeback struct {
	f     *os.File
	fd    uintptr
	start int64 // writeback has been started for bytes before start
}

func (w *writeback) WriteAt(p []byte, off int64) (int, error) {
	n, err := w.f.WriteAt(p, off)
	// Only the sequential part counts: the superblock, written last at
	// offset 0, is left to the fsync.
	if end := off + int64(n); off >= w.start && end-w.start >= writebackChunk {
		startWriteback(w.fd, w.start, end-w.start)
		w.start = end
	}
	return n, err
}

// Write writes tree as a squashfs image at offset 0 of w. It writes
// sequentially, then goes back once for the superblock.
func Write(ctx context.Context, w io.WriterAt, tree *rootfs.Tree, opts Options) (*Stats, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c, err := newCodec(o)
	if err != nil {
		return nil, err
	}
	comp, err := c.new()
	if err != nil {
		return nil, err
	}
	b := &builder{
		o: o, codec: c, comp: comp, tree: tree,
		inodes: map[*rootfs.Entry]*inode{},
		idIdx:  map[uint32]uint16{},
		xattrs: newXattrTable(),
	}
	if err := b.collect(); err != nil {
		return nil, err
	}

	bw := bufio.NewWriterSize(&offsetWriter{w: w, off: superblockSize}, 1<<20)
	out := &countingWriter{w: bw, n: superblockSize}
	sb := superblock{
		modTime:     o.ModTime,
		blockSize:   uint32(o.BlockSize),
		compression: c.id,
		flags:       flagDuplicates | flagAlwaysFrag,
	}
	for 1<<sb.blockLog < o.BlockSize {
		sb.blockLog++
	}
	if c.options != nil {
		sb.flags |= flagCompOpts
		hdr := le(nil).u16(uint16(len(c.options)) | metaUncompFlag)
		if _, err := out.Write(append(hdr, c.options...)); err != nil {
			return nil, fmt.Errorf("write compressor options: %w", err)
		}
	}

	o.Logger.Debug("squashfs: writing data", "files", len(b.files), "bytes", b.stats.ContentBytes, "workers", o.Workers)
	dw := newDataWriter(o, c, b.files, out, &b.stats)
	if err := dw.run(ctx); err != nil {
		return nil, err
	}
	b.stats.Fragments = uint32(len(dw.frags))
	if o.Progress != nil {
		// Duplicates and empty files never pass through the pipeline, so
		// say "done" once everything has been placed.
		o.Progress(b.stats.ContentBytes, b.stats.ContentBytes)
	}

	o.Logger.Debug("squashfs: writing metadata", "inodes", b.count)
	b.inodeTab = newMetaWriter(comp)
	b.dirTab = newMetaWriter(comp)
	b.export = make([]uint64, b.count)
	rootRef, err := b.writeDir("/", b.count+1)
	if err != nil {
		return nil, err
	}
	sb.rootInode = rootRef
	sb.inodeCount = b.count

	inodes, err := b.inodeTab.finish()
	if err != nil {
		return nil, fmt.Errorf("inode table: %w", err)
	}
	dirs, err := b.dirTab.finish()
	if err != nil {
		return nil, fmt.Errorf("directory table: %w", err)
	}
	sb.inodeTable = out.n
	out.Write(inodes)
	sb.directoryTable = out.n
	out.Write(dirs)

	var frags []byte
	for _, f := range dw.frags {
		frags = le(frags).u64(f.start).u32(f.size).u32(0)
	}
	sb.fragmentCount = uint32(len(dw.frags))
	if err := b.putTable(out, frags, &sb.fragmentTable); err != nil {
		return nil, fmt.Errorf("fragment table: %w", err)
	}

	sb.exportTable = invalidBlock
	if !o.NoExport {
		var exp []byte
		for _, r := range b.export {
			exp = le(exp).u64(r)
		}
		if err := b.putTable(out, exp, &sb.exportTable); err != nil {
			return nil, fmt.Errorf("export table: %w", err)
		}
		sb.flags |= flagExportable
	}

	var ids []byte
	for _, id := range b.ids {
		ids = le(ids).u32(id)
	}
	sb.idCount = uint16(len(b.ids))
	if err := b.putTable(out, ids, &sb.idTable); err != nil {
		return nil, fmt.Errorf("id table: %w", err)
	}

	sb.xattrTable = invalidBlock
	if b.xattrs.count() == 0 {
		sb.flags |= flagNoXattrs
	} else {
		data, start, err := b.xattrs.encode(comp, out.n)
		if err != nil {
			return nil, fmt.Errorf("xattr table: %w", err)
		}
		out.Write(data)
		sb.xattrTable = start
	}

	sb.bytesUsed = out.n
	if pad := (padTo - out.n%padTo) % padTo; pad > 0 {
		out.Write(make([]byte, pad))
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write image: %w", err)
	}
	if out.err != nil {
		return nil, fmt.Errorf("write image: %w", out.err)
	}
	if _, err := w.WriteAt(sb.marshal(), 0); err != nil {
		return nil, fmt.Errorf("write superblock: %w", err)
	}
	b.stats.Bytes = int64(out.n)
	b.stats.Inodes = b.count
	return &b.stats, nil
}

func (b *builder) putTable(out *countingWriter, entries []byte, start *uint64) error {
	data, lookup, err := table(b.comp, entries, out.n)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		return err
	}
	*start = lookup
	return nil
}

// collect validates the tree and gathers what the data and metadata passes
// need: one inode per entry, link counts, ids, xattr sets, the list of files
// in tree order, and inode numbers.
func (b *builder) collect() error {
	var idSet = map[uint32]bool{}
	err := b.tree.Walk(func(p string, e *rootfs.Entry) error {
		if p != "/" {
			if err := checkName(path.Base(p)); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		if in, ok := b.inodes[e]; ok {
			if e.Type == rootfs.TypeDir {
				return fmt.Errorf("%s: directory %s appears twice in the tree", p, in.path)
			}
			in.nlink++
			return nil
		}
		in := &inode{entry: e, path: p, nlink: 1}
		b.inodes[e] = in
		switch e.Type {
		case rootfs.TypeDir:
			in.nlink = 2
			for _, name := range b.tree.Children(p) {
				if c, _ := b.tree.Get(path.Join(p, name)); c.Type == rootfs.TypeDir {
					in.nlink++
				}
			}
		case rootfs.TypeFile:
			in.file = &fileData{path: p, entry: e, size: e.Size, fragIndex: invalidFragment}
			b.files = append(b.files, in.file)
			b.stats.ContentBytes += e.Size
		case rootfs.TypeSymlink:
			if len(e.Target) > 4095 {
				return fmt.Errorf("%s: symlink target is %d bytes, more than the 4095 Linux allows", p, len(e.Target))
			}
		}
		idSet[e.UID] = true
		idSet[e.GID] = true
		x, err := b.xattrs.add(e.Xattrs)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		in.xattr = x
		return nil
	})
	if err != nil {
		return err
	}
	if len(b.inodes) >= math.MaxUint32-1 {
		return fmt.Errorf("tree has %d inodes, more than squashfs can hold", len(b.inodes))
	}
	if len(idSet) > maxIDs {
		return fmt.Errorf("tree uses %d distinct uids and gids, more than the %d squashfs can hold", len(idSet), maxIDs)
	}
	for id := range idSet {
		b.ids = append(b.ids, id)
	}
	slices.Sort(b.ids)
	for i, id := range b.ids {
		b.idIdx[id] = uint16(i)
	}
	for _, in := range b.inodes {
		in.uid = b.idIdx[in.entry.UID]
		in.gid = b.idIdx[in.entry.GID]
	}
	b.number("/")
	return nil
}

// number assigns inode numbers in the order inodes are written: a
// directory's contents before the directory, so the root comes last.
func (b *builder) number(dir string) {
	for _, name := range b.tree.Children(dir) {
		p := path.Join(dir, name)
		e, _ := b.tree.Get(p)
		if e.Type == rootfs.TypeDir {
			b.number(p)
			continue
		}
		if in := b.inodes[e]; in.number == 0 {
			b.count++
			in.number = b.count
		}
	}
	b.count++
	e, _ := b.tree.Get(dir)
	b.inodes[e].number = b.count
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid name %q", name)
	case len(name) > maxNameLen:
		return fmt.Errorf("name is %d bytes, more than the %d squashfs allows", len(name), maxNameLen)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains a slash or NUL", name)
	}
	return nil
}

// offsetWriter turns an io.WriterAt into a sequential writer from off.
type offsetWriter struct {
	w   io.WriterAt
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.w.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}
