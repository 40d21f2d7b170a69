package debfile

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// The common ar format .deb files use (deb(5)): an 8-byte magic, then
// members, each a 60-byte header and its data, padded to an even offset.
const (
	arMagic      = "!<arch>\n"
	arHeaderSize = 60
)

// arMember is one member of an ar archive.
type arMember struct {
	name string
	off  int64 // of the data, past the header
	size int64
}

// section returns the member's data.
func (m arMember) section(r io.ReaderAt) *io.SectionReader {
	return io.NewSectionReader(r, m.off, m.size)
}

// arReader walks the members of an ar archive of a known size, trusting no
// field of a header: names are bounded by the format, sizes are decimal
// digits that must fit in what is left of the file.
type arReader struct {
	r    io.ReaderAt
	size int64
	off  int64 // of the next header
}

func newArReader(r io.ReaderAt, size int64) (*arReader, error) {
	var magic [len(arMagic)]byte
	if size < int64(len(magic)) {
		return nil, fmt.Errorf("not a .deb: %d bytes", size)
	}
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, fmt.Errorf("reading the ar header: %w", err)
	}
	if string(magic[:]) != arMagic {
		return nil, fmt.Errorf("not a .deb: no ar archive magic (starts %q)", magic[:])
	}
	return &arReader{r: r, size: size, off: int64(len(magic))}, nil
}

// next returns the next member, or io.EOF at the end of the archive.
func (a *arReader) next() (arMember, error) {
	if a.off >= a.size {
		return arMember{}, io.EOF
	}
	if a.size-a.off < arHeaderSize {
		return arMember{}, fmt.Errorf("ar member header at %d: truncated (%d bytes left)", a.off, a.size-a.off)
	}
	var h [arHeaderSize]byte
	if _, err := a.r.ReadAt(h[:], a.off); err != nil {
		return arMember{}, fmt.Errorf("ar member header at %d: %w", a.off, err)
	}
	if h[58] != '`' || h[59] != '\n' {
		return arMember{}, fmt.Errorf("ar member header at %d: bad terminator %q", a.off, h[58:60])
	}
	// GNU ar ends names with "/"; dpkg-deb pads them with spaces.
	name := string(bytes.TrimSuffix(bytes.TrimRight(h[0:16], " "), []byte("/")))
	field := bytes.TrimRight(h[48:58], " ")
	size, err := strconv.ParseUint(string(field), 10, 63)
	if err != nil {
		return arMember{}, fmt.Errorf("ar member %q: bad size %q", name, h[48:58])
	}
	off := a.off + arHeaderSize
	if int64(size) > a.size-off {
		return arMember{}, fmt.Errorf("ar member %q: %d bytes, but only %d left in the file: truncated", name, size, a.size-off)
	}
	m := arMember{name: name, off: off, size: int64(size)}
	a.off = off + m.size + m.size%2
	return m, nil
}
