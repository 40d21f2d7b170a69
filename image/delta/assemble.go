package delta

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"keel/image/bundle"
)

// Store is what a device already has: chunks by sha256, each at a place
// in bytes it can read (the running slot's partition, its kernel on the
// ESP), known from the running slot's index or found by chunking those
// bytes. A place is only a hint: a chunk's bytes are hashed again when
// read, and one that does not match is fetched instead.
type Store struct {
	srcs  []io.ReaderAt
	names []string
	at    map[[sha256.Size]byte]place
	// Bytes is the total size of the chunks known.
	Bytes int64
}

type place struct {
	src       int
	off, size int64
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{at: map[[sha256.Size]byte]place{}} }

// Len is the number of distinct chunks known.
func (s *Store) Len() int { return len(s.at) }

func (s *Store) source(name string, r io.ReaderAt) int {
	s.srcs, s.names = append(s.srcs, r), append(s.names, name)
	return len(s.srcs) - 1
}

func (s *Store) add(src int, off, size int64, sum [sha256.Size]byte) {
	if _, ok := s.at[sum]; !ok {
		s.at[sum] = place{src: src, off: off, size: size}
		s.Bytes += size
	}
}

// Add records the chunks sec lists as the bytes of r (named name in
// messages): an index of what r holds.
func (s *Store) Add(name string, r io.ReaderAt, sec *Section) {
	src := s.source(name, r)
	for _, c := range sec.Chunks {
		s.add(src, c.Offset, c.Size, c.Sum)
	}
}

// Scan chunks the first size bytes of r with p and records the chunks.
func (s *Store) Scan(ctx context.Context, p Params, name string, r io.ReaderAt, size int64) error {
	src := s.source(name, r)
	err := split(ctx, p, io.NewSectionReader(r, 0, size), size, func(off int64, data []byte) {
		s.add(src, off, int64(len(data)), sha256.Sum256(data))
	})
	if err != nil {
		return fmt.Errorf("chunking %s: %w", name, err)
	}
	return nil
}

// Stats counts where an artifact's bytes came from.
type Stats struct {
	Local    int64 // bytes read from the Store
	Remote   int64 // bytes fetched
	Requests int   // ranges fetched (coalesced runs of missing chunks)
	// Rejected counts chunks whose local bytes did not hash to the
	// index's sum, and were fetched instead.
	Rejected int
}

// Reader reads one artifact of a remote bundle in order: each chunk from
// the Store where it has the chunk, the others from the bundle itself,
// adjacent missing chunks in one range. Every chunk is checked against the
// index's sha256 before any of its bytes are handed out; a fetched chunk
// that does not match ends the reader with bundle.ErrHashMismatch.
type Reader struct {
	ctx   context.Context
	sec   *Section
	st    *Store
	rem   *Remote
	base  int64 // where the artifact starts in the bundle
	Stats Stats

	i      int           // the next chunk to load
	buf    []byte        // the loaded chunk's bytes not yet read
	mem    []byte        // buf's storage
	run    io.ReadCloser // the range being fetched ...
	runEnd int           // ... which holds chunks up to runEnd
	err    error
}

// NewReader reads the artifact sec describes, which starts at base in the
// bundle rem reads.
func NewReader(ctx context.Context, sec *Section, st *Store, rem *Remote, base int64) *Reader {
	var largest int64
	for _, c := range sec.Chunks {
		largest = max(largest, c.Size)
	}
	return &Reader{ctx: ctx, sec: sec, st: st, rem: rem, base: base, mem: make([]byte, largest)}
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	for len(r.buf) == 0 {
		if r.i == len(r.sec.Chunks) {
			r.closeRun()
			r.err = io.EOF
			return 0, io.EOF
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			return 0, err
		}
		if err := r.load(); err != nil {
			r.closeRun()
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close ends a fetch under way.
func (r *Reader) Close() error {
	r.closeRun()
	return nil
}

func (r *Reader) closeRun() {
	if r.run != nil {
		r.run.Close()
		r.run = nil
	}
}

// load puts chunk r.i into r.buf, checked.
func (r *Reader) load() error {
	c := r.sec.Chunks[r.i]
	b := r.mem[:c.Size]
	if r.run == nil || r.i >= r.runEnd {
		r.closeRun()
		if p, ok := r.st.at[c.Sum]; ok {
			if _, err := r.st.srcs[p.src].ReadAt(b, p.off); err == nil && sha256.Sum256(b) == c.Sum {
				r.Stats.Local += c.Size
				r.buf, r.i = b, r.i+1
				return nil
			}
			// Not what its index said (or unreadable): fetch it, and
			// do not look there again.
			r.Stats.Rejected++
			delete(r.st.at, c.Sum)
		}
		// This chunk and the missing ones right after it, in one range.
		end, n := r.i+1, c.Size
		for end < len(r.sec.Chunks) {
			if _, ok := r.st.at[r.sec.Chunks[end].Sum]; ok {
				break
			}
			n += r.sec.Chunks[end].Size
			end++
		}
		r.run, r.runEnd = r.rem.Range(r.ctx, r.base+c.Offset, n), end
		r.Stats.Requests++
	}
	if _, err := io.ReadFull(r.run, b); err != nil {
		return fmt.Errorf("fetching %s bytes %d to %d: %w", r.sec.Name, c.Offset, c.Offset+c.Size, err)
	}
	r.Stats.Remote += c.Size
	if got := sha256.Sum256(b); got != c.Sum {
		return fmt.Errorf("%w: %s chunk %d (bytes %d to %d): sha256 %s, index says %s", bundle.ErrHashMismatch,
			r.sec.Name, r.i, c.Offset, c.Offset+c.Size, hex.EncodeToString(got[:]), hex.EncodeToString(c.Sum[:]))
	}
	r.buf, r.i = b, r.i+1
	return nil
}
