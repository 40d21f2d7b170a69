// Package format converts keel's raw disk images into the image formats
// hypervisors and clouds take: qcow2 (QEMU), vmdk (VMware, VirtualBox) and
// vhdx (Hyper-V), and reads raw and qcow2 images back (read.go,
// qcow2read.go: keel flash's sources). It writes them itself, without qemu-img, and
// deterministically: the same raw bytes always give the same output bytes
// (no timestamps; the identifiers the formats want are derived from the
// content).
//
// A conversion costs time in proportion to the raw image's data, not its
// size: the data ranges of a sparse file come from SEEK_DATA/SEEK_HOLE, and
// zero-filled clusters inside them are left out too.
package format

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Format is a disk image format.
type Format int

const (
	Raw Format = iota
	QCOW2
	VMDK
	VHDX
)

var names = []string{Raw: "raw", QCOW2: "qcow2", VMDK: "vmdk", VHDX: "vhdx"}

func (f Format) String() string {
	if f < 0 || int(f) >= len(names) {
		return fmt.Sprintf("Format(%d)", int(f))
	}
	return names[f]
}

// Ext is the file name extension an image of the format usually has.
func (f Format) Ext() string {
	if f == Raw {
		return ".img"
	}
	return "." + f.String()
}

// Names lists the formats ParseFormat takes.
func Names() []string { return slices.Clone(names) }

// ParseFormat reads a format name: raw, qcow2, vmdk or vhdx.
func ParseFormat(s string) (Format, error) {
	if i := slices.Index(names, strings.ToLower(s)); i >= 0 {
		return Format(i), nil
	}
	return 0, fmt.Errorf("unknown image format %q (want %s)", s, strings.Join(names, ", "))
}

// Detect tells the format of an image from its first bytes: raw is
// whatever is none of the others.
func Detect(r io.ReaderAt) (Format, error) {
	var b [8]byte
	n, err := r.ReadAt(b[:], 0)
	if n < len(b) {
		if err == io.EOF {
			return Raw, nil
		}
		return 0, err
	}
	switch {
	case string(b[:4]) == "QFI\xfb":
		return QCOW2, nil
	case string(b[:4]) == "KDMV":
		return VMDK, nil
	case string(b[:8]) == "vhdxfile":
		return VHDX, nil
	}
	return Raw, nil
}

// Options tune a conversion.
type Options struct {
	// Progress, when set, is told the bytes of data written so far and
	// their total.
	Progress func(done, total int64)
	// Name is the image's file name (no directory), which a vmdk's
	// descriptor names as its extent: the name the file will have once
	// renamed into place. Empty means "disk.vmdk".
	Name string
}

// cluster is the unit in which the raw image is scanned for data: qcow2's
// cluster and vmdk's grain are this size, vhdx's block a multiple of it.
const cluster = 64 << 10

const sector = 512

// ErrSize is returned for a virtual size the format cannot hold.
var ErrSize = errors.New("bad disk size")

// Write converts the raw image src, of size bytes, into format f on dst.
func Write(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, f Format) error {
	return WriteWith(ctx, dst, src, size, f, Options{})
}

// WriteWith is Write with options.
func WriteWith(ctx context.Context, dst io.Writer, src io.ReaderAt, size int64, f Format, o Options) error {
	var max int64
	switch f {
	case Raw:
		max = 1 << 62
	case QCOW2:
		max = qcow2Max
	case VMDK:
		max = vmdkMax
	case VHDX:
		max = vhdxMax
	default:
		return fmt.Errorf("unknown image format %d", int(f))
	}
	switch {
	case size <= 0:
		return fmt.Errorf("%w: %d bytes: a disk needs at least one sector", ErrSize, size)
	case size%sector != 0:
		return fmt.Errorf("%w: %d bytes is not a whole number of %d-byte sectors", ErrSize, size, sector)
	case size > max:
		return fmt.Errorf("%w: %d bytes is more than %s holds (%d bytes)", ErrSize, size, f, max)
	}
	if fi, ok := src.(interface{ Stat() (os.FileInfo, error) }); ok {
		st, err := fi.Stat()
		if err != nil {
			return err
		}
		if st.Mode().IsRegular() && st.Size() < size {
			return fmt.Errorf("source is %d bytes, shorter than the disk's %d", st.Size(), size)
		}
	}
	s := &scan{src: src, size: size}
	if f == VMDK || f == VHDX {
		s.hash = sha256.New()
		fmt.Fprintf(s.hash, "keel image %d\n", size)
	}
	if err := s.run(ctx); err != nil {
		return fmt.Errorf("read source image: %w", err)
	}
	w := &writer{w: bufio.NewWriterSize(dst, 1<<20), ctx: ctx, progress: o.Progress}
	var err error
	switch f {
	case Raw:
		err = writeRaw(w, s)
	case QCOW2:
		err = writeQCOW2(w, s)
	case VMDK:
		err = writeVMDK(w, s, o)
	case VHDX:
		err = writeVHDX(w, s)
	}
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return fmt.Errorf("write %s image: %w", f, err)
	}
	return nil
}

// scan finds the clusters of a raw image that hold anything but zeros.
type scan struct {
	src   io.ReaderAt
	size  int64
	hash  hash.Hash // of the size and every allocated cluster, when set
	alloc []int64   // indices of non-zero clusters, ascending
}

// content is a digest of the image, where a format wants identifiers:
// derived from it, two conversions of the same bytes agree.
func (s *scan) content(purpose string) []byte {
	h := sha256.New()
	h.Write(s.hash.Sum(nil))
	h.Write([]byte(purpose))
	return h.Sum(nil)
}

var zero [cluster]byte

func (s *scan) run(ctx context.Context) error {
	ranges, err := dataRanges(s.src, s.size)
	if err != nil {
		return err
	}
	const chunk = 16 * cluster
	buf := make([]byte, chunk)
	var idx [8]byte
	for _, r := range ranges {
		// Whole clusters: a range starts and ends on filesystem blocks,
		// not necessarily on clusters.
		for off := r[0] / cluster * cluster; off < r[1]; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(chunk, s.size-off, (r[1]+cluster-1)/cluster*cluster-off)
			b := buf[:n]
			if err := readFull(s.src, b, off); err != nil {
				return err
			}
			for i := int64(0); i < n; i += cluster {
				c := b[i:min(i+cluster, n)]
				if bytes.Equal(c, zero[:len(c)]) {
					continue
				}
				ci := (off + i) / cluster
				if len(s.alloc) > 0 && s.alloc[len(s.alloc)-1] >= ci {
					continue // ranges that share a cluster
				}
				s.alloc = append(s.alloc, ci)
				if s.hash != nil {
					binary.LittleEndian.PutUint64(idx[:], uint64(ci))
					s.hash.Write(idx[:])
					s.hash.Write(c)
				}
			}
			off += n
		}
	}
	return nil
}

// readFull reads len(b) bytes at off: a source shorter than the size it
// was given is an error, not zeros.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("source ends at %d, before the disk's size", off+int64(n))
	}
	return err
}

// dataRanges lists the [start, end) ranges of src that may hold data: for
// a file, what SEEK_DATA and SEEK_HOLE find; otherwise all of it.
func dataRanges(src io.ReaderAt, size int64) ([][2]int64, error) {
	all := [][2]int64{{0, size}}
	f, ok := src.(*os.File)
	if !ok {
		return all, nil
	}
	var out [][2]int64
	for off := int64(0); off < size; {
		start, err := f.Seek(off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data past off
		}
		if err != nil {
			if len(out) == 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
				return all, nil // a file system (or pipe) without SEEK_DATA
			}
			return nil, fmt.Errorf("find data: %w", err)
		}
		if start >= size {
			break
		}
		end, err := f.Seek(start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("find hole: %w", err)
		}
		end = min(end, size)
		out = append(out, [2]int64{start, end})
		off = end
	}
	return out, nil
}

// writer writes an image sequentially, counting where it is.
type writer struct {
	w        *bufio.Writer
	ctx      context.Context
	off      int64
	err      error
	progress func(done, total int64)
	done     int64
	total    int64
}

func (w *writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.off += int64(n)
	w.err = err
}

// pad writes zeros up to offset to.
func (w *writer) pad(to int64) {
	for w.err == nil && w.off < to {
		w.write(zero[:min(int64(len(zero)), to-w.off)])
	}
}

func (w *writer) flush() error {
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// data copies the raw image's bytes [off, off+n) (n a whole number of
// sectors or clusters; past the disk's end it writes zeros).
func (w *writer) data(s *scan, buf []byte, off, n int64) {
	if w.err != nil {
		return
	}
	if w.err = w.ctx.Err(); w.err != nil {
		return
	}
	b := buf[:n]
	have := max(0, min(n, s.size-off))
	if w.err = readFull(s.src, b[:have], off); w.err != nil {
		return
	}
	clear(b[have:])
	w.write(b)
	w.done += n
	if w.progress != nil {
		w.progress(w.done, w.total)
	}
}

// writeRaw writes the raw image back, every byte: zeros included, since
// dst is a stream (keel's own raw images are written sparse by image/disk).
func writeRaw(w *writer, s *scan) error {
	w.total = int64(len(s.alloc)) * cluster
	buf := make([]byte, cluster)
	for _, c := range s.alloc {
		w.pad(c * cluster)
		w.data(s, buf, c*cluster, min(cluster, s.size-c*cluster))
	}
	w.pad(s.size)
	return w.err
}

func le16(b []byte, v uint16) { binary.LittleEndian.PutUint16(b, v) }
func le32(b []byte, v uint32) { binary.LittleEndian.PutUint32(b, v) }
func le64(b []byte, v uint64) { binary.LittleEndian.PutUint64(b, v) }
func be16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func be32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func be64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
