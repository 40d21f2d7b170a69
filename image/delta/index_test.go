package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/restic/chunker"

	"keel/image/bundle"
)

// random is n reproducible bytes of incompressible data.
func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func splitBytes(t testing.TB, p Params, name string, b []byte) Section {
	t.Helper()
	s, err := Split(context.Background(), p, name, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPolynomial(t *testing.T) {
	p := chunker.Pol(Polynomial)
	if p.Deg() != 53 || !p.Irreducible() {
		t.Fatalf("polynomial %#x: degree %d, irreducible %v; restic/chunker wants an irreducible one of degree 53", uint64(p), p.Deg(), p.Irreducible())
	}
}

func TestSplit(t *testing.T) {
	data := random(1, 3<<20)
	s := splitBytes(t, DefaultParams, "rootfs", data)
	var off int64
	for i, c := range s.Chunks {
		if c.Offset != off || c.Size > int64(DefaultParams.Max) || (i < len(s.Chunks)-1 && c.Size < int64(DefaultParams.Min)) {
			t.Fatalf("chunk %d: %+v at %d", i, c, off)
		}
		if c.Sum != sha256Sum(data[c.Offset:c.Offset+c.Size]) {
			t.Fatalf("chunk %d: wrong sum", i)
		}
		off += c.Size
	}
	if off != int64(len(data)) {
		t.Fatalf("chunks cover %d of %d bytes", off, len(data))
	}
	avg := len(data) / len(s.Chunks)
	t.Logf("%d chunks, %d bytes on average", len(s.Chunks), avg)
	if avg < 32<<10 || avg > 128<<10 {
		t.Errorf("average chunk of %d bytes, want about 64 KiB", avg)
	}
	// Content-defined: bytes inserted near the start move the cuts after
	// them by as much, so all but the chunks around the insertion remain.
	moved := append(append(bytes.Clone(data[:1000]), "inserted bytes"...), data[1000:]...)
	s2 := splitBytes(t, DefaultParams, "rootfs", moved)
	have := map[[32]byte]bool{}
	for _, c := range s.Chunks {
		have[c.Sum] = true
	}
	shared := 0
	for _, c := range s2.Chunks {
		if have[c.Sum] {
			shared++
		}
	}
	if shared < len(s.Chunks)-3 {
		t.Errorf("after inserting 14 bytes %d of %d chunks remain, want all but about 2", shared, len(s.Chunks))
	}
	// Short and empty artifacts.
	for _, n := range []int{0, 1, 100, 16 << 10, 16<<10 + 1} {
		s := splitBytes(t, DefaultParams, "kernel", data[:n])
		if n == 0 && len(s.Chunks) != 0 || n > 0 && (len(s.Chunks) != 1 || s.Chunks[0].Size != int64(n)) {
			t.Errorf("%d bytes: chunks %+v", n, s.Chunks)
		}
	}
	// A source shorter than it says.
	if _, err := Split(context.Background(), DefaultParams, "x", bytes.NewReader(data[:100]), 200); err == nil {
		t.Error("a short source was chunked")
	}
}

// sample is an index of three artifacts, one of them empty.
func sample(t testing.TB) *Index {
	x := &Index{Params: DefaultParams, Sections: []Section{
		splitBytes(t, DefaultParams, "rootfs", random(2, 1<<20+12345)),
		splitBytes(t, DefaultParams, "kernel", random(3, 70000)),
		splitBytes(t, DefaultParams, "initrd", nil),
	}}
	x.Sections[2].Chunks = []Chunk{}
	return x
}

func TestRoundTrip(t *testing.T) {
	x := sample(t)
	b := x.Marshal()
	y, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("read back:\n%+v\nwant\n%+v", y, x)
	}
	if !bytes.Equal(y.Marshal(), b) {
		t.Fatal("marshal after parse gives other bytes")
	}
	want := headerSize + 3*(1+8+4) + len("rootfskernelinitrd") + chunkSize*(len(x.Sections[0].Chunks)+len(x.Sections[1].Chunks))
	if len(b) != want {
		t.Errorf("%d bytes, want %d", len(b), want)
	}
}

func TestReproducible(t *testing.T) {
	srcs := func() []bundle.Source {
		return []bundle.Source{bundle.BytesSource("rootfs", random(4, 2<<20)), bundle.BytesSource("kernel", random(5, 300000))}
	}
	a, err := MakeIndex(context.Background(), DefaultParams, srcs())
	if err != nil {
		t.Fatal(err)
	}
	b, err := MakeIndex(context.Background(), DefaultParams, srcs())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two indexes of the same bytes differ")
	}
	with, err := WithIndex(context.Background(), srcs())
	if err != nil {
		t.Fatal(err)
	}
	if len(with) != 3 || with[0].Name != bundle.Index || with[0].Size != int64(len(a)) {
		t.Fatalf("WithIndex: %+v", with)
	}
}

// TestParseStrict breaks each field of a good index and expects ErrCorrupt.
func TestParseStrict(t *testing.T) {
	good := sample(t).Marshal()
	be := binary.BigEndian
	// Offsets in good: the header, then three section headers.
	sec0 := headerSize                    // "rootfs"
	sec1 := sec0 + 1 + len("rootfs") + 12 // "kernel"
	chunks := sec1 + 1 + len("kernel") + 12 + 1 + len("initrd") + 12
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	put32 := func(off int, v uint32) []byte {
		return edit(func(b []byte) []byte { be.PutUint32(b[off:], v); return b })
	}
	tests := []struct {
		name, want string // want: in the error
		b          []byte
	}{
		{"empty", "no KEELCIDX header", nil},
		{"header only, cut", "no KEELCIDX header", good[:headerSize-1]},
		{"magic", "no KEELCIDX header", edit(func(b []byte) []byte { b[0] = 'X'; return b })},
		{"version 2", "format 2", put32(8, 2)},
		{"another polynomial", "polynomial 0x3da3358b4dc175", edit(func(b []byte) []byte { be.PutUint64(b[12:], 0x3DA3358B4DC175); return b })},
		{"minimum under the window", "less than the 64-byte window", put32(20, 63)},
		{"maximum under the minimum", "maximum chunk size 16383", put32(24, 16<<10-1)},
		{"maximum over MaxChunk", "maximum chunk size 16777217", put32(24, MaxChunk+1)},
		{"average bits 7", "average bits 7", put32(28, 7)},
		{"average bits 31", "average bits 31", put32(28, 31)},
		{"no section", "0 sections", put32(32, 0)},
		{"9 sections", "9 sections", put32(32, 9)},
		{"4 sections", "section 3: name of 0 bytes", put32(32, 4)},
		{"2 sections", "bytes of chunks", put32(32, 2)},
		{"empty name", "section 0: name of 0 bytes", edit(func(b []byte) []byte { b[sec0] = 0; return b })},
		{"upper-case name", `name "Rootfs"`, edit(func(b []byte) []byte { b[sec0+1] = 'R'; return b })},
		{"name with a slash", `name "/ootfs"`, edit(func(b []byte) []byte { b[sec0+1] = '/'; return b })},
		{"same name twice", `section "rootfs" twice`, edit(func(b []byte) []byte { copy(b[sec1+1:], "rootfs"); return b })},
		{"size one more", "chunks cover", edit(func(b []byte) []byte { be.PutUint64(b[sec0+7:], be.Uint64(b[sec0+7:])+1); return b })},
		{"size one less", "chunks run past", edit(func(b []byte) []byte { be.PutUint64(b[sec0+7:], be.Uint64(b[sec0+7:])-1); return b })},
		{"size 2^62", "size 4611686018427387904", edit(func(b []byte) []byte { be.PutUint64(b[sec0+7:], 1<<62); return b })},
		{"one chunk more", "for 17 chunks", edit(func(b []byte) []byte { be.PutUint32(b[sec0+15:], be.Uint32(b[sec0+15:])+1); return b })},
		{"one chunk less", "for 15 chunks", edit(func(b []byte) []byte { be.PutUint32(b[sec0+15:], be.Uint32(b[sec0+15:])-1); return b })},
		{"4 billion chunks", "4294967295 chunks cannot make", put32(sec0+15, 0xffffffff)},
		{"chunk of 0 bytes", "chunk 0 of 0 bytes", put32(chunks, 0)},
		{"chunk under the minimum", "chunk 0 of 16383 bytes", edit(func(b []byte) []byte {
			// Move bytes from the first chunk to the second: the sum
			// holds, the first is too short.
			c0, c1 := be.Uint32(b[chunks:]), be.Uint32(b[chunks+chunkSize:])
			be.PutUint32(b[chunks:], 16<<10-1)
			be.PutUint32(b[chunks+chunkSize:], c1+c0-(16<<10-1))
			return b
		})},
		{"chunk over the maximum", "chunk 0 of 262145 bytes", put32(chunks, 256<<10+1)},
		{"chunks one byte short", "chunks cover", edit(func(b []byte) []byte { be.PutUint32(b[chunks:], be.Uint32(b[chunks:])-1); return b })},
		{"chunks one byte long", "chunks run past", edit(func(b []byte) []byte { be.PutUint32(b[chunks:], be.Uint32(b[chunks:])+1); return b })},
		{"a byte after the chunks", "bytes of chunks", append(bytes.Clone(good), 0)},
		{"a chunk after the chunks", "bytes of chunks", append(bytes.Clone(good), make([]byte, chunkSize)...)},
		{"last byte cut", "bytes of chunks", good[:len(good)-1]},
		{"cut in a section header", "ends inside section 1's header", good[:sec1+3]},
		{"larger than MaxIndex", "at most 67108864", make([]byte, bundle.MaxIndex+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := Parse(tt.b)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v, %v; want ErrCorrupt with %q", x != nil, err, tt.want)
			}
		})
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("the good index: %v", err)
	}
}

func TestCheck(t *testing.T) {
	x := sample(t)
	arts := []bundle.Artifact{{Name: "index", Size: 100}, {Name: "rootfs", Size: x.Sections[0].Size}, {Name: "kernel", Size: x.Sections[1].Size}, {Name: "initrd", Size: 0}}
	m := bundle.Manifest{Artifacts: arts}
	if err := x.Check(m); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		edit func(m *bundle.Manifest)
	}{
		{"other size", func(m *bundle.Manifest) { m.Artifacts[1].Size++ }},
		{"other order", func(m *bundle.Manifest) { m.Artifacts[1], m.Artifacts[2] = m.Artifacts[2], m.Artifacts[1] }},
		{"an artifact more", func(m *bundle.Manifest) { m.Artifacts = append(m.Artifacts, bundle.Artifact{Name: "uki"}) }},
		{"an artifact less", func(m *bundle.Manifest) { m.Artifacts = m.Artifacts[:3] }},
		{"other name", func(m *bundle.Manifest) { m.Artifacts[3].Name = "uki" }},
	} {
		m := bundle.Manifest{Artifacts: append([]bundle.Artifact(nil), arts...)}
		tt.edit(&m)
		if err := x.Check(m); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tt.name, err)
		}
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
