package delta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"keel/image/bundle"
	"keel/image/fetch"
)

// memSource is a bundle in memory read as a server would send it: ranges
// of it, every response counted and, when cut is set, each one broken off
// after that many bytes.
type memSource struct {
	b        []byte
	requests []string
	cut      int
}

func (s *memSource) String() string { return "memory" }

func (s *memSource) Open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	return s.body(off, int64(len(s.b))-off), int64(len(s.b)), nil
}

func (s *memSource) OpenRange(ctx context.Context, off, n int64) (io.ReadCloser, error) {
	return s.body(off, n), nil
}

func (s *memSource) body(off, n int64) io.ReadCloser {
	end := min(off+n, int64(len(s.b)))
	s.requests = append(s.requests, fmt.Sprintf("%d-%d", off, end))
	b := s.b[off:end]
	if s.cut > 0 && len(b) > s.cut {
		return io.NopCloser(io.MultiReader(bytes.NewReader(b[:s.cut]), errReader{}))
	}
	return io.NopCloser(bytes.NewReader(b))
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

var fastRetry = fetch.Options{Backoff: time.Millisecond, Retries: 3}

// pair is a running slot's bytes and a new version: a 100 KiB region
// rewritten in the middle, 5000 bytes inserted near the end.
func pair() (old, new []byte) {
	old = random(10, 4<<20)
	new = bytes.Clone(old)
	copy(new[2<<20:], random(11, 100<<10))
	new = append(append(new[:3<<20:3<<20], random(12, 5000)...), old[3<<20:]...)
	return old, new
}

const head = 777 // stands in for a bundle's header and manifest

func assemble(t *testing.T, st *Store, src *memSource, sec *Section) ([]byte, *Reader, *Remote, error) {
	t.Helper()
	rem := NewRemote(src, fastRetry)
	r := NewReader(context.Background(), sec, st, rem, head)
	var out bytes.Buffer
	_, err := io.Copy(&out, r)
	r.Close()
	return out.Bytes(), r, rem, err
}

func TestReader(t *testing.T) {
	old, new := pair()
	sec := splitBytes(t, DefaultParams, "rootfs", new)
	bundleBytes := append(make([]byte, head), new...)
	st := NewStore()
	if err := st.Scan(context.Background(), DefaultParams, "old", bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	src := &memSource{b: bundleBytes}
	got, r, rem, err := assemble(t, st, src, &sec)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, new) {
		t.Fatal("assembled bytes differ")
	}
	s := r.Stats
	t.Logf("stats %+v, requests %q, fetched %d", s, src.requests, rem.Fetched())
	if s.Local+s.Remote != int64(len(new)) || rem.Fetched() != s.Remote {
		t.Errorf("local %d + remote %d for %d bytes; fetched %d", s.Local, s.Remote, len(new), rem.Fetched())
	}
	// Two places changed: two runs of missing chunks, each one range
	// of a few chunks.
	if s.Requests != 2 || len(src.requests) != 2 || rem.Requests() != 2 {
		t.Errorf("%d runs, %d requests (%q), want 2", s.Requests, len(src.requests), src.requests)
	}
	if s.Remote > 100<<10+5000+4*int64(DefaultParams.Max) {
		t.Errorf("fetched %d bytes for 105 KiB changed", s.Remote)
	}

	// Nothing local: one range for the whole artifact.
	src = &memSource{b: bundleBytes}
	got, r, _, err = assemble(t, NewStore(), src, &sec)
	if err != nil || !bytes.Equal(got, new) || r.Stats.Remote != int64(len(new)) || len(src.requests) != 1 {
		t.Errorf("with nothing local: %v, %+v, requests %q", err, r.Stats, src.requests)
	}

	// Connections cut after 100 KiB: each range resumes where it broke
	// off, no byte fetched twice.
	src = &memSource{b: bundleBytes, cut: 100 << 10}
	got, r, rem, err = assemble(t, NewStore(), src, &sec)
	if err != nil || !bytes.Equal(got, new) || rem.Fetched() != int64(len(new)) {
		t.Errorf("with cuts: %v, fetched %d of %d", err, rem.Fetched(), len(new))
	}
	if want := (len(new) + 100<<10 - 1) / (100 << 10); len(src.requests) != want || rem.Requests() != want {
		t.Errorf("with cuts: %d requests (Remote says %d), want %d", len(src.requests), rem.Requests(), want)
	}
}

// TestReaderLocalMismatch gives the Store an index of the old bytes but
// other bytes to read: the chunks that do not hash right are fetched.
func TestReaderLocalMismatch(t *testing.T) {
	old, new := pair()
	sec := splitBytes(t, DefaultParams, "rootfs", new)
	oldSec := splitBytes(t, DefaultParams, "rootfs", old)
	damaged := bytes.Clone(old)
	c := oldSec.Chunks[3]
	damaged[c.Offset+10] ^= 1
	st := NewStore()
	st.Add("old", bytes.NewReader(damaged), &oldSec)
	got, r, _, err := assemble(t, st, &memSource{b: append(make([]byte, head), new...)}, &sec)
	if err != nil || !bytes.Equal(got, new) {
		t.Fatalf("%v; same bytes %v", err, bytes.Equal(got, new))
	}
	if r.Stats.Rejected != 1 || r.Stats.Requests != 3 {
		t.Errorf("stats %+v: want 1 rejected, 3 ranges", r.Stats)
	}
}

// TestReaderRemoteMismatch flips a bit of a chunk the device must fetch:
// the reader stops with bundle.ErrHashMismatch and hands out nothing of
// that chunk.
func TestReaderRemoteMismatch(t *testing.T) {
	old, new := pair()
	sec := splitBytes(t, DefaultParams, "rootfs", new)
	st := NewStore()
	if err := st.Scan(context.Background(), DefaultParams, "old", bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	bad := append(make([]byte, head), new...)
	flip := int64(2<<20 + 50<<10) // in the rewritten region
	bad[head+flip] ^= 0x40
	got, _, _, err := assemble(t, st, &memSource{b: bad}, &sec)
	if !errors.Is(err, bundle.ErrHashMismatch) {
		t.Fatalf("error %v, want ErrHashMismatch", err)
	}
	t.Log(err)
	var at Chunk
	for _, c := range sec.Chunks {
		if c.Offset <= flip && flip < c.Offset+c.Size {
			at = c
		}
	}
	if int64(len(got)) != at.Offset || !bytes.Equal(got, new[:at.Offset]) {
		t.Errorf("handed out %d bytes, want the %d before the bad chunk", len(got), at.Offset)
	}
}
