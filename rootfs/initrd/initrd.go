// Package initrd writes a rootfs.Tree as an initramfs: a newc cpio archive,
// compressed the way the Linux kernel can unpack it at boot.
//
// Everything the tree model carries that newc can hold is written: type,
// permission bits including setuid, setgid and sticky, owner, mtime, symlink
// targets (as the member's body), device numbers (c_rdevmajor/c_rdevminor) and
// hard links. Output depends only on the tree and the options: inode numbers
// are given in walk order, the device fields are 0, and members come in the
// tree's sorted walk order, so the same tree gives the same bytes.
//
// Hard links follow the newc convention that GNU cpio writes and both GNU
// cpio and the kernel read: every member of a link group has the same c_ino
// and c_nlink (the size of the group), and only the last member carries the
// data; the others have size 0. The kernel creates the first member and
// links the rest to it, opening the last one without O_TRUNC to write the
// data; GNU cpio defers the empty members until the data arrives.
//
// newc has no room for extended attributes; a tree with xattrs is refused
// unless Options.DropXattrs says to leave them out.
package initrd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"keel/rootfs"
)

// Compression names the compressor wrapped around the cpio archive.
type Compression string

const (
	XZ   Compression = "xz"
	Zstd Compression = "zstd"
	None Compression = "none"
)

// Compressions lists the supported compressors, default first.
var Compressions = []Compression{XZ, Zstd, None}

// Options control how an initrd is written. The zero value is valid: xz.
type Options struct {
	// Compression is the compressor; "" means xz.
	Compression Compression
	// Level is zstd's level, 1 to 22; 0 means DefaultZstdLevel. The
	// pure-Go encoder has four settings, which zstd levels map onto: 1-2
	// fastest, 3-5 default, 6-9 better, 10-22 best. xz and none take no
	// level (0 only): ulikunitz/xz has one useful setting; its other match
	// finder (BinaryTree) measured here ~90x slower and 50% larger than
	// the default on 2.7 MB of binaries, so there is nothing to choose.
	Level int
	// DropXattrs leaves extended attributes out instead of refusing a tree
	// that has them; newc cannot carry them.
	DropXattrs bool
}

const (
	// DefaultZstdLevel is what the kernel's own build uses for a zstd
	// initramfs (zstd -19). The pure-Go encoder maps every level from 10
	// up to its "best" setting.
	DefaultZstdLevel = 19

	// XZDictCap is the LZMA2 dictionary size. The kernel's initramfs xz
	// decoder (lib/decompress_unxz.c, XZ_DYNALLOC mode) takes any dictionary
	// but allocates all of it up front; 1 MiB is what the kernel build uses
	// for the same job (scripts/Makefile.lib, xzmisc: --lzma2=dict=1MiB).
	XZDictCap = 1 << 20

	// ZstdWindow is the zstd window size written in the frame header. The
	// kernel unpacks an initramfs with the streaming zstd decoder
	// (lib/decompress_unzstd.c), which allocates the frame's whole window
	// and refuses frames whose window is above its maximum; the kernel's
	// build notes that plain zstd levels use at most 8 MiB and that larger
	// windows (zstd --ultra -22, 128 MiB) should not be used for an
	// initramfs. So: 8 MiB, and always one frame, because the decoder stops
	// at the end of the first frame.
	ZstdWindow = 8 << 20
)

func (o Options) withDefaults() (Options, error) {
	if o.Compression == "" {
		o.Compression = XZ
	}
	switch o.Compression {
	case Zstd:
		if o.Level == 0 {
			o.Level = DefaultZstdLevel
		}
		if o.Level < 1 || o.Level > 22 {
			return o, fmt.Errorf("zstd level %d out of range 1..22", o.Level)
		}
	case XZ, None:
		if o.Level != 0 {
			return o, fmt.Errorf("compression %s takes no level (got %d)", o.Compression, o.Level)
		}
	default:
		return o, fmt.Errorf("unsupported initrd compression %q (known: xz, zstd, none)", o.Compression)
	}
	return o, nil
}

// member is one archive member: a path of the tree and its header.
type member struct {
	path string
	e    *rootfs.Entry
	hdr  header
	// body says whether the member carries the entry's content: always for
	// a symlink's target, for a regular file only on the last link.
	body bool
}

// Write writes tree to w as a compressed newc cpio archive. Nothing is
// written when the tree cannot be represented (an error names the path); an
// error while content is being streamed leaves w holding a partial archive.
func Write(ctx context.Context, w io.Writer, tree *rootfs.Tree, opts Options) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	members, err := plan(tree, opts)
	if err != nil {
		return err
	}
	zw, err := compressor(w, opts)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 256<<10)
	cw := &cpioWriter{w: bw}
	for i := range members {
		if err := ctx.Err(); err != nil {
			zw.Close()
			return err
		}
		m := &members[i]
		if err := writeMember(ctx, cw, m); err != nil {
			zw.Close()
			return fmt.Errorf("%s: %w", m.path, err)
		}
	}
	if err := cw.writeTrailer(); err != nil {
		zw.Close()
		return fmt.Errorf("writing cpio trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		zw.Close()
		return fmt.Errorf("writing initrd: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("finishing %s stream: %w", opts.Compression, err)
	}
	return nil
}

// WriteFile writes the initrd to name through a temporary file in the same
// directory, synced and renamed into place, so a failure never leaves a
// partial file under name. The file gets mode 0644.
func WriteFile(ctx context.Context, name string, tree *rootfs.Tree, opts Options) (err error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := Write(ctx, f, tree, opts); err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("writing initrd %s: %w", name, err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return fmt.Errorf("writing initrd %s: syncing %s: %w", name, dir, serr)
		}
	}
	return nil
}

// plan walks the tree and builds every header before anything is written,
// so that a tree newc cannot represent is refused up front and link groups
// are known (the data goes on a group's last member).
func plan(tree *rootfs.Tree, opts Options) ([]member, error) {
	var members []member
	ino := map[*rootfs.Entry]uint32{}
	links := map[*rootfs.Entry]int{}      // paths per entry
	last := map[*rootfs.Entry]int{}       // index of the entry's last member
	subdirs := map[*rootfs.Entry]uint32{} // for a directory's nlink
	dirPath := map[*rootfs.Entry]string{} // to report a directory seen twice
	err := tree.Walk(func(p string, e *rootfs.Entry) error {
		if e == nil {
			return fmt.Errorf("%s: nil entry", p)
		}
		if e.Type == rootfs.TypeDir {
			if other, ok := dirPath[e]; ok {
				return fmt.Errorf("%s: the same directory is also at %s; directories cannot be hard-linked", p, other)
			}
			dirPath[e] = p
			if p != "/" {
				parent, _ := tree.Get(path.Dir(p))
				subdirs[parent]++
			}
		}
		if _, ok := ino[e]; !ok {
			if len(ino) == math.MaxUint32 {
				return fmt.Errorf("%s: more inodes than newc's 32-bit c_ino can number", p)
			}
			ino[e] = uint32(len(ino) + 1) // 0 is left for the trailer
		}
		links[e]++
		last[e] = len(members)
		members = append(members, member{path: p, e: e})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range members {
		m := &members[i]
		nlink := uint32(links[m.e])
		if m.e.Type == rootfs.TypeDir {
			nlink = 2 + subdirs[m.e] // "." and the parent's entry, plus each child's ".."
		}
		if err := fill(m, ino[m.e], nlink, last[m.e] == i, opts); err != nil {
			return nil, fmt.Errorf("%s: %w", m.path, err)
		}
	}
	return members, nil
}

// fill checks one member's entry against what newc and the kernel can take
// and builds its header.
func fill(m *member, ino, nlink uint32, lastLink bool, opts Options) error {
	e := m.e
	name := "." // the root, whose mode and owner the kernel applies to /
	if m.path != "/" {
		name = m.path[1:] // relative, as gen_init_cpio and `find . | cpio` write
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0 {
			return errors.New("name contains a NUL byte")
		}
	}
	if e.Mode&^rootfs.ModePerm != 0 {
		return fmt.Errorf("mode %#o has bits beyond permissions", e.Mode)
	}
	if e.Mtime < 0 || e.Mtime > math.MaxUint32 {
		return fmt.Errorf("mtime %d does not fit newc's unsigned 32-bit field", e.Mtime)
	}
	if len(e.Xattrs) > 0 && !opts.DropXattrs {
		return errors.New("has extended attributes, which newc cannot carry (set DropXattrs to leave them out)")
	}
	m.hdr = header{
		ino:   ino,
		uid:   e.UID,
		gid:   e.GID,
		nlink: nlink,
		mtime: uint32(e.Mtime),
		name:  name,
	}
	var typ uint32
	switch e.Type {
	case rootfs.TypeDir:
		typ = modeDir
	case rootfs.TypeFile:
		typ = modeFile
		if e.Size < 0 || e.Size > math.MaxUint32 {
			return fmt.Errorf("size %d does not fit newc's 32-bit c_filesize", e.Size)
		}
		if lastLink {
			m.hdr.filesize = uint32(e.Size)
			m.body = true
		}
	case rootfs.TypeSymlink:
		typ = modeSymlink
		if e.Target == "" {
			return errors.New("symlink with an empty target")
		}
		if len(e.Target) >= pathMax {
			return fmt.Errorf("symlink target is %d bytes, longer than the kernel's PATH_MAX", len(e.Target))
		}
		// Every member of a hard-linked symlink carries the target: both
		// the kernel and GNU cpio create each symlink from its own body
		// and never link symlinks.
		m.hdr.filesize = uint32(len(e.Target))
		m.body = true
	case rootfs.TypeCharDev, rootfs.TypeBlockDev:
		typ = modeCharDev
		if e.Type == rootfs.TypeBlockDev {
			typ = modeBlkDev
		}
		m.hdr.rdevMajor, m.hdr.rdevMinor = e.Major, e.Minor
	case rootfs.TypeFifo:
		typ = modeFifo
	case rootfs.TypeSocket:
		typ = modeSocket
	default:
		return fmt.Errorf("unknown entry type %s", e.Type)
	}
	if e.Type != rootfs.TypeFile && (e.Size != 0 || e.Content != nil) {
		return fmt.Errorf("a %s cannot have content", e.Type)
	}
	m.hdr.mode = typ | e.Mode
	return nil
}

func writeMember(ctx context.Context, cw *cpioWriter, m *member) error {
	if err := cw.writeHeader(&m.hdr); err != nil {
		return err
	}
	if m.body {
		var err error
		switch m.e.Type {
		case rootfs.TypeSymlink:
			err = cw.write([]byte(m.e.Target))
		case rootfs.TypeFile:
			err = copyContent(ctx, cw, m.e)
		}
		if err != nil {
			return err
		}
	}
	return cw.pad()
}

// copyContent streams a file's content and checks that it is exactly as
// long as the entry says: the size is already in the header, so a
// difference would shift every member after it.
func copyContent(ctx context.Context, cw *cpioWriter, e *rootfs.Entry) (err error) {
	var r io.Reader
	if e.Content == nil {
		r = io.LimitReader(zeros{}, e.Size)
	} else {
		rc, err := e.Content()
		if err != nil {
			return fmt.Errorf("opening content: %w", err)
		}
		defer func() {
			if cerr := rc.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing content: %w", cerr)
			}
		}()
		r = rc
	}
	r = ctxReader{ctx, r}
	n, err := io.CopyN(writerFunc(cw.write), r, e.Size)
	if err == io.EOF {
		return fmt.Errorf("content is %d bytes, shorter than its size %d", n, e.Size)
	}
	if err != nil {
		return fmt.Errorf("copying content: %w", err)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k != 0 {
		return fmt.Errorf("content is longer than its size %d", e.Size)
	}
	return nil
}

// compressor wraps w in the chosen compressor. Close finishes the stream
// but does not close w.
func compressor(w io.Writer, opts Options) (io.WriteCloser, error) {
	switch opts.Compression {
	case XZ:
		zw, err := xz.WriterConfig{
			DictCap: XZDictCap,
			// The kernel's xz decoder accepts only CRC32 or no check.
			CheckSum: xz.CRC32,
		}.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("starting xz stream: %w", err)
		}
		return zw, nil
	case Zstd:
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opts.Level)),
			zstd.WithWindowSize(ZstdWindow),
			// One encoder goroutine: an initrd is a few MB, and the
			// stream then is plainly one frame built in order.
			zstd.WithEncoderConcurrency(1),
		)
		if err != nil {
			return nil, fmt.Errorf("starting zstd stream: %w", err)
		}
		return zw, nil
	case None:
		return nopCloser{w}, nil
	}
	return nil, fmt.Errorf("unsupported initrd compression %q", opts.Compression)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

type writerFunc func([]byte) error

func (f writerFunc) Write(p []byte) (int, error) {
	if err := f(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ctxReader stops a long copy when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
