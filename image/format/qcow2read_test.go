package format

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readerImage is a raw image with data in the first cluster, zeros
// written as data (which must read back as zeros, not be stored), a
// cluster straddling a 512 MiB L2 span, and a last sector that is not on
// a cluster boundary.
func readerImage(t *testing.T) string {
	const size = 600<<20 + 3*512
	return rawImage(t, size, map[int64][]byte{
		0:                      fill(4096, 1),
		70 << 10:               fill(200<<10, 2),
		300 << 10:              make([]byte, 128<<10), // zeros, written
		512<<20 - 4096:         fill(8192, 3),
		size - 512:             fill(512, 4),
		40<<20 + cluster + 100: fill(1000, 5),
	})
}

// sameAsRaw reads an Image through ReadAt in odd-sized pieces and compares
// it with the raw image want, and checks that outside its Data ranges
// want holds only zeros. Pieces, not the whole disk: it is 600 MiB.
func sameAsRaw(t *testing.T, img Image, want *os.File) {
	t.Helper()
	const piece = 3<<20 + 512
	got, w := make([]byte, piece), make([]byte, piece)
	for off := int64(0); off < img.Size(); off += piece {
		n := min(piece, img.Size()-off)
		if k, err := img.ReadAt(got[:n], off); int64(k) != n || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, k, err)
		}
		if _, err := want.ReadAt(w[:n], off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(got[:n], w[:n]) {
			i := 0
			for got[i] == w[i] {
				i++
			}
			t.Fatalf("differs from the raw image at %d", off+int64(i))
		}
	}
	zeros := func(a, b int64) bool {
		for ; a < b; a += piece {
			n := min(piece, b-a)
			if _, err := want.ReadAt(w[:n], a); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !isZeros(w[:n]) {
				return false
			}
		}
		return true
	}
	for off := int64(0); ; {
		s, e, err := img.Data(off)
		if err == io.EOF {
			if !zeros(off, img.Size()) {
				t.Fatalf("Data: non-zero bytes after the last data range, at %d", off)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s < off || e <= s || e > img.Size() {
			t.Fatalf("Data(%d) = %d, %d", off, s, e)
		}
		if !zeros(off, s) {
			t.Fatalf("Data(%d) = %d: non-zero bytes before it", off, s)
		}
		off = e
	}
}

func isZeros(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// TestReadQCOW2 reads qcow2 images written by keel and by qemu-img (plain
// and compressed, version 3 and 2) back to the raw image's bytes.
func TestReadQCOW2(t *testing.T) {
	src := readerImage(t)
	want, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	st, err := want.Stat()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	images := map[string]string{"keel": convert(t, src, QCOW2)}
	for name, opts := range map[string][]string{
		"qemu-img":             {},
		"qemu-img -c":          {"-c"},
		"qemu-img compat=0.10": {"-o", "compat=0.10"},
		"qemu-img -c 0.10":     {"-c", "-o", "compat=0.10"},
		"qemu-img 4k clusters": {"-o", "cluster_size=4096"},
		"qemu-img 2M clusters": {"-c", "-o", "cluster_size=2M"},
	} {
		p := filepath.Join(dir, strings.NewReplacer(" ", "_", "=", "_").Replace(name)+".qcow2")
		args := append([]string{"convert", "-f", "raw", "-O", "qcow2"}, opts...)
		qemuImg(t, append(args, src, p)...)
		images[name] = p
	}
	images["raw"] = src
	for name, p := range images {
		t.Run(name, func(t *testing.T) {
			img, err := OpenImage(p)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			wantFormat := QCOW2
			if name == "raw" {
				wantFormat = Raw
			}
			if img.Format() != wantFormat || img.Size() != st.Size() {
				t.Fatalf("%s of %d bytes, want %s of %d", img.Format(), img.Size(), wantFormat, st.Size())
			}
			sameAsRaw(t, img.Image, want)
		})
	}
}

// TestReadQCOW2Refused: what the reader does not implement, or finds
// broken, it refuses at open, saying what.
func TestReadQCOW2Refused(t *testing.T) {
	src := rawImage(t, 4<<20, map[int64][]byte{0: fill(4096, 1), 1 << 20: fill(cluster, 2)})
	good, err := os.ReadFile(convert(t, src, QCOW2))
	if err != nil {
		t.Fatal(err)
	}
	// keel's layout: header, L1 at cluster 1, refcount table, one refcount
	// block, then the L2 table at cluster 4.
	const l2 = 4 * cluster
	if got := binary.BigEndian.Uint64(good[cluster:]) &^ (1 << 63); got != l2 {
		t.Fatalf("L1[0] = %#x: keel's qcow2 layout changed, fix this test", got)
	}
	be32 := func(b []byte, off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	be64 := func(b []byte, off int, v uint64) { binary.BigEndian.PutUint64(b[off:], v) }
	qemuBacking := filepath.Join(t.TempDir(), "overlay.qcow2")
	qemuImg(t, "create", "-f", "qcow2", "-F", "raw", "-b", src, qemuBacking)
	backing, err := os.ReadFile(qemuBacking)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		edit   func(b []byte) []byte
		want   string
		unsupp bool
	}{
		{"backing file", func([]byte) []byte { return backing }, "with a backing file \"" + src, true},
		{"encrypted", func(b []byte) []byte { be32(b, 32, 1); return b }, "encrypted", true},
		{"version 4", func(b []byte) []byte { be32(b, 4, 4); return b }, "qcow2 version 4", true},
		{"external data file", func(b []byte) []byte { be64(b, 72, 1<<2); return b }, "external data file", true},
		{"extended L2", func(b []byte) []byte { be64(b, 72, 1<<4); return b }, "extended L2", true},
		{"zstd", func(b []byte) []byte { be64(b, 72, 1<<3); be32(b, 100, 112); b[104] = 1; return b }, "compression type 1", true},
		{"unknown feature", func(b []byte) []byte { be64(b, 72, 1<<9); return b }, "incompatible features 0x200", true},
		{"corrupt", func(b []byte) []byte { be64(b, 72, 1<<1); return b }, "marked corrupt", false},
		{"cluster bits", func(b []byte) []byte { be32(b, 20, 30); return b }, "cluster_bits 30", false},
		{"L1 past the end", func(b []byte) []byte { be64(b, 40, 1<<40); return b }, "L1 table at 1099511627776", false},
		{"L1 too small", func(b []byte) []byte { be64(b, 24, 1<<40); return b }, "maps less than", false},
		{"L2 past the end", func(b []byte) []byte { be64(b, cluster, 1<<63|1<<30); return b }, "L2 table at 1073741824", false},
		{"L2 not aligned", func(b []byte) []byte { be64(b, cluster, 1<<63|l2+512); return b }, "L2 table at", false},
		{"data past the end", func(b []byte) []byte { be64(b, l2, 1<<63|1<<32); return b }, "data cluster at 4294967296", false},
		{"reserved bits", func(b []byte) []byte { be64(b, l2, 1<<63|1<<57|5*cluster); return b }, "reserved bits", false},
		{"truncated", func(b []byte) []byte { return b[:50] }, "read header", false},
		{"vmdk", func([]byte) []byte { return []byte("KDMV\x01\x00\x00\x00") }, "a vmdk image; raw and qcow2 images can be read", true},
		{"vhdx", func([]byte) []byte { return []byte("vhdxfile") }, "a vhdx image", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(good))
			_, err := NewImage(bytes.NewReader(b), int64(len(b)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewImage = %v, want an error saying %q", err, tt.want)
			}
			if errors.Is(err, ErrUnsupported) != tt.unsupp {
				t.Errorf("errors.Is(%v, ErrUnsupported) = %v", err, !tt.unsupp)
			}
		})
	}
	// The zero flag (version 3) reads as zeros whatever the entry points at.
	b := bytes.Clone(good)
	e := binary.BigEndian.Uint64(b[l2+16*8:])
	be64(b, l2+16*8, e|1)
	img, err := NewImage(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, cluster)
	if _, err := img.ReadAt(got, 1<<20); err != nil || !isZeros(got) {
		t.Errorf("a cluster with the zero flag reads %v, %x…", err, got[:8])
	}
}

// FuzzQcow2Open opens arbitrary bytes as an image: it must never panic,
// and what opens must read (its first and last clusters, and its data
// ranges' start) without panicking either.
func FuzzQcow2Open(f *testing.F) {
	src := rawImageF(f, 2<<20, map[int64][]byte{0: fill(4096, 1), 1 << 20: fill(cluster+512, 2)})
	for _, ff := range []Format{QCOW2} {
		var out bytes.Buffer
		if err := Write(f.Context(), &out, bytes.NewReader(src), int64(len(src)), ff); err != nil {
			f.Fatal(err)
		}
		f.Add(out.Bytes())
	}
	f.Add(tinyQCOW2(f))
	f.Add([]byte("QFI\xfb\x00\x00\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := NewImage(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		buf := make([]byte, 2*cluster)
		img.ReadAt(buf, 0)
		img.ReadAt(buf, max(0, img.Size()-int64(len(buf))/2))
		off := int64(0)
		for i := 0; i < 64; i++ {
			s, e, err := img.Data(off)
			if err != nil {
				break
			}
			if s < off || e <= s {
				t.Fatalf("Data(%d) = %d, %d", off, s, e)
			}
			img.ReadAt(buf[:min(int64(len(buf)), e-s)], s)
			off = e
		}
	})
}

// tinyQCOW2 is a version 3 qcow2 of 512-byte clusters, small enough for
// the fuzzer to mutate quickly: an 8 KiB disk whose cluster 0 is stored,
// cluster 1 has the zero flag, cluster 2 is compressed (raw deflate) and
// the rest is unallocated.
func tinyQCOW2(t testing.TB) []byte {
	b := make([]byte, 2560)
	copy(b, "QFI\xfb")
	binary.BigEndian.PutUint32(b[4:], 3)
	binary.BigEndian.PutUint32(b[20:], 9)
	binary.BigEndian.PutUint64(b[24:], 8192)
	binary.BigEndian.PutUint32(b[36:], 1)
	binary.BigEndian.PutUint64(b[40:], 512)
	binary.BigEndian.PutUint32(b[96:], 4)
	binary.BigEndian.PutUint32(b[100:], 104)
	binary.BigEndian.PutUint64(b[512:], 1<<63|1024)
	binary.BigEndian.PutUint64(b[1024:], 1<<63|1536)
	binary.BigEndian.PutUint64(b[1024+8:], 1)
	copy(b[1536:], fill(512, 3))
	var z bytes.Buffer
	zw, _ := flate.NewWriter(&z, flate.BestCompression)
	zw.Write(fill(512, 4))
	zw.Close()
	if z.Len() > 512 {
		t.Fatalf("deflate of a cluster is %d bytes", z.Len())
	}
	copy(b[2048:], z.Bytes())
	// Compressed, 512-byte clusters: offset in bits 0-60, sectors-1 in 61.
	binary.BigEndian.PutUint64(b[1024+16:], 1<<62|2048)
	img, err := NewImage(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1536)
	if _, err := img.ReadAt(got, 0); err != nil || !bytes.Equal(got, slices.Concat(fill(512, 3), make([]byte, 512), fill(512, 4))) {
		t.Fatalf("tiny qcow2 reads back wrong: %v", err)
	}
	return b
}

// rawImageF is the bytes of a raw image of size with writes applied.
func rawImageF(_ testing.TB, size int64, writes map[int64][]byte) []byte {
	b := make([]byte, size)
	for off, w := range writes {
		copy(b[off:], w)
	}
	return b
}
