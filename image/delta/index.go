package delta

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/restic/chunker"

	"keel/image/bundle"
)

// Magic opens every index; the format version follows it.
const Magic = "KEELCIDX"

const (
	// Format is the index format this package writes and reads.
	Format = 1
	// Polynomial is the irreducible polynomial of degree 53 of the Rabin
	// fingerprint (restic/chunker's own test polynomial). It is part of
	// format 1: the reader takes no other, so a device never builds the
	// chunker's tables for a polynomial a bundle chose.
	Polynomial = 0x3DA3358B4DC173
	// MaxChunk caps Params.Max: a device holds one chunk in memory.
	MaxChunk = 16 << 20
	// MaxSections caps the sections of an index: one per artifact after it.
	MaxSections = 8
	// maxName caps a section's name.
	maxName = 32
	// maxSize caps a section's artifact size (16 TiB), so that sums of
	// sizes cannot overflow.
	maxSize = 1 << 44
	// windowSize is the chunker's rolling window: no chunk is shorter
	// than it but the last.
	windowSize = 64

	headerSize = len(Magic) + 4 + 8 + 4 + 4 + 4 + 4
	chunkSize  = 4 + sha256.Size
)

// ErrCorrupt is an index that is not well formed, or does not describe
// the artifacts of its bundle.
var ErrCorrupt = errors.New("index is corrupt")

// Params are the chunker's: restic/chunker's Rabin fingerprint of a
// 64-byte window with Polynomial cuts where its low AvgBits bits are zero,
// but never less than Min bytes after the last cut (except at the end of
// the artifact) and always at Max bytes.
type Params struct {
	Min, Max uint32
	AvgBits  uint32
}

// DefaultParams are what keel builds with: 16 KiB to 256 KiB, 64 KiB on
// average. Measured by bench/delta.sh (a 67 MiB root squashfs of 6,906
// files, a 76 MiB bundle), the bytes a device fetches for a changed 5 MiB
// library / an added 3.8 MiB package: 4:16:64 KiB 2.3% / 2.1% with a 140
// KiB index, 16:64:256 2.6% / 2.1% with 34 KiB, 64:256:1024 3.5% / 2.6%
// with 9 KiB. Smaller chunks save little, since what changed is mostly
// the changed files themselves, and cost a larger index and four times
// the chunks to hash and look up on the device.
var DefaultParams = Params{Min: 16 << 10, Max: 256 << 10, AvgBits: 16}

// Check says what is wrong with p, if anything.
func (p Params) Check() error {
	switch {
	case p.Min < windowSize:
		return fmt.Errorf("minimum chunk size %d is less than the %d-byte window", p.Min, windowSize)
	case p.Max < p.Min || p.Max > MaxChunk:
		return fmt.Errorf("maximum chunk size %d is not between the minimum %d and %d", p.Max, p.Min, MaxChunk)
	case p.AvgBits < 8 || p.AvgBits > 30:
		return fmt.Errorf("average bits %d is not between 8 and 30", p.AvgBits)
	}
	return nil
}

// Index lists the content-defined chunks of the artifacts that follow it
// in a bundle: one Section per artifact, in the bundle's order.
type Index struct {
	Params   Params
	Sections []Section
}

// Section is one artifact's chunks: back to back from its first byte to
// its last.
type Section struct {
	Name   string
	Size   int64
	Chunks []Chunk
}

// Chunk is a byte range of an artifact and its sha256.
type Chunk struct {
	Offset int64 // from the artifact's start: the sum of the sizes before it
	Size   int64
	Sum    [sha256.Size]byte
}

// Section returns the section of the artifact called name.
func (x *Index) Section(name string) (*Section, bool) {
	for i := range x.Sections {
		if x.Sections[i].Name == name {
			return &x.Sections[i], true
		}
	}
	return nil, false
}

// Marshal encodes x (see the package comment for the layout).
func (x *Index) Marshal() []byte {
	n := headerSize
	for _, s := range x.Sections {
		n += 1 + len(s.Name) + 8 + 4 + chunkSize*len(s.Chunks)
	}
	b := make([]byte, 0, n)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, Format)
	b = binary.BigEndian.AppendUint64(b, Polynomial)
	b = binary.BigEndian.AppendUint32(b, x.Params.Min)
	b = binary.BigEndian.AppendUint32(b, x.Params.Max)
	b = binary.BigEndian.AppendUint32(b, x.Params.AvgBits)
	b = binary.BigEndian.AppendUint32(b, uint32(len(x.Sections)))
	for _, s := range x.Sections {
		b = append(b, byte(len(s.Name)))
		b = append(b, s.Name...)
		b = binary.BigEndian.AppendUint64(b, uint64(s.Size))
		b = binary.BigEndian.AppendUint32(b, uint32(len(s.Chunks)))
	}
	for _, s := range x.Sections {
		for _, c := range s.Chunks {
			b = binary.BigEndian.AppendUint32(b, uint32(c.Size))
			b = append(b, c.Sum[:]...)
		}
	}
	return b
}

// Parse decodes an index and checks everything it can on its own: the
// magic, version and polynomial, chunker parameters within bounds, at
// most MaxSections sections with distinct names, and each section's chunk
// sizes between the minimum and the maximum (the last may be shorter)
// adding up to its artifact's size, with nothing after the last chunk.
// Chunk offsets are not stored: each chunk starts where the one before it
// ended, so chunks are contiguous and cover their artifact exactly by
// construction. Nothing is allocated before the bytes for it were seen.
func Parse(b []byte) (*Index, error) {
	if len(b) > bundle.MaxIndex {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrCorrupt, len(b), bundle.MaxIndex)
	}
	if len(b) < headerSize || string(b[:len(Magic)]) != Magic {
		return nil, fmt.Errorf("%w: no %s header", ErrCorrupt, Magic)
	}
	be := binary.BigEndian
	if v := be.Uint32(b[8:]); v != Format {
		return nil, fmt.Errorf("%w: format %d, this keel reads %d", ErrCorrupt, v, Format)
	}
	if pol := be.Uint64(b[12:]); pol != Polynomial {
		return nil, fmt.Errorf("%w: polynomial %#x, format %d has %#x", ErrCorrupt, pol, Format, uint64(Polynomial))
	}
	x := &Index{Params: Params{Min: be.Uint32(b[20:]), Max: be.Uint32(b[24:]), AvgBits: be.Uint32(b[28:])}}
	if err := x.Params.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	ns := be.Uint32(b[32:])
	if ns == 0 || ns > MaxSections {
		return nil, fmt.Errorf("%w: %d sections (1 to %d)", ErrCorrupt, ns, MaxSections)
	}
	b = b[headerSize:]
	counts := make([]int, ns)
	total := 0
	for i := range counts {
		if len(b) < 1 || len(b) < 1+int(b[0])+12 {
			return nil, fmt.Errorf("%w: ends inside section %d's header", ErrCorrupt, i)
		}
		name := string(b[1 : 1+int(b[0])])
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrCorrupt, i, err)
		}
		if _, dup := x.Section(name); dup {
			return nil, fmt.Errorf("%w: section %q twice", ErrCorrupt, name)
		}
		b = b[1+len(name):]
		size, n := be.Uint64(b), be.Uint32(b[8:])
		b = b[12:]
		if size > maxSize {
			return nil, fmt.Errorf("%w: section %s: size %d (at most %d)", ErrCorrupt, name, size, int64(maxSize))
		}
		// All chunks but the last are at least Min bytes, none more than
		// Max: so many chunks, no more and no fewer, can make size bytes.
		lo, hi := (size+uint64(x.Params.Max)-1)/uint64(x.Params.Max), uint64(0)
		if size > 0 {
			hi = (size-1)/uint64(x.Params.Min) + 1
		}
		if uint64(n) < lo || uint64(n) > hi {
			return nil, fmt.Errorf("%w: section %s: %d chunks cannot make %d bytes (%d to %d)", ErrCorrupt, name, n, size, lo, hi)
		}
		counts[i] = int(n)
		total += int(n)
		x.Sections = append(x.Sections, Section{Name: name, Size: int64(size)})
	}
	if len(b) != total*chunkSize {
		return nil, fmt.Errorf("%w: %d bytes of chunks, want %d for %d chunks", ErrCorrupt, len(b), total*chunkSize, total)
	}
	for i := range x.Sections {
		s := &x.Sections[i]
		s.Chunks = make([]Chunk, counts[i])
		var off int64
		for j := range s.Chunks {
			c := &s.Chunks[j]
			c.Offset, c.Size = off, int64(be.Uint32(b))
			copy(c.Sum[:], b[4:chunkSize])
			b = b[chunkSize:]
			last := j == len(s.Chunks)-1
			if c.Size == 0 || c.Size > int64(x.Params.Max) || (!last && c.Size < int64(x.Params.Min)) {
				return nil, fmt.Errorf("%w: section %s: chunk %d of %d bytes (%d to %d)", ErrCorrupt, s.Name, j, c.Size, x.Params.Min, x.Params.Max)
			}
			off += c.Size
			if off > s.Size {
				return nil, fmt.Errorf("%w: section %s: chunks run past its %d bytes", ErrCorrupt, s.Name, s.Size)
			}
		}
		if off != s.Size {
			return nil, fmt.Errorf("%w: section %s: chunks cover %d of its %d bytes", ErrCorrupt, s.Name, off, s.Size)
		}
	}
	return x, nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxName {
		return fmt.Errorf("name of %d bytes (1 to %d)", len(name), maxName)
	}
	for _, c := range []byte(name) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return fmt.Errorf("name %q: only a-z, 0-9 and -", name)
		}
	}
	return nil
}

// Check reports whether x describes exactly the artifacts of m that come
// after the index: the same names and sizes, in order.
func (x *Index) Check(m bundle.Manifest) error {
	var want []bundle.Artifact
	for _, a := range m.Artifacts {
		if a.Name != bundle.Index {
			want = append(want, a)
		}
	}
	if len(x.Sections) != len(want) {
		return fmt.Errorf("%w: %d sections for %d artifacts", ErrCorrupt, len(x.Sections), len(want))
	}
	for i, a := range want {
		if s := x.Sections[i]; s.Name != a.Name || s.Size != a.Size {
			return fmt.Errorf("%w: section %d is %s of %d bytes, the manifest's artifact %s of %d", ErrCorrupt, i, s.Name, s.Size, a.Name, a.Size)
		}
	}
	return nil
}

// Split cuts size bytes of r into chunks with p and hashes them.
func Split(ctx context.Context, p Params, name string, r io.Reader, size int64) (Section, error) {
	s := Section{Name: name, Size: size}
	err := split(ctx, p, r, size, func(off int64, data []byte) {
		s.Chunks = append(s.Chunks, Chunk{Offset: off, Size: int64(len(data)), Sum: sha256.Sum256(data)})
	})
	if err != nil {
		return Section{}, fmt.Errorf("chunking %s: %w", name, err)
	}
	return s, nil
}

// split calls fn with each chunk of size bytes of r, in order.
func split(ctx context.Context, p Params, r io.Reader, size int64, fn func(off int64, data []byte)) error {
	if err := p.Check(); err != nil {
		return err
	}
	cr := &countReader{r: io.LimitReader(r, size)}
	c := chunker.NewWithBoundaries(cr, chunker.Pol(Polynomial), uint(p.Min), uint(p.Max))
	c.SetAverageBits(int(p.AvgBits))
	buf := make([]byte, p.Max)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		fn(off, ch.Data)
		off += int64(ch.Length)
	}
	if off != size {
		return fmt.Errorf("%d bytes, shorter than its size %d: %w", off, size, io.ErrUnexpectedEOF)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// MakeIndex chunks the artifacts of a bundle with p (each source is read
// once more) and returns the encoded index of them, in their order.
func MakeIndex(ctx context.Context, p Params, srcs []bundle.Source) ([]byte, error) {
	x := &Index{Params: p}
	if len(srcs) == 0 || len(srcs) > MaxSections {
		return nil, fmt.Errorf("index of %d artifacts (1 to %d)", len(srcs), MaxSections)
	}
	for _, src := range srcs {
		if err := checkName(src.Name); err != nil {
			return nil, fmt.Errorf("index: artifact %s: %w", src.Name, err)
		}
		rc, err := src.Open()
		if err != nil {
			return nil, fmt.Errorf("index: artifact %s: %w", src.Name, err)
		}
		s, err := Split(ctx, p, src.Name, rc, src.Size)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		x.Sections = append(x.Sections, s)
	}
	b := x.Marshal()
	if len(b) > bundle.MaxIndex {
		return nil, fmt.Errorf("index of %d bytes, more than %d: raise the chunk size", len(b), bundle.MaxIndex)
	}
	return b, nil
}

// WithIndex returns srcs (a bundle's artifacts in install order, without
// an index) with the index of them first, made with DefaultParams: what
// keel build passes to bundle.WriteFile.
func WithIndex(ctx context.Context, srcs []bundle.Source) ([]bundle.Source, error) {
	b, err := MakeIndex(ctx, DefaultParams, srcs)
	if err != nil {
		return nil, err
	}
	return append([]bundle.Source{bundle.BytesSource(bundle.Index, b)}, srcs...), nil
}
