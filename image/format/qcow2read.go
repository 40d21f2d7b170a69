package format

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reading qcow2 (versions 2 and 3, QEMU's docs/interop/qcow2.txt), as keel
// writes it and as qemu-img convert -O qcow2 (and -c) does: the active L1
// table and its L2 tables map the virtual disk; refcounts and snapshots are
// not needed to read it and are ignored. What would change the bytes read
// and is not implemented is refused at open, before anything is read:
// a backing file, encryption, an external data file, extended L2 entries,
// a compression other than deflate, and any incompatible feature bit not
// known.
//
// The file is not trusted: every offset is checked against the file's size
// before it is read, what is allocated is bounded by that size (and by
// QEMU's own limits), and all L2 tables are read and checked at open, so a
// bad entry is found before a flash writes a byte.

const (
	qcow2MinClusterBits = 9
	qcow2MaxClusterBits = 21
	// qcow2MaxL1 is QEMU's limit on the L1 table: 32 MiB of entries.
	qcow2MaxL1 = 32 << 20 / 8

	qcow2OffsetMask  = 0x00fffffffffffe00 // bits 9-55: a cluster's offset
	qcow2Compressed  = 1 << 62
	qcow2ZeroFlag    = 1 // bit 0 of a standard L2 entry (version 3)
	qcow2L1Reserved  = 0x7f000000000001ff
	qcow2L2Reserved  = 0x3f000000000001fe
	qcow2IncDirty    = 1 << 0
	qcow2IncCorrupt  = 1 << 1
	qcow2IncExtData  = 1 << 2
	qcow2IncCompType = 1 << 3
	qcow2IncExtL2    = 1 << 4
)

type qcow2Image struct {
	r        io.ReaderAt
	fileSize int64
	size     int64
	bits     uint // cluster_bits
	csize    int64
	l2n      int64    // entries in an L2 table
	l1       []uint64 // the active L1 table, entries as stored
	// A cache of one L2 table: reads and Data walk the disk in order.
	l2Off int64
	l2    []uint64
	// A cache of one decompressed cluster.
	zOff  int64
	zData []byte
}

func qcow2Err(format string, a ...any) error {
	return fmt.Errorf("qcow2: "+format, a...)
}

func newQCOW2(r io.ReaderAt, fileSize int64) (*qcow2Image, error) {
	h := make([]byte, 112)
	n, err := r.ReadAt(h, 0)
	if n < 72 {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, qcow2Err("read header: %w", err)
	}
	h = h[:n]
	u32 := func(o int) uint32 { return binary.BigEndian.Uint32(h[o:]) }
	u64 := func(o int) uint64 { return binary.BigEndian.Uint64(h[o:]) }
	version := u32(4)
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("%w: qcow2 version %d (2 and 3 can be read)", ErrUnsupported, version)
	}
	bits := u32(20)
	if bits < qcow2MinClusterBits || bits > qcow2MaxClusterBits {
		return nil, qcow2Err("cluster_bits %d outside %d..%d", bits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	q := &qcow2Image{r: r, fileSize: fileSize, bits: uint(bits), csize: 1 << bits, l2n: 1 << bits / 8, l2Off: -1, zOff: -1}
	if u64(8) != 0 {
		name := ""
		if l := u32(16); l > 0 && l <= 1023 && u64(8) < uint64(fileSize) {
			b := make([]byte, l)
			if _, err := r.ReadAt(b, int64(u64(8))); err == nil {
				name = fmt.Sprintf(" %q", b)
			}
		}
		return nil, fmt.Errorf("%w: qcow2 with a backing file%s: flatten it first (qemu-img convert -O qcow2)", ErrUnsupported, name)
	}
	if m := u32(32); m != 0 {
		return nil, fmt.Errorf("%w: encrypted qcow2 (crypt_method %d)", ErrUnsupported, m)
	}
	if version == 3 {
		if len(h) < 104 {
			return nil, qcow2Err("version 3 header is %d bytes, want at least 104", len(h))
		}
		hl := u32(100)
		if hl < 104 || int64(hl) > q.csize {
			return nil, qcow2Err("header_length %d", hl)
		}
		inc := u64(72)
		switch {
		case inc&qcow2IncCorrupt != 0:
			return nil, qcow2Err("marked corrupt by QEMU: repair it first (qemu-img check -r all)")
		case inc&qcow2IncExtData != 0:
			return nil, fmt.Errorf("%w: qcow2 with an external data file", ErrUnsupported)
		case inc&qcow2IncExtL2 != 0:
			return nil, fmt.Errorf("%w: qcow2 with extended L2 entries (subclusters)", ErrUnsupported)
		case inc&qcow2IncCompType != 0:
			ct := -1
			if hl > 104 && len(h) > 104 {
				ct = int(h[104])
			}
			return nil, fmt.Errorf("%w: qcow2 compression type %d (deflate, 0, can be read)", ErrUnsupported, ct)
		case inc&^(qcow2IncDirty|qcow2IncCompType) != 0:
			// The dirty bit says refcounts may be stale: they are not read.
			return nil, fmt.Errorf("%w: qcow2 incompatible features %#x", ErrUnsupported, inc&^qcow2IncDirty)
		}
	}
	size := u64(24)
	if size == 0 || size > 1<<62 {
		return nil, qcow2Err("virtual size %d", size)
	}
	q.size = int64(size)
	l1Size := int64(u32(36))
	l1Off := int64(u64(40))
	if need := ceilDiv(q.size, q.l2n*q.csize); l1Size < need {
		return nil, qcow2Err("L1 table of %d entries maps less than the %d-byte disk (needs %d)", l1Size, q.size, need)
	}
	if l1Size > qcow2MaxL1 {
		return nil, qcow2Err("L1 table of %d entries: more than QEMU's limit of %d", l1Size, qcow2MaxL1)
	}
	if l1Off <= 0 || l1Off%q.csize != 0 || l1Off > fileSize || l1Size*8 > fileSize-l1Off {
		return nil, qcow2Err("L1 table at %d (%d entries) is not within the %d-byte file", l1Off, l1Size, fileSize)
	}
	raw := make([]byte, l1Size*8) // at most the file's size, checked above
	if err := readFull(r, raw, l1Off); err != nil {
		return nil, qcow2Err("read L1 table: %w", err)
	}
	// Only the entries that map the disk are read; QEMU may allocate more.
	used := ceilDiv(q.size, q.l2n*q.csize)
	q.l1 = make([]uint64, used)
	seen := map[int64]bool{}
	for i := range q.l1 {
		e := binary.BigEndian.Uint64(raw[i*8:])
		q.l1[i] = e
		if e&qcow2L1Reserved != 0 {
			return nil, qcow2Err("L1 entry %d (%#x) has reserved bits set", i, e)
		}
		off := int64(e & qcow2OffsetMask)
		if off == 0 || seen[off] {
			continue
		}
		seen[off] = true
		if len(seen) > int(fileSize/q.csize)+1 {
			return nil, qcow2Err("more L2 tables than the file has clusters")
		}
		// Read every L2 table now: a bad entry refuses the image before
		// anything is written from it.
		if _, err := q.l2Table(off, i); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// l2Table reads (or returns the cached) L2 table at off, checking its
// entries; l1i names it in errors.
func (q *qcow2Image) l2Table(off int64, l1i int) ([]uint64, error) {
	if off == q.l2Off {
		return q.l2, nil
	}
	if off%q.csize != 0 || off > q.fileSize-q.csize {
		return nil, qcow2Err("L1 entry %d: L2 table at %d is not a cluster within the %d-byte file", l1i, off, q.fileSize)
	}
	raw := make([]byte, q.csize)
	if err := readFull(q.r, raw, off); err != nil {
		return nil, qcow2Err("read L2 table at %d: %w", off, err)
	}
	t := make([]uint64, q.l2n)
	cbits := 62 - (q.bits - 8) // compressed entries: bits below are the offset
	for i := range t {
		e := binary.BigEndian.Uint64(raw[i*8:])
		t[i] = e
		if e&qcow2Compressed != 0 {
			zoff := int64(e & (1<<cbits - 1))
			zlen := (int64(e>>cbits&(1<<(62-cbits)-1)) + 1) * 512
			if zoff >= q.fileSize || zoff < q.csize {
				return nil, qcow2Err("L2 table at %d, entry %d: compressed cluster at %d is not within the file", off, i, zoff)
			}
			_ = zlen // may run past the file's end: the last sector is often short
			continue
		}
		if e&qcow2L2Reserved != 0 {
			return nil, qcow2Err("L2 table at %d, entry %d (%#x) has reserved bits set", off, i, e)
		}
		if e&qcow2ZeroFlag != 0 {
			continue // reads as zeros, whatever it points at
		}
		if d := int64(e & qcow2OffsetMask); d != 0 && (d%q.csize != 0 || d > q.fileSize-q.csize) {
			return nil, qcow2Err("L2 table at %d, entry %d: data cluster at %d is not within the %d-byte file", off, i, d, q.fileSize)
		}
	}
	q.l2Off, q.l2 = off, t
	return t, nil
}

func (q *qcow2Image) Format() Format { return QCOW2 }
func (q *qcow2Image) Size() int64    { return q.size }

// entry returns the L2 entry mapping the cluster at virtual offset off (0
// where no L2 table is allocated).
func (q *qcow2Image) entry(off int64) (uint64, error) {
	c := off >> q.bits
	l1i := c / q.l2n
	l2 := int64(q.l1[l1i] & qcow2OffsetMask)
	if l2 == 0 {
		return 0, nil
	}
	t, err := q.l2Table(l2, int(l1i))
	if err != nil {
		return 0, err
	}
	return t[c%q.l2n], nil
}

// isData tells whether an L2 entry maps stored bytes.
func isData(e uint64) bool {
	return e&qcow2Compressed != 0 || (e&qcow2ZeroFlag == 0 && e&qcow2OffsetMask != 0)
}

func (q *qcow2Image) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("qcow2: negative offset")
	}
	n := 0
	for n < len(b) {
		if off >= q.size {
			return n, io.EOF
		}
		in := off & (q.csize - 1)
		chunk := b[n:min(int64(len(b)), int64(n)+q.csize-in, int64(n)+q.size-off)]
		e, err := q.entry(off)
		if err != nil {
			return n, err
		}
		switch {
		case e&qcow2Compressed != 0:
			z, err := q.inflate(e)
			if err != nil {
				return n, err
			}
			copy(chunk, z[in:])
		case isData(e):
			if err := readFull(q.r, chunk, int64(e&qcow2OffsetMask)+in); err != nil {
				return n, qcow2Err("read cluster: %w", err)
			}
		default:
			clear(chunk)
		}
		n += len(chunk)
		off += int64(len(chunk))
	}
	return n, nil
}

// inflate returns the cluster a compressed L2 entry maps: raw deflate
// (zlib's, without its header), as QEMU writes it.
func (q *qcow2Image) inflate(e uint64) ([]byte, error) {
	cbits := 62 - (q.bits - 8)
	zoff := int64(e & (1<<cbits - 1))
	if zoff == q.zOff {
		return q.zData, nil
	}
	// The entry counts 512-byte sectors from the one zoff is in, less one.
	zlen := (int64(e>>cbits&(1<<(62-cbits)-1))+1)*512 - zoff%512
	zlen = min(zlen, q.fileSize-zoff)
	src := make([]byte, zlen) // at most 2^(62-cbits) sectors: 1 MiB for 2 MiB clusters
	if n, err := q.r.ReadAt(src, zoff); n < len(src) && err != nil && err != io.EOF {
		return nil, qcow2Err("read compressed cluster at %d: %w", zoff, err)
	} else {
		src = src[:n]
	}
	if q.zData == nil {
		q.zData = make([]byte, q.csize)
	}
	zr := flate.NewReader(bytes.NewReader(src))
	if _, err := io.ReadFull(zr, q.zData); err != nil {
		q.zOff = -1
		return nil, qcow2Err("compressed cluster at %d: %w", zoff, err)
	}
	q.zOff = zoff
	return q.zData, nil
}

// Data finds the next run of clusters that hold data (stored or
// compressed): unallocated clusters, and clusters with the zero flag, read
// as zeros.
func (q *qcow2Image) Data(off int64) (int64, int64, error) {
	if off < 0 {
		off = 0
	}
	if off >= q.size {
		return 0, 0, io.EOF
	}
	start := int64(-1)
	for c := off >> q.bits; c<<q.bits < q.size; {
		l1i := c / q.l2n
		l2 := int64(q.l1[l1i] & qcow2OffsetMask)
		if l2 == 0 {
			if start >= 0 {
				return start, c << q.bits, nil
			}
			c = (l1i + 1) * q.l2n // the whole table's span is unallocated
			continue
		}
		t, err := q.l2Table(l2, int(l1i))
		if err != nil {
			return 0, 0, err
		}
		for ; c < (l1i+1)*q.l2n && c<<q.bits < q.size; c++ {
			d := isData(t[c%q.l2n])
			switch {
			case d && start < 0:
				start = max(off, c<<q.bits)
			case !d && start >= 0:
				return start, c << q.bits, nil
			}
		}
	}
	if start >= 0 {
		return start, q.size, nil
	}
	return 0, 0, io.EOF
}
