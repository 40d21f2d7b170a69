package squashfs

import "fmt"

// metaWriter builds one metadata area (inode table, directory table, or the
// body of a lookup table) in memory: a stream of up to 8 KiB chunks, each
// compressed and prefixed with its 16-bit length. A position in the stream is
// addressed as (compressed start of its chunk, offset inside the chunk).
type metaWriter struct {
	comp   compressor
	out    []byte   // compressed chunks so far
	starts []uint32 // compressed start of every flushed chunk
	buf    []byte   // the pending uncompressed chunk, < metadataSize
	total  uint64   // uncompressed bytes written
	scrap  []byte
	err    error
}

func newMetaWriter(c compressor) *metaWriter {
	return &metaWriter{comp: c, buf: make([]byte, 0, metadataSize)}
}

// pos is the uncompressed position of the next byte.
func (m *metaWriter) pos() uint64 { return m.total }

// ref returns the chunk start and offset of uncompressed position p, which
// must not be beyond pos().
func (m *metaWriter) ref(p uint64) (block uint32, offset uint16) {
	k := p / metadataSize
	if k < uint64(len(m.starts)) {
		block = m.starts[k]
	} else {
		block = uint32(len(m.out))
	}
	return block, uint16(p % metadataSize)
}

// inodeRef is ref packed as squashfs inode references are.
func (m *metaWriter) inodeRef(p uint64) uint64 {
	b, o := m.ref(p)
	return uint64(b)<<16 | uint64(o)
}

func (m *metaWriter) Write(p []byte) {
	m.total += uint64(len(p))
	for len(p) > 0 {
		n := min(len(p), metadataSize-len(m.buf))
		m.buf = append(m.buf, p[:n]...)
		p = p[n:]
		if len(m.buf) == metadataSize {
			m.flush()
		}
	}
}

func (m *metaWriter) flush() {
	if len(m.buf) == 0 || m.err != nil {
		return
	}
	if len(m.out) > 0xffffffff-metadataSize-2 {
		m.err = fmt.Errorf("metadata table exceeds 4 GiB")
		return
	}
	m.starts = append(m.starts, uint32(len(m.out)))
	c, err := m.comp.compress(m.scrap, m.buf)
	if err != nil {
		m.err = err
		return
	}
	m.scrap = c
	if len(c) < len(m.buf) {
		m.out = le(m.out).u16(uint16(len(c)))
		m.out = append(m.out, c...)
	} else {
		m.out = le(m.out).u16(uint16(len(m.buf)) | metaUncompFlag)
		m.out = append(m.out, m.buf...)
	}
	m.buf = m.buf[:0]
}

// finish flushes the last partial chunk and returns the compressed area.
func (m *metaWriter) finish() ([]byte, error) {
	m.flush()
	return m.out, m.err
}

// table is a lookup table: fixed-size entries in metadata chunks, then an
// array of the chunks' absolute positions. The superblock points at the
// array.
func table(c compressor, entries []byte, at uint64) (data []byte, lookup uint64, err error) {
	m := newMetaWriter(c)
	m.Write(entries)
	body, err := m.finish()
	if err != nil {
		return nil, 0, err
	}
	data = body
	lookup = at + uint64(len(body))
	for _, s := range m.starts {
		data = le(data).u64(at + uint64(s))
	}
	return data, lookup, nil
}
